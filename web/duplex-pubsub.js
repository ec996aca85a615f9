// A browser client of duplex's `/pubsub` protocol over several nodes (docs/pubsub.md): it keeps
// each topic's position, resumes from it on the next node after a drop, and sends every publish
// with an id until the server acknowledges it — so that what the page receives is contiguous and
// free of duplicates, or the page is told plainly that it is not.
//
//     import { PubSubClient } from './duplex-pubsub.js';
//     const client = new PubSubClient(['ws://a.example/pubsub', 'ws://b.example/pubsub'], {
//       state: document.getElementById('state'),         // shows the connection's state (reconnect.js)
//       onmessage: (topic, data, position) => …,         // each publication once, in order
//       onrecovered: (topic, replayed) => …,             // resumed: `replayed` missed ones came first
//       onunrecovered: (topic, reason, position) => …,   // continuity lost: reload the state
//       onack: (id, position, duplicate) => …,           // a publish was stored
//     });
//     client.subscribe('feed');
//     const id = client.publish('feed', { text: 'hi' });  // sent (again) until acknowledged
//
// Reconnection is reconnect.js's: exponential backoff with jitter, to the next URL each time.
// Positions are kept in sessionStorage (per tab, `duplex-pubsub:<topic>`), so a reload of the
// page resumes too; `{storage: null}` keeps them in memory only. Unacknowledged publishes are
// kept in memory: a reload forgets them.
//
// After a reconnect, each topic is subscribed again with `since` = its position; the server
// answers with the missed publications and `recovered: true` (→ onrecovered), or with
// `recovered: false` and a reason (`epoch_changed`, `too_old`, `too_many`, `history_off`,
// `unknown_position`) and nothing replayed (→ onunrecovered): the page reloads its state. A
// `reset` on a live subscription (the node found a loss it could not repair) is an
// onunrecovered too. Publications at or below a topic's position are dropped (the server sends
// none; this is a second line of defence). A publish refused with `backplane unavailable` is
// sent again after `retryDelayMs`; later publishes wait behind it, so their order is kept.
//
// Patterns (`chat.*`) are live only: after a reconnect they miss what was published meanwhile.

import { ReconnectingSocket } from './reconnect.js';

export const RETRY_DELAY_MS = 250;
// At most this many publishes wait for their answers at once (the server answers at most 1024
// pipelined requests per connection); later ones are sent as answers come.
export const MAX_IN_FLIGHT = 256;

const noop = () => {};

export class PubSubClient {
  constructor(urls, {
    state = null, storage = (typeof sessionStorage !== 'undefined' ? sessionStorage : null),
    storageKey = 'duplex-pubsub', idPrefix = null, retryDelayMs = RETRY_DELAY_MS, startAt = 0, maxInFlight = MAX_IN_FLIGHT,
    onmessage = noop, onrecovered = noop, onunrecovered = noop, onack = noop, onsubscribed = noop,
    onerror = noop, onopen = noop, onclose = noop,
  } = {}) {
    Object.assign(this, { storage, storageKey, retryDelayMs, maxInFlight, onmessage, onrecovered, onunrecovered, onack,
      onsubscribed, onerror, onopen, onclose });
    this.idPrefix = idPrefix || `w${Math.random().toString(36).slice(2, 10)}`;
    this.nextId = 0;
    this.topics = new Map();      // topic -> {position: {offset, epoch} | null, resend: false}
    this.patterns = new Set();
    this.outstanding = [];        // subscribes sent on this connection, waiting for their replies
    this.pending = new Map();     // id -> {text, inFlight, sentBefore}, in the order of the publishes
    this.inFlight = 0;
    this.retryTimer = null;
    this.stats = { connections: 0, delivered: 0, duplicatesDropped: 0, recovered: 0, notRecovered: 0, resent: 0, acked: 0 };
    this.socket = new ReconnectingSocket(urls, {
      state, startAt, global: false,
      onopen: (ws) => this.opened(ws),
      onmessage: (m) => this.received(m.data),
      onclose: (e, how) => { this.outstanding = []; this.inFlight = 0; this.onclose(e, how); },
    });
  }

  // The URL of the current connection (or of the next attempt).
  get url() { return this.socket.url; }

  get isOpen() { return this.socket.isOpen; }

  // Publishes not yet acknowledged.
  get unacked() { return this.pending.size; }

  // A topic's position: {offset, epoch} of the last publication received, or null.
  position(topic) {
    const t = this.topics.get(topic);
    return t ? t.position : null;
  }

  // Follows a topic from its saved position (sessionStorage), or from now; or a pattern (live).
  subscribe(filter) {
    if (filter.endsWith('*')) {
      if (this.patterns.has(filter)) return false;
      this.patterns.add(filter);
      this.sendSubscribe(filter, null);
      return true;
    }
    if (this.topics.has(filter)) return false;
    const t = { position: this.load(filter), resend: false };
    this.topics.set(filter, t);
    this.sendSubscribe(filter, t.position);
    return true;
  }

  unsubscribe(filter) {
    const was = this.topics.delete(filter) || this.patterns.delete(filter);
    if (was) this.socket.send(JSON.stringify({ op: 'unsubscribe', topic: filter }));
    return was;
  }

  // Publishes `data` (any JSON value) with an id, returned; sent again until acknowledged.
  publish(topic, data, id = null) {
    id = id || `${this.idPrefix}-${++this.nextId}`;
    const text = JSON.stringify({ op: 'publish', topic, data, id });
    this.pending.set(id, { text, inFlight: false, sentBefore: false });
    this.fill();
    return id;
  }

