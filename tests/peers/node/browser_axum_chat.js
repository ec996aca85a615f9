#!/usr/bin/env node
// Interop peer: Debian's Chromium on the page of examples/axum_chat.rs (axum + duplex-axum).
//
//     node browser_axum_chat.js BASE_URL SCREENSHOT.png [--timeout SECONDS] [--ignore-certificate-errors]
//
// 1. Loads BASE_URL (the page axum serves), waits for its socket (`window.ws`) to be open, with
//    subprotocol chat.v1 and permessage-deflate negotiated.
// 2. Waits for the page's `* N online` line (it comes from the JSON route /api/stats).
// 3. Types `hello from chromium` into #text, clicks #send, and waits for the room's answer
//    `userN: hello from chromium` in #log (the server's broadcast, back on the same socket).
// 4. Reads the page's protocol (Resource Timing `nextHopProtocol`: `h2` over TLS) and the JSON
//    route /api/stats (its `sockets_over_h2` counts chat sockets opened with extended CONNECT),
//    then closes the socket with 1000 "bye".
// Prints one JSON report on stdout; exit 0 on success, 1 on failure (`failed` names the step).
'use strict';

const { launch, CHROMIUM, runReport, parseArgs } = require('./browser');

const SENT = 'hello from chromium';
const ignoreCert = process.argv.includes('--ignore-certificate-errors');
const { positional, timeoutS } = parseArgs(process.argv.slice(2).filter((a) => a !== '--ignore-certificate-errors'));
if (positional.length !== 2 || !(timeoutS > 0)) {
  console.error('usage: browser_axum_chat.js BASE_URL SCREENSHOT_PATH [--timeout SECONDS] [--ignore-certificate-errors]');
  process.exit(2);
}
const [baseUrl, screenshotPath] = positional;
const report = { ok: false, url: baseUrl, chromium: CHROMIUM, step: 'start', failed: null, console: [], pageErrors: [] };
let browser = null;
let page = null;

async function main() {
  const step = (name) => { report.step = name; };
  step('launch chromium');
  browser = await launch({ extraArgs: ignoreCert ? ['--ignore-certificate-errors'] : [] });
  const context = await browser.newContext({ ignoreHTTPSErrors: ignoreCert });
  page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => report.pageErrors.push(String(e)));

  step(`load ${baseUrl}`);
  const resp = await page.goto(baseUrl, { waitUntil: 'load' });
  if (!resp || !resp.ok()) throw new Error(`GET ${baseUrl} answered ${resp ? resp.status() : 'nothing'}`);

  step('wait for window.ws to be open');
  await page.waitForFunction(() => window.ws instanceof WebSocket && window.ws.readyState === WebSocket.OPEN, null, { polling: 50 });
  report.protocol = await page.evaluate(() => window.ws.protocol);
  report.extensions = await page.evaluate(() => window.ws.extensions);
  if (report.protocol !== 'chat.v1') throw new Error(`subprotocol ${JSON.stringify(report.protocol)}, expected chat.v1`);
  if (!report.extensions.startsWith('permessage-deflate')) throw new Error(`extensions ${JSON.stringify(report.extensions)}, expected permessage-deflate`);

  step('wait for the /api/stats line');
  await page.waitForFunction(() => /\* \d+ online/.test(document.getElementById('log').textContent), null, { polling: 50 });

  step('send from the page');
  await page.locator('#text').fill(SENT);
  await page.locator('#send').click();
  await page.waitForFunction((sent) => [...document.querySelectorAll('#log div')].some((d) => /^user\d+: /.test(d.textContent) && d.textContent.endsWith(sent)),
    SENT, { polling: 50 });
  report.log = await page.evaluate(() => [...document.querySelectorAll('#log div')].map((d) => d.textContent));

  step('read the protocol of the page');
  report.nextHopProtocol = await page.evaluate(() => performance.getEntriesByType('navigation')[0].nextHopProtocol);

  step('read /api/stats');
  report.stats = await page.evaluate(async () => (await fetch('/api/stats')).json());

  step('close');
  report.close = await page.evaluate(() => new Promise((resolve) => {
    window.ws.onclose = (e) => resolve({ code: e.code, reason: e.reason, wasClean: e.wasClean });
    window.ws.close(1000, 'bye');
  }));
  if (report.close.code !== 1000 || !report.close.wasClean) throw new Error(`close ${JSON.stringify(report.close)}`);
  await page.screenshot({ path: screenshotPath });
  report.screenshot = screenshotPath;
  await browser.close();
}

runReport(main, {
  report,
  timeoutS,
  browser: () => browser,
  onFailure: async () => { if (page) await page.screenshot({ path: screenshotPath }); },
});
