#!/usr/bin/env node
// Drives the pub/sub demos and the index page of `duplex serve` in Debian's Chromium, as people
// would, and checks what each of them sees.
//
//     node demos.js SCENARIO --base http://127.0.0.1:PORT [--base URL2] [--shots DIR] [--timeout SECONDS]
//
// Each page working (screenshots DIR/<page>-desktop.png):
//   chat         two browser contexts: alice joins #lobby from the form, bob with a ?room=&nick= link;
//                alice sees bob join; a message typed by each appears in the other's page under its
//                author's nickname; a third page (carol) joining later gets both replayed as history,
//                and alice sees carol leave.
//   feed         the page gets the backlog and then samples at about 4 a second (measured over 3 s), and
//                the chart has been drawn.
//   multiplayer  two contexts: alice moves her pointer over the field, and bob's page sees alice's dot
//                (the server's snapshots) arrive where she pointed, twice; then the other way round;
//                bob gets at least 20 snapshots a second.
//   progress     two contexts: alice starts the `build` job; bob's page shows it running (started by
//                alice's viewer), its start buttons disabled, the progress bar moving through
//                intermediate values, and in the end exactly the log lines alice's page shows, and
//                `succeeded`.
//
// What real use found (issue #21):
//   chat-nodes        (two --base: two nodes on one Redis) alice on A, bob on B: both pages list the
//                     same members, themselves included; after alice switches rooms and comes back;
//                     a third member on B coming and going; node A killed and started again (alice's
//                     page rejoins under her nickname); node B killed for good (its member disappears).
//   progress-restart  a build running when the server is killed (SIGKILL), then stopped (SIGTERM), is
//                     shown lost after the page reconnects, its log kept, the controls free.
//   chat-nick         a second browser opening the ?room=lobby&nick=sam link of a room where sam is, or
//                     typing SAM, is refused next to the join form; sam's list stays one sam.
//   index-reconnect   the index page reconnects after the server restarts; Close closes it for good
//                     and the button (Connect) opens it again. Screenshot index-desktop.
//   chat-errors       on a phone: a 10,000-character paste is kept and said to be too long; in a burst,
//                     the message the server refuses (rate limit) stays in the input with the error
//                     right beside it, and every accepted one is in the transcript.
//   chat-restart      the server killed and started again: the composer says it is reconnecting and
//                     keeps what is typed, the transcript stays, the room is joined again.
//   multiplayer-phone on a phone a tap moves your dot there; with four players, no player's colour
//                     looks like the gem's (its pixels on the canvas).
//   phone             every page at 390x844: no horizontal scroll, long nicknames and room names inside
//                     their boxes, the progress footer readable. Screenshots DIR/<page>-phone.png.
//   feed-offline      the sample count includes the backlog; no rate shown while disconnected.
//   close-reasons     on SIGTERM every page shows "1001 server shutting down", and all come back.
//   index-empty       the index page does not send an empty message.
//
// Restarts: the script prints `@@ kill N` (SIGKILL), `@@ term N` (SIGTERM) or `@@ start N` (node N
// again on its port) on stdout and waits for `ok` on stdin (tests/demos.rs does it).
//
// Prints one JSON object on stdout (the steps' findings, console errors, page errors). Exit status 0
// on success, 1 on failure (`failed` names the step), 2 on bad usage. Pages are loaded from
// http://127.0.0.1 (Chromium refuses ws:// to loopback from about:blank). Chromium is
// /usr/bin/chromium, or $CHROMIUM.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { launch, CHROMIUM, runReport } = require('./browser');

const SCENARIOS = {
  chat, feed, multiplayer, progress,
  'chat-nodes': chatNodes, 'progress-restart': progressRestart, 'chat-nick': chatNick,
  'index-reconnect': indexReconnect, 'chat-errors': chatErrors, 'chat-restart': chatRestart,
  'multiplayer-phone': multiplayerPhone, phone, 'feed-offline': feedOffline,
  'close-reasons': closeReasons, 'index-empty': indexEmpty,
};

