#!/usr/bin/env bash
# Hearth side by side with uWebSockets doing the same jobs (issue 18, "A lean transport: targets"):
# echo, fan-out at a game's pace, and the memory of idle connections opened in a burst. See
# docs/benchmarks.md, "uWebSockets side by side (issue 18)".
#
# The baseline is two small servers of ours, uws-echo.cpp and uws-native.cpp (next to this
# script), built on uWebSockets and uSockets at the pinned commits below. Their sources never
# enter this repository: they come from bare git mirrors (`git archive` of the pinned commit) and
# are built in UWS_BUILD, outside the tree, with g++ and the flags below (uSockets in its default
# epoll mode, no SSL; no zlib, as neither server compresses). The build is redone when the commits,
# the flags or our sources change.
#
# For each round, each workload runs against a fresh Hearth (Release, `[server] io_threads` =
# HEARTH_IO_THREADS, uWebSockets having one event loop) and a fresh uWebSockets server on the
# same port, one after the other (the order alternates between rounds), with the same
# `hearth-bench ... --server-pid PID --json`. hearth-bench reads the server's CPU time
# (utime + stime) and RSS (the rss field of /proc/PID/stat, the counter VmRSS shows) the same way
# for both. The ratio of a round compares the two runs of that round.
#
# Workloads (WORKLOADS, in this order by default):
#   echo             100 connections x 100-byte messages on /echo, one in flight each:
#                    round trips per server CPU-second
#   fanout           1 publisher -> 1,000 subscribers on one topic of the native protocol (/ws),
#                    50 publishes/s, 100 bytes: deliveries per server CPU-second, and p99 latency
#   idle-native      IDLE_COUNT connections to /ws opened at once (--concurrency IDLE_COUNT: every
#                    handshake in progress together, a reconnect storm), each sending a hello,
#                    held HOLD seconds: (RSS after the hold - RSS before) / connections opened
#   idle-echo        the same on /echo, sending nothing
#   idle-echo-paced  the same as idle-echo, paced by hearth-bench (256 handshakes at a time)
# Native runs say hello with an API key (scope native) of an account made for the run in Hearth's
# data directory; uws-native welcomes any hello.
#
# Hearth runs with the settings a benchmark needs (docs/benchmarks.md, "Load generator"): no
# message rate limit, /echo on, and for the bursts no cap on HTTP connections still in their
# upgrade ([http] max_connections, 10,000 by default, would refuse a burst of 15,000) and no
# first-message deadline (idle echo connections send nothing).
#
# Environment (defaults in brackets):
#   HEARTH, HEARTH_BENCH   the programs [build/release/hearth, build/release/hearth-bench]
#   BUILD_HEARTH           1: `cmake --preset release` and build hearth and hearth-bench (-j2)
#                          first, unless HEARTH is set [1]
#   UWS_GIT, UWS_COMMIT    bare git directory of uWebSockets and the commit [the fetch mirror,
#                          66dcff3dd48f0c19dd1703426365d062039321d0]
#   USOCKETS_GIT, USOCKETS_COMMIT   the same for uSockets [the fetch mirror,
#                          86097c490263ab662d62e8e7b541390bdec7d149, the submodule commit of
#                          that uWebSockets]
#   UWS_BUILD              where the baseline is unpacked and built [$TMPDIR/hearth-uws-baseline]
#   UWS_CXXFLAGS           [-O2]
#   RUNS [5]  DURATION (s of each measured window) [10]  IDLE_COUNT [15000]  HOLD (s) [3]
#   WORKLOADS              [echo fanout idle-native idle-echo idle-echo-paced]
#   HEARTH_IO_THREADS      [1]
#   PORT                   the servers' port [15900]
#   OUT                    directory for reports, server logs and the summary [a new temp dir]
#   SUMMARY                also copy the markdown summary here [none]
#   EXTRA_BENCH_ARGS       more hearth-bench flags
# Writes $OUT/summary.md (the tables) and $OUT/summary.json (each run's figures and the medians).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
UWS_GIT=${UWS_GIT:-/work/.mirror/uNetworking+uWebSockets/repo}
UWS_COMMIT=${UWS_COMMIT:-66dcff3dd48f0c19dd1703426365d062039321d0}
USOCKETS_GIT=${USOCKETS_GIT:-/work/.mirror/uNetworking+uSockets/repo}
USOCKETS_COMMIT=${USOCKETS_COMMIT:-86097c490263ab662d62e8e7b541390bdec7d149}
UWS_BUILD=${UWS_BUILD:-${TMPDIR:-/tmp}/hearth-uws-baseline}
UWS_CXXFLAGS=${UWS_CXXFLAGS:--O2}
BUILD_HEARTH=${BUILD_HEARTH:-1}
[[ -n "${HEARTH:-}" ]] && BUILD_HEARTH=0
HEARTH=${HEARTH:-$ROOT/build/release/hearth}
HEARTH_BENCH=${HEARTH_BENCH:-$(dirname "$HEARTH")/hearth-bench}
RUNS=${RUNS:-5}
DURATION=${DURATION:-10}
IDLE_COUNT=${IDLE_COUNT:-15000}
HOLD=${HOLD:-3}
WORKLOADS=${WORKLOADS:-echo fanout idle-native idle-echo idle-echo-paced}
HEARTH_IO_THREADS=${HEARTH_IO_THREADS:-1}
PORT=${PORT:-15900}
EXTRA_BENCH_ARGS=${EXTRA_BENCH_ARGS:-}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/uws-comparison.XXXXXX")}
SUMMARY=${SUMMARY:-}
mkdir -p "$OUT"

