// The demo pages' WebSocket: one that comes back on its own after the server restarts or the
// network drops, and shows its state the same way on every page.
//
//     import { ReconnectingSocket, socketUrl } from './reconnect.js';
//     const socket = new ReconnectingSocket(socketUrl('/chat/ws'), {
//       state: document.getElementById('state'),   // shows "open", "closed (1001 server shutting down) · retrying in 2 s"
//       onopen: () => …, onmessage: (m) => …, onclose: (e) => …,
//     });
//     socket.send('…');            // false (and nothing sent) unless open
//     socket.close(1000, 'bye');   // closes for good: no retry until socket.start()
//
// Backoff: the first retry after 0.5 s, then twice as long each time up to 10 s, each delay
// ±20 % at random (so that the pages of a restarted server do not all come back in the same
// millisecond). A connection that stayed open 5 s resets the delay. When the browser says it is
// online again, or the tab becomes visible, a waiting page retries at once.
//
// The state shows how the last connection ended (its close code and reason, as the server sent
// them, or as the page did when it closed itself), also while attempts to connect again fail.
//
// Several URLs (the nodes of one service): `new ReconnectingSocket([urlA, urlB], {startAt: 1})`
// connects to each in turn, the next one after every close or failed attempt, so a page leaves a
// dead node at its first retry.
//
// The current socket is `window.ws` (the pages' tests and the browser console use it), unless
// `{global: false}`.

export const FIRST_DELAY_MS = 500;
export const MAX_DELAY_MS = 10000;
export const STABLE_MS = 5000;

// `ws://host/path` or `wss://host/path`, as the page itself was loaded over http or https.
export function socketUrl(path) {
  return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + path;
}

// How a close reads: "1001 server shutting down", "1006 connection lost" (a code without a
// reason gets the name RFC 6455 §7.4.1 gives it).
export function closeText(code, reason) {
  const names = { 1000: 'normal closure', 1001: 'going away', 1005: 'no status code', 1006: 'connection lost',
    1011: 'server error', 1012: 'service restart', 1013: 'try again later' };
  const why = reason || names[code] || '';
  return why ? `${code} ${why}` : String(code);
}

export class ReconnectingSocket {
  constructor(url, { state = null, onopen = () => {}, onmessage = () => {}, onclose = () => {}, startAt = 0,
    global = true } = {}) {
    const urls = Array.isArray(url) ? url.slice() : [url];
    Object.assign(this, { urls, stateEl: state, onopen, onmessage, onclose, global });
    this.urlIndex = ((startAt % urls.length) + urls.length) % urls.length;
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.timer = null;
    this.tick = null;
    this.retryAt = 0;
    this.lastClose = null;
    this.closing = null;
    const soon = () => { if (this.timer) this.connect(true); };
    window.addEventListener('online', soon);
    document.addEventListener('visibilitychange', () => { if (document.visibilityState === 'visible') soon(); });
    this.connect(false);
  }

  // The URL of the current connection (or of the next attempt).
  get url() { return this.urls[this.urlIndex]; }

  get isOpen() { return !!this.ws && this.ws.readyState === WebSocket.OPEN; }

  // Connects now: after close(), or instead of waiting for the next retry.
  start() { this.connect(false); }

  connect(retry) {
    this.stopped = false;
    this.clearTimers();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    const ws = this.ws = new WebSocket(this.url);
    if (this.global) window.ws = ws;
    let openedAt = 0;
    if (retry) this.show(`closed (${this.lastClose}) · connecting…`, 'closed');
    else this.show('connecting…', 'connecting');
    ws.onopen = () => {
      openedAt = performance.now();
      this.show('open', 'open');
      this.onopen(ws);
    };
    ws.onmessage = (m) => this.onmessage(m);
    ws.onclose = (e) => {
      if (ws !== this.ws) return;
      if (openedAt && performance.now() - openedAt >= STABLE_MS) this.attempt = 0;
      // A connection that never opened has no end of its own to show: the last one's stays.
      if (openedAt || !this.lastClose) this.lastClose = this.closing || closeText(e.code, e.reason);
      this.closing = null;
      if (this.stopped) {
        this.show(`closed (${this.lastClose})`, 'closed');
      } else {
        this.urlIndex = (this.urlIndex + 1) % this.urls.length;
        const base = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** this.attempt);
        const delay = Math.round(base * (0.8 + Math.random() * 0.4));
        this.attempt++;
        this.retryAt = performance.now() + delay;
        this.timer = setTimeout(() => this.connect(true), delay);
        this.countdown();
        this.tick = setInterval(() => this.countdown(), 1000);
      }
      // Failed attempts to come back are not news for the page: it heard of the close already.
      if (openedAt || this.stopped) this.onclose(e, { stopped: this.stopped });
    };
  }

  // Sends `data` if the socket is open; says whether it did.
  send(data) {
    if (!this.isOpen) return false;
    this.ws.send(data);
    return true;
  }

  // Closes the socket and stays closed until start().
  close(code = 1000, reason = '') {
    this.stopped = true;
    this.clearTimers();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) {
      this.closing = closeText(code, reason);
      this.ws.close(code, reason);
    } else if (this.lastClose) {
      this.show(`closed (${this.lastClose})`, 'closed');
    }
  }

  countdown() {
    const s = Math.max(0, Math.ceil((this.retryAt - performance.now()) / 1000));
    const tries = this.attempt > 1 ? ` (attempt ${this.attempt})` : '';
    this.show(`closed (${this.lastClose}) · ${s > 0 ? `retrying in ${s} s` : 'retrying…'}${tries}`, 'closed');
  }

  clearTimers() {
    clearTimeout(this.timer);
    clearInterval(this.tick);
    this.timer = this.tick = null;
  }

  show(text, cls) {
    const el = this.stateEl;
    if (!el) return;
    el.textContent = text;
    el.classList.remove('open', 'closed', 'connecting');
    el.classList.add(cls);
  }
}
