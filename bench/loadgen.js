// Lean websocket load generator: holds N subscriber connections and measures publish->deliver latency.
//
// Driven by bench/run.py over stdin/stdout, one JSON object per line each way:
//   {"cmd":"connect","url","n","subprotocols","subscribes","concurrency","timeout_s","resume"?}
//                                       -> connect timings; with "resume": true each client reconnects
//                                          after any close (as the shipped clients do) and resubscribes
//                                          with `since` = the last event it holds, presenting the
//                                          latest resume ticket (welcome/ticket) instead of the token
//   {"cmd":"mark"}                      -> starts a resume phase (closes, gaps, lost/duplicated events)
//   {"cmd":"phase"}                     -> what the resume clients went through since "mark"
//   {"cmd":"quiet","idle_ms","max_ms"}  -> waits until no event arrived for idle_ms (drains a step)
//   {"cmd":"stats","step"}              -> deliveries and latency percentiles of events tagged `step`
//   {"cmd":"cpu"}                       -> this process's CPU % since the previous "cpu" command
//   {"cmd":"close"}                     -> closes every connection and exits
// Event frames are not JSON-parsed: `ts` (publish time, ns since the epoch) and `step` are found with
// Buffer.indexOf, so one core keeps up with a server delivering far more than 100k events/s.
"use strict";

const readline = require("readline");
const WebSocket = require("ws");

const TS_KEY = Buffer.from('"ts"');
const STEP_KEY = Buffer.from('"step"');
const SEQ_KEY = Buffer.from('"seq"');
// Reconnect delay of the shipped clients: full jitter over BASE * 2**attempt s, capped, never sooner
// than the server's `retry_after_ms` hint.
const BACKOFF_BASE_S = 0.25;
const BACKOFF_CAP_S = 10;
const sockets = [];
const clients = [];
let phase = newPhase();
const steps = new Map();
let lastEventAt = 0;
let unexpectedCloses = 0;
const closeCodes = {};
let cpuMark = { usage: process.cpuUsage(), at: process.hrtime.bigint() };

function nowMs() {
  return performance.timeOrigin + performance.now();
}

function numberAfter(buf, key) {
  const at = buf.indexOf(key);
  if (at < 0) return NaN;
  let i = at + key.length;
  while (i < buf.length && (buf[i] === 0x3a || buf[i] === 0x20)) i++;
  return parseFloat(buf.toString("latin1", i, Math.min(i + 32, buf.length)));
}

function stepStats(step) {
  let s = steps.get(step);
  if (!s) {
    s = { count: 0, lat: new Float64Array(1024) };
    steps.set(step, s);
  }
  return s;
}

function recordEvent(buf) {
  const ts = numberAfter(buf, TS_KEY);
  const s = stepStats(numberAfter(buf, STEP_KEY) || 0);
  if (s.count === s.lat.length) {
    const grown = new Float64Array(s.lat.length * 2);
    grown.set(s.lat);
    s.lat = grown;
  }
  const now = nowMs();
  const latency = now - ts / 1e6;
  s.lat[s.count++] = latency;
  lastEventAt = now;
  return latency;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summarise(step) {
  const s = steps.get(step) || { count: 0, lat: new Float64Array(0) };
  const sorted = s.lat.slice(0, s.count).sort();
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i];
  return {
    step,
    count: s.count,
    mean_ms: s.count ? sum / s.count : null,
    p50_ms: percentile(sorted, 50),
    p90_ms: percentile(sorted, 90),
    p99_ms: percentile(sorted, 99),
    max_ms: s.count ? sorted[sorted.length - 1] : null,
  };
}

function openOne(cmd, tally) {
  return new Promise((resolve) => {
    const ws = new WebSocket(cmd.url, cmd.subprotocols || [], {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      handshakeTimeout: (cmd.timeout_s || 30) * 1000,
    });
    const need = (cmd.subscribes || []).length;
    let acked = 0;
    let settled = false;
    const settle = (ok) => {
      if (settled) return;
      settled = true;
      if (ok) tally.subscribedAt = nowMs();
      else tally.failed++;
      resolve();
    };
    ws.on("open", () => {
      tally.opened++;
      tally.openedAt = nowMs();
      sockets.push(ws);
      for (const msg of cmd.subscribes || []) ws.send(JSON.stringify(msg));
      if (need === 0) settle(true);
    });
    ws.on("message", (buf) => {
      if (buf.indexOf(TS_KEY) >= 0) return recordEvent(buf);
      let msg;
      try {
        msg = JSON.parse(buf.toString());
      } catch {
        return;
      }
      if (msg.type === "subscribed" && ++acked === need) {
        tally.subscribed++;
        settle(true);
      } else if (msg.type === "error") {
        tally.errors[msg.code || "error"] = (tally.errors[msg.code || "error"] || 0) + 1;
        settle(false);
      }
    });
    ws.on("error", (err) => {
      tally.errors[err.code || err.message] = (tally.errors[err.code || err.message] || 0) + 1;
      settle(false);
    });
    ws.on("close", (code) => {
      closeCodes[code] = (closeCodes[code] || 0) + 1;
      if (!ws.closingOnPurpose) unexpectedCloses++;
      if (!settled) tally.errors[`close ${code}`] = (tally.errors[`close ${code}`] || 0) + 1;
      settle(false);
    });
  });
}

