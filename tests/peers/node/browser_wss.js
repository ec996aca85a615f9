#!/usr/bin/env node
// Interop peer: Debian's Chromium against `duplex serve` over TLS, with compression.
//
//     node browser_wss.js https://127.0.0.1:PORT/ [--timeout SECONDS]
//
// Loads the page (Chromium started with --ignore-certificate-errors, for a --tls-self-signed
// server), waits for its socket (`window.ws`, wss://) to be open, checks that `window.ws.extensions`
// contains permessage-deflate, and waits for a pushed `< Message ...` line in #log.
//
// Prints one JSON object on stdout (what was seen). Exit status 0 on success, 1 on failure (with
// `failed` naming the step), 2 on bad usage. Chromium is /usr/bin/chromium, or $CHROMIUM.
'use strict';

const { launch, runReport, parseArgs } = require('./browser');

// The server's certificate is generated at start-up (--tls-self-signed): trust it.
const EXTRA_ARGS = ['--ignore-certificate-errors'];

const { positional, timeoutS } = parseArgs();
if (positional.length !== 1 || !(timeoutS > 0)) {
  console.error('usage: browser_wss.js BASE_URL [--timeout SECONDS]');
  process.exit(2);
}
const [baseUrl] = positional;

const report = { ok: false, url: baseUrl, step: 'start', failed: null, socketUrl: null, extensions: null, pageLog: [], pageErrors: [] };
let browser = null;

async function main() {
  const deadline = Date.now() + timeoutS * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  const step = (name) => { report.step = name; };

  step('launch chromium');
  browser = await launch({ timeout: left(), extraArgs: EXTRA_ARGS });
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('pageerror', (e) => report.pageErrors.push(String(e)));

  step(`load ${baseUrl}`);
  const resp = await page.goto(baseUrl, { waitUntil: 'load', timeout: left() });
  if (!resp || !resp.ok()) throw new Error(`GET ${baseUrl} answered ${resp ? resp.status() : 'nothing'}`);

  step('wait for window.ws to be open');
  await page.waitForFunction(() => window.ws instanceof WebSocket && window.ws.readyState === WebSocket.OPEN,
    null, { timeout: Math.min(left(), 15000), polling: 50 });
  report.socketUrl = await page.evaluate(() => window.ws.url);
  report.extensions = await page.evaluate(() => window.ws.extensions);
  if (!report.socketUrl.startsWith('wss://')) throw new Error(`window.ws.url is ${report.socketUrl}, not wss://`);
  if (!report.extensions.includes('permessage-deflate')) {
    throw new Error(`window.ws.extensions is ${JSON.stringify(report.extensions)}, without permessage-deflate`);
  }

  step('wait for a "< Message " line in #log');
  await page.waitForFunction(
    () => [...document.querySelectorAll('#log div')].some((d) => d.textContent.startsWith('< Message ')),
    null, { timeout: Math.min(left(), 15000), polling: 50 });
  report.pageLog = await page.$$eval('#log div', (ds) => ds.map((d) => d.textContent));

  step('done');
  await browser.close();
  browser = null;
}

runReport(main, { report, timeoutS, browser: () => browser });
