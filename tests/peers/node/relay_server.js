#!/usr/bin/env node
// Bench peer: a Node `ws` relay, the counterpart of `duplex relay` for `duplex bench broadcast`.
//
//     node relay_server.js PORT [--no-echo]
//
// Listens on 127.0.0.1:PORT. A connection's room is its URL path (query ignored); every text or
// binary message goes, unchanged and as the same type, to every open member of the room, the
// sender included unless --no-echo. Prints `ready` on stdout once listening. permessage-deflate
// is off. Runs until killed (SIGTERM/SIGINT stop it).
'use strict';

const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2]);
const noEcho = process.argv.includes('--no-echo');
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: relay_server.js PORT [--no-echo]');
  process.exit(2);
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, maxPayload: 64 << 20 });
const rooms = new Map(); // path -> Set of sockets

wss.on('connection', (ws, req) => {
  const room = (req.url || '/').split('?')[0];
  let members = rooms.get(room);
  if (!members) {
    members = new Set();
    rooms.set(room, members);
  }
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const m of members) {
      if ((m !== ws || !noEcho) && m.readyState === WebSocket.OPEN) {
        m.send(data, { binary: isBinary });
      }
    }
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  });
  ws.on('error', () => {});
});
wss.on('listening', () => console.log('ready'));

const stop = () => {
  for (const c of wss.clients) c.terminate();
  wss.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