function usage() {
  console.error(`usage: demos.js (${Object.keys(SCENARIOS).join('|')}) --base URL [--base URL] [--shots DIR] [--timeout SECONDS]`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const bases = [];
let scenario = null, shots = path.resolve('screenshots'), timeoutS = 90;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--timeout') timeoutS = Number(argv[++i]);
  else if (argv[i] === '--base') bases.push(String(argv[++i]).replace(/\/+$/, ''));
  else if (argv[i] === '--shots') shots = path.resolve(argv[++i]);
  else if (scenario === null) scenario = argv[i];
  else usage();
}
if (!Object.hasOwn(SCENARIOS, scenario || '') || !bases.length || !(timeoutS > 0)) usage();
const base = bases[0];

const report = { ok: false, scenario, bases, chromium: CHROMIUM, step: 'start', failed: null,
  seen: {}, console: [], pageErrors: [], failedRequests: [], screenshots: [] };

let browser = null;
let shotPage = null;
const step = (name) => { report.step = name; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, what) { if (!cond) throw new Error(what); }

// Answers to `@@` requests, one line each, from tests/demos.rs.
const answers = [];
let answered = null;
readline.createInterface({ input: process.stdin }).on('line', (l) => {
  if (answered) { const a = answered; answered = null; a(l); } else answers.push(l);
});
// Asks tests/demos.rs to `what` (kill, term, start) node `n`, and waits until it is done.
async function control(what, n) {
  process.stdout.write(`@@ ${what} ${n}\n`);
  const answer = answers.length ? answers.shift() : await new Promise((r) => { answered = r; });
  check(answer === 'ok', `${what} node ${n}: ${answer}`);
}

async function open(context, who, url, { waitOpen = true } = {}) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') report.console.push(`${who} ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => report.pageErrors.push(`${who}: ${e && e.stack ? e.stack : e}`));
  page.on('requestfailed', (r) => report.failedRequests.push(`${who}: ${r.url()}: ${r.failure() && r.failure().errorText}`));
  const resp = await page.goto(url, { waitUntil: 'load' });
  check(resp && resp.ok(), `GET ${url} answered ${resp ? resp.status() : 'nothing'}`);
  if (waitOpen) await opened(page);
  return page;
}

// Waits until the page's socket is open (again).
async function opened(page, timeout = 20000) {
  await page.waitForFunction(() => window.ws instanceof WebSocket && window.ws.readyState === WebSocket.OPEN, null, { polling: 50, timeout });
}

async function closed(page) {
  await page.waitForFunction(() => window.ws instanceof WebSocket && window.ws.readyState === WebSocket.CLOSED, null, { polling: 50, timeout: 15000 });
}

async function newContext(kind = 'desktop') {
  if (kind === 'phone') {
    return browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  }
  return browser.newContext({ viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1 });
}

async function shot(page, name) {
  fs.mkdirSync(shots, { recursive: true });
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 10000 });
  report.screenshots.push(file);
}

async function joinedAs(page, nick) {
  await page.waitForFunction((n) => window.demo.joined && window.demo.joined.nick === n, nick, { polling: 50 });
}

// The member list a chat page shows.
const membersOf = (page) => page.$$eval('#members li', (ls) => ls.map((l) => l.textContent));

