#!/usr/bin/env node
// Interop peer: a Node `ws` echo server, to test duplex's client.
//
//     node echo_server.js PORT [--deflate]
//
// Listens on 127.0.0.1:PORT and sends every text or binary message back unchanged, as the same
// type. Prints `ready` on stdout once listening; logs each connection's open and close on stderr.
// Runs until killed (SIGTERM/SIGINT stop it). permessage-deflate is off unless --deflate is given;
// each connection's negotiated extensions are logged on stderr.
'use strict';

const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const extra = process.argv.slice(3);
const deflate = extra.includes('--deflate');
if (extra.some((a) => a !== '--deflate')) {
  console.error('usage: echo_server.js PORT [--deflate]');
  process.exit(2);
}
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: echo_server.js PORT [--deflate]');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: deflate,
  maxPayload: 64 << 20,
});

let nextId = 1;
wss.on('connection', (ws, req) => {
  const id = nextId++;
  const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
  console.error(`echo_server.js: opened #${id} ${peer} path ${req.url} extensions ${JSON.stringify(ws.extensions)}`);
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', (err) => console.error(`echo_server.js: error #${id}: ${err.message}`));
  ws.on('close', (code, reason) => console.error(`echo_server.js: closed #${id} ${code} ${JSON.stringify(reason.toString())}`));
});
wss.on('listening', () => console.log('ready'));
wss.on('error', (err) => {
  console.error(`echo_server.js: ${err.message}`);
  process.exit(1);
});

for (const sig of ['SIGTERM', 'SIGINT']) {
  process.on(sig, () => {
    for (const ws of wss.clients) ws.terminate();
    wss.close(() => process.exit(0));
  });
}
