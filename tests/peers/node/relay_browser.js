#!/usr/bin/env node
// Drives `duplex relay` from real Chromium tabs: rooms by URL path, with and without echo, and
// across two relays sharing a Redis server.
//
//     node relay_browser.js PAGE_URL (echo|no-echo|redis) RELAY_URL [RELAY2_URL] [--timeout SECONDS]
//
// PAGE_URL is any page served from http://127.0.0.1 (e.g. `duplex serve`'s): Chromium refuses
// ws:// to loopback from about:blank, so every tab loads it first and then opens, from the page,
// `new WebSocket(RELAY_URL + "/lobby")` (binaryType "arraybuffer"), recording what arrives
// (text as a string, binary as an ArrayBuffer: anything else fails).
//
// Tabs, in one browser context:
//   echo, no-echo  lobby1 and lobby2 on RELAY_URL/lobby, other on RELAY_URL/other
//   redis          lobby1 (A) on RELAY_URL/lobby (relay 1), lobby2 (B) on RELAY2_URL/lobby and
//                  other on RELAY2_URL/other (relay 2)
//
// Before anything is checked, every tab's socket is known to be in its room: a helper socket
// opened in the same tab, on the same URL, sends `sync ...` until the tab's socket receives one
// (the relay joins a connection to its room before it reads from it), then closes. In redis mode,
// lobby1 then sends `sync redis N` until lobby2 receives one: relay 2's Redis subscription is in
// place. Messages starting with `sync ` are left out of what is checked.
//
// Then:
//   echo     lobby1 sends a text, both lobby tabs get it; lobby2 sends a binary message, both get
//            it as binary; other sends a text, only other gets it (its echo).
//   no-echo  lobby1 sends a text, lobby2 gets it; lobby2 sends a binary, lobby1 gets it; the
//            senders get nothing back and other gets nothing.
//   redis    lobby1 sends a text, lobby1 (echo) and lobby2 (through Redis) get it; lobby2 sends a
//            binary message, both get it as binary; other gets nothing.
// and after a 500 ms grace period, what each tab got must be exactly those messages, each once,
// in that order.
//
// Prints one JSON object on stdout: the steps, every tab's messages ({type, data}; binary data
// in hex), console errors and page errors. Exit status 0 on success, 1 on failure (`failed`
// names the step), 2 on bad usage. Chromium is /usr/bin/chromium, or $CHROMIUM (browser.js).
'use strict';

const { launch, CHROMIUM, runReport, parseArgs } = require('./browser');

const MODES = ['echo', 'no-echo', 'redis'];
const WAIT_MS = 10000;
const GRACE_MS = 500;

function usage() {
  console.error('usage: relay_browser.js PAGE_URL (echo|no-echo|redis) RELAY_URL [RELAY2_URL] [--timeout SECONDS]');
  process.exit(2);
}

const { positional, timeoutS } = parseArgs();
const mode = positional[1];
if (!MODES.includes(mode) || positional.length !== (mode === 'redis' ? 4 : 3) || !(timeoutS > 0)) usage();
const pageUrl = positional[0];
const relay1 = positional[2].replace(/\/+$/, '');
const relay2 = (positional[3] || positional[2]).replace(/\/+$/, '');

const report = { ok: false, mode, page: pageUrl, chromium: CHROMIUM, step: 'start', failed: null,
  steps: [], tabs: {}, console: [], pageErrors: [] };

let browser = null;
const step = (name) => { report.step = name; report.steps.push(name); };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, what) { if (!cond) throw new Error(what); }

const text = (data) => ({ type: 'text', data });
const binary = (bytes) => ({ type: 'binary', data: Buffer.from(bytes).toString('hex') });
const same = (a, b) => a.type === b.type && a.data === b.data;
const show = (m) => `${m.type} ${JSON.stringify(m.data)}`;

// Runs in the page: opens a socket to `url` that records what it receives in window[name].
async function openSocket({ url, name }) {
  const ws = new WebSocket(url);
  ws.binaryType = 'arraybuffer';
  const got = [];
  window[name] = { ws, got, close: null };
  ws.onmessage = (e) => {
    if (typeof e.data === 'string') got.push({ type: 'text', data: e.data });
    else if (e.data instanceof ArrayBuffer) {
      got.push({ type: 'binary', data: [...new Uint8Array(e.data)].map((b) => b.toString(16).padStart(2, '0')).join('') });
    } else got.push({ type: `unexpected ${Object.prototype.toString.call(e.data)}`, data: String(e.data) });
  };
  ws.onclose = (e) => { window[name].close = { code: e.code, reason: e.reason, wasClean: e.wasClean }; };
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`cannot open ${url}`));
  });
}

class Tab {
  constructor(name, page, url) { Object.assign(this, { name, page, url }); }

  // Everything this tab's socket received, `sync ...` included.
  all() { return this.page.evaluate(() => window.relay.got); }

  async messages() { return (await this.all()).filter((m) => !(m.type === 'text' && m.data.startsWith('sync '))); }

  send(m) {
    return this.page.evaluate(({ type, data }) => {
      window.relay.ws.send(type === 'text' ? data : new Uint8Array(data.match(/../g).map((h) => parseInt(h, 16))));
    }, m);
  }

  async has(m) { return (await this.all()).some((g) => same(g, m)); }
}

