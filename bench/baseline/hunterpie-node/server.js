'use strict';

// The baseline for Hearth's HunterPie benchmark (docs/benchmarks.md, "HunterPie push fan-out vs a
// Node.js ws server"): the job of the original HunterPie sync server's WebSocket endpoint
// (Node.js, `ws`), written for this comparison. What the benchmark exercises behaves as the
// original does (docs/protocol/hunterpie.md, design/protocols/hunterpie.md):
//
// - WebSocket upgrade on /connect (any other path: 404), `?playerName=` names the connection;
//   permessage-deflate as the original configures it: threshold 50 bytes, no context takeover
//   either way. `ws` compresses every message on its own for each recipient: that is the
//   behaviour measured, not something to optimise here.
// - text `ping` -> `pong`; a binary message -> servermsg "uknown message";
// - setsession: leave a different previous session (its members get a sessionstate), join, and
//   every member, the joiner included, gets {"type":"sessionstate","leaderConnected":B,"playersCount":N};
// - push: the received text, unchanged, to every member of `sessionId` that is not a leader and
//   not the sender (each send compressed by `ws` for its recipient);
// - leavesession (leave, then close), setname, other types (servermsg), close (leave, notify);
// - ping frames refresh the activity time; a connection idle for SOCKET_TIMEOUT (5 min) is closed
//   by a check every 80 s.
//
// Left out, so that the baseline spends its CPU on the job only: the original's log line per
// received message (logger.info with sizes), and its Promise per recipient awaited after a push.
// Both only add to Node's CPU time. Invalid JSON gets Hearth's `invalid message` reply (the
// original would crash on Node 15+).
//
// Usage: node server.js [PORT] [HOST]    (PORT 0 or absent: any free port; HOST: 127.0.0.1)
// Prints `listening on HOST:PORT pid PID` once ready.

const http = require('http');
const { WebSocketServer } = require('ws');

const SOCKET_TIMEOUT_MS = 5 * 60 * 1000;
const SOCKET_TIMEOUT_CHECK_MS = 80 * 1000;

const port = Number(process.argv[2] || process.env.PORT || 0);
const host = process.argv[3] || process.env.HOST || '127.0.0.1';

/** @type {Map<import('ws').WebSocket, {sessionId: string|null, isLeader: any, lastPing: number, bytesPushedTotal: number, name: string}>} */
const allSockets = new Map();
/** @type {Map<string, import('ws').WebSocket[]>} */
const sessionToSockets = new Map();
const startedAt = Date.now();

const serverMsg = (level, text) => JSON.stringify({ type: 'servermsg', level, text });

function randomName() {
  return 'player-' + Math.random().toString(16).slice(2, 10).padEnd(8, '0');
}

function notifySessionUpdate(clients) {
  const leaderConnected = clients.some((s) => {
    const info = allSockets.get(s);
    return Boolean(info && info.isLeader);
  });
  const text = JSON.stringify({ type: 'sessionstate', leaderConnected, playersCount: clients.length });
  for (const s of clients) {
    s.send(text);
  }
}

function removeFromSession(sessionId, socket) {
  if (!sessionId) return;
  let members = sessionToSockets.get(sessionId);
  if (!members) return;
  members = members.filter((s) => s !== socket);
  if (members.length === 0) {
    sessionToSockets.delete(sessionId);
  } else {
    sessionToSockets.set(sessionId, members);
    notifySessionUpdate(members);
  }
}

function addToSession(sessionId, socket) {
  let members = sessionToSockets.get(sessionId);
  if (!members) {
    members = [socket];
    sessionToSockets.set(sessionId, members);
  } else if (!members.includes(socket)) {
    members.push(socket);
  }
  notifySessionUpdate(members);
}

