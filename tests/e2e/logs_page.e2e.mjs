#!/usr/bin/env node
// The /logs.html page in a real browser (headless Chromium driven by playwright-core).
//
// Starts the real `hearth` binary on free loopback ports (the HTTP API listener and the HunterPie
// listener under the prefix /hp), opens the page at a desktop and at a phone viewport, posts entries
// to /logs/add and checks what a person would see: rows in order with the newest at the bottom,
// colours per level, every filter (room through the server, user and level in the page) and the
// URL that bookmarks them, pause, clear, the 5,000-entry bound, auto-scroll, untrusted text shown
// as text, no horizontal scrolling on a phone, the page under the HunterPie prefix, and the
// reconnection after a server restart. The server's own lines: not shown without a token
// ([logs] public_server_lines off), shown with the operator token typed into the page (passed as
// a subprotocol, never in the URL; a wrong one is reported), and shown to everyone once the
// restarted server has public_server_lines on. Saves screenshots. Never sleeps: every wait is a
// condition polled by Playwright with a deadline.
//
// Usage: node logs_page.e2e.mjs [--hearth PATH] [--output-dir DIR]
//   --hearth      the server binary (or env HEARTH_BIN); default: build/debug/hearth
//   --output-dir  where screenshots go (or env HEARTH_TEST_OUTPUT_DIR); default: test-output/
//                 next to the binary
//   env HEARTH_CHROMIUM: the browser (default /usr/bin/chromium)
// Exit code 0 when every check passed; 1 with the failed check and the server's output otherwise.

import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const TOTAL_TIMEOUT_MS = 120_000;  // the whole script
const WAIT_MS = 15_000;            // any single wait

// --- arguments ------------------------------------------------------------------------------

function argument(name) {
    const i = process.argv.indexOf(name);
    return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : undefined;
}
const HEARTH = path.resolve(
    argument("--hearth") ?? process.env.HEARTH_BIN ?? path.join(HERE, "../../build/debug/hearth"));
const OUTPUT_DIR = path.resolve(argument("--output-dir") ?? process.env.HEARTH_TEST_OUTPUT_DIR ??
                                path.join(path.dirname(HEARTH), "test-output"));
const CHROMIUM = process.env.HEARTH_CHROMIUM ?? "/usr/bin/chromium";
const ADMIN_TOKEN = "e2e admin/token+with=odd chars";  // not base64url: the page must encode it

const started = Date.now();
function log(message) {
    const s = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
    console.log(`[${s}s] ${message}`);
}

class CheckFailed extends Error {}
function check(condition, message) {
    if (!condition) {
        throw new CheckFailed(message);
    }
}

// --- the server -----------------------------------------------------------------------------

/// `hearth serve` as a child process; its output is kept for the failure report.
class Server {
    constructor(configPath) {
        this.configPath = configPath;
        this.output = "";
        this.child = null;
        this.exit = null;  // a promise of the exit code
    }

    /// Starts the server; resolves with the ports it logged ({http, hunterpie}).
    start() {
        this.child = spawn(HEARTH, ["serve", "-c", this.configPath], {
            stdio: ["ignore", "pipe", "pipe"],
            env: {...process.env, ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? "detect_leaks=1"},
        });
        const child = this.child;
        this.exit = new Promise((resolve) => {
            child.on("exit", (code, signal) => resolve(code ?? 128 + (signal === "SIGKILL" ? 9 : 15)));
            child.on("error", (err) => {
                this.output += `cannot start ${HEARTH}: ${err.message}\n`;
                resolve(-1);
            });
        });
        return new Promise((resolve, reject) => {
            const ports = {};
            const timer = setTimeout(() => reject(new CheckFailed("the server did not log its ports")),
                                     WAIT_MS);
            const onData = (chunk) => {
                this.output += chunk.toString();
                for (const m of this.output.matchAll(/listening on [^ ]+:(\d+) for (\w+)/g)) {
                    ports[m[2]] = Number(m[1]);
                }
                if (ports.http && ports.hunterpie) {
                    clearTimeout(timer);
                    resolve(ports);
                }
            };
            child.stdout.on("data", onData);
            child.stderr.on("data", onData);
            this.exit.then((code) => {
                clearTimeout(timer);
                reject(new CheckFailed(`the server exited with ${code} before listening`));
            });
        });
    }

