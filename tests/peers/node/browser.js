// Launching Debian's Chromium for the browser peers (browser_serve.js, browser_wss.js, demos.js,
// relay_browser.js): one place for the executable and the flags, the command line (`parseArgs`),
// and the deadline and JSON report every script ends with (`runReport`).
//
//     const { launch, CHROMIUM } = require('./browser');
//     const browser = await launch({ timeout: 30000, extraArgs: ['--ignore-certificate-errors'] });
//
// playwright-core downloads no browser: Chromium is /usr/bin/chromium (Debian's package), or
// $CHROMIUM. Pages that open ws:// to loopback must be loaded from http://127.0.0.1 (Chromium
// refuses them from about:blank).
'use strict';

const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  // Loopback only: never route through a proxy from the environment.
  '--no-proxy-server',
];

// Starts headless Chromium with ARGS plus `extraArgs`; `timeout` (ms) bounds the start.
function launch({ timeout = 30000, extraArgs = [] } = {}) {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: [...ARGS, ...extraArgs], timeout });
}

// Runs `main` under a deadline of `timeoutS` seconds, then prints `report` as JSON on stdout and
// exits: status 0 if `main` resolved; 1 if it threw or ran out of time, with `report.failed`
// saying at which `report.step`, after `onFailure()` (a screenshot, say) has had its try.
// `browser()` gives the browser to close, if one was launched.
function runReport(main, { report, timeoutS, browser = () => null, onFailure = async () => {} }) {
  const finish = (code) => {
    report.ok = code === 0;
    process.stdout.write(JSON.stringify(report, null, 2) + '\n', () => process.exit(code));
  };
  const fail = async (why) => {
    report.failed = `${report.step}: ${why}`;
    try { await onFailure(); } catch (_) { /* the page may be gone */ }
    const b = browser();
    if (b) await b.close().catch(() => {});
    finish(1);
  };
  const timer = setTimeout(() => fail(`not done within ${timeoutS} s`), timeoutS * 1000);
  main().then(() => {
    clearTimeout(timer);
    finish(0);
  }, (e) => {
    clearTimeout(timer);
    fail(e && e.message ? e.message.split('\n')[0] : String(e));
  });
}

// The scripts' command line: positional arguments, and `--timeout SECONDS` (default 60) anywhere.
function parseArgs(argv = process.argv.slice(2)) {
  const positional = [];
  let timeoutS = 60;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--timeout') timeoutS = Number(argv[++i]);
    else positional.push(argv[i]);
  }
  return { positional, timeoutS };
}

module.exports = { CHROMIUM, ARGS, launch, runReport, parseArgs };
