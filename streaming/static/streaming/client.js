/**
 * Browser client for the streaming websocket: one connection multiplexing subscriptions, resumed with
 * `since` after every non-terminal close. A dependency-free ES module; its rules are in docs/clients.md.
 */

import { ClientClosed, ConnectionLost, ServerError } from "./errors.js";
import { EventSourceSocket, noteOpened } from "./sse.js";
import { Subscription } from "./subscription.js";

export { ClientClosed, ConnectionLost, ServerError, Subscription };
export const SUBPROTOCOL = "widgetapp.v1";
export const BEARER_PREFIX = "bearer.";
export const TICKET_PREFIX = "ticket.";
export const TERMINAL_CLOSE_CODES = new Set([4400, 4401, 4403]);
export const CLOSE_UNAUTHENTICATED = 4401;

// Reconnect delays: full jitter over BACKOFF_BASE_MS * 2 ** attempt, capped at BACKOFF_CAP_MS.
export const BACKOFF_BASE_MS = 250;
export const BACKOFF_CAP_MS = 10_000;
// A connection that stayed open this long was healthy, so the next loss starts the backoff afresh.
export const STABLE_AFTER_MS = 10_000;
export const REQUEST_TIMEOUT_MS = 10_000;
// Fetch a new token this long before the current one expires (the server also sends token_expiring).
export const REFRESH_BEFORE_MS = 60_000;
// Browsers cannot ping, so silence for this many server heartbeats means the socket is dead.
const HEARTBEAT_MISSES = 2.5;
const OPEN_READY_STATE = 1;
const MAX_TIMER_MS = 2 ** 31 - 1;

export const State = Object.freeze({
  CONNECTING: "connecting",
  OPEN: "open",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
});

/**
 * Full-jitter exponential backoff in ms, never sooner than the server's `retry_after_ms` hint plus
 * a random share of its `spread_ms` window (so a restarted worker's clients do not return at once).
 */
export function backoffDelay(
  attempt,
  { baseMs = BACKOFF_BASE_MS, capMs = BACKOFF_CAP_MS, hintMs = 0, spreadMs = 0, random = Math.random } = {},
) {
  return Math.max(hintMs + random() * spreadMs, random() * Math.min(capMs, baseMs * 2 ** attempt));
}

/**
 * The connection. Options:
 * - `token`: the access token to start with;
 * - `getToken(reason)`: async, returns a fresh access token (the page runs the refresh grant at
 *   /o/token/); reason is "connect", "expiring" or "unauthenticated";
 * - `WebSocket`: an implementation to inject (default: the browser's);
 * - `onstate(state)`, `onreset(reset, sub)`: callbacks for every state change and every reset;
 * - `backoffBaseMs`, `backoffCapMs`, `requestTimeoutMs`, `refreshBeforeMs`: tunables;
 * - `sse`: {url, ticketUrl} of the SSE fallback, used after `sse.after` (default 2) websocket attempts
 *   in a row fail to open; `ontransport(name)` is called with "sse" (or "websocket") when it changes.
 * It also dispatches `state`, `reset`, `transport` and `servererror` events (CustomEvent, value in `detail`).
 */
