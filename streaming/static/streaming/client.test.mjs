// The JS client driven through an injected fake WebSocket that plays the server's side of protocol v1.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { afterEach, test } from "node:test";

import { ClientClosed, ServerError, StreamClient, backoffDelay } from "./client.js";
import { createStringDelta } from "./vendor/fossil-delta/fossil-delta.js";

const WELCOME = { type: "welcome", session: "s1", heartbeat: 30, services: ["widgets"] };

/** A socket the test plays the server for: it records what the client sends and injects replies. */
class FakeSocket {
  static instances = [];

  constructor(url, protocols) {
    this.url = url;
    this.protocols = protocols;
    this.readyState = 1;
    this.sent = [];
    this.closedWith = null;
    FakeSocket.instances.push(this);
  }

  send(text) {
    this.sent.push(JSON.parse(text));
  }

  close(code = 1000) {
    this.closedWith = code;
    this.readyState = 3;
  }

  receive(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }

  serverClose(code, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }

  lastSent(type) {
    return this.sent.filter((msg) => msg.type === type).at(-1);
  }
}

const clients = [];

function makeClient(options = {}) {
  const client = new StreamClient("ws://test/ws/stream/", {
    token: "tok",
    WebSocket: FakeSocket,
    backoffBaseMs: 5,
    backoffCapMs: 20,
    ...options,
  });
  clients.push(client);
  return client;
}

async function open(client, welcome = WELCOME) {
  const opened = client.connect();
  await until(() => FakeSocket.instances.length > 0);
  const socket = FakeSocket.instances.at(-1);
  socket.receive(welcome);
  await opened;
  return socket;
}

async function until(condition, timeoutMs = 2000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function reply(id, fields = {}) {
  const base = { type: "subscribed", id, service: "widgets", topic: "all", epoch: "e1", seq: 0 };
  return { ...base, recovered: false, ...fields };
}

function event(seq, data = seq, epoch = "e1") {
  return { type: "event", service: "widgets", topic: "all", epoch, seq, data };
}

async function subscribed(client, socket, { topic = "all", seq = 0, onevent, onreset } = {}) {
  const sub = client.subscribe("widgets", topic === "all" ? "all" : null, { onevent, onreset });
  const msg = socket.lastSent("subscribe");
  socket.receive(reply(msg.id, { topic, seq }));
  await sub.ready;
  return sub;
}

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
  FakeSocket.instances = [];
});

test("backoff is full jitter, capped, and never sooner than the hint", () => {
  assert.equal(backoffDelay(0, { random: () => 1 }), 250);
  assert.equal(backoffDelay(3, { random: () => 1 }), 2000);
  assert.equal(backoffDelay(20, { random: () => 1 }), 10_000);
  assert.equal(backoffDelay(20, { random: () => 0 }), 0);
  assert.equal(backoffDelay(0, { random: () => 0.5, hintMs: 700 }), 700);
});

test("the token travels in the bearer subprotocol next to widgetapp.v1", async () => {
  const states = [];
  const client = makeClient({ onstate: (state) => states.push(state) });
  const socket = await open(client);
  assert.deepEqual(socket.protocols, ["widgetapp.v1", "bearer.tok"]);
  assert.equal(client.welcome.session, "s1");
  assert.deepEqual(states, ["connecting", "open"]);
});

test("events reach the subscriber in order, duplicates dropped, topic from the server", async () => {
  const client = makeClient();
  const socket = await open(client);
  const seen = [];
  const sub = await subscribed(client, socket, { onevent: (ev) => seen.push(ev.seq) });
  const expected = { type: "subscribe", id: 1, service: "widgets", topic: "all" };
  assert.deepEqual(socket.lastSent("subscribe"), expected);
  for (const seq of [1, 2, 2, 1, 3]) socket.receive(event(seq));
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(client.stats.duplicatesDropped, 2);
  assert.deepEqual(sub.position, { epoch: "e1", seq: 3 });
});

test("notifications: the server fills the topic in and events are iterable", async () => {
  const client = makeClient();
  const socket = await open(client);
  const sub = await subscribed(client, socket, { topic: "7" });
  assert.equal(sub.topic, "7");
  assert.equal(socket.lastSent("subscribe").topic, undefined);
  socket.receive({ ...event(1, "hello"), topic: "7" });
  const iterator = sub[Symbol.asyncIterator]();
  assert.equal((await iterator.next()).value.data, "hello");
});

test("server heartbeats are answered with pong", async () => {
  const client = makeClient();
  const socket = await open(client);
  socket.receive({ type: "ping" });
  assert.deepEqual(socket.sent.at(-1), { type: "pong" });
});

test("requests resolve by id and errors reject with the server's code", async () => {
  const client = makeClient();
  const socket = await open(client);
  const first = client.request("widgets", "list", { page: 1 });
  const second = client.request("widgets", "list", { page: 2 });
  await until(() => socket.sent.length === 2);
  const [a, b] = socket.sent;
  assert.deepEqual(a, { type: "request", service: "widgets", action: "list", data: { page: 1 }, id: a.id });
  socket.receive({ type: "error", id: b.id, code: "forbidden", message: "No." });
  socket.receive({ type: "response", id: a.id, data: ["w1"] });
  assert.deepEqual(await first, ["w1"]);
  await assert.rejects(second, (error) => error instanceof ServerError && error.code === "forbidden");
});

