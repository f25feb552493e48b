/**
 * The SSE fallback as a socket: what the client uses when the websocket cannot open. It looks like a
 * WebSocket to the client (send, close, onmessage, onclose, readyState), obtains a one-time ticket
 * with the bearer token (POST ticketUrl), and follows the client's subscriptions with an EventSource
 * on /sse/stream/, resuming from their positions; a new subscription reopens it with one stream more
 * (resuming the others). Requests are not available over SSE.
 */

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 3;

/** The Last-Event-ID that resumes `subs` where they are: `epoch:seq` of each, comma-separated. */
export function lastEventId(subs) {
  return subs.map((sub) => (sub.position ? `${sub.position.epoch}:${sub.position.seq}` : "")).join(",");
}

/** Websocket attempts that never opened, in a row, switch `client` to SSE (when it has `sse` options). */
export function noteOpened(client, opened) {
  client._failedOpens = opened ? 0 : client._failedOpens + 1;
  const sse = client.options.sse;
  if (!sse || client.transport === "sse" || client._failedOpens < (sse.after ?? 2)) return;
  client.transport = "sse";
  client.options.ontransport?.(client.transport);
  client.dispatchEvent(new CustomEvent("transport", { detail: client.transport }));
}

export class EventSourceSocket {
  /** `options` = {url, ticketUrl, EventSource?, fetch?}; `subs` the client's subscriptions now. */
  constructor(options, token, subs) {
    this.options = options;
    this.readyState = CONNECTING;
    this.onmessage = null;
    this.onclose = null;
    this._token = token;
    this._subs = subs.map((sub) => ({ service: sub.service, topic: sub.topic ?? sub.requested }));
    this._lastId = lastEventId(subs);
    this._ids = new Map(); // "service\0topic" of a subscribe sent by the client -> its id
    this._source = null;
    this._reopening = null;
    this._welcomed = false;
    this._open().catch((error) => this._end(1006, `SSE failed: ${error.message}`));
  }

  async _open() {
    const fetchImpl = this.options.fetch ?? globalThis.fetch;
    const reply = await fetchImpl(this.options.ticketUrl, {
      method: "POST",
      headers: { Authorization: `Bearer ${this._token}` },
    });
    if (!reply.ok) return this._end(reply.status === 401 ? 4401 : 4403, (await reply.json()).message);
    const { ticket } = await reply.json();
    if (this.readyState === CLOSED) return;
    const query = new URLSearchParams(this._subs.map((sub) => ["stream", keyOf(sub, "/")]));
    query.set("ticket", ticket);
    const positions = this._lastId ? this._lastId.split(",") : [];
    const resumeFrom = this._subs.map((_, i) => positions[i] ?? "").join(",");
    if (resumeFrom.replaceAll(",", "")) query.set("last_event_id", resumeFrom);
    const EventSourceImpl = this.options.EventSource ?? globalThis.EventSource;
    const source = (this._source = new EventSourceImpl(`${this.options.url}?${query}`));
    source.onopen = () => (this.readyState = OPEN);
    source.onmessage = (event) => this._receive(event);
    source.addEventListener("reconnect", (event) => this._receive(event));
    source.addEventListener("close", (event) => {
      const { code, reason } = JSON.parse(event.data);
      this._end(code, reason);
    });
    source.onerror = () => this._end(1006, "the event stream was interrupted");
  }

  _receive(event) {
    if (event.lastEventId) this._lastId = event.lastEventId;
    const msg = JSON.parse(event.data);
    if (msg.type === "welcome" && this._welcomed) return; // a reopened stream: the client knows it
    this._welcomed ||= msg.type === "welcome";
    if (msg.type === "subscribed") msg.id = this._ids.get(keyOf(msg)) ?? this._ids.get(msg.service); // the reply
    this.onmessage?.({ data: msg.type === "subscribed" ? JSON.stringify(msg) : event.data });
  }

  send(text) {
    const msg = JSON.parse(text);
    if (msg.type === "subscribe") this._subscribe(msg);
    else if (msg.type !== "pong" && msg.id !== undefined) {
      const error = { type: "error", id: msg.id, code: "bad_request", message: `${msg.type} is not available over SSE` };
      queueMicrotask(() => this.onmessage?.({ data: JSON.stringify(error) }));
    }
  }

  /** Remember which id to answer; a stream not followed yet reopens the event stream with it. */
  _subscribe(msg) {
    const stream = { service: msg.service, topic: msg.topic ?? null };
    this._ids.set(keyOf(stream), msg.id); // a stream without a topic is answered under the server's
    if (this._subs.some((sub) => keyOf(sub) === keyOf(stream) || (!stream.topic && sub.service === stream.service))) {
      return;
    }
    this._subs.push(stream);
    this._reopening ??= setTimeout(() => {
      this._reopening = null;
      this._source?.close();
      this._open().catch((error) => this._end(1006, `SSE failed: ${error.message}`));
    }, 0);
  }

  close() {
    this.readyState = CLOSED;
    clearTimeout(this._reopening);
    this._source?.close();
  }

  _end(code, reason) {
    if (this.readyState === CLOSED) return;
    this.close();
    this.onclose?.({ code, reason });
  }
}

function keyOf(stream, separator = "\u0000") {
  return stream.topic ? `${stream.service}${separator}${stream.topic}` : stream.service;
}
