#!/usr/bin/env node
// Drives the pub/sub demos of `duplex serve` in Debian's Chromium, as people would, and checks what
// each of them sees.
//
//     node demos.js http://127.0.0.1:PORT DEMO SCREENSHOT.png [--timeout SECONDS]
//
// DEMO is one of:
//   chat         two browser contexts: alice joins #lobby from the form, bob with a ?room=&nick= link;
//                alice sees bob join; a message typed by each appears in the other's page under its
//                author's nickname; a third page (carol) joining later gets both replayed as history,
//                and alice sees carol leave. Screenshot: alice's page.
//   feed         the page gets the backlog and then samples at about 4 a second (measured over 3 s), and
//                the chart has been drawn. Screenshot once it holds 6 s of samples.
//   multiplayer  two contexts: alice moves her pointer over the field, and bob's page sees alice's dot
//                (the server's snapshots) arrive where she pointed, twice; then the other way round;
//                bob gets at least 20 snapshots a second. Screenshot: bob's page.
//   progress     two contexts: alice starts the `build` job; bob's page shows it running (started by
//                alice's viewer), its start buttons disabled, the progress bar moving through
//                intermediate values, and in the end exactly the log lines alice's page shows, and
//                `succeeded`. Screenshot: bob's page.
//
// Prints one JSON object on stdout (the steps' findings, console errors, page errors). Exit status 0
// on success, 1 on failure (`failed` names the step), 2 on bad usage. Pages are loaded from
// http://127.0.0.1 (Chromium refuses ws:// to loopback from about:blank). Chromium is
// /usr/bin/chromium, or $CHROMIUM.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { launch, CHROMIUM, runReport } = require('./browser');

const DEMOS = ['chat', 'feed', 'multiplayer', 'progress'];

function usage() {
  console.error(`usage: demos.js BASE_URL (${DEMOS.join('|')}) SCREENSHOT_PATH [--timeout SECONDS]`);
  process.exit(2);
}

const argv = process.argv.slice(2);
const positional = [];
let timeoutS = 90;
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--timeout') timeoutS = Number(argv[++i]);
  else positional.push(argv[i]);
}
if (positional.length !== 3 || !DEMOS.includes(positional[1]) || !(timeoutS > 0)) usage();
const [baseArg, demo, screenshotPath] = positional;
const base = baseArg.replace(/\/+$/, '');

const report = { ok: false, demo, url: `${base}/${demo}`, chromium: CHROMIUM, step: 'start', failed: null,
  seen: {}, console: [], pageErrors: [], failedRequests: [], screenshot: null };

let browser = null;
let shotPage = null;
const step = (name) => { report.step = name; };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
function check(cond, what) { if (!cond) throw new Error(what); }

async function open(context, who, url) {
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') report.console.push(`${who} ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => report.pageErrors.push(`${who}: ${e && e.stack ? e.stack : e}`));
  page.on('requestfailed', (r) => report.failedRequests.push(`${who}: ${r.url()}: ${r.failure() && r.failure().errorText}`));
  const resp = await page.goto(url, { waitUntil: 'load' });
  check(resp && resp.ok(), `GET ${url} answered ${resp ? resp.status() : 'nothing'}`);
  await page.waitForFunction(() => window.ws instanceof WebSocket && window.ws.readyState === WebSocket.OPEN, null, { polling: 50 });
  return page;
}

async function newContext() {
  return browser.newContext({ viewport: { width: 1100, height: 760 }, deviceScaleFactor: 1 });
}

// ---------------------------------------------------------------------------------------------

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
}

// ---------------------------------------------------------------------------------------------

async function main() {
  step('launch chromium');
  browser = await launch({ timeout: 30000 });
  report.browserVersion = browser.version();
  await { chat, feed, multiplayer, progress }[demo]();
  step('screenshot');
  await screenshot();
  check(report.pageErrors.length === 0, `page errors: ${report.pageErrors.join('; ')}`);
  step('done');
  await browser.close();
  browser = null;
}

async function screenshot() {
  if (!shotPage || shotPage.isClosed()) return;
  fs.mkdirSync(path.dirname(path.resolve(screenshotPath)), { recursive: true });
  await shotPage.screenshot({ path: screenshotPath, fullPage: true, timeout: 10000 });
  report.screenshot = path.resolve(screenshotPath);
}

runReport(main, { report, timeoutS, browser: () => browser, onFailure: screenshot });