    /// SIGTERM, then the exit code (SIGKILL and a failure past the deadline).
    async stop() {
        if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) {
            return this.child ? this.exit : 0;
        }
        this.child.kill("SIGTERM");
        let timer;
        const late = new Promise((resolve) => {
            timer = setTimeout(() => resolve("late"), WAIT_MS);
        });
        const code = await Promise.race([this.exit, late]);
        clearTimeout(timer);
        if (code === "late") {
            this.child.kill("SIGKILL");
            throw new CheckFailed("the server did not stop within 15 s of SIGTERM");
        }
        return code;
    }

    kill() {
        if (this.child && this.child.exitCode === null && this.child.signalCode === null) {
            this.child.kill("SIGKILL");
        }
    }
}

function config(dataDir, httpPort, hunterpiePort, publicServerLines = false) {
    return `[server]
data_dir = "${dataDir}"
io_threads = 2
shutdown_timeout_ms = 5000

[http]
listen = "127.0.0.1:${httpPort}"
admin_token = "${ADMIN_TOKEN}"

[logs]
public_server_lines = ${publicServerLines}

[hunterpie]
enabled = true
listen = "127.0.0.1:${hunterpiePort}"
path_prefix = "/hp"
`;
}

async function waitHealthy(base) {
    const deadline = Date.now() + WAIT_MS;
    let last = "";
    while (Date.now() < deadline) {
        try {
            const r = await fetch(`${base}/health`);
            if (r.status === 200) {
                return;
            }
            last = `status ${r.status}`;
        } catch (err) {
            last = err.message;  // connection refused: try again at once
        }
    }
    throw new CheckFailed(`${base}/health did not answer 200 (${last})`);
}

async function post(base, entries) {
    const r = await fetch(`${base}/logs/add`, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify(entries),
    });
    check(r.status === 200, `POST ${base}/logs/add answered ${r.status}: ${await r.text()}`);
}

/// Makes the server log a line of its own (an operator notice is logged at info).
async function serverLine(base) {
    const r = await fetch(`${base}/api/v1/hunterpie/servermsg`, {
        method: "POST",
        headers: {"Content-Type": "application/json", "Authorization": `Bearer ${ADMIN_TOKEN}`},
        body: JSON.stringify({text: "e2e notice", level: "info"}),
    });
    check(r.status === 200, `servermsg answered ${r.status}: ${await r.text()}`);
}

// --- the page -------------------------------------------------------------------------------

const problems = [];  // page errors, CSP violations, unexpected console errors

/// Opens the page, records its errors and WebSocket URLs, and waits until it is connected.
async function openPage(context, url, name) {
    const page = await context.newPage();
    page.sockets = [];
    page.on("websocket", (ws) => page.sockets.push(ws.url()));
    page.on("pageerror", (err) => problems.push(`${name}: page error: ${err.message}`));
    page.on("console", (msg) => {
        const text = msg.text();
        // A refused reconnection while the server restarts is expected; nothing else is.
        if (msg.type() === "error" && !/^WebSocket connection to .* failed/.test(text)) {
            problems.push(`${name}: console error: ${text}`);
        }
    });
    await page.goto(url);
    await waitOpen(page, {room: new URL(url).searchParams.get("room") ?? ""});
    return page;
}

async function waitOpen(page, {room = "", after = 0} = {}) {
    await page.waitForFunction(
        ([room, after]) => {
            const s = document.getElementById("status");
            return s.dataset.state === "open" && s.dataset.room === room &&
                   Number(s.dataset.connects) > after;
        },
        [room, after], {timeout: WAIT_MS});
}

async function connects(page) {
    return Number(await page.getAttribute("#status", "data-connects"));
}

function serverRows(page) {
    return page.$$eval("#entries .entry", (rows) => rows.filter((r) => r.dataset.user === "server").length);
}

/// Waits until the page shows a server line of an operator notice.
async function waitServerLine(page, what) {
    await waitFor(page, () => [...document.querySelectorAll("#entries .entry")].some(
        (r) => r.dataset.user === "server" && r.querySelector(".msg").textContent.startsWith("operator notice")),
                  null, `${what}: no server line shown`);
}