case "$UWS_BUILD/" in
    "$ROOT"/*) echo "UWS_BUILD ($UWS_BUILD) must be outside the repository" >&2; exit 2 ;;
esac
command -v jq >/dev/null || { echo "jq is not installed" >&2; exit 2; }

# The open-file limit: each side holds IDLE_COUNT sockets (hearth-bench raises its own soft limit
# to the hard one, the servers inherit this shell's).
ulimit -n "$(ulimit -Hn)"
if [[ " $WORKLOADS " == *" idle-"* ]] && (( $(ulimit -n) < IDLE_COUNT + 100 )); then
    echo "the open-file limit ($(ulimit -n)) is under IDLE_COUNT ($IDLE_COUNT) + 100" >&2
    exit 2
fi

# --- Hearth --------------------------------------------------------------------------------
if [[ "$BUILD_HEARTH" == 1 ]]; then
    (cd "$ROOT" && cmake --preset release >/dev/null &&
        cmake --build --preset release -j2 --target hearth hearth-bench) >&2
fi
for program in "$HEARTH" "$HEARTH_BENCH"; do
    if [[ ! -x "$program" ]]; then
        echo "missing $program: build it (cmake --preset release && cmake --build --preset release -j2 --target hearth hearth-bench), or set HEARTH / HEARTH_BENCH" >&2
        exit 2
    fi
done

# --- the baseline: pinned sources, outside the repository ----------------------------------
build_baseline() {
    local stamp
    stamp="$UWS_COMMIT $USOCKETS_COMMIT $UWS_CXXFLAGS $(cat "$HERE"/uws-*.cpp | sha256sum | cut -c1-16)"
    if [[ -x "$UWS_BUILD/uws-echo" && -x "$UWS_BUILD/uws-native" &&
        "$(cat "$UWS_BUILD/stamp" 2>/dev/null)" == "$stamp" ]]; then
        return
    fi
    for git_dir in "$UWS_GIT" "$USOCKETS_GIT"; do
        git --git-dir="$git_dir" rev-parse --git-dir >/dev/null 2>&1 ||
            { echo "no git directory at $git_dir (set UWS_GIT / USOCKETS_GIT)" >&2; exit 2; }
    done
    echo "# building the uWebSockets baseline in $UWS_BUILD" >&2
    rm -rf "$UWS_BUILD"
    mkdir -p "$UWS_BUILD/uWebSockets" "$UWS_BUILD/uSockets" "$UWS_BUILD/obj"
    git --git-dir="$UWS_GIT" archive "$UWS_COMMIT" src | tar -x -C "$UWS_BUILD/uWebSockets"
    git --git-dir="$USOCKETS_GIT" archive "$USOCKETS_COMMIT" src | tar -x -C "$UWS_BUILD/uSockets"
    local s="$UWS_BUILD/uSockets/src"
    # shellcheck disable=SC2086  # word splitting of the flags wanted
    (cd "$UWS_BUILD/obj" && gcc $UWS_CXXFLAGS -std=c11 -DLIBUS_NO_SSL -I"$s" \
        -c "$s"/*.c "$s"/eventing/*.c "$s"/crypto/*.c)
    for server in echo native; do
        # shellcheck disable=SC2086
        g++ -std=c++20 $UWS_CXXFLAGS -DLIBUS_NO_SSL -DUWS_NO_ZLIB \
            -I"$UWS_BUILD/uWebSockets/src" -I"$s" "$HERE/uws-$server.cpp" \
            "$UWS_BUILD"/obj/*.o -lboost_json -o "$UWS_BUILD/uws-$server"
    done
    echo "$stamp" >"$UWS_BUILD/stamp"
}
build_baseline

# --- servers ---------------------------------------------------------------------------------
# shellcheck source=bench/lib/server.sh
source "$ROOT/bench/lib/server.sh"

# One data directory for every Hearth of the run, with an account and an API key for hellos.
DATA="$OUT/hearth-data"
mkdir -p "$DATA"
HEARTH_ENV=(HEARTH_SERVER__DATA_DIR="$DATA" HEARTH_SERVER__IO_THREADS="$HEARTH_IO_THREADS"
    HEARTH_HTTP__LISTEN="127.0.0.1:$PORT" HEARTH_HTTP__ECHO_ROUTE=true HEARTH_HTTP__MAX_CONNECTIONS=0
    HEARTH_WEBSOCKET__MAX_MESSAGES_PER_S=0 HEARTH_WEBSOCKET__FIRST_MESSAGE_TIMEOUT_MS=0)
TOKEN=
if [[ " $WORKLOADS " == *" fanout "* || " $WORKLOADS " == *" idle-native "* ]]; then
    head -c 24 /dev/urandom | base64 | env "${HEARTH_ENV[@]}" "$HEARTH" account add bench \
        >"$OUT/account.log" 2>&1 || true  # already there when OUT is reused
    TOKEN=$(env "${HEARTH_ENV[@]}" "$HEARTH" token issue --account bench --kind api \
        --scope native --name bench 2>>"$OUT/account.log")
fi

# A server left over (from this script or anything else) would answer in place of the new one.
port_is_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
        echo "something already listens on port $PORT" >&2
        exit 1
    fi
}

# env execs the server, so $! is the server's own pid, which --server-pid and stop_server need.
start_hearth() {  # log file
    port_is_free
    env "${HEARTH_ENV[@]}" "$HEARTH" serve >"$1" 2>&1 &
    SERVER_PID=$!
    wait_for_port "$PORT"
}
start_uws() {  # workload log-file
    local program=uws-echo
    [[ "$1" == fanout || "$1" == idle-native ]] && program=uws-native
    port_is_free
    "$UWS_BUILD/$program" "$PORT" 127.0.0.1 >"$2" 2>&1 &
    SERVER_PID=$!
    wait_for_port "$PORT"
}

bench_args() {  # workload
    local url="ws://127.0.0.1:$PORT"
    case "$1" in
        echo) echo "echo --url $url/echo --connections 100 --size 100 --duration $DURATION" ;;
        fanout) echo "fanout --url $url/ws --publishers 1 --subscribers 1000 --rate 50 --size 100 --duration $DURATION --token $TOKEN" ;;
        idle-native) echo "connections --url $url/ws --count $IDLE_COUNT --hold $HOLD --concurrency $IDLE_COUNT --token $TOKEN" ;;
        idle-echo) echo "connections --url $url/echo --count $IDLE_COUNT --hold $HOLD --concurrency $IDLE_COUNT" ;;
        idle-echo-paced) echo "connections --url $url/echo --count $IDLE_COUNT --hold $HOLD" ;;
        *) echo "unknown workload $1" >&2; exit 2 ;;
    esac
}

# The figure compared, from a report: per server CPU-second, or RSS bytes per idle connection
# (after the hold, so that the hellos have been answered).
FIGURE_JQ='
    if .scenario == "echo" then .round_trips_per_server_cpu_s
    elif .scenario == "fanout" then .deliveries_per_server_cpu_s
    elif (.opened // 0) > 0 and .server_rss_after_hold_bytes != null then
        ((.server_rss_after_hold_bytes - .server_rss_before_bytes) / .opened | round)
    else null end'

echo "# results in $OUT; $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# uWebSockets $UWS_COMMIT, uSockets $USOCKETS_COMMIT ($UWS_CXXFLAGS); Hearth $("$HEARTH" --version 2>/dev/null | head -n 1 || true) at $(git -C "$ROOT" rev-parse --short HEAD)"
for run in $(seq "$RUNS"); do
    order="hearth uws"
    (( run % 2 == 0 )) && order="uws hearth"
    for workload in $WORKLOADS; do
        # shellcheck disable=SC2046  # word splitting wanted
        set -- $(bench_args "$workload")
        for server in $order; do
            report="$OUT/$workload-$run-$server.json"
            if [[ $server == hearth ]]; then
                start_hearth "$OUT/$workload-$run-$server.log"
            else
                start_uws "$workload" "$OUT/$workload-$run-$server.log"
            fi
            sleep 0.5
            # shellcheck disable=SC2086
            "$HEARTH_BENCH" "$@" --server-pid "$SERVER_PID" --json $EXTRA_BENCH_ARGS |
                tail -n 1 >"$report" || true
            stop_server
            if ! jq -e . "$report" >/dev/null 2>&1; then
                echo "$workload run $run $server: no report (see $OUT/$workload-$run-$server.log)"
                continue
            fi
            jq -r --arg w "$workload" --arg r "$run" --arg s "$server" "
                ($FIGURE_JQ) as \$f |
                \"\(\$w) run \(\$r) \(\$s): \" +
                (if .scenario == \"connections\" then
                    \"opened \(.opened)/\(.count), open at end \(.open_at_end), RSS \(.server_rss_before_bytes) -> \(.server_rss_after_connect_bytes) -> \(.server_rss_after_hold_bytes) B, \(\$f) B per connection, \(.elapsed_s) s to open\"
                 else
                    \"delivered \(.delivered), server CPU \(.server_cpu_s) s, \(\$f) per server CPU-s, client CPU \(.client_cpu_s) s, p50/p99 \(.latency_us.p50)/\(.latency_us.p99) us\"
                 end) + \", errors \(.errors)\" +
                (if (.notes | length) > 0 then \", notes: \(.notes | join(\"; \"))\" else \"\" end)
            " "$report"
        done
    done
done

# --- summary: medians, ranges and the ratio per round ------------------------------------------
{
    echo "Hearth at $(git -C "$ROOT" rev-parse --short HEAD) (io_threads $HEARTH_IO_THREADS), uWebSockets ${UWS_COMMIT:0:7} + uSockets ${USOCKETS_COMMIT:0:7} ($UWS_CXXFLAGS), $RUNS rounds, $(date -u +%Y-%m-%d), load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    echo "| workload | figure | Hearth, median [min - max] | uWebSockets | **Hearth / uWS**, median [min - max] | p99 latency Hearth / uWS, median (idle rows: the handshake) | errors |"
    echo "|---|---|---|---|---|---|---|"
} >"$OUT/summary.md"
rows=()
for workload in $WORKLOADS; do
    files=()
    for run in $(seq "$RUNS"); do
        for server in hearth uws; do
            f="$OUT/$workload-$run-$server.json"
            if jq -e . "$f" >/dev/null 2>&1; then
                files+=("$f")
            fi
        done
    done
    [[ ${#files[@]} -gt 0 ]] || continue
    row=$(for f in "${files[@]}"; do
        base=$(basename "$f" .json)
        jq -c --arg server "${base##*-}" --arg run "$(echo "$base" | rev | cut -d- -f2 | rev)" \
            "{server: \$server, run: (\$run | tonumber), figure: ($FIGURE_JQ),
              p99_us: .latency_us.p99, errors: .errors}" "$f"
    done | jq -s -c --arg w "$workload" '
        def median: sort | if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor]
                           else (.[length / 2 - 1] + .[length / 2]) / 2 end;
        def side($s): [.[] | select(.server == $s)];
        (side("hearth")) as $h | (side("uws")) as $u
        | [ $h[] as $a | $u[] | select(.run == $a.run and .figure != null and .figure != 0
                                        and $a.figure != null) | $a.figure / .figure ] as $ratios
        | {workload: $w, runs: ., hearth_median: ([$h[].figure | select(. != null)] | median),
           hearth_min: ([$h[].figure | select(. != null)] | min), hearth_max: ([$h[].figure | select(. != null)] | max),
           uws_median: ([$u[].figure | select(. != null)] | median),
           uws_min: ([$u[].figure | select(. != null)] | min), uws_max: ([$u[].figure | select(. != null)] | max),
           ratio_median: ($ratios | median), ratio_min: ($ratios | min), ratio_max: ($ratios | max),
           hearth_p99_us: ([$h[].p99_us | select(. != null)] | median),
           uws_p99_us: ([$u[].p99_us | select(. != null)] | median),
           errors: ([.[].errors] | add)}')
    rows+=("$row")
    echo "$row" | jq -r '
        def n: if . == null then "-" else (. | round | tostring) end;
        def r: if . == null then "-" else ((. * 100 | round) / 100 | tostring) + "x" end;
        (if .workload | startswith("idle") then "server RSS bytes per idle connection (lower is better)"
         elif .workload == "echo" then "round trips per server CPU-s" else "deliveries per server CPU-s" end) as $fig
        | "| \(.workload) | \($fig) | \(.hearth_median | n) [\(.hearth_min | n) - \(.hearth_max | n)] | " +
          "\(.uws_median | n) [\(.uws_min | n) - \(.uws_max | n)] | **\(.ratio_median | r)** [\(.ratio_min | r) - \(.ratio_max | r)] | " +
          (if .hearth_p99_us == null then "-" else "\(.hearth_p99_us | n) / \(.uws_p99_us | n) us" end) + " | \(.errors) |"' \
        >>"$OUT/summary.md"
done
printf '%s\n' "${rows[@]}" | jq -s --arg hearth "$(git -C "$ROOT" rev-parse HEAD)" \
    --arg uws "$UWS_COMMIT" --arg usockets "$USOCKETS_COMMIT" --arg flags "$UWS_CXXFLAGS" \
    --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --argjson runs "$RUNS" --arg duration "$DURATION" \
    --arg idle "$IDLE_COUNT" --arg io "$HEARTH_IO_THREADS" \
    '{date: $date, hearth_commit: $hearth, uwebsockets_commit: $uws, usockets_commit: $usockets,
      uws_flags: $flags, rounds: $runs, duration_s: ($duration | tonumber),
      idle_count: ($idle | tonumber), hearth_io_threads: ($io | tonumber), workloads: .}' \
    >"$OUT/summary.json"
echo
cat "$OUT/summary.md"
if [[ -n "$SUMMARY" ]]; then
    cp "$OUT/summary.md" "$SUMMARY"
fi
