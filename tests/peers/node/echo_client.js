#!/usr/bin/env node
// Interop peer: a Node `ws` client that checks an echo server.
//
//     node echo_client.js ws://127.0.0.1:PORT/ [--deflate] [--timeout SECONDS]
//
// Sends text (ASCII, non-ASCII, emoji, empty, 64 KiB), binary (empty, every byte value, 1 MiB),
// one fragmented message and a pipelined burst, and checks that every echo comes back identical,
// of the same type and in order. Then pings and awaits the pong (with its payload), closes with
// 1000 and checks that the server answered the close with 1000.
//
// Exit status 0 on success; otherwise 1, with what failed on stdout. permessage-deflate is off
// unless --deflate is given, which offers it and fails unless the server accepts it; the
// negotiated extensions are printed as `negotiated extensions: ...`.
'use strict';

const crypto = require('node:crypto');
const WebSocket = require('ws');

const MiB = 1 << 20;

function parseArgs(argv) {
  const args = { url: null, timeout: 60, deflate: false };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--timeout') args.timeout = Number(argv[++i]);
    else if (argv[i] === '--deflate') args.deflate = true;
    else if (!args.url) args.url = argv[i];
    else throw new Error(`unexpected argument ${argv[i]}`);
  }
  if (!args.url) throw new Error('usage: echo_client.js URL [--deflate] [--timeout SECONDS]');
  return args;
}

// Deterministic bytes, so a failure is reproducible.
function bytes(n, seed) {
  const out = Buffer.alloc(n);
  let block = Buffer.alloc(0);
  let counter = 0;
  for (let off = 0; off < n; off += block.length) {
    block = crypto.createHash('sha256').update(`${seed}:${counter++}`).digest();
    block.copy(out, off, 0, Math.min(block.length, n - off));
  }
  return out;
}

// [label, payload]: strings go as text frames, Buffers as binary frames.
function messages() {
  // 64 KiB of text mixing 1-, 2-, 3- and 4-byte UTF-8 sequences, padded to exactly 65536 bytes.
  let big = 'aé€🌍'.repeat(Math.floor(65536 / 10));
  big += 'x'.repeat(65536 - Buffer.byteLength(big));
  if (Buffer.byteLength(big) !== 65536) throw new Error('bad 64 KiB text');
  return [
    ['text ascii', 'hello'],
    ['text non-ascii', 'héllo wörld, ça va? Ωμέγα, 日本語'],
    ['text emoji', '🌍🚀👩‍💻 and a 4-byte char at the end 🎉'],
    ['text empty', ''],
    ['text 125 bytes (largest 7-bit length)', 'a'.repeat(125)],
    ['text 126 bytes (first 16-bit length)', 'b'.repeat(126)],
    ['text 64 KiB mixed UTF-8', big],
    ['binary empty', Buffer.alloc(0)],
    ['binary every byte value', Buffer.from([...Array(256).keys()])],
    ['binary 65536 bytes (first 64-bit length)', bytes(65536, 'b64k')],
    ['binary 1 MiB', bytes(MiB, 'b1m')],
  ];
}

function describe(payload) {
  if (typeof payload === 'string') {
    return `text of ${Buffer.byteLength(payload)} bytes starting ${JSON.stringify(payload.slice(0, 40))}`;
  }
  return `binary of ${payload.length} bytes starting ${payload.subarray(0, 16).toString('hex')}`;
}

function same(a, b) {
  if (typeof a === 'string' || typeof b === 'string') return a === b;
  return Buffer.compare(a, b) === 0;
}

