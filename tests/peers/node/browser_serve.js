#!/usr/bin/env node
// Interop peer: drives Debian's Chromium against the page of `duplex serve`, as a person would.
//
//     node browser_serve.js http://127.0.0.1:PORT/ SCREENSHOT.png [--timeout SECONDS]
//
// 1. Loads the page, waits for its socket (`window.ws`) to be open and for a pushed
//    `< Message ...` line in #log.
// 2. Types `hello from chromium` into #text and clicks #send.
// 3. Runs the console snippet a person pastes into DevTools, the way DevTools runs it (CDP
//    Runtime.evaluate with replMode, so `let ws` may redeclare a page binding as it can there):
//        let ws = new WebSocket("ws://" + location.host); ws.onmessage = m => console.log(m.data);
//    then, once open, `ws.send("hello from the console")`, and waits for a push on it.
// 4. Clicks #close and checks the page socket's close event: code 1000, wasClean. The console
//    socket must still be open (the page's button closed its own socket), and is then closed
//    with 1000 "console bye".
// 5. Saves a screenshot.
//
// Prints one JSON object on stdout (what was seen: log lines, console, errors, close events).
// Exit status 0 on success, 1 on failure (with `failed` naming the step), 2 on bad usage.
// The page must be loaded over http://127.0.0.1: Chromium refuses ws:// to loopback from
// about:blank. Chromium is /usr/bin/chromium (Debian's package), or $CHROMIUM.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { launch, CHROMIUM, runReport, parseArgs } = require('./browser');

const SENT_UI = 'hello from chromium';
const SENT_CONSOLE = 'hello from the console';
const SNIPPET = 'let ws = new WebSocket("ws://" + location.host); ws.onmessage = m => console.log(m.data);';

function usage() {
  console.error('usage: browser_serve.js BASE_URL SCREENSHOT_PATH [--timeout SECONDS]');
  process.exit(2);
}

const { positional, timeoutS } = parseArgs();
if (positional.length !== 2 || !(timeoutS > 0)) usage();
const [baseUrl, screenshotPath] = positional;

const report = {
  ok: false,
  url: baseUrl,
  chromium: CHROMIUM,
  step: 'start',
  failed: null,
  pageLog: [],
  console: [],
  pageErrors: [],
  failedRequests: [],
  pageSocketClose: null,
  consoleSocket: null,
  screenshot: null,
};

let browser = null;
let page = null;