test("a drain close resumes every stream with since after the retry hint", async () => {
  const states = [];
  const client = makeClient({ onstate: (state) => states.push(state) });
  const socket = await open(client);
  const seen = [];
  await subscribed(client, socket, { onevent: (ev) => seen.push(ev.seq) });
  socket.receive(event(1));
  socket.receive(event(2));
  socket.receive({ type: "reconnect", reason: "restart", retry_after_ms: 60 });
  const closedAt = Date.now();
  socket.serverClose(4012, "restart");
  await until(() => FakeSocket.instances.length === 2);
  assert.ok(Date.now() - closedAt >= 55, "reconnected before retry_after_ms");
  const next = FakeSocket.instances[1];
  next.receive(WELCOME);
  const resume = next.lastSent("subscribe");
  assert.deepEqual(resume.since, { epoch: "e1", seq: 2 });
  next.receive(reply(resume.id, { seq: 3, recovered: true }));
  next.receive(event(2));
  next.receive(event(3));
  assert.deepEqual(seen, [1, 2, 3]);
  assert.equal(client.stats.reconnects, 1);
  assert.deepEqual(states, ["connecting", "open", "reconnecting", "open"]);
});

test("recovered:false is reported to the subscriber's onreset", async () => {
  const client = makeClient();
  const socket = await open(client);
  const resets = [];
  await subscribed(client, socket, { onevent: () => {}, onreset: (reset) => resets.push(reset) });
  socket.receive(event(1));
  socket.serverClose(1006);
  await until(() => FakeSocket.instances.length === 2);
  const next = FakeSocket.instances[1];
  next.receive(WELCOME);
  const resume = next.lastSent("subscribe");
  next.receive(reply(resume.id, { epoch: "e2", seq: 9 }));
  assert.deepEqual(resets, [{ type: "reset", service: "widgets", topic: "all", reason: "not_recovered" }]);
});

for (const code of [4400, 4401, 4403]) {
  test(`close ${code} is terminal: no reconnect, iteration and ready reject`, async () => {
    const client = makeClient();
    const socket = await open(client);
    const sub = client.subscribe("widgets", "all");
    socket.serverClose(code, "no");
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(FakeSocket.instances.length, 1);
    assert.equal(client.state, "closed");
    await assert.rejects(sub.ready, ClientClosed);
    await assert.rejects(sub[Symbol.asyncIterator]().next(), (error) => error.code === code);
  });
}

test("a disabled service suspends a live stream; re-enabled, it resumes with what it missed", async () => {
  const client = makeClient();
  const socket = await open(client);
  const resets = [];
  const seen = [];
  const onevent = (ev) => seen.push(ev.seq);
  await subscribed(client, socket, { onevent, onreset: (reset) => resets.push(reset) });
  socket.receive(event(1));
  const errors = [];
  client.addEventListener("servererror", (ev) => errors.push(ev.detail.code));
  const disabled = { type: "error", code: "service_disabled", message: "Service 'widgets' is disabled." };
  socket.receive({ ...disabled, service: "widgets", topic: "all" });
  assert.deepEqual(resets, [{ type: "reset", service: "widgets", topic: "all", reason: "service_disabled" }]);
  assert.deepEqual(errors, ["service_disabled"]);
  socket.serverClose(4012, "restart");
  await until(() => FakeSocket.instances.length === 2);
  const again = FakeSocket.instances[1];
  again.receive(WELCOME);
  await until(() => client.state === "open");
  const resubscribe = again.lastSent("subscribe"); // still wanted: asked again, from where it was
  assert.deepEqual(resubscribe.since, { epoch: "e1", seq: 1 });
  again.receive({ ...disabled, id: resubscribe.id }); // still disabled: kept, not dropped
  again.receive({ type: "subscribed", service: "widgets", topic: "all", epoch: "e1", seq: 2, recovered: true });
  again.receive(event(2));
  assert.deepEqual(seen, [1, 2]);
  assert.equal(resets.length, 1);
});

test("4401 fetches a fresh token from getToken and reconnects once", async () => {
  const reasons = [];
  const getToken = async (reason) => (reasons.push(reason), "fresh");
  const client = makeClient({ getToken });
  const socket = await open(client);
  socket.serverClose(4401, "expired");
  await until(() => FakeSocket.instances.length === 2);
  assert.deepEqual(FakeSocket.instances[1].protocols, ["widgetapp.v1", "bearer.fresh"]);
  assert.deepEqual(reasons, ["unauthenticated"]);
  FakeSocket.instances[1].serverClose(4401, "still refused");
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(FakeSocket.instances.length, 2);
  assert.equal(client.state, "closed");
});