/// Every row that is not one of the server's own lines: {msg, user, room, level, time, hidden}.
function clientRows(page) {
    return page.$$eval("#entries .entry", (rows) =>
        rows.filter((r) => r.dataset.user !== "server").map((r) => ({
            msg: r.querySelector(".msg").textContent,
            time: r.querySelector(".time").textContent,
            level: r.dataset.level,
            user: r.dataset.user,
            room: r.dataset.room,
            hidden: r.hidden,
        })));
}

/// Waits until every message in `msgs` is in a visible row.
async function waitShown(page, msgs, what) {
    try {
        await page.waitForFunction((msgs) => {
            const seen = new Set();
            for (const m of document.querySelectorAll("#entries .entry:not([hidden]) .msg")) {
                seen.add(m.textContent);
            }
            return msgs.every((m) => seen.has(m));
        }, msgs, {timeout: WAIT_MS});
    } catch (err) {
        let seen = "";
        try {
            const rows = await clientRows(page);
            const shown = rows.filter((r) => !r.hidden).map((r) => r.msg);
            const status = await page.textContent("#status");
            const summary = await page.textContent("#summary");
            seen = `page: "${status}", ${summary}; last shown: ${JSON.stringify(shown.slice(-10))}`;
        } catch (e) {
            seen = `the page cannot be read: ${e.message}`;
        }
        throw new CheckFailed(`${what}: not all of ${JSON.stringify(msgs)} shown (${err.message.split("\n")[0]}); ${seen}`);
    }
}

async function waitFor(page, fn, arg, what) {
    try {
        await page.waitForFunction(fn, arg, {timeout: WAIT_MS});
    } catch (err) {
        throw new CheckFailed(`${what} (${err.message.split("\n")[0]})`);
    }
}

function query(page) {
    return Object.fromEntries(new URL(page.url()).searchParams);
}

/// What the page shows as the message: msg, else text, else the entry's JSON.
function shownMessage(e) {
    return e.msg ?? e.text ?? null;
}

// --- the test -------------------------------------------------------------------------------