function onMessage(data, isBinary) {
  const socket = this;
  const info = allSockets.get(socket);
  if (info) {
    info.bytesPushedTotal += data.length;
    info.lastPing = Date.now();
  }
  if (isBinary) {
    socket.send(serverMsg('warn', 'uknown message'));
    return;
  }
  if (data.length === 4 && data.toString() === 'ping') {
    socket.send('pong');
    return;
  }
  let msg;
  try {
    msg = JSON.parse(data.toString());
  } catch (e) {
    msg = null;
  }
  if (!msg || typeof msg !== 'object' || typeof msg.type !== 'string') {
    socket.send(serverMsg('warn', 'invalid message'));
    return;
  }
  const type = msg.type.toLowerCase();
  switch (type) {
    case 'push': {
      const members = sessionToSockets.get(msg.sessionId);
      if (!members) return;
      for (const s of members) {
        const m = allSockets.get(s);
        if (s !== socket && m && !m.isLeader) {
          // The frame's text as received; `ws` deflates it for this recipient.
          s.send(data, { binary: false, compress: true });
        }
      }
      break;
    }
    case 'setsession': {
      if (!msg.sessionId) {
        socket.send(serverMsg('warn', 'Session id cannot be empty!'));
        removeFromSession(info.sessionId, socket);
        return;
      }
      if (info.sessionId !== msg.sessionId) {
        removeFromSession(info.sessionId, socket);
      }
      info.sessionId = msg.sessionId;
      info.isLeader = msg.isLeader;
      addToSession(msg.sessionId, socket);
      break;
    }
    case 'leavesession': {
      if (info.sessionId) {
        removeFromSession(info.sessionId, socket);
        info.sessionId = null;
      }
      socket.close();
      break;
    }
    case 'setname':
      info.name = msg.name;
      break;
    default:
      socket.send(serverMsg('warn', `unexpected message type ${type}!`));
      break;
  }
}

function onClose() {
  const info = allSockets.get(this);
  if (info && info.sessionId) {
    removeFromSession(info.sessionId, this);
  }
  allSockets.delete(this);
}

function onPing() {
  const info = allSockets.get(this);
  if (info) info.lastPing = Date.now();
}

function checkTimeouts() {
  const now = Date.now();
  for (const [socket, info] of allSockets) {
    if (now - info.lastPing > SOCKET_TIMEOUT_MS) {
      removeFromSession(info.sessionId, socket);
      allSockets.delete(socket);
      socket.close();
    }
  }
  setTimeout(checkTimeouts, SOCKET_TIMEOUT_CHECK_MS).unref();
}

const wss = new WebSocketServer({
  noServer: true,
  perMessageDeflate: {
    threshold: 50,
    clientNoContextTakeover: true,
    serverNoContextTakeover: true,
  },
});

wss.on('connection', (ws, req) => {
  const name = new URL(req.url, 'http://localhost').searchParams.get('playerName') || randomName();
  allSockets.set(ws, { sessionId: null, isLeader: null, lastPing: Date.now(), bytesPushedTotal: 0, name });
  ws.on('ping', onPing);
  ws.on('message', onMessage);
  ws.on('close', onClose);
});

const server = http.createServer((req, res) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  res.setHeader('Access-Control-Allow-Origin', '*');
  if (req.method === 'GET' && path === '/version') {
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end('0.1');
  } else if (req.method === 'GET' && path === '/') {
    let pushed = 0;
    for (const info of allSockets.values()) pushed += info.bytesPushedTotal;
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
    res.end(
      `Sever is OK!\n<br>Active sessions: ${sessionToSockets.size}\n<br>Active sockets: ${allSockets.size}` +
        `\n<br>Data pushed total: ${pushed} Bytes\n<br>Uptime: ${((Date.now() - startedAt) / 1000).toFixed(2)} sec\n`,
    );
  } else {
    res.writeHead(404);
    res.end();
  }
});

server.on('upgrade', (req, socket, head) => {
  const path = new URL(req.url, 'http://localhost').pathname;
  if (path !== '/connect') {
    socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

setTimeout(checkTimeouts, SOCKET_TIMEOUT_CHECK_MS).unref();

server.listen(port, host, () => {
  const a = server.address();
  console.log(`listening on ${a.address}:${a.port} pid ${process.pid}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const ws of allSockets.keys()) ws.terminate();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  });
}
