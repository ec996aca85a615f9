#!/usr/bin/env node
// The `/pubsub` page (web/pubsub.html, on web/duplex-pubsub.js) in Chromium while a node dies.
//
//     node pubsub_browser.js PAGE_URL --expect N [--publishers K] [--screenshot FILE] [--timeout SECONDS]
//
// PAGE_URL is the page with its nodes in the query (`http://B/pubsub?nodes=ws://A/pubsub,ws://B/pubsub`).
// The script opens it, waits until its subscription is in place, prints `@@ ready` on stdout (the
// test then starts the publisher and kills a node), and waits until the page has seen seq N of K
// publishers; then it takes a screenshot of the page and prints one JSON object on stdout: the
// page's own report (received, lost, duplicated, out of order, resumes, the URLs it connected to,
// per publisher the last seq), console errors and page errors. Exit status 0 when the page got
// there, 1 otherwise (`failed` names the step), 2 on bad usage.
'use strict';

const fs = require('fs');
const path = require('path');
const { launch, CHROMIUM, runReport } = require('./browser');

const argv = process.argv.slice(2);
let pageUrl = null, expect = 0, publishers = 1, screenshot = null, timeoutS = 90;
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--expect') expect = Number(argv[++i]);
  else if (a === '--publishers') publishers = Number(argv[++i]);
  else if (a === '--screenshot') screenshot = argv[++i];
  else if (a === '--timeout') timeoutS = Number(argv[++i]);
  else pageUrl = a;
}
if (!pageUrl || !(expect > 0) || !(publishers > 0) || !(timeoutS > 0)) {
  console.error('usage: pubsub_browser.js PAGE_URL --expect N [--publishers K] [--screenshot FILE] [--timeout SECONDS]');
  process.exit(2);
}

const report = { ok: false, page: pageUrl, chromium: CHROMIUM, step: 'start', failed: null, steps: [],
  pageReport: null, console: [], pageErrors: [], screenshot: null };
let browser = null, page = null;
const step = (name) => { report.step = name; report.steps.push(name); };

async function capture() {
  if (!page) return;
  report.pageReport = await page.evaluate(() => JSON.parse(JSON.stringify(window.pubsubReport)));
  if (screenshot) {
    fs.mkdirSync(path.dirname(screenshot), { recursive: true });
    await page.screenshot({ path: screenshot, fullPage: true, timeout: 10000 });
    report.screenshot = screenshot;
  }
}

async function main() {
  step('launch chromium');
  browser = await launch({ timeout: 30000 });
  const context = await browser.newContext({ viewport: { width: 1000, height: 760 }, deviceScaleFactor: 1 });
  page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') report.console.push(m.text()); });
  page.on('pageerror', (e) => report.pageErrors.push(String(e && e.stack ? e.stack : e)));
  step('open the page');
  const resp = await page.goto(pageUrl, { waitUntil: 'load' });
  if (!resp || !resp.ok()) throw new Error(`GET ${pageUrl} answered ${resp ? resp.status() : 'nothing'}`);
  step('wait for the subscription');
  await page.waitForFunction(() => window.pubsubReport && window.pubsubReport.subscribed, null, { polling: 50, timeout: 20000 });
  process.stdout.write('@@ ready\n');
  step(`wait for seq ${expect} of ${publishers} publishers`);
  await page.waitForFunction(({ expect, publishers }) => {
    const p = Object.values(window.pubsubReport.publishers);
    return p.length >= publishers && p.every((x) => x.max >= expect);
  }, { expect, publishers }, { polling: 100, timeout: timeoutS * 1000 });
  // Whatever would come twice comes right behind: a moment for it, then the final state.
  await new Promise((r) => setTimeout(r, 500));
  step('screenshot');
  await capture();
  await browser.close();
  browser = null;
}

runReport(main, { report, timeoutS: timeoutS + 30, browser: () => browser, onFailure: capture });