async function run(state) {
    state.tmp = await mkdtemp(path.join(tmpdir(), "hearth-e2e-"));
    const configPath = path.join(state.tmp, "hearth.toml");
    await writeFile(configPath, config(path.join(state.tmp, "data"), 0, 0));
    state.server = new Server(configPath);
    const ports = await state.server.start();
    const base = `http://127.0.0.1:${ports.http}`;
    const hpBase = `http://127.0.0.1:${ports.hunterpie}/hp`;
    await waitHealthy(base);
    log(`server ${HEARTH} on ${base}, HunterPie listener on ${hpBase}`);

    state.browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    log(`browser: Chromium ${state.browser.version()}`);
    const desktopContext = await state.browser.newContext({
        viewport: {width: 1280, height: 800}, locale: "en-US"});
    const phoneContext = await state.browser.newContext({
        viewport: {width: 390, height: 844}, deviceScaleFactor: 2, isMobile: true, hasTouch: true,
        locale: "en-US"});
    const desktop = await openPage(desktopContext, `${base}/logs.html`, "desktop");
    const phone = await openPage(phoneContext, `${base}/logs.html`, "phone");
    check(desktop.sockets[0] === `ws://127.0.0.1:${ports.http}/logs/listen`,
          `the page listens at ${desktop.sockets[0]}`);
    log("both pages connected");

    // Entries of several rooms, users and levels appear in order, newest at the bottom.
    const xss = `<img src=x onerror="window.__xss=1">look, no image`;
    const long = "a-very-long-token-without-any-space-" + "x".repeat(180);
    const batch = [
        {level: "INFO", user: "alice", room: "alpha", msg: "alice joined the lobby", timestamp: 1},
        {level: "WARN", user: "bob", room: "beta", msg: "bob's ping is 480 ms"},
        {level: "ERROR", user: "carol", room: "alpha", msg: "carol: save failed: disk full"},
        {level: "DEBUG", user: "alice", room: "", msg: "frame 1204 took 17 ms"},
        {level: "info", user: "dave", room: "beta", text: "text only: dave left"},
        {level: "ERROR", user: "mallory", room: "beta", msg: xss},
        {level: "WARN", user: "bob", room: "alpha", msg: long},
        {level: "FATAL", user: "carol", room: "gamma", msg: "carol's client crashed"},
        {level: "TRACE", user: "erin", room: "", msg: "trace: tick"},
        {user: "frank", room: "gamma", code: 7},
        {level: "INFO", user: "alice", room: "alpha",
         msg: "a message long enough to wrap on a phone: the quick brown fox jumps over the lazy dog"},
    ];
    await post(base, batch);
    const batchMsgs = batch.map(shownMessage).filter((m) => m !== null);
    await waitShown(desktop, batchMsgs, "desktop, first batch");
    await waitShown(phone, batchMsgs, "phone, first batch");
    for (const page of [desktop, phone]) {
        const rows = await clientRows(page);
        check(rows.length === batch.length,
              `expected ${batch.length} client rows, got ${rows.length}: ${JSON.stringify(rows)}`);
        for (let i = 0; i < batch.length; i++) {
            const e = batch[i], r = rows[i];
            const msg = shownMessage(e);
            if (msg !== null) {
                check(r.msg === msg, `row ${i}: shows ${JSON.stringify(r.msg)}, posted ${JSON.stringify(msg)}`);
            } else {
                check(r.msg.startsWith("{") && r.msg.includes('"code":7'),
                      `row ${i}: an entry without msg or text shows its JSON, got ${r.msg}`);
            }
            check(r.user === e.user && r.room === e.room,
                  `row ${i}: user/room ${r.user}/${r.room}, posted ${e.user}/${e.room}`);
            check(r.level === (e.level ?? "").toUpperCase(), `row ${i}: level ${r.level}`);
            check(/^\d\d:\d\d:\d\d\.\d\d\d$/.test(r.time), `row ${i}: time ${JSON.stringify(r.time)}`);
        }
        const last = await page.$eval("#entries .entry:last-of-type .msg", (m) => m.textContent);
        check(last === batchMsgs.at(-1), `the newest entry is not at the bottom: ${last}`);
    }
    log(`${batch.length} entries shown in order on both pages, newest at the bottom`);

    // Colours per level.
    const colours = await desktop.evaluate(() => {
        const c = (level) => getComputedStyle(
            document.querySelector(`#entries .entry[data-level="${level}"] .level`)).color;
        return {ERROR: c("ERROR"), WARN: c("WARN"), INFO: c("INFO"), DEBUG: c("DEBUG")};
    });
    check(new Set(Object.values(colours)).size === 4, `level colours: ${JSON.stringify(colours)}`);
    log(`level colours: ${JSON.stringify(colours)}`);

    // Untrusted text stays text.
    for (const page of [desktop, phone]) {
        check(await page.$("#entries img") === null, "an <img> element was created from an entry");
        check(await page.evaluate(() => window.__xss) === undefined, "an entry's script ran");
    }
    log("markup in an entry is shown as text");

    // A phone never scrolls sideways; long messages wrap.
    const overflow = await phone.evaluate(() => ({
        page: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
        list: [document.getElementById("entries").scrollWidth,
               document.getElementById("entries").clientWidth],
    }));
    check(overflow.page[0] <= overflow.page[1] && overflow.list[0] <= overflow.list[1],
          `horizontal overflow on the phone: ${JSON.stringify(overflow)}`);
    log(`no horizontal overflow on the phone (${overflow.page[0]} <= ${overflow.page[1]} px)`);

    await mkdir(OUTPUT_DIR, {recursive: true});
    const shots = [path.join(OUTPUT_DIR, "logs_page-desktop.png"),
                   path.join(OUTPUT_DIR, "logs_page-phone.png")];
    await desktop.screenshot({path: shots[0]});
    await phone.screenshot({path: shots[1]});
    log(`screenshots: ${shots.join(" ")}`);

    // The server's own lines: not for anonymous pages; for the page given the operator token.
    const operator = await openPage(desktopContext, `${base}/logs.html`, "operator");
    check(await operator.getAttribute("#status", "data-operator") === "0", "operator page: operator before a token");
    await operator.fill("#token", "wrong token");
    await operator.press("#token", "Enter");
    await waitFor(operator, () => document.getElementById("status").dataset.state === "closed" &&
                                  document.getElementById("status").textContent.includes("check the operator token"),
                  null, "a refused token is not reported");
    let before = await connects(operator);
    await operator.fill("#token", ADMIN_TOKEN);
    await operator.press("#token", "Enter");
    await waitOpen(operator, {after: before});
    check(await operator.getAttribute("#status", "data-operator") === "1",
          `operator page: not an operator with the token: ${await operator.textContent("#status")}`);
    check(operator.sockets.every((u) => u === `ws://127.0.0.1:${ports.http}/logs/listen`),
          `the token went into a URL: ${operator.sockets.join(" ")}`);
    await serverLine(base);
    await waitServerLine(operator, "operator page");
    // Whatever the server sent before this probe has reached the other pages once they show it.
    await post(base, {user: "probe", msg: "probe 0"});
    await waitShown(operator, ["probe 0"], "operator page, probe");
    await waitShown(desktop, ["probe 0"], "desktop, probe");
    await waitShown(phone, ["probe 0"], "phone, probe");
    check(await serverRows(desktop) === 0 && await serverRows(phone) === 0,
          "an anonymous page shows the server's own lines");
    // The token is kept for the tab: a reload is an operator again.
    await operator.reload();
    await waitOpen(operator);
    check(await operator.getAttribute("#status", "data-operator") === "1", "the token was lost on reload");
    check(await operator.inputValue("#token") === ADMIN_TOKEN, "the token field is empty after a reload");
    await operator.close();
    log("server lines: hidden without a token; a wrong token reported; the operator token shows them");

    // The newest entry scrolls into view only when the reader is at the bottom.
    const more = Array.from({length: 80}, (_, i) => ({level: "INFO", user: "bulk", msg: `scroll ${i}`}));
    await post(base, more);
    await waitShown(desktop, ["scroll 79"], "desktop, scroll batch");
    await waitFor(desktop, () => {
        const e = document.getElementById("entries");
        return e.scrollHeight > e.clientHeight && e.scrollHeight - e.scrollTop - e.clientHeight < 2;
    }, null, "the list did not follow new entries while at the bottom");
    await desktop.$eval("#entries", (e) => { e.scrollTop = 0; });
    await post(base, {level: "INFO", user: "bulk", msg: "while scrolled up"});
    await waitShown(desktop, ["while scrolled up"], "desktop, scrolled up");
    check(await desktop.$eval("#entries", (e) => e.scrollTop) === 0,
          "the list jumped to the bottom although the reader had scrolled up");
    await desktop.locator("#latest").click();
    await waitFor(desktop, () => {
        const e = document.getElementById("entries");
        return e.scrollHeight - e.scrollTop - e.clientHeight < 2 &&
               document.getElementById("latest").hidden;
    }, null, "the new-entries button did not scroll to the bottom");
    log("auto-scroll only at the bottom; the new-entries button jumps there");

    // User filter (in the page, case-insensitive substring).
    await desktop.fill("#filter-user", "ALI");
    await waitFor(desktop, () => {
        const shown = [...document.querySelectorAll("#entries .entry:not([hidden])")];
        return shown.length > 0 && shown.every((r) => r.dataset.user.toLowerCase().includes("ali"));
    }, null, "user filter: rows of other users are still shown");
    check(query(desktop).user === "ALI", `URL after the user filter: ${desktop.url()}`);
    let rows = await clientRows(desktop);
    check(rows.filter((r) => !r.hidden).length === 3, `user filter: ${JSON.stringify(rows.filter((r) => !r.hidden))}`);
    await desktop.fill("#filter-user", "");
    log("user filter");

    // Level filter (in the page, this level and above).
    await desktop.selectOption("#filter-level", "WARN");
    await waitFor(desktop, () => {
        const shown = [...document.querySelectorAll("#entries .entry:not([hidden])")];
        return shown.length > 0 &&
               shown.every((r) => ["WARN", "ERROR", "FATAL"].includes(r.dataset.level));
    }, null, "level filter: rows below WARN are still shown");
    check(query(desktop).level === "WARN", `URL after the level filter: ${desktop.url()}`);
    rows = (await clientRows(desktop)).filter((r) => !r.hidden);
    check(rows.length === 5, `level filter WARN: ${JSON.stringify(rows)}`);
    await desktop.selectOption("#filter-level", "");
    check(query(desktop).level === undefined, `URL after clearing the level: ${desktop.url()}`);
    log("level filter");

    // Room filter: the page listens again with ?room=alpha; the server sends alpha's entries and
    // the "" room's only.
    before = await connects(desktop);
    await desktop.fill("#filter-room", "alpha");
    await desktop.press("#filter-room", "Enter");
    await waitOpen(desktop, {room: "alpha", after: before});
    check(desktop.sockets.at(-1) === `ws://127.0.0.1:${ports.http}/logs/listen?room=alpha`,
          `the room filter listens at ${desktop.sockets.at(-1)}`);
    check(query(desktop).room === "alpha", `URL after the room filter: ${desktop.url()}`);
    rows = (await clientRows(desktop)).filter((r) => !r.hidden);
    check(rows.length > 0 && rows.every((r) => r.room === "alpha" || r.room === ""),
          `room filter: other rooms still shown: ${JSON.stringify(rows.filter((r) => r.room !== "alpha" && r.room !== ""))}`);
    await post(base, [{level: "INFO", user: "bob", room: "beta", msg: "beta after filter"},
                      {level: "INFO", user: "bob", room: "alpha", msg: "alpha after filter"},
                      {level: "INFO", user: "erin", room: "", msg: "no room after filter"}]);
    await waitShown(desktop, ["alpha after filter", "no room after filter"], "room filter, new entries");
    // Everything sent before this probe has arrived once the probe is shown (one connection,
    // batches in order, and the probe is posted after the previous batch was seen).
    await post(base, {user: "probe", msg: "probe 1"});
    await waitShown(desktop, ["probe 1"], "room filter, probe");
    check(!(await clientRows(desktop)).some((r) => r.msg === "beta after filter"),
          "the room filter received an entry of another room");
    await waitShown(phone, ["beta after filter", "alpha after filter"], "phone (no filter)");
    log("room filter: reconnected with ?room=alpha, other rooms gone");

    // All three filters in the URL; the URL opens the same view.
    await desktop.fill("#filter-user", "alice");
    await desktop.selectOption("#filter-level", "INFO");
    const bookmark = desktop.url();
    check(bookmark === `${base}/logs.html?room=alpha&user=alice&level=INFO`, `bookmark URL: ${bookmark}`);
    const reopened = await openPage(desktopContext, bookmark, "bookmark");
    const values = await reopened.evaluate(() => [document.getElementById("filter-room").value,
                                                   document.getElementById("filter-user").value,
                                                   document.getElementById("filter-level").value]);
    check(JSON.stringify(values) === '["alpha","alice","INFO"]', `filters read from the URL: ${values}`);
    await post(base, [{level: "DEBUG", user: "alice", room: "alpha", msg: "bookmark debug"},
                      {level: "INFO", user: "bob", room: "alpha", msg: "bookmark bob"},
                      {level: "INFO", user: "alice", room: "alpha", msg: "bookmark alice"}]);
    await waitShown(reopened, ["bookmark alice"], "bookmarked view");
    rows = (await clientRows(reopened)).filter((r) => !r.hidden);
    check(rows.length === 1 && rows[0].msg === "bookmark alice", `bookmarked view shows ${JSON.stringify(rows)}`);
    await reopened.close();
    log(`bookmark ${bookmark} restores the filters`);

    // Pause holds new entries; resume shows them; clear empties the list.
    await phone.locator("#pause").click();
    const rowsPaused = await phone.$$eval("#entries .entry", (r) => r.length);
    await post(base, {level: "WARN", user: "zoe", msg: "posted while paused"});
    await waitFor(phone, () => Number(document.getElementById("pause").dataset.held) >= 1, null,
                  "pause: the held count did not grow");
    check(await phone.$$eval("#entries .entry", (r) => r.length) === rowsPaused,
          "pause: rows were added while paused");
    check((await phone.textContent("#pause")).startsWith("Resume"), "pause: the button does not say Resume");
    await phone.locator("#pause").click();
    await waitShown(phone, ["posted while paused"], "resume");
    await phone.locator("#clear").click();
    check(await phone.$$eval("#entries .entry", (r) => r.length) === 0, "clear left rows");
    await post(base, {level: "INFO", user: "zoe", msg: "after clear"});
    await waitShown(phone, ["after clear"], "after clear");
    rows = await clientRows(phone);
    check(rows.length === 1, `after clear: ${JSON.stringify(rows)}`);
    log("pause, resume and clear");

    // The page keeps the last 5,000 entries.
    const total = 5100;
    for (let start = 0; start < total; start += 1700) {
        await post(base, Array.from({length: 1700}, (_, i) => ({user: "flood", msg: `flood ${start + i}`})));
    }
    for (const page of [phone, desktop]) {
        // On the desktop page the filters (alice, INFO) hide the flood: it is counted all the same.
        await waitFor(page, (last) => {
            const rows = document.querySelectorAll("#entries .entry");
            return rows.length === 5000 && rows[4999].querySelector(".msg").textContent === last &&
                   document.getElementById("note").dataset.dropped !== "0" &&
                   document.getElementById("count").textContent === "5,000";
        }, `flood ${total - 1}`, "the page does not keep exactly the last 5,000 entries");
    }
    await waitShown(phone, [`flood ${total - 1}`], "flood on the phone");
    check(!(await clientRows(phone)).some((r) => r.msg === "flood 0"), "the oldest entry was kept");
    log("the list is bounded to 5,000 entries, the oldest dropped and counted");

    // The page under the HunterPie listener's prefix listens under that prefix.
    const hp = await openPage(desktopContext, `${hpBase}/logs.html?room=gamma`, "hunterpie");
    check(hp.sockets[0] === `ws://127.0.0.1:${ports.hunterpie}/hp/logs/listen?room=gamma`,
          `the page under /hp listens at ${hp.sockets[0]}`);
    await post(hpBase, {level: "ERROR", user: "hp", room: "gamma", msg: "via the HunterPie listener"});
    await waitShown(hp, ["via the HunterPie listener"], "page under /hp");
    log("the page under /hp listens at /hp/logs/listen");

    // The server stops (cleanly) and comes back on the same ports, with the server's lines public:
    // every page shows the lost connection and reconnects by itself.
    const pages = [desktop, phone, hp];
    const counts = await Promise.all(pages.map(connects));
    const code = await state.server.stop();
    check(code === 0, `the server exited with ${code} on SIGTERM:\n${state.server.output}`);
    for (const page of pages) {
        await waitFor(page, () => document.getElementById("status").dataset.state === "closed",
                      null, "the page does not show the lost connection");
    }
    log("server stopped with exit code 0; the pages show the lost connection");
    await writeFile(configPath, config(path.join(state.tmp, "data"), ports.http, ports.hunterpie, true));
    state.server = new Server(configPath);
    await state.server.start();
    await waitOpen(desktop, {room: "alpha", after: counts[0]});
    await waitOpen(phone, {room: "", after: counts[1]});
    await waitOpen(hp, {room: "gamma", after: counts[2]});
    await post(base, {level: "INFO", user: "alice", room: "alpha", msg: "after restart"});
    await waitShown(desktop, ["after restart"], "after restart");
    await waitShown(phone, ["after restart"], "after restart (phone)");
    log("every page reconnected after the restart");
    await serverLine(base);
    await waitServerLine(phone, "public_server_lines, phone without a token");
    log("public_server_lines: a page without a token shows the server's lines");

    check(problems.length === 0, `the pages reported problems:\n${problems.join("\n")}`);
    await state.browser.close();
    state.browser = null;
    const code2 = await state.server.stop();
    check(code2 === 0, `the restarted server exited with ${code2} on SIGTERM:\n${state.server.output}`);
    return shots;
}