async function run(url, deflate) {
  const failures = [];
  const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 64 * MiB });

  // Everything the socket reports goes through one queue of events that the script awaits in order.
  const queue = [];
  let waiter = null;
  const push = (ev) => {
    if (waiter) { const w = waiter; waiter = null; w(ev); } else queue.push(ev);
  };
  const next = () => (queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => { waiter = r; }));

  ws.on('open', () => push({ type: 'open' }));
  ws.on('message', (data, isBinary) => push({ type: 'message', data: isBinary ? data : data.toString('utf8'), isBinary }));
  ws.on('pong', (data) => push({ type: 'pong', data }));
  ws.on('unexpected-response', (req, res) => push({ type: 'error', error: new Error(`handshake refused: HTTP ${res.statusCode}`) }));
  ws.on('error', (error) => push({ type: 'error', error }));
  ws.on('close', (code, reason) => push({ type: 'close', code, reason: reason.toString() }));

  const expect = async (type) => {
    const ev = await next();
    if (ev.type === 'error') throw ev.error;
    if (ev.type !== type) {
      throw new Error(`expected ${type}, got ${ev.type}` + (ev.type === 'close' ? ` ${ev.code} ${JSON.stringify(ev.reason)}` : ''));
    }
    return ev;
  };
  const expectEcho = async (label, sent) => {
    const ev = await expect('message');
    const got = ev.data;
    if ((typeof sent === 'string') !== !ev.isBinary) {
      failures.push(`${label}: sent ${describe(sent)}, got ${describe(got)} (wrong type)`);
    } else if (!same(sent, got)) {
      const a = Buffer.from(sent);
      const b = Buffer.from(got);
      let at = 0;
      while (at < a.length && at < b.length && a[at] === b[at]) at++;
      failures.push(`${label}: sent ${describe(sent)}, got ${describe(got)}, first difference at byte ${at}`);
    }
  };
  const send = (payload, opts = {}) => new Promise((resolve, reject) => {
    ws.send(payload, { binary: typeof payload !== 'string', ...opts }, (err) => (err ? reject(err) : resolve()));
  });

  await expect('open');
  console.log(`negotiated extensions: ${ws.extensions || 'none'}`);
  if (deflate && !ws.extensions.includes('permessage-deflate')) {
    failures.push(`extensions: offered permessage-deflate, the server answered ${JSON.stringify(ws.extensions)}`);
  }

  // One at a time: send, then await the echo.
  let count = 0;
  for (const [label, payload] of messages()) {
    await send(payload);
    await expectEcho(label, payload);
    count++;
  }

  // Fragmented messages: three frames each; the echo must be one message.
  await send('frag', { fin: false });
  await send('mént', { fin: false });
  await send('ed 🌍', { fin: true });
  await expectEcho('text fragmented in 3 frames', 'fragmént' + 'ed 🌍');
  await send(Buffer.from([0, 1]), { fin: false });
  await send(Buffer.alloc(0), { fin: false });
  await send(Buffer.alloc(1000, 0xff), { fin: true });
  await expectEcho('binary fragmented in 3 frames', Buffer.concat([Buffer.from([0, 1]), Buffer.alloc(1000, 0xff)]));
  count += 2;

  // Pipelined: 100 messages sent before reading any echo; order must hold.
  const burst = [...Array(100).keys()].map((i) => (i % 2 ? `burst ${i} é` : Buffer.from(`burst ${i}`)));
  for (const payload of burst) ws.send(payload, { binary: typeof payload !== 'string' });
  for (let i = 0; i < burst.length; i++) await expectEcho(`burst message ${i}`, burst[i]);
  count += burst.length;

  // Ping with a payload; the pong must carry it back.
  const started = process.hrtime.bigint();
  ws.ping(Buffer.from('duplex-ping'));
  const pong = await expect('pong');
  const latencyMs = Number(process.hrtime.bigint() - started) / 1e6;
  if (pong.data.toString() !== 'duplex-ping') {
    failures.push(`ping: pong payload ${JSON.stringify(pong.data.toString())}, expected "duplex-ping"`);
  }

  ws.close(1000, 'done');
  const closed = await expect('close');
  if (closed.code !== 1000) {
    failures.push(`close: sent 1000 "done", server answered code ${closed.code} reason ${JSON.stringify(closed.reason)}`);
  }

  if (failures.length) {
    console.log(`FAIL echo_client.js against ${url}: ${failures.length} problem(s)`);
    for (const f of failures) console.log(`  - ${f}`);
    return 1;
  }
  console.log(`ok: ${count} messages echoed, pong in ${latencyMs.toFixed(1)} ms, close ${closed.code} ${JSON.stringify(closed.reason)}`);
  return 0;
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    console.log(e.message);
    process.exit(2);
  }
  const timer = setTimeout(() => {
    console.log(`FAIL echo_client.js against ${args.url}: not done within ${args.timeout} s`);
    process.exit(1);
  }, args.timeout * 1000);
  let code;
  try {
    code = await run(args.url, args.deflate);
  } catch (e) {
    console.log(`FAIL echo_client.js against ${args.url}: ${e && e.message ? e.message : e}`);
    code = 1;
  }
  clearTimeout(timer);
  process.exitCode = code;
}

main();