function newPhase() {
  const counts = { lost: 0, dup: 0, worst: 0, unrecovered: 0, ticketAdmissions: 0, ticketRefused: 0 };
  return { at: nowMs(), closes: 0, codes: {}, gaps: [], lastCaughtUp: 0, ...counts };
}

function backoffMs(client) {
  const jitter = Math.random() * Math.min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** client.attempt) * 1000;
  client.attempt++;
  const delay = Math.max(client.hintMs, jitter);
  client.hintMs = 0;
  return delay;
}

function caughtUp(client) {
  if (!client.closedAt || client.target === null || client.lastSeq < client.target) return;
  const now = nowMs();
  phase.gaps.push(now - client.closedAt);
  phase.lastCaughtUp = now;
  client.closedAt = 0;
  client.attempt = 0;
}

function resumedEvent(client, buf) {
  phase.worst = Math.max(phase.worst, recordEvent(buf));
  const seq = numberAfter(buf, SEQ_KEY);
  if (client.lastSeq !== null && seq <= client.lastSeq) {
    phase.dup++;
    return;
  }
  if (client.lastSeq !== null && seq > client.lastSeq + 1) phase.lost += seq - client.lastSeq - 1;
  client.lastSeq = seq;
  caughtUp(client);
}

function subscribeMessage(cmd, client) {
  const msg = { ...cmd.subscribes[0] };
  if (client.epoch !== null) msg.since = { epoch: client.epoch, seq: client.lastSeq };
  return JSON.stringify(msg);
}

/** The shipped clients' credentials: the latest resume ticket alone, else the configured token. */
function resumeSubprotocols(cmd, client) {
  const offered = cmd.subprotocols || [];
  client.ticketOffered = client.ticket !== null;
  if (!client.ticketOffered) return offered;
  return [...offered.filter((item) => !item.startsWith("bearer.")), `ticket.${client.ticket}`];
}

function openResumable(cmd, client, tally, settle) {
  const ws = new WebSocket(cmd.url, resumeSubprotocols(cmd, client), {
    perMessageDeflate: false,
    skipUTF8Validation: true,
    handshakeTimeout: (cmd.timeout_s || 30) * 1000,
  });
  client.ws = ws;
  ws.on("open", () => {
    if (!client.everOpened) {
      client.everOpened = true;
      tally.opened++;
      tally.openedAt = nowMs();
    }
    ws.send(subscribeMessage(cmd, client));
  });
  ws.on("message", (buf) => {
    if (buf.indexOf(TS_KEY) >= 0) return resumedEvent(client, buf);
    let msg;
    try {
      msg = JSON.parse(buf.toString());
    } catch {
      return;
    }
    if (msg.type === "subscribed") {
      if (client.epoch !== null && !msg.recovered) phase.unrecovered++;
      if (client.lastSeq === null || !msg.recovered) client.lastSeq = msg.seq;
      client.epoch = msg.epoch;
      client.target = msg.seq;
      if (!client.subscribedOnce) {
        client.subscribedOnce = true;
        tally.subscribed++;
        settle(true);
      }
      caughtUp(client);
    } else if (msg.type === "welcome") {
      if (client.ticketOffered) phase.ticketAdmissions++;
      client.ticket = msg.ticket || null;
    } else if (msg.type === "ticket") {
      client.ticket = msg.ticket;
    } else if (msg.type === "reconnect") {
      client.hintMs = msg.retry_after_ms || 0;
    } else if (msg.type === "error") {
      tally.errors[msg.code || "error"] = (tally.errors[msg.code || "error"] || 0) + 1;
    }
  });
  ws.on("error", (err) => {
    tally.errors[err.code || err.message] = (tally.errors[err.code || err.message] || 0) + 1;
  });
  ws.on("close", (code) => {
    closeCodes[code] = (closeCodes[code] || 0) + 1;
    if (client.stopped) return;
    if (code === 4401 && client.ticketOffered) {
      client.ticket = null; // as the shipped clients: one more try with the token
      phase.ticketRefused++;
    }
    if (!client.subscribedOnce) return settle(false);
    if (!client.closedAt) {
      client.closedAt = nowMs();
      phase.closes++;
      phase.codes[code] = (phase.codes[code] || 0) + 1;
    }
    client.target = null;
    setTimeout(() => openResumable(cmd, client, tally, settle), backoffMs(client));
  });
}

