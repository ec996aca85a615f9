// Launching Debian's Chromium for the browser peers (browser_serve.js, browser_wss.js, demos.js,
// relay_browser.js): one place for the executable and the flags.
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

module.exports = { CHROMIUM, ARGS, launch };