// Waits until every page of `pages` lists `expected` (in that order, or in any with `sorted`).
async function sameMembers(pages, expected, { timeout = 20000, sorted = false } = {}) {
  const want = JSON.stringify(sorted ? [...expected].sort() : expected);
  try {
    for (const page of pages) {
      await page.waitForFunction(([want, sorted]) => {
        const list = [...document.querySelectorAll('#members li')].map((l) => l.textContent);
        return JSON.stringify(sorted ? list.sort() : list) === want;
      }, [want, sorted], { polling: 100, timeout });
    }
  } catch (e) {
    const seen = await Promise.all(pages.map((p) => membersOf(p).catch(() => '?')));
    throw new Error(`expected ${want} on every page, they show ${JSON.stringify(seen)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Each page working

async function chat() {
  const [ca, cb] = [await newContext(), await newContext()];
  step('alice opens /chat and joins #lobby from the form');
  const alice = shotPage = await open(ca, 'alice', `${base}/chat`);
  await alice.locator('#nick').fill('alice');
  await alice.locator('#room').fill('lobby');
  await alice.locator('#join-button').click();
  await alice.waitForFunction(() => window.demo.joined && window.demo.joined.room === 'lobby');

  step('bob joins #lobby with a ?room=lobby&nick=bob link');
  const bob = await open(cb, 'bob', `${base}/chat?room=lobby&nick=bob`);
  await bob.waitForFunction(() => window.demo.joined && window.demo.joined.nick === 'bob');

  step('alice sees "bob joined." and bob among the members');
  await alice.locator('.notice', { hasText: 'bob joined.' }).waitFor();
  await alice.locator('#members li', { hasText: 'bob' }).waitFor();
  report.seen.aliceMembers = await alice.$$eval('#members li', (ls) => ls.map((l) => l.textContent));
  check(JSON.stringify(report.seen.aliceMembers) === '["alice","bob"]', `alice's members: ${report.seen.aliceMembers}`);

  step('alice says hello; bob sees it under her nickname');
  await alice.locator('#text').fill('hello from alice');
  await alice.locator('#text').press('Enter');
  await bob.locator('.msg[data-nick="alice"] .text', { hasText: 'hello from alice' }).waitFor();

  step('bob answers; alice sees it under his nickname');
  await bob.locator('#text').fill('hi alice, bob here');
  await bob.locator('#send').click();
  await alice.locator('.msg[data-nick="bob"] .text', { hasText: 'hi alice, bob here' }).waitFor();
  await alice.locator('#text').fill('open /chat?room=lobby in another window: the last 50 messages are replayed');
  await alice.locator('#text').press('Enter');
  await bob.locator('.msg[data-nick="alice"] .text', { hasText: 'last 50 messages' }).waitFor();

  step('carol joins later and gets the history');
  const carol = await open(cb, 'carol', `${base}/chat?room=lobby&nick=carol`);
  await carol.waitForFunction(() => window.demo.joined && window.demo.joined.nick === 'carol');
  report.seen.carolHistory = await carol.$$eval('.msg', (ms) => ms.map((m) => `${m.dataset.nick}: ${m.querySelector('.text').textContent}`));
  check(report.seen.carolHistory.length === 3 && report.seen.carolHistory[0] === 'alice: hello from alice'
    && report.seen.carolHistory[1] === 'bob: hi alice, bob here', `carol's history: ${JSON.stringify(report.seen.carolHistory)}`);
  await alice.locator('.notice', { hasText: 'carol joined.' }).waitFor();

  step('carol leaves; alice sees it');
  await carol.close();
  await alice.locator('.notice', { hasText: 'carol left.' }).waitFor();
  await alice.locator('#text').fill('');
  report.seen.aliceLines = await alice.$$eval('#messages > div', (ds) => ds.map((d) => d.textContent));
  await shot(alice, 'chat-desktop');
}

async function feed() {
  const context = await newContext();
  step('open /feed and wait for samples');
  const page = shotPage = await open(context, 'viewer', `${base}/feed`);
  await page.waitForFunction(() => window.demo.received >= 2, null, { polling: 50 });
  step('measure the rate over 3 s');
  const t0 = await page.evaluate(() => ({ n: window.demo.received, at: performance.now() }));
  await sleep(3000);
  const t1 = await page.evaluate(() => ({ n: window.demo.received, at: performance.now() }));
  const rate = (t1.n - t0.n) / ((t1.at - t0.at) / 1000);
  report.seen.rate = Math.round(rate * 100) / 100;
  check(rate >= 3 && rate <= 5.5, `samples arrive at ${rate.toFixed(2)}/s, expected about 4/s`);
  step('the samples are in order, with a price');
  const ticks = await page.evaluate(() => window.demo.ticks);
  report.seen.samples = ticks.length;
  check(ticks.every((k, i) => i === 0 || k.seq === ticks[i - 1].seq + 1), 'samples out of order or missing');
  check(ticks.every((k) => typeof k.price === 'number' && k.price > 0), 'a sample without a price');
  step('the chart is drawn');
  await page.waitForFunction(() => window.demo.ticks.length >= 24, null, { polling: 100, timeout: 15000 });
  report.seen.drawnPixels = await page.evaluate(() => {
    const c = document.getElementById('price-chart');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  });
  check(report.seen.drawnPixels > 2000, `the price chart has only ${report.seen.drawnPixels} drawn pixels`);
  report.seen.cards = await page.$$eval('.card', (cs) => cs.map((c) => c.textContent.replace(/\s+/g, ' ').trim()));
  await shot(page, 'feed-desktop');
}

async function multiplayer() {
  const [ca, cb] = [await newContext(), await newContext()];
  step('alice and bob open /multiplayer');
  const alice = await open(ca, 'alice', `${base}/multiplayer`);
  const bob = shotPage = await open(cb, 'bob', `${base}/multiplayer`);
  for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
    await page.waitForFunction(() => window.demo.me !== null);
    await page.locator('#name').fill(name);
    await page.locator('#rename button').click();
  }
  const aliceId = await alice.evaluate(() => window.demo.me);
  const bobId = await bob.evaluate(() => window.demo.me);
  report.seen.ids = { alice: aliceId, bob: bobId };
  step('each sees both players, renamed');
  for (const page of [alice, bob]) {
    await page.waitForFunction(([a, b]) => {
      const s = window.demo.snapshot;
      const names = s ? Object.fromEntries(s.players.map((p) => [p.id, p.name])) : {};
      return names[a] === 'alice' && names[b] === 'bob';
    }, [aliceId, bobId], { polling: 50 });
  }

  // Moves `who`'s pointer to world point (x, y) and waits until `watcher` sees `id`'s dot there.
  async function moveAndSee(who, watcher, id, x, y) {
    const box = await who.locator('#field').boundingBox();
    const world = await who.evaluate(() => window.demo.world);
    await who.mouse.move(box.x + (x / world.width) * box.width, box.y + (y / world.height) * box.height, { steps: 8 });
    await watcher.waitForFunction(([id, x, y]) => {
      const p = window.demo.snapshot && window.demo.snapshot.players.find((q) => q.id === id);
      return p && Math.hypot(p.x - x, p.y - y) < 3;
    }, [id, x, y], { polling: 30, timeout: 5000 });
    return watcher.evaluate((id) => window.demo.snapshot.players.find((q) => q.id === id), id);
  }
  step("alice moves; bob sees alice's dot follow");
  report.seen.bobSawAlice = [await moveAndSee(alice, bob, aliceId, 180, 140), await moveAndSee(alice, bob, aliceId, 620, 360)];
  step("bob moves; alice sees bob's dot follow");
  report.seen.aliceSawBob = [await moveAndSee(bob, alice, bobId, 300, 300)];
  step('bob gets 20 to 40 snapshots a second');
  const n0 = await bob.evaluate(() => window.demo.snapshots);
  await sleep(2000);
  const n1 = await bob.evaluate(() => window.demo.snapshots);
  report.seen.snapshotsPerSecond = (n1 - n0) / 2;
  check(report.seen.snapshotsPerSecond >= 20 && report.seen.snapshotsPerSecond <= 40,
    `bob got ${report.seen.snapshotsPerSecond} snapshots/s`);
  await sleep(300);
  await shot(bob, 'multiplayer-desktop');
}

async function progress() {
  const [ca, cb] = [await newContext(), await newContext()];
  step('alice and bob open /progress');
  const alice = await open(ca, 'alice', `${base}/progress`);
  const bob = shotPage = await open(cb, 'bob', `${base}/progress`);
  await alice.waitForFunction(() => window.demo.viewer !== null);
  await bob.waitForFunction(() => window.demo.viewer !== null);
  await alice.locator('#viewers', { hasText: '2 watching' }).waitFor();
  const aliceViewer = await alice.evaluate(() => window.demo.viewer);

  step('alice starts the build');
  await alice.locator('button.start[data-job="build"]').click();
  step("bob sees it running, started by alice's viewer");
  await bob.waitForFunction((v) => window.demo.job && window.demo.job.state === 'running' && window.demo.job.by === v, aliceViewer, { polling: 50 });
  await bob.locator('#who', { hasText: `started by ${aliceViewer}` }).waitFor();
  check(await bob.locator('button.start[data-job="build"]').isDisabled(), "bob's start button is enabled while the job runs");
  step('bob sees the progress bar move');
  await bob.waitForFunction(() => window.demo.job.percent > 30 && window.demo.lines.length > 5, null, { polling: 50, timeout: 20000 });
  report.seen.bobMidway = await bob.evaluate(() => ({ percent: window.demo.job.percent, step: window.demo.job.step, lines: window.demo.lines.length }));
  step('the job finishes for both');
  for (const page of [alice, bob]) {
    await page.waitForFunction(() => window.demo.job.state !== 'running', null, { polling: 100, timeout: 30000 });
  }
  const a = await alice.evaluate(() => ({ state: window.demo.job.state, lines: window.demo.lines }));
  const b = await bob.evaluate(() => ({ state: window.demo.job.state, lines: window.demo.lines, percents: window.demo.percents }));
  report.seen.state = b.state;
  report.seen.lines = b.lines.length;
  report.seen.percents = b.percents;
  check(a.state === 'succeeded' && b.state === 'succeeded', `the job ended ${a.state} (alice) / ${b.state} (bob)`);
  check(JSON.stringify(a.lines) === JSON.stringify(b.lines), 'alice and bob saw different log lines');
  check(b.lines.length >= 20, `only ${b.lines.length} log lines`);
  const mid = b.percents.filter((p) => p > 0 && p < 100);
  check(mid.length >= 10, `bob saw only ${mid.length} intermediate progress values`);
  check(b.percents[b.percents.length - 1] === 100, 'the bar did not end at 100%');
  await bob.locator('#recent tr', { hasText: 'build' }).waitFor();
  check(await bob.locator('button.start[data-job="build"]').isEnabled(), "bob's start button stays disabled after the job");
  await shot(bob, 'progress-desktop');
}

// ---------------------------------------------------------------------------------------------
// What real use found (issue #21)

async function chatNodes() {
  check(bases.length === 2, 'chat-nodes needs two --base (two nodes on one Redis)');
  const [ca, cb, cc] = [await newContext(), await newContext(), await newContext()];
  step('alice joins #lobby on node A, bob on node B');
  const alice = shotPage = await open(ca, 'alice', `${bases[0]}/chat?room=lobby&nick=alice`);
  await joinedAs(alice, 'alice');
  const bob = await open(cb, 'bob', `${bases[1]}/chat?room=lobby&nick=bob`);
  await joinedAs(bob, 'bob');
  step('both pages list alice and bob, in joining order');
  await sameMembers([alice, bob], ['alice', 'bob']);

  step('alice switches to #rust: each page lists who is in its room');
  await alice.locator('#rooms button', { hasText: '#rust' }).click();
  await alice.waitForFunction(() => window.demo.joined && window.demo.joined.room === 'rust');
  await sameMembers([alice], ['alice']);
  await sameMembers([bob], ['bob']);
  step('alice comes back to #lobby');
  await alice.locator('#rooms button', { hasText: '#lobby' }).click();
  await alice.waitForFunction(() => window.demo.joined && window.demo.joined.room === 'lobby');
  await sameMembers([alice, bob], ['bob', 'alice']);

  step('carol joins on node B, then leaves');
  const carol = await open(cc, 'carol', `${bases[1]}/chat?room=lobby&nick=carol`);
  await joinedAs(carol, 'carol');
  await sameMembers([alice, bob, carol], ['bob', 'alice', 'carol']);
  await carol.close();
  await sameMembers([alice, bob], ['bob', 'alice']);

  step("node A is killed and starts again: alice's page rejoins under her nickname");
  await control('kill', 0);
  await control('start', 0);
  await opened(alice, 30000);
  await joinedAs(alice, 'alice');
  await sameMembers([alice, bob], ['bob', 'alice'], { timeout: 30000 });
  report.seen.afterRestart = await Promise.all([alice, bob].map(membersOf));

  step('node B dies for good: its member is gone from the list within seconds');
  await control('kill', 1);
  await sameMembers([alice], ['alice'], { timeout: 45000 });
  await shot(alice, 'chat-two-nodes-desktop');
}

async function progressRestart() {
  const page = shotPage = await open(await newContext(), 'viewer', `${base}/progress`);
  await page.locator('button.start[data-job="build"]').waitFor();
  for (const how of ['kill', 'term']) {
    step(`start the build, then ${how} the server midway`);
    await page.locator('button.start[data-job="build"]').click();
    await page.locator('#badge', { hasText: 'running' }).waitFor();
    await page.waitForFunction(() => document.querySelectorAll('#log > div').length >= 5, null, { polling: 50, timeout: 20000 });
    await control(how, 0);
    await closed(page);
    const lines = await page.locator('#log > div').count();
    await control('start', 0);
    step(`after the ${how}: the job is shown lost, its log kept, the controls free`);
    await opened(page, 30000);
    try {
      await page.locator('#badge', { hasText: 'lost' }).waitFor({ timeout: 15000 });
    } catch (e) {
      throw new Error(`the job shows "${await page.locator('#badge').textContent()}", not lost`);
    }
    check(await page.locator('button.start[data-job="build"]').isEnabled(), 'the start button is disabled');
    check(await page.locator('#cancel').isDisabled(), 'Cancel is enabled for a job that is gone');
    const kept = await page.locator('#log > div').count();
    check(kept >= lines, `the log went from ${lines} lines to ${kept}`);
    await page.locator('#recent tr', { hasText: 'lost' }).first().waitFor();
    report.seen[how] = { badge: await page.locator('#badge').textContent(), step: await page.locator('#step').textContent(), lines: kept };
  }
  step('a new job runs, and can be cancelled');
  await page.locator('button.start[data-job="test"]').click();
  await page.locator('#badge', { hasText: 'running' }).waitFor();
  await page.locator('#cancel').click();
  await page.locator('#badge', { hasText: 'cancelled' }).waitFor();
}

async function chatNick() {
  const [ca, cb] = [await newContext(), await newContext()];
  step('sam joins #lobby');
  const sam = shotPage = await open(ca, 'sam', `${base}/chat`);
  await sam.locator('#nick').fill('sam');
  await sam.locator('#room').fill('lobby');
  await sam.locator('#join-button').click();
  await joinedAs(sam, 'sam');
  step("another browser opens sam's link ?room=lobby&nick=sam: refused, next to the join form");
  const other = await open(cb, 'other', `${base}/chat?room=lobby&nick=sam`);
  try {
    await other.locator('#join-error', { hasText: 'taken' }).waitFor({ timeout: 10000 });
  } catch (e) {
    const joined = await other.evaluate(() => window.demo.joined);
    throw new Error(`no "taken" error beside the join form; the page joined as ${JSON.stringify(joined)}; sam's page lists ${JSON.stringify(await membersOf(sam))}`);
  }
  check(await other.evaluate(() => !window.demo.joined), 'the second browser is in the room anyway');
  await sameMembers([sam], ['sam']);
  step('SAM, typed in the form: refused too');
  await other.locator('#nick').fill('SAM');
  await other.locator('#join-button').click();
  await other.locator('#join-error', { hasText: 'SAM' }).waitFor();
  step('another nickname is fine');
  await other.locator('#nick').fill('sam2');
  await other.locator('#join-button').click();
  await joinedAs(other, 'sam2');
  await sameMembers([sam, other], ['sam', 'sam2']);
  step("sam's page reloads: the same tab joins under its nickname again");
  await sam.reload();
  await opened(sam);
  await joinedAs(sam, 'sam');
  await sameMembers([sam, other], ['sam2', 'sam']);
}

async function indexReconnect() {
  const page = shotPage = await open(await newContext(), 'viewer', `${base}/`);
  step('the server is killed and starts again: the page reconnects by itself');
  await control('kill', 0);
  await closed(page);
  check(await page.locator('#send').isDisabled(), 'Send is enabled while the socket is closed');
  await control('start', 0);
  await opened(page, 30000);
  step('sending works again');
  await page.locator('#text').fill('after the restart');
  await page.locator('#send').click();
  await page.locator('#log div.out', { hasText: '> after the restart' }).waitFor();
  step('Close closes it for good; the button then connects again');
  await page.locator('#close').click();
  await page.locator('#state', { hasText: 'closed (1000 bye)' }).waitFor();
  check(await page.locator('#send').isDisabled(), 'Send is enabled after Close');
  check((await page.locator('#close').textContent()) === 'Connect', 'no Connect button after Close');
  await sleep(1500);
  check(await page.evaluate(() => window.ws.readyState === WebSocket.CLOSED), 'the page reconnected after its own Close');
  await page.locator('#close').click();
  await opened(page);
  await page.locator('#state', { hasText: 'open' }).waitFor();
  report.seen.log = await page.$$eval('#log > div', (ds) => ds.map((d) => d.textContent));
  await page.locator('#text').fill('hello from the page');
  await shot(page, 'index-desktop');
}

async function chatErrors() {
  const page = shotPage = await open(await newContext('phone'), 'ann', `${base}/chat?room=lobby&nick=ann`);
  await joinedAs(page, 'ann');
  const text = page.locator('#text');
  step('a 10,000-character paste is kept whole and said to be too long');
  await text.fill('x'.repeat(10000));
  const pasted = (await text.inputValue()).length;
  check(pasted === 10000, `the paste was cut to ${pasted} characters`);
  const tooLong = page.locator('#note', { hasText: /too long/i });
  await tooLong.waitFor();
  check(await tooLong.isVisible(), 'the too-long note is hidden');
  await text.press('Enter');
  await sleep(300);
  check((await text.inputValue()).length === 10000, 'Enter cleared the long paste');
  check((await page.locator('.msg[data-nick="ann"]').count()) === 0, 'a too-long message was sent');

  step('a burst: the message refused (too fast) keeps its text, its error right beside the input');
  let refused = null, accepted = 0;
  for (let i = 1; i <= 80 && refused === null; i++) {
    await text.fill(`burst ${i}`);
    await text.press('Enter');
    // Accepted: the input empties once the server has it. Refused: an error beside the input.
    await page.waitForFunction(() => document.getElementById('text').value === '' || !!document.querySelector('#note.error'), null, { polling: 20, timeout: 10000 });
    if ((await text.inputValue()) === '') accepted++;
    else refused = i;
  }
  report.seen.burst = { accepted, refused };
  check(refused !== null, `${accepted} messages in a row, none refused with its text kept (each emptied the input)`);
  check((await text.inputValue()) === `burst ${refused}`, `the input holds "${await text.inputValue()}"`);
  const note = page.locator('#note');
  check(/slow down/.test(await note.textContent()), `the note says "${await note.textContent()}"`);
  const [n, t] = [await note.boundingBox(), await text.boundingBox()];
  report.seen.noteBox = n;
  check(n && n.y >= 0 && n.y + n.height <= 844, `the error is outside the screen: ${JSON.stringify(n)}`);
  check(n.y - (t.y + t.height) < 60, `the error is ${Math.round(n.y - t.y - t.height)} px below the input`);
  await page.waitForFunction((k) => document.querySelectorAll('.msg[data-nick="ann"]').length === k, accepted, { polling: 50 });
  await shot(page, 'chat-errors-phone');

  step('a moment later, Enter sends it');
  await sleep(1500);
  await text.press('Enter');
  await page.waitForFunction(() => document.getElementById('text').value === '', null, { polling: 20 });
  await page.locator('.msg[data-nick="ann"] .text', { hasText: `burst ${refused}` }).waitFor();
}

async function chatRestart() {
  const [ca, cb] = [await newContext(), await newContext()];
  step('alice and bob in #lobby, a line each');
  const alice = shotPage = await open(ca, 'alice', `${base}/chat?room=lobby&nick=alice`);
  await joinedAs(alice, 'alice');
  const bob = await open(cb, 'bob', `${base}/chat?room=lobby&nick=bob`);
  await joinedAs(bob, 'bob');
  await alice.locator('#text').fill('hello before the restart');
  await alice.locator('#text').press('Enter');
  await bob.locator('.msg[data-nick="alice"] .text', { hasText: 'hello before the restart' }).waitFor();
  await bob.locator('#text').fill('hi alice');
  await bob.locator('#text').press('Enter');
  await alice.locator('.msg[data-nick="bob"] .text', { hasText: 'hi alice' }).waitFor();

  step('the server is killed: the composer says it is reconnecting and keeps what is typed');
  await control('kill', 0);
  await closed(alice);
  const placeholder = await alice.locator('#text').getAttribute('placeholder');
  report.seen.placeholder = placeholder;
  check(/reconnect/i.test(placeholder) && !/join a room/i.test(placeholder), `the input says "${placeholder}" while disconnected`);
  check(!(await alice.locator('#text').isDisabled()), 'the input is disabled while disconnected');
  await alice.locator('#text').fill('typed while the server was away');

  step('the server is back: same room, transcript kept, both listed');
  await control('start', 0);
  await opened(alice, 30000);
  await opened(bob, 30000);
  await sameMembers([alice, bob], ['alice', 'bob'], { sorted: true });
  const lines = await alice.$$eval('.msg .text', (ts) => ts.map((t) => t.textContent));
  report.seen.aliceAfter = await alice.$$eval('#messages > div', (ds) => ds.map((d) => d.textContent));
  check(lines.includes('hello before the restart') && lines.includes('hi alice'), `alice's transcript after the restart: ${JSON.stringify(lines)}`);
  check((await alice.locator('#text').inputValue()) === 'typed while the server was away', 'the draft is gone');

  step('the draft is sent; bob gets it');
  await alice.locator('#text').press('Enter');
  await bob.locator('.msg[data-nick="alice"] .text', { hasText: 'typed while the server was away' }).waitFor();
}

async function multiplayerPhone() {
  const me = shotPage = await open(await newContext('phone'), 'phone', `${base}/multiplayer`);
  await me.waitForFunction(() => window.demo.me !== null && window.demo.snapshot !== null, null, { polling: 50 });
  const id = await me.evaluate(() => window.demo.me);
  step('a tap on the field moves my dot there');
  const field = me.locator('#field');
  await field.scrollIntoViewIfNeeded();
  for (const [x, y] of [[200, 150], [600, 380]]) {
    const box = await field.boundingBox();
    await me.touchscreen.tap(box.x + (x / 800) * box.width, box.y + (y / 500) * box.height);
    try {
      await me.waitForFunction(([id, x, y]) => {
        const p = window.demo.snapshot.players.find((q) => q.id === id);
        return p && Math.hypot(p.x - x, p.y - y) < 4;
      }, [id, x, y], { polling: 30, timeout: 8000 });
    } catch (e) {
      const p = await me.evaluate((id) => window.demo.snapshot.players.find((q) => q.id === id), id);
      throw new Error(`tapped (${x}, ${y}); my dot stays at (${p.x}, ${p.y})`);
    }
  }
  step('three more players: no colour looks like the gem');
  const others = await newContext();
  for (let i = 0; i < 3; i++) await open(others, `player${i + 2}`, `${base}/multiplayer`);
  await me.waitForFunction(() => window.demo.snapshot.players.length >= 4, null, { polling: 50 });
  // The gem's colour as drawn: its centre pixel, when no dot or name is near it. New dots appear
  // away from the gem, but my own dot may have stopped near it: then it takes the gem, and the
  // next one appears away from every dot.
  let gem = null;
  for (let tries = 0; gem === null && tries < 100; tries++) {
    if (tries === 20) {
      const g = await me.evaluate(() => window.demo.snapshot.gem);
      const box = await field.boundingBox();
      await me.touchscreen.tap(box.x + (g.x / 800) * box.width, box.y + (g.y / 500) * box.height);
      await me.waitForFunction((g) => window.demo.snapshot.gem.x !== g.x || window.demo.snapshot.gem.y !== g.y, g, { polling: 30, timeout: 8000 });
    }
    gem = await me.evaluate(() => {
      const s = window.demo.snapshot;
      if (s.players.some((p) => Math.hypot(p.x - s.gem.x, p.y - s.gem.y) < 45)) return null;
      const c = document.getElementById('field');
      const [r, g, b] = c.getContext('2d').getImageData(Math.round(s.gem.x * c.width / window.demo.world.width), Math.round(s.gem.y * c.height / window.demo.world.height), 1, 1).data;
      return [r, g, b];
    });
    if (gem === null) await sleep(100);
  }
  check(gem !== null, 'the gem was never clear of dots');
  const colours = await me.evaluate(() => window.demo.snapshot.players.map((p) => p.color));
  report.seen.gem = gem;
  report.seen.colours = colours;
  const rgb = (hex) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  for (const [i, c] of colours.entries()) {
    const d = Math.hypot(...rgb(c).map((v, k) => v - gem[k]));
    check(d > 60, `player ${i + 1}'s colour ${c} looks like the gem (rgb ${gem}), ${Math.round(d)} apart`);
  }
  check(new Set(colours).size === colours.length, `two players share a colour: ${colours}`);
}

// The checks of one page at phone size: what sticks out of the page or of its box.
async function fitsPhone(page, name) {
  const found = await page.evaluate(() => {
    const problems = [];
    const doc = document.documentElement;
    // A phone's browser widens innerWidth to what overflows (mobile emulation does too): the
    // screen is the layout viewport, clientWidth.
    const screen = Math.min(window.innerWidth, doc.clientWidth);
    if (doc.scrollWidth > screen) {
      const wide = [...document.body.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > screen + 0.5)
        .slice(0, 5).map((e) => `${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''}${e.className && typeof e.className === 'string' ? '.' + e.className.split(' ')[0] : ''}`);
      problems.push(`scrolls sideways: ${doc.scrollWidth} px wide in ${screen} (${wide.join(', ')})`);
    }
    for (const sel of ['#room-title', '#members li', '#rooms button', '.msg', '#viewers', '#who', '.card']) {
      for (const e of document.querySelectorAll(sel)) {
        if (e.scrollWidth > e.clientWidth + 1) problems.push(`${sel} "${e.textContent.slice(0, 30)}" spills out of its box`);
      }
    }
    const viewers = document.getElementById('viewers');
    if (viewers && viewers.textContent) {
      const size = parseFloat(getComputedStyle(viewers).fontSize);
      const height = viewers.getBoundingClientRect().height;
      if (height > size * 1.3 * 2.2) problems.push(`"${viewers.textContent}" takes ${Math.round(height / (size * 1.25))} lines`);
    }
    return problems;
  });
  report.seen[name] = found;
  return found.map((p) => `${name}: ${p}`);
}

async function phone() {
  const context = await newContext('phone');
  const nick = 'W'.repeat(24), room = 'a-room-with-a-long-name-to-check';
  const pages = [
    ['index', '/', async () => {}],
    ['chat', `/chat?room=${room}&nick=${nick}`, async (p) => {
      await joinedAs(p, nick);
      await p.locator('#text').fill('y'.repeat(120));
      await p.locator('#text').press('Enter');
      await p.locator('.msg').first().waitFor();
    }],
    ['feed', '/feed', async (p) => { await p.waitForFunction(() => window.demo.ticks.length >= 8, null, { polling: 100, timeout: 20000 }); }],
    ['multiplayer', '/multiplayer', async (p) => { await p.waitForFunction(() => window.demo.snapshot !== null, null, { polling: 50 }); }],
    ['progress', '/progress', async (p) => {
      await p.locator('button.start[data-job="build"]').click();
      await p.waitForFunction(() => document.querySelectorAll('#log > div').length >= 4, null, { polling: 50, timeout: 20000 });
    }],
  ];
  const problems = [];
  for (const [name, url, ready] of pages) {
    step(`${name} at 390x844`);
    const page = shotPage = await open(context, name, base + url);
    await ready(page);
    problems.push(...await fitsPhone(page, name));
    await shot(page, `${name}-phone`);
    await page.close();
  }
  shotPage = null;
  check(!problems.length, problems.join('; '));
}

async function feedOffline() {
  const context = await newContext();
  step('a first viewer starts the samples; a second one comes 3 s later');
  const first = await open(context, 'first', `${base}/feed`);
  await first.waitForFunction(() => window.demo.ticks.length >= 12, null, { polling: 100, timeout: 20000 });
  const page = shotPage = await open(context, 'second', `${base}/feed`);
  await page.waitForFunction(() => window.demo.received >= 2, null, { polling: 50 });
  step('its count includes the backlog');
  const seen = await page.evaluate(() => ({ count: Number(document.getElementById('count').textContent), samples: window.demo.ticks.length }));
  report.seen.counted = seen;
  check(seen.count >= seen.samples, `"Samples received" says ${seen.count}; the page holds ${seen.samples}`);
  step('the server is killed: no rate while disconnected');
  await control('kill', 0);
  await closed(page);
  try {
    await page.waitForFunction(() => document.getElementById('rate').textContent.trim() === '–', null, { polling: 100, timeout: 8000 });
  } catch (e) {
    throw new Error(`the rate card says ${await page.locator('#rate').textContent()}/s while disconnected`);
  }
  step('the server is back: a rate again');
  await control('start', 0);
  await opened(page, 30000);
  await page.waitForFunction(() => Number(document.getElementById('rate').textContent) > 0, null, { polling: 100, timeout: 20000 });
}

async function closeReasons() {
  const context = await newContext();
  const pages = [];
  for (const p of ['/', '/chat?room=lobby&nick=ann', '/feed', '/multiplayer', '/progress']) pages.push([p, await open(context, p, base + p)]);
  step('SIGTERM: every page shows the close code and reason');
  await control('term', 0);
  const shown = {};
  for (const [p, page] of pages) {
    await closed(page);
    try {
      await page.locator('#state', { hasText: '1001 server shutting down' }).waitFor({ timeout: 5000 });
    } catch (e) {
      shown[p] = await page.locator('#state').textContent();
    }
  }
  check(!Object.keys(shown).length, `pages without "1001 server shutting down": ${JSON.stringify(shown)}`);
  step('every page comes back');
  await control('start', 0);
  for (const [p, page] of pages) {
    await opened(page, 30000);
    await page.locator('#state', { hasText: /^open$/ }).waitFor();
  }
}

async function indexEmpty() {
  const page = shotPage = await open(await newContext(), 'viewer', `${base}/`);
  step('Enter in an empty input, then in one with spaces: nothing sent, a hint');
  for (const value of ['', '   ']) {
    await page.locator('#text').fill(value);
    await page.locator('#text').press('Enter');
    await sleep(300);
  }
  const sent = await page.$$eval('#log div.out', (ds) => ds.map((d) => d.textContent));
  check(sent.length === 0, `sent ${JSON.stringify(sent)}`);
  await page.locator('#hint', { hasText: 'Type a message first' }).waitFor();
  step('a real message goes');
  await page.locator('#text').fill('not empty');
  await page.locator('#text').press('Enter');
  await page.locator('#log div.out', { hasText: '> not empty' }).waitFor();
}

// ---------------------------------------------------------------------------------------------

async function main() {
  step('launch chromium');
  browser = await launch({ timeout: 30000 });
  report.browserVersion = browser.version();
  await SCENARIOS[scenario]();
  check(report.pageErrors.length === 0, `page errors: ${report.pageErrors.join('; ')}`);
  step('done');
  await browser.close();
  browser = null;
}

async function failureShot() {
  if (shotPage && !shotPage.isClosed()) await shot(shotPage, `${scenario}-failed`);
}

runReport(main, { report, timeoutS, browser: () => browser, onFailure: failureShot });