export class StreamClient extends EventTarget {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.options = { backoffBaseMs: BACKOFF_BASE_MS, backoffCapMs: BACKOFF_CAP_MS, ...options };
    this.options.requestTimeoutMs ??= REQUEST_TIMEOUT_MS;
    this.options.refreshBeforeMs ??= REFRESH_BEFORE_MS;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.state = State.CLOSED;
    this.stats = { reconnects: 0, lastReconnectMs: null, maxReconnectMs: 0, duplicatesDropped: 0, resets: 0 };
    this.welcome = null;
    this.expiresAt = null;
    this.closeCode = null;
    this.closeReason = "";
    this._token = options.token ?? null;
    this._ws = null;
    this._subs = [];
    this._byKey = new Map();
    this._pending = new Map();
    this._subscribing = new Map();
    this._openWaiters = [];
    this._timers = {};
    this._nextId = 1;
    this._attempt = 0;
    this._retryHintMs = 0;
    this._retrySpreadMs = 0;
    this._lostAt = null;
    this._openedAt = 0;
    this._authRetried = false;
    // The latest resume ticket (from welcome, authenticated or ticket): reconnects present it.
    this._ticket = null;
    this._ticketOffered = false;
    this._refreshing = null;
    this.transport = "websocket";
    this._failedOpens = 0;
  }

  // --- public API -----------------------------------------------------------------------------

  /** Connect; resolves with `welcome` (transient failures are retried), rejects on a terminal close. */
  connect() {
    if (this.state === State.CLOSED && this.closeCode === null) {
      this._setState(State.CONNECTING);
      this._open();
    }
    return this._whenOpen().then(() => this.welcome);
  }

  close() {
    this._stop(1000, "closed by client");
  }

  /**
   * Follow a stream; `since` = {epoch, seq} resumes after a snapshot; `delta: true` asks for fossil
   * deltas, applied here (callbacks see full events). Returns a Subscription.
   */
  subscribe(service, topic = null, { since = null, onevent = null, onreset = null, delta = false } = {}) {
    if (this._subs.some((sub) => sub.matches(service, topic))) {
      throw new Error(`already subscribed to ${service} ${topic ?? ""}`.trim());
    }
    const sub = new Subscription(this, service, topic, { since, onevent, onreset, delta });
    this._subs.push(sub);
    if (this.state === State.OPEN) this._sendSubscribe(this._ws, sub);
    return sub;
  }

  async unsubscribe(sub) {
    this._subs = this._subs.filter((other) => other !== sub);
    if (sub.topic !== null) this._byKey.delete(streamKey(sub.service, sub.topic));
    sub.end();
    if (this.state !== State.OPEN || sub.topic === null) return;
    await this._call({ type: "unsubscribe", service: sub.service, topic: sub.topic });
  }

  /** Run a service action; resolves with the `data` of its `response`, rejects with ServerError. */
  async request(service, action, data = null) {
    const reply = await this._call({ type: "request", service, action, data });
    return reply.data;
  }

  /** Round trip to the server, in ms. */
  async ping() {
    const started = Date.now();
    await this._call({ type: "ping" });
    return Date.now() - started;
  }

  /** Swap in a fresh token in band (from `getToken` when none is given); resolves with `expires_at`. */
  refresh(token = null) {
    this._refreshing ??= this._refresh(token).finally(() => (this._refreshing = null));
    return this._refreshing;
  }

  // --- connection lifecycle -------------------------------------------------------------------

  async _open() {
    let ws;
    try {
      ws = await this._socket();
    } catch (error) {
      this._stop(CLOSE_UNAUTHENTICATED, `no usable token: ${error.message}`);
      return;
    }
    if (this.state === State.CLOSED) return ws.close();
    this._ws = ws;
    ws.onmessage = (event) => this._onMessage(ws, event.data);
    ws.onclose = (event) => this._onClose(ws, event.code, event.reason);
  }

  /** A new socket offering the resume ticket if one is held (websockets only), else the token. */
  async _socket() {
    this._ticketOffered = this.transport !== "sse" && this._ticket !== null;
    if (this._ticketOffered) return new this.WebSocket(this.url, [SUBPROTOCOL, TICKET_PREFIX + this._ticket]);
    this._token ??= await this._fetchToken(this._authRetried ? "unauthenticated" : "connect");
    return this.transport === "sse"
      ? new EventSourceSocket(this.options.sse, this._token, this._subs)
      : new this.WebSocket(this.url, [SUBPROTOCOL, BEARER_PREFIX + this._token]);
  }

  _onClose(ws, code, reason) {
    if (ws !== this._ws) return;
    this._detach();
    this._failPending(new ConnectionLost(`connection closed (${code}): ${reason}`));
    if (this.state === State.CLOSED) return;
    if (code === CLOSE_UNAUTHENTICATED && this._ticketOffered) {
      this._ticket = null; // the token may still be valid: one more try with it
    } else if (TERMINAL_CLOSE_CODES.has(code) && !this._mayRetryAuth(code)) {
      this._stop(code, reason);
      return;
    }
    noteOpened(this, this._openedAt !== 0);
    if (this._openedAt && Date.now() - this._openedAt >= STABLE_AFTER_MS) this._attempt = 0;
    const { backoffBaseMs: baseMs, backoffCapMs: capMs, random } = this.options;
    const hintMs = this._retryHintMs;
    const spreadMs = this._retrySpreadMs;
    const delay = backoffDelay(this._attempt++, { baseMs, capMs, hintMs, spreadMs, random });
    this._retryHintMs = this._retrySpreadMs = 0;
    this._openedAt = 0;
    this._lostAt ??= Date.now();
    this._setState(State.RECONNECTING);
    this._timers.reconnect = setTimeout(() => this._open(), delay);
  }

  /** After a 4401, fetch a new token once (from `getToken`) before giving up. */
  _mayRetryAuth(code) {
    if (code !== CLOSE_UNAUTHENTICATED || !this.options.getToken || this._authRetried) return false;
    this._authRetried = true;
    this._token = null;
    return true;
  }

  _detach() {
    const ws = this._ws;
    this._ws = null;
    for (const name of ["watchdog", "refresh"]) clearTimeout(this._timers[name]);
    if (!ws) return;
    ws.onmessage = ws.onclose = null;
    if (ws.readyState <= OPEN_READY_STATE) ws.close(1000);
  }

  _stop(code, reason) {
    if (this.state === State.CLOSED && this.closeCode !== null) return;
    this.closeCode = code;
    this.closeReason = reason;
    clearTimeout(this._timers.reconnect);
    this._detach();
    this._setState(State.CLOSED);
    const error = new ClientClosed(code, reason);
    this._failPending(error);
    for (const waiter of this._openWaiters.splice(0)) waiter.reject(error);
    for (const sub of this._subs) sub.end(TERMINAL_CLOSE_CODES.has(code) ? error : null, error);
  }

  _setState(state) {
    this.state = state;
    this.options.onstate?.(state);
    this.dispatchEvent(new CustomEvent("state", { detail: state }));
  }

  _failPending(error) {
    for (const pending of this._pending.values()) pending.reject(error);
    this._pending.clear();
    this._subscribing.clear();
  }

  _whenOpen() {
    if (this.state === State.OPEN) return Promise.resolve();
    if (this.state === State.CLOSED) {
      return Promise.reject(new ClientClosed(this.closeCode, this.closeReason || "not connected"));
    }
    return new Promise((resolve, reject) => this._openWaiters.push({ resolve, reject }));
  }

  async _call(message) {
    await this._whenOpen();
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this._pending.delete(id);
        reject(new Error(`no reply to ${message.type} within ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      const settle = (fn) => (value) => (clearTimeout(timer), fn(value));
      this._pending.set(id, { resolve: settle(resolve), reject: settle(reject) });
      this._send(this._ws, { ...message, id });
    });
  }

  _send(ws, msg) {
    if (ws?.readyState === OPEN_READY_STATE) ws.send(JSON.stringify(msg));
  }

  // --- tokens ---------------------------------------------------------------------------------

  async _fetchToken(reason) {
    if (!this.options.getToken) throw new Error("no token and no getToken callback");
    return this.options.getToken(reason);
  }

  async _refresh(token) {
    this._token = token ?? (await this._fetchToken("expiring"));
    const reply = await this._call({ type: "auth", token: this._token });
    this._ticket = reply.ticket ?? null;
    this._onExpiry(reply.expires_at);
    return this.expiresAt;
  }

  _onExpiry(expiresAt) {
    this.expiresAt = expiresAt ?? null;
    clearTimeout(this._timers.refresh);
    if (!this.options.getToken || !this.expiresAt) return;
    const remaining = Date.parse(this.expiresAt) - Date.now();
    const wait = Math.max(remaining - this.options.refreshBeforeMs, remaining / 2, 1000);
    if (wait > MAX_TIMER_MS) return; // a long-lived token; the server's token_expiring still warns
    this._timers.refresh = setTimeout(() => this.refresh().catch(reportRefreshFailure), wait);
  }

  // --- incoming messages ----------------------------------------------------------------------

  _onMessage(ws, data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    this._armWatchdog(ws);
    if (msg.type === "ping") this._send(ws, { type: "pong", ...(msg.id !== undefined && { id: msg.id }) });
    else if (msg.type === "welcome") this._onWelcome(ws, msg);
    else if (msg.type === "event") this._onEvent(msg, data);
    else if (msg.type === "reconnect") {
      this._retryHintMs = Number(msg.retry_after_ms) || 0;
      this._retrySpreadMs = Number(msg.spread_ms) || 0;
    }
    else if (msg.type === "ticket") this._ticket = msg.ticket;
    else if (msg.type === "token_expiring") this.refresh().catch(reportRefreshFailure);
    else if (msg.type === "subscribed" && msg.id === undefined) this._onUnrequestedSubscribed(msg);
    else this._onReply(msg);
  }

  /** A socket silent for several heartbeats is dead even if the browser has not noticed yet. */
  _armWatchdog(ws) {
    clearTimeout(this._timers.watchdog);
    const heartbeat = this.welcome?.heartbeat;
    if (!heartbeat) return;
    this._timers.watchdog = setTimeout(
      () => this._onClose(ws, 1006, "no heartbeat from the server"),
      heartbeat * HEARTBEAT_MISSES * 1000,
    );
  }

  _onWelcome(ws, msg) {
    this.welcome = msg;
    this._ticket = msg.ticket ?? null;
    this._openedAt = Date.now();
    this._authRetried = false;
    if (this._lostAt !== null) {
      const took = this._openedAt - this._lostAt;
      Object.assign(this.stats, { reconnects: this.stats.reconnects + 1, lastReconnectMs: took });
      this.stats.maxReconnectMs = Math.max(this.stats.maxReconnectMs, took);
      this._lostAt = null;
    }
    for (const sub of this._subs) this._sendSubscribe(ws, sub);
    this._armWatchdog(ws);
    this._onExpiry(msg.expires_at);
    this._setState(State.OPEN);
    for (const waiter of this._openWaiters.splice(0)) waiter.resolve();
  }

  _sendSubscribe(ws, sub) {
    const id = this._nextId++;
    this._subscribing.set(id, sub);
    this._send(ws, sub.subscribeMessage(id));
  }

  _onReply(msg) {
    const sub = this._subscribing.get(msg.id);
    const pending = this._pending.get(msg.id);
    this._subscribing.delete(msg.id);
    this._pending.delete(msg.id);
    if (sub) this._onSubscribeReply(sub, msg);
    else if (pending && msg.type === "error") pending.reject(new ServerError(msg.code, msg.message));
    else if (pending) pending.resolve(msg);
    else if (msg.type === "error") this._onServerError(msg);
  }

  /** An `error` no request waits for; one naming a live stream ends it, or suspends it while its
   * service is disabled (the server starts it again, with what it missed, once re-enabled). */
  _onServerError(msg) {
    const sub = msg.service === undefined ? null : this._byKey.get(streamKey(msg.service, msg.topic));
    if (sub && msg.code === "service_disabled") this._reportReset(sub, sub.notice("service_disabled"));
    else if (sub) this._dropSubscription(sub, msg);
    this.dispatchEvent(new CustomEvent("servererror", { detail: msg }));
  }

  /** The server (re)started a stream by itself: a service was re-enabled, or its history reset. */
  _onUnrequestedSubscribed(msg) {
    const sub = this._byKey.get(streamKey(msg.service, msg.topic));
    if (!sub) return;
    this._reportReset(sub, sub.onSubscribed(msg));
    this.dispatchEvent(new CustomEvent("resumed", { detail: { service: msg.service, topic: msg.topic } }));
  }

  _onSubscribeReply(sub, msg) {
    if (!this._subs.includes(sub)) return; // unsubscribed while the reply was in flight
    const suspended = msg.type === "error" && msg.code === "service_disabled" && sub.topic !== null;
    if (suspended) return; // a live stream whose service is disabled for now: kept, started on enable
    if (msg.type === "error") return this._dropSubscription(sub, msg);
    this._byKey.set(streamKey(sub.service, msg.topic), sub);
    this._reportReset(sub, sub.onSubscribed(msg));
  }

  _dropSubscription(sub, msg) {
    const error = new ServerError(msg.code, msg.message);
    this._subs = this._subs.filter((other) => other !== sub);
    if (sub.topic !== null) {
      this._byKey.delete(streamKey(sub.service, sub.topic));
      this._reportReset(sub, sub.notice(msg.code)); // a stream that was live is gone: say so
    }
    sub.end(error);
  }

  _onEvent(frame, raw) {
    const sub = this._byKey.get(streamKey(frame.service, frame.topic));
    if (!sub) return; // a stream we have left
    const { msg, text } = sub.expand(frame, raw);
    const { reset, event } = sub.onEvent(msg);
    this._reportReset(sub, reset);
    if (!event) {
      this.stats.duplicatesDropped += 1;
      return;
    }
    sub.text = text;
    sub.deliver(event);
  }

  _reportReset(sub, reset) {
    if (!reset) return;
    this.stats.resets += 1;
    sub.deliver(reset);
    this.options.onreset?.(reset, sub);
    this.dispatchEvent(new CustomEvent("reset", { detail: reset }));
  }
}

function streamKey(service, topic) {
  return `${service}\u0000${topic}`;
}

function reportRefreshFailure(error) {
  console.warn("in-band token refresh failed", error);
}