// Polls `cond` (from Node, so that no page timer is involved) until it holds, or fails with `what`.
async function until(cond, what, ms = WAIT_MS) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}

async function openTab(context, name, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on('console', (m) => { if (m.type() === 'error') report.console.push(`${name}: ${m.text()}`); });
  page.on('pageerror', (e) => report.pageErrors.push(`${name}: ${e && e.stack ? e.stack : e}`));
  const resp = await page.goto(pageUrl, { waitUntil: 'load' });
  check(resp && resp.ok(), `GET ${pageUrl} answered ${resp ? resp.status() : 'nothing'}`);
  await page.evaluate(openSocket, { url, name: 'relay' });
  return new Tab(name, page, url);
}

// A helper socket in `tab`'s page, on its URL, sends `sync` messages until `tab` receives one.
async function inRoom(tab) {
  await tab.page.evaluate(openSocket, { url: tab.url, name: 'helper' });
  for (let n = 1; ; n++) {
    const probe = text(`sync ${tab.name} ${n}`);
    await tab.page.evaluate((data) => window.helper.ws.send(data), probe.data);
    try {
      await until(() => tab.has(probe), `${tab.name} in its room`, 1000);
      break;
    } catch (e) {
      if (n >= WAIT_MS / 1000) throw new Error(`${tab.name}'s socket never received a message sent to ${tab.url}`);
    }
  }
  await tab.page.evaluate(() => window.helper.ws.close(1000, 'synced'));
}

// `from` sends `sync redis N` until `to` receives one of them.
async function crossesRelays(from, to) {
  for (let n = 1; ; n++) {
    const probe = text(`sync redis ${n}`);
    await from.send(probe);
    try {
      await until(() => to.has(probe), `sync redis ${n}`, 500);
      return n;
    } catch (e) {
      if (n >= (2 * WAIT_MS) / 500) throw new Error(`no message crossed from ${from.url} to ${to.url} through Redis`);
    }
  }
}

async function expectExactly(tab, want) {
  const got = await tab.messages();
  report.tabs[tab.name].checked = true;
  check(got.length === want.length && got.every((m, i) => same(m, want[i])),
    `${tab.name} (${tab.url}) got [${got.map(show).join(', ')}], want [${want.map(show).join(', ')}]`);
}

async function main() {
  step('launch chromium');
  browser = await launch({ timeout: 30000 });
  report.browserVersion = browser.version();
  const context = await browser.newContext();

  const lobby1Url = `${relay1}/lobby`;
  const lobby2Url = `${relay2}/lobby`;
  const otherUrl = `${relay2}/other`;
  step('open the tabs');
  const lobby1 = await openTab(context, 'lobby1', lobby1Url);
  const lobby2 = await openTab(context, 'lobby2', lobby2Url);
  const other = await openTab(context, 'other', otherUrl);
  const tabs = [lobby1, lobby2, other];
  for (const t of tabs) report.tabs[t.name] = { url: t.url, messages: [] };

  try {
    step('wait until every socket is in its room');
    for (const t of tabs) await inRoom(t);
    if (mode === 'redis') {
      step('wait until a message crosses from relay 1 to relay 2');
      report.redisProbes = await crossesRelays(lobby1, lobby2);
    }

    const hello = text('hello lobby ✓ from tab 1');
    const bytes = binary([0, 1, 2, 127, 128, 254, 255]);
    const alone = text('anyone in /other?');
    const echo = mode !== 'no-echo';

    step('lobby1 sends a text');
    await lobby1.send(hello);
    await until(() => lobby2.has(hello), 'lobby2 gets the text');
    if (echo) await until(() => lobby1.has(hello), 'lobby1 gets its own text back');

    step('lobby2 sends a binary message');
    await lobby2.send(bytes);
    await until(() => lobby1.has(bytes), 'lobby1 gets the binary message');
    if (echo) await until(() => lobby2.has(bytes), 'lobby2 gets its own binary message back');

    if (mode === 'echo') {
      step('other sends a text');
      await other.send(alone);
      await until(() => other.has(alone), 'other gets its own text back');
    }

    step(`grace period (${GRACE_MS} ms) for anything misdelivered or duplicated`);
    await sleep(GRACE_MS);

    step('check what every tab got');
    const want = {
      'echo': { lobby1: [hello, bytes], lobby2: [hello, bytes], other: [alone] },
      'no-echo': { lobby1: [bytes], lobby2: [hello], other: [] },
      'redis': { lobby1: [hello, bytes], lobby2: [hello, bytes], other: [] },
    }[mode];
    for (const t of tabs) report.tabs[t.name].messages = await t.messages();
    for (const t of tabs) await expectExactly(t, want[t.name]);
    for (const t of tabs) {
      const closed = await t.page.evaluate(() => window.relay.close);
      check(closed === null, `${t.name}'s socket closed: ${JSON.stringify(closed)}`);
    }
  } finally {
    for (const t of tabs) {
      if (!report.tabs[t.name].messages.length) report.tabs[t.name].messages = await t.messages().catch(() => []);
    }
  }

  check(report.pageErrors.length === 0, `page errors: ${report.pageErrors.join('; ')}`);
  step('done');
  await browser.close();
  browser = null;
}

runReport(main, { report, timeoutS, browser: () => browser });