// --- main -----------------------------------------------------------------------------------

const state = {tmp: null, server: null, browser: null};

async function cleanup() {
    if (state.browser) {
        await state.browser.close().catch(() => {});
    }
    if (state.server) {
        state.server.kill();
    }
    if (state.tmp) {
        await rm(state.tmp, {recursive: true, force: true});
    }
}

const watchdog = setTimeout(() => {
    console.error(`FAIL: the test took more than ${TOTAL_TIMEOUT_MS / 1000} s`);
    if (state.server) {
        console.error(`server output:\n${state.server.output}`);
        state.server.kill();
    }
    process.exit(1);  // playwright kills the browser it launched on exit
}, TOTAL_TIMEOUT_MS);

let exitCode = 0;
try {
    const shots = await run(state);
    log(`PASS (${((Date.now() - started) / 1000).toFixed(1)} s); screenshots:`);
    for (const s of shots) {
        console.log(`  ${s}`);
    }
} catch (err) {
    exitCode = 1;
    console.error(`FAIL: ${err instanceof CheckFailed ? err.message : err.stack}`);
    if (state.server) {
        console.error(`--- server output ---\n${state.server.output.slice(-8000)}`);
    }
} finally {
    await cleanup();
    clearTimeout(watchdog);
}
process.exit(exitCode);
