/**
 * One subscription of the streaming client: the (epoch, seq) of the last event it delivered, what to
 * resume from, duplicates and resets, fossil deltas, and delivery to callbacks or async iteration.
 */

import { applyStringDelta } from "./vendor/fossil-delta/fossil-delta.js";

export class Subscription {
  constructor(client, service, topic, { since = null, onevent = null, onreset = null, delta = false } = {}) {
    this.service = service;
    this.requested = topic ?? null;
    this.topic = null; // as the server names it (it fills in the user for notifications)
    this.position = since;
    this.onevent = onevent;
    this.onreset = onreset;
    this.delta = delta; // ask for fossil deltas
    this.text = null; // the last full event frame: the base of the next delta
    this._client = client;
    this._buffer = [];
    this._wake = null;
    this._ended = false;
    this._error = null;
    this.ready = new Promise((resolve, reject) => {
      this._resolveReady = resolve;
      this._rejectReady = reject;
    });
    this.ready.catch(() => {}); // a rejection nobody awaits is not an unhandled error
  }

  matches(service, topic) {
    return this.service === service && [this.requested, this.topic ?? this.requested].includes(topic ?? null);
  }

  subscribeMessage(id) {
    const msg = { type: "subscribe", id, service: this.service };
    const topic = this.topic ?? this.requested;
    if (topic) msg.topic = topic;
    if (this.position) msg.since = { epoch: this.position.epoch, seq: this.position.seq };
    if (this.delta) msg.delta = "fossil";
    return msg;
  }

  /** The full event and its frame text: the frame itself, or the delta applied to the last one. */
  expand(msg, raw) {
    if (msg.delta === undefined) return { msg, text: raw };
    const last = this.position;
    if (this.text === null || !last || msg.epoch !== last.epoch || msg.seq !== last.seq + 1) {
      throw new Error(`a delta for seq ${msg.seq} does not follow the last event received`);
    }
    const text = applyStringDelta(this.text, msg.delta);
    return { msg: JSON.parse(text), text };
  }

  /** Adopt the server's topic; keep our position if it recovered, else restart from its head. */
  onSubscribed(msg) {
    this.topic = msg.topic;
    let reset = null;
    if (!this.position || !msg.recovered) {
      if (this.position) reset = this.notice("not_recovered");
      this.position = { epoch: msg.epoch, seq: msg.seq };
    }
    this._resolveReady(msg.topic);
    return reset;
  }

  /** The reset to report first (if continuity broke) and the event, or no event for a duplicate. */
  onEvent(msg) {
    const last = this.position;
    if (!last || (msg.epoch === last.epoch && msg.seq <= last.seq)) return { reset: null, event: null };
    let reset = null;
    if (msg.epoch !== last.epoch) reset = this.notice("epoch_changed");
    else if (msg.seq > last.seq + 1) reset = this.notice("gap");
    this.position = { epoch: msg.epoch, seq: msg.seq };
    return { reset, event: msg };
  }

  unsubscribe() {
    return this._client.unsubscribe(this);
  }

  deliver(item) {
    const callback = item.type === "reset" ? this.onreset : this.onevent;
    if (!callback) {
      this._buffer.push(item);
      this._wake?.();
      return;
    }
    try {
      callback(item);
    } catch (error) {
      console.error("stream subscriber failed", error); // a page bug must not break the connection
    }
  }

  /** No more items; iteration then throws `error` if given. A pending `ready` rejects with readyError. */
  end(error = null, readyError = error) {
    this._ended = true;
    this._error = error;
    if (readyError) this._rejectReady(readyError);
    this._wake?.();
  }

  async *[Symbol.asyncIterator]() {
    for (;;) {
      if (this._buffer.length) yield this._buffer.shift();
      else if (this._ended && this._error) throw this._error;
      else if (this._ended) return;
      else await new Promise((resolve) => (this._wake = resolve));
    }
  }

  /** A reset item: this stream lost continuity for `reason`. */
  notice(reason) {
    return { type: "reset", service: this.service, topic: this.topic, reason };
  }
}