async function main() {
  const deadline = Date.now() + timeoutS * 1000;
  const left = () => Math.max(1000, deadline - Date.now());
  const step = (name) => { report.step = name; };

  step('launch chromium');
  browser = await launch({ timeout: left() });
  report.browserVersion = browser.version();
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  page = await context.newPage();
  page.setDefaultTimeout(30000);
  page.on('console', (m) => report.console.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => report.pageErrors.push(String(e && e.stack ? e.stack : e)));
  page.on('requestfailed', (r) => report.failedRequests.push(`${r.url()}: ${r.failure() && r.failure().errorText}`));

  step(`load ${baseUrl}`);
  const resp = await page.goto(baseUrl, { waitUntil: 'load', timeout: left() });
  if (!resp || !resp.ok()) throw new Error(`GET ${baseUrl} answered ${resp ? resp.status() : 'nothing'}`);

  step('wait for window.ws to be open');
  await page.waitForFunction(() => window.ws instanceof WebSocket && window.ws.readyState === WebSocket.OPEN,
    null, { timeout: Math.min(left(), 30000), polling: 50 });
  // Record the page socket's close event from now on.
  await page.evaluate(() => {
    window.__duplexTest = { pageClose: null };
    window.ws.addEventListener('close', (e) => {
      window.__duplexTest.pageClose = { code: e.code, reason: e.reason, wasClean: e.wasClean };
    });
  });

  step('wait for a "< Message " line in #log');
  await page.waitForFunction(
    () => [...document.querySelectorAll('#log div')].some((d) => d.textContent.startsWith('< Message ')),
    null, { timeout: Math.min(left(), 30000), polling: 50 });
  report.pageLog = await page.$$eval('#log div', (ds) => ds.map((d) => d.textContent));
  const bad = report.pageLog.filter((l) => l.startsWith('< ') && !/^< Message \S+$/.test(l));
  if (bad.length) throw new Error(`#log lines not of the form "< Message <number>": ${JSON.stringify(bad)}`);

  step(`type "${SENT_UI}" into #text and click #send`);
  await page.locator('#text').fill('');
  await page.locator('#text').pressSequentially(SENT_UI);
  await page.locator('#send').click();
  await page.waitForFunction(() => window.ws.bufferedAmount === 0, null, { timeout: 5000, polling: 50 });

  step('run the console snippet');
  const cdp = await context.newCDPSession(page);
  const repl = async (expression) => {
    // What DevTools does for a line typed in its console.
    const r = await cdp.send('Runtime.evaluate', { expression, replMode: true, awaitPromise: true, returnByValue: true });
    if (r.exceptionDetails) {
      const d = r.exceptionDetails;
      const what = d.exception ? d.exception.description : d.text;
      const hint = /already been declared/.test(what)
        ? ' (the page declares a global `let`/`const ws`; keep its socket in a module or function scope, with window.ws, so the snippet can be pasted)'
        : '';
      throw new Error(`console: ${expression} threw ${what.split('\n')[0]}${hint}`);
    }
    return r.result.value;
  };
  await repl(SNIPPET);
  // Instrumentation beside the snippet (not part of it): count what the console socket receives.
  await repl('window.__duplexTest.consoleMessages = []; ws.addEventListener("message", m => window.__duplexTest.consoleMessages.push(m.data)); ' +
    'ws.addEventListener("close", e => { window.__duplexTest.consoleClose = { code: e.code, reason: e.reason, wasClean: e.wasClean }; }); "ok"');
  step('wait for the console socket to open');
  // `await` in the expression: in REPL mode (as in DevTools) a promise-valued line is returned
  // as the promise, not waited for; only a top-level await waits.
  await repl(`await new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error("console socket not open after 20 s, readyState " + ws.readyState)), 20000);
      const check = () => ws.readyState === WebSocket.OPEN ? (clearTimeout(t), resolve(true))
        : ws.readyState > WebSocket.OPEN ? (clearTimeout(t), reject(new Error("console socket closed before opening"))) : setTimeout(check, 20);
      check();
    })`);
  if (await repl('ws === window.ws')) throw new Error('the console snippet\'s `ws` is the page\'s socket');
  step('send from the console socket');
  await repl(`ws.send(${JSON.stringify(SENT_CONSOLE)})`);
  step('wait for a push on the console socket');
  await page.waitForFunction(() => window.__duplexTest.consoleMessages.some((m) => /^Message \S+$/.test(m)),
    null, { timeout: Math.min(left(), 30000), polling: 50 });
  // Console events reach this process a little after the page ran them.
  const consoleDeadline = Date.now() + 5000;
  while (!report.console.some((l) => /^log: Message \S+$/.test(l))) {
    if (Date.now() > consoleDeadline) throw new Error('the snippet\'s console.log(m.data) printed no "Message ..." line');
    await new Promise((r) => setTimeout(r, 50));
  }

  step('click #close and wait for the page socket\'s close event');
  await page.locator('#close').click();
  try {
    await page.waitForFunction(() => window.__duplexTest.pageClose !== null, null, { timeout: Math.min(left(), 10000), polling: 50 });
  } finally {
    report.pageSocketClose = await page.evaluate(() => window.__duplexTest.pageClose);
    report.consoleSocket = { readyStateAfterPageClose: await repl('ws.readyState') };
  }
  const pc = report.pageSocketClose;
  if (pc.code !== 1000 || !pc.wasClean) {
    throw new Error(`page socket closed with code ${pc.code} reason ${JSON.stringify(pc.reason)} wasClean ${pc.wasClean}; expected 1000, clean`);
  }
  if (report.consoleSocket.readyStateAfterPageClose !== 1) {
    throw new Error('#close also closed the console socket: does the page keep its socket in a global `let ws` that the snippet replaced?');
  }

  step('close the console socket');
  await repl('ws.close(1000, "console bye")');
  await page.waitForFunction(() => window.__duplexTest.consoleClose, null, { timeout: Math.min(left(), 10000), polling: 50 });
  report.consoleSocket.close = await page.evaluate(() => window.__duplexTest.consoleClose);
  report.consoleSocket.messages = (await page.evaluate(() => window.__duplexTest.consoleMessages)).slice(0, 20);
  if (report.consoleSocket.close.code !== 1000) {
    throw new Error(`console socket closed with code ${report.consoleSocket.close.code}, expected 1000`);
  }

  step('screenshot');
  report.pageLog = await page.$$eval('#log div', (ds) => ds.map((d) => d.textContent));
  fs.mkdirSync(path.dirname(path.resolve(screenshotPath)), { recursive: true });
  await page.screenshot({ path: screenshotPath, fullPage: true });
  report.screenshot = path.resolve(screenshotPath);

  step('done');
  await browser.close();
  browser = null;
}

runReport(main, { report, timeoutS, browser: () => browser, onFailure: async () => {
    // What the page looked like when it failed.
    if (!page) return;
    report.pageLog = await page.$$eval('#log div', (ds) => ds.map((d) => d.textContent));
    fs.mkdirSync(path.dirname(path.resolve(screenshotPath)), { recursive: true });
    await page.screenshot({ path: screenshotPath, fullPage: true, timeout: 5000 });
    report.screenshot = path.resolve(screenshotPath);
  } });