  // Closes for good (no retry until start()).
  close() { this.socket.close(1000, 'bye'); }

  start() { this.socket.start(); }

  // ---- inside

  opened(ws) {
    this.stats.connections++;
    this.outstanding = [];
    for (const [topic, t] of this.topics) this.sendSubscribe(topic, t.position);
    for (const p of this.patterns) this.sendSubscribe(p, null);
    for (const p of this.pending.values()) p.inFlight = false;
    this.inFlight = 0;
    this.fill();
    this.onopen(ws);
  }

  sendSubscribe(filter, since) {
    const req = { op: 'subscribe', topic: filter };
    if (since) req.since = since;
    if (this.socket.send(JSON.stringify(req))) this.outstanding.push(filter);
  }

  load(topic) {
    if (!this.storage) return null;
    try {
      const p = JSON.parse(this.storage.getItem(`${this.storageKey}:${topic}`));
      return p && Number.isSafeInteger(p.offset) && typeof p.epoch === 'string' ? p : null;
    } catch (_) {
      return null;
    }
  }

  setPosition(topic, t, offset, epoch) {
    t.position = { offset, epoch };
    if (this.storage) {
      try { this.storage.setItem(`${this.storageKey}:${topic}`, JSON.stringify(t.position)); } catch (_) { /* full */ }
    }
  }

  scheduleRetry() {
    if (this.retryTimer) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (!this.socket.isOpen) return;   // everything goes at the next connection
      for (const [topic, t] of this.topics) {
        if (t.resend) { t.resend = false; this.sendSubscribe(topic, t.position); }
      }
      this.fill();
    }, this.retryDelayMs);
  }

  // Sends the publishes waiting to be sent, in order, while fewer than maxInFlight wait for their
  // answers; nothing while a refused one waits for the retry delay (it goes first, order kept).
  fill() {
    if (this.retryTimer || !this.socket.isOpen) return;
    for (const p of this.pending.values()) {
      if (this.inFlight >= this.maxInFlight) return;
      if (p.inFlight) continue;
      if (!this.socket.send(p.text)) return;
      if (p.sentBefore) this.stats.resent++;
      p.inFlight = p.sentBefore = true;
      this.inFlight++;
    }
  }

  // A publish answered: out of the window.
  settle(id) {
    const p = this.pending.get(id);
    if (!p) return null;
    if (p.inFlight) { p.inFlight = false; this.inFlight--; }
    return p;
  }

  received(text) {
    let v;
    try { v = JSON.parse(text); } catch (_) { return this.onerror(`not JSON: ${text}`); }
    if (!v || typeof v !== 'object') return this.onerror(`not an object: ${text}`);
    const hasPosition = Number.isSafeInteger(v.offset) && typeof v.epoch === 'string';
    if (typeof v.subscribed === 'string') {
      const topic = v.subscribed;
      const i = this.outstanding.indexOf(topic);
      if (i >= 0) this.outstanding.splice(i, 1);
      const t = this.topics.get(topic);
      if (t && hasPosition) this.setPosition(topic, t, v.offset, v.epoch);
      const position = hasPosition ? { offset: v.offset, epoch: v.epoch } : null;
      if (v.recovered === true) { this.stats.recovered++; this.onrecovered(topic, v.replayed || 0, position); }
      if (v.recovered === false) { this.stats.notRecovered++; this.onunrecovered(topic, v.reason || '', position); }
      return this.onsubscribed(topic, position);
    }
    if (typeof v.topic === 'string' && v.op === undefined) {
      const t = this.topics.get(v.topic);
      if (t && hasPosition) {
        const have = t.position;
        if (have && have.epoch === v.epoch && v.offset <= have.offset) { this.stats.duplicatesDropped++; return; }
        this.setPosition(v.topic, t, v.offset, v.epoch);
      }
      this.stats.delivered++;
      return this.onmessage(v.topic, v.data, hasPosition ? { offset: v.offset, epoch: v.epoch } : null);
    }
    if (v.op === 'reset' && typeof v.topic === 'string') {
      const t = this.topics.get(v.topic);
      if (t && hasPosition) this.setPosition(v.topic, t, v.offset, v.epoch);
      this.stats.notRecovered++;
      return this.onunrecovered(v.topic, v.reason || '', hasPosition ? { offset: v.offset, epoch: v.epoch } : null);
    }
    if (v.op === 'ack') {
      const id = String(v.id);
      if (this.settle(id)) this.pending.delete(id);
      this.stats.acked++;
      this.fill();
      return this.onack(id, hasPosition ? { offset: v.offset, epoch: v.epoch } : null, v.duplicate === true);
    }
    if (typeof v.error === 'string') {
      const retry = v.error.startsWith('backplane unavailable');
      if (v.id !== undefined) {
        const id = String(v.id);
        if (!this.settle(id)) return;
        if (retry) { this.scheduleRetry(); return; }
        this.pending.delete(id);
        this.fill();
        return this.onerror(`publish ${id}: ${v.error}`);
      }
      if (retry && this.outstanding.length) {
        // Replies come in request order; only subscribes are answered without an id.
        const t = this.topics.get(this.outstanding.shift());
        if (t) t.resend = true;
        this.scheduleRetry();
        return;
      }
      return this.onerror(v.error);
    }
    // {"unsubscribed": …} and history pages: nothing to do.
  }
}