function openResumableOnce(cmd, tally) {
  const client = { ws: null, epoch: null, lastSeq: null, target: null, closedAt: 0, attempt: 0, hintMs: 0 };
  Object.assign(client, { ticket: null, ticketOffered: false });
  clients.push(client);
  return new Promise((resolve) => {
    let settled = false;
    openResumable(cmd, client, tally, (ok) => {
      if (settled) return;
      settled = true;
      if (ok) tally.subscribedAt = nowMs();
      else tally.failed++;
      resolve();
    });
  });
}

function percentileOf(values, p) {
  return percentile(Float64Array.from(values).sort(), p);
}

function phaseReport() {
  let newest = 0;
  for (const c of clients) newest = Math.max(newest, c.lastSeq || 0);
  let behind = 0;
  let missing = 0;
  let out = 0;
  for (const c of clients) {
    if (c.closedAt) out++;
    if ((c.lastSeq || 0) < newest) {
      behind++;
      missing += newest - (c.lastSeq || 0);
    }
  }
  const all = clients.length > 0 && out === 0 && behind === 0;
  return {
    clients: clients.length,
    moved: phase.closes,
    close_codes: phase.codes,
    caught_up: phase.gaps.length,
    still_out: out,
    behind,
    newest_seq: newest,
    lost: phase.lost + missing,
    duplicated: phase.dup,
    unrecovered: phase.unrecovered,
    ticket_admissions: phase.ticketAdmissions,
    ticket_refused: phase.ticketRefused,
    worst_delay_ms: phase.worst,
    gap_p50_ms: percentileOf(phase.gaps, 50),
    gap_p99_ms: percentileOf(phase.gaps, 99),
    gap_max_ms: phase.gaps.length ? Math.max(...phase.gaps) : null,
    all_caught_up_s: all && phase.lastCaughtUp ? (phase.lastCaughtUp - phase.at) / 1000 : null,
  };
}

async function connect(cmd) {
  const tally = { opened: 0, subscribed: 0, failed: 0, errors: {}, openedAt: 0, subscribedAt: 0 };
  const start = nowMs();
  let next = 0;
  const open = cmd.resume ? openResumableOnce : openOne;
  const worker = async () => {
    while (next < cmd.n) {
      next++;
      await open(cmd, tally);
    }
  };
  const workers = [];
  for (let i = 0; i < Math.min(cmd.concurrency || 200, cmd.n); i++) workers.push(worker());
  await Promise.all(workers);
  return {
    opened: tally.opened,
    subscribed: tally.subscribed,
    failed: tally.failed,
    errors: tally.errors,
    open_s: tally.opened ? (tally.openedAt - start) / 1000 : null,
    subscribed_s: tally.subscribed ? (tally.subscribedAt - start) / 1000 : null,
    total_open: sockets.length + clients.length,
  };
}

function quiet(cmd) {
  const started = nowMs();
  return new Promise((resolve) => {
    const poll = () => {
      const now = nowMs();
      if (now - lastEventAt >= cmd.idle_ms || now - started >= cmd.max_ms) {
        resolve({ waited_s: (now - started) / 1000 });
      } else setTimeout(poll, 50);
    };
    setTimeout(poll, 50);
  });
}

function cpu() {
  const usage = process.cpuUsage(cpuMark.usage);
  const at = process.hrtime.bigint();
  const wallUs = Number(at - cpuMark.at) / 1000;
  cpuMark = { usage: process.cpuUsage(), at };
  return { cpu_pct: (100 * (usage.user + usage.system)) / wallUs, wall_s: wallUs / 1e6 };
}

function closeAll() {
  for (const ws of sockets) {
    ws.closingOnPurpose = true;
    ws.terminate();
  }
  for (const client of clients) {
    client.stopped = true;
    if (client.ws) client.ws.terminate();
  }
  setTimeout(() => process.exit(0), 100);
  return { closed: sockets.length + clients.length };
}

async function handle(cmd) {
  switch (cmd.cmd) {
    case "connect":
      return connect(cmd);
    case "quiet":
      return quiet(cmd);
    case "stats":
      return { ...summarise(cmd.step), unexpected_closes: unexpectedCloses, close_codes: closeCodes };
    case "cpu":
      return cpu();
    case "mark":
      phase = newPhase();
      return { at_ms: phase.at };
    case "phase":
      return phaseReport();
    case "close":
      return closeAll();
    default:
      return { error: `unknown command ${cmd.cmd}` };
  }
}

const rl = readline.createInterface({ input: process.stdin });
let queue = Promise.resolve();
rl.on("line", (line) => {
  queue = queue.then(async () => {
    let reply;
    try {
      reply = await handle(JSON.parse(line));
    } catch (err) {
      reply = { error: String(err && err.stack ? err.stack : err) };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
});
rl.on("close", () => process.exit(0));