test("reconnects present the latest ticket alone; a 4401 on it retries once with the token", async () => {
  const client = makeClient();
  const socket = await open(client, { ...WELCOME, ticket: "t1" });
  socket.receive({ type: "ticket", ticket: "t2" });
  socket.serverClose(4012, "restart");
  await until(() => FakeSocket.instances.length === 2);
  assert.deepEqual(FakeSocket.instances[1].protocols, ["widgetapp.v1", "ticket.t2"]);
  FakeSocket.instances[1].serverClose(4401, "Ticket expired.");
  await until(() => FakeSocket.instances.length === 3);
  assert.deepEqual(FakeSocket.instances[2].protocols, ["widgetapp.v1", "bearer.tok"]);
  FakeSocket.instances[2].receive({ ...WELCOME, ticket: "t3" });
  await until(() => client.state === "open");
  FakeSocket.instances[2].serverClose(1006, "lost");
  await until(() => FakeSocket.instances.length === 4);
  assert.deepEqual(FakeSocket.instances[3].protocols, ["widgetapp.v1", "ticket.t3"]);
});

test("a 4401 on the token after a refused ticket is final", async () => {
  const client = makeClient();
  const socket = await open(client, { ...WELCOME, ticket: "t1" });
  socket.serverClose(1006, "lost");
  await until(() => FakeSocket.instances.length === 2);
  FakeSocket.instances[1].serverClose(4401, "Token revoked.");
  await until(() => FakeSocket.instances.length === 3);
  FakeSocket.instances[2].serverClose(4401, "Token revoked.");
  await until(() => client.state === "closed");
  assert.equal(client.closeCode, 4401);
  assert.equal(FakeSocket.instances.length, 3);
});

test("token_expiring triggers getToken and an in-band auth", async () => {
  const client = makeClient({ getToken: async () => "fresh" });
  const socket = await open(client);
  socket.receive({ type: "token_expiring", expires_at: "2030-01-01T00:00:00Z", expires_in: 60 });
  await until(() => socket.lastSent("auth"));
  const auth = socket.lastSent("auth");
  assert.equal(auth.token, "fresh");
  socket.receive({ type: "authenticated", id: auth.id, expires_at: "2030-01-01T00:15:00Z", ticket: "t9" });
  await until(() => client.expiresAt === "2030-01-01T00:15:00Z");
  socket.serverClose(1006, "lost");
  await until(() => FakeSocket.instances.at(-1) !== socket);
  assert.deepEqual(FakeSocket.instances.at(-1).protocols, ["widgetapp.v1", "ticket.t9"]);
});

test("a server silent for several heartbeats is treated as gone", async () => {
  const client = makeClient();
  await open(client, { ...WELCOME, heartbeat: 0.02 });
  await until(() => FakeSocket.instances.length === 2);
  assert.equal(FakeSocket.instances[0].closedWith, 1000);
  assert.equal(client.state, "reconnecting");
});

/** A stream seen by one client: per connection, the `subscribed` reply and the raw frames after it. */
function builtInDeltaCase() {
  const head = '{"type":"event","service":"widgets","topic":"all","epoch":"e1","seq":';
  const published = [1, 2, 3].map((price) => ({ id: 7, name: "Sprocket ✓", price, note: "n".repeat(90) }));
  const full = published.map((data, i) => `${head}${i + 1},"data":${JSON.stringify(data)}}`);
  const delta = (i) => `${head}${i + 1},"delta":${JSON.stringify(createStringDelta(full[i - 1], full[i]))}}`;
  const subscribed = (seq, recovered) => reply(undefined, { seq, recovered, delta: "fossil" });
  return {
    published,
    segments: [
      { subscribed: subscribed(0, false), frames: [full[0], delta(1)] },
      { subscribed: subscribed(2, true), frames: [full[2]] },
    ],
  };
}

// Cases a real hub produced from hypothesis-generated sequences (tests/test_js_client.py), or one built in.
const DELTA_CASES = process.env.DELTA_CASES
  ? JSON.parse(readFileSync(process.env.DELTA_CASES, "utf8"))
  : [builtInDeltaCase()];

test("fossil deltas are applied: events equal the full payloads, across resumes", async () => {
  for (const { published, segments } of DELTA_CASES) {
    FakeSocket.instances = [];
    const client = makeClient();
    const received = [];
    client.subscribe("widgets", "all", { delta: true, onevent: (event) => received.push(event.data) });
    let socket = await open(client);
    for (const [index, segment] of segments.entries()) {
      if (index > 0) {
        socket.serverClose(4012, "restart");
        await until(() => FakeSocket.instances.length === index + 1);
        socket = FakeSocket.instances[index];
        socket.receive(WELCOME);
      }
      const subscribe = socket.lastSent("subscribe");
      assert.equal(subscribe.delta, "fossil");
      socket.receive({ ...segment.subscribed, id: subscribe.id });
      for (const raw of segment.frames) socket.onmessage({ data: raw });
    }
    assert.deepEqual(received, published);
    client.close();
  }
});
