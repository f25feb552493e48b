/**
 * The demo page: gets a token with OAuth (authorization code + PKCE), opens ONE websocket with the
 * streaming client and shows live the widgets, the user's notifications, the connection and, for
 * staff, server load. The flow is described in docs/clients.md ("The demo page").
 */

import { ClientClosed, ConnectionLost, ServerError, StreamClient } from "../streaming/client.js";
import { Inventory } from "./inventory.js";
import { OAuthError, Tokens, beginAuthorization, completeAuthorization } from "./oauth.js";
import { formatBytes, formatDuration, formatPercent, formatRate } from "../streaming/units.js";

const config = JSON.parse(document.getElementById("app-config").textContent);
const NOT_APPROVED = "Your account is not in a group approved for streaming.";
const ASK_ADMIN =
  "Ask an administrator to add your account to an approved group, then open this page again; " +
  "or sign out and sign in with another account.";
const MAX_NOTIFICATIONS = 50;
// Reset reasons that mean "refetch"; any other reason is the error code that ended the stream.
const CONTINUITY_LOST = new Set(["not_recovered", "epoch_changed", "gap"]);
// A worker whose load has not been heard of for this long is gone (restarted or stopped).
const LOAD_STALE_MS = 15_000;
// Wait before asking again when the server says requests come too fast (REQUESTS_PER_SECOND).
const RATE_LIMITED_WAIT_MS = 250;

const $ = (id) => document.getElementById(id);

let client = null;
main().catch(refused);

async function main() {
  const tokens = new Tokens(config);
  if (location.pathname === config.callbackPath) {
    const query = new URLSearchParams(location.search);
    history.replaceState(null, "", config.appUrl); // the code leaves the address bar and history
    tokens.save(await completeAuthorization(config, query));
  } else if (!tokens.current) {
    showState("signing in");
    await beginAuthorization(config);
    return;
  }
  client = new StreamClient(websocketUrl(), {
    getToken: (reason) => tokens.forClient(reason),
    onstate: (state) => showState(state),
    sse: { url: "/sse/stream/", ticketUrl: "/sse/ticket/" },
    ontransport: (transport) => ($("connection-transport").hidden = transport !== "sse"),
  });
  revokeOnSignOut(tokens, client);
  client.addEventListener("resumed", (event) => markResumed(event.detail.service));
  await client.connect();
  const allowed = new Set(client.welcome.services);
  if (allowed.has("widgets")) await followWidgets(client);
  else markUnavailable("widgets");
  if (allowed.has("notifications") && $("notifications")) followNotifications(client);
  else markUnavailable("notifications");
  if (allowed.has("load") && $("load")) await followLoad(client);
  else markUnavailable("load");
}

function websocketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${config.websocketPath}`;
}

// --- services -----------------------------------------------------------------------------------

async function followWidgets(client) {
  const inventory = new Inventory();
  const start = (first) => {
    inventory.load(first);
    renderWidgets(inventory);
    return first.next;
  };
  // The pages after the first, while events keep coming; stops when a reset starts a new snapshot.
  const fetchRest = async (next) => {
    const generation = inventory.generation;
    while (next != null) {
      const page = await untilAnswered(() => client.request("widgets", "list", { after: next }));
      if (inventory.generation !== generation) return;
      inventory.add(page);
      renderWidgets(inventory);
      next = page.next;
    }
  };
  const firstPage = () => untilAnswered(() => client.request("widgets", "list"));
  const refetch = async () => fetchRest(start(await firstPage()));
  const rendered = JSON.parse($("widgets-snapshot")?.textContent ?? "null"); // the server's first paint
  const next = start(rendered ?? (await firstPage()));
  client.subscribe("widgets", "all", {
    since: inventory.position,
    delta: true,
    onevent: (event) => inventory.apply(event) && renderWidgets(inventory, event.data.widget.id),
    onreset: whenReset("widgets", () => refetch().catch(showProblem)), // the snapshot is the truth again
  });
  await fetchRest(next);
}

function followNotifications(client) {
  const list = $("notification-list");
  offerTestNotification();
  client.subscribe("notifications", null, {
    onreset: whenReset("notifications", () => {}), // nothing to refetch: missed ones stay missed
    onevent: (event) => {
      const item = document.createElement("li");
      const time = document.createElement("time");
      time.dateTime = new Date().toISOString();
      time.textContent = new Date().toLocaleTimeString();
      item.append(time, " ", notificationText(event.data));
      list.prepend(item);
      while (list.children.length > MAX_NOTIFICATIONS) list.lastElementChild.remove();
      $("notifications-empty").hidden = true;
    },
  });
}

/** The "send me a test notification" button: the server publishes one to this user's stream. */
function offerTestNotification() {
  const button = $("send-test-notification");
  const status = $("test-notification-status");
  button.disabled = false;
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Sending…";
    try {
      const response = await fetch(config.testNotificationUrl, {
        method: "POST",
        headers: { "X-CSRFToken": csrfToken() },
        credentials: "same-origin",
      });
      status.textContent = response.ok ? "Sent; watch it arrive below." : `Not sent (${response.status}).`;
    } catch (error) {
      status.textContent = `Not sent: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

function csrfToken() {
  return document.querySelector("input[name=csrfmiddlewaretoken]")?.value ?? "";
}

function notificationText(data) {
  if (typeof data === "string") return data;
  return data?.message ?? data?.text ?? data?.title ?? JSON.stringify(data);
}

async function followLoad(client) {
  const workers = new Map();
  const record = (snapshot) => {
    workers.set(snapshot.worker, { ...snapshot, seenAt: Date.now() });
    renderLoad(workers);
  };
  client.subscribe("load", null, {
    onevent: (event) => record(event.data),
    onreset: whenReset("load", () => {}), // the next snapshot comes within a heartbeat
  });
  record(await untilAnswered(() => client.request("load", "snapshot")));
}

/** A reset handler: `refetch` when continuity was lost; when the server ended the stream, say so. */
function whenReset(service, refetch) {
  return (reset) => {
    if (CONTINUITY_LOST.has(reset.reason)) return refetch();
    if (reset.reason === "service_disabled") return markPaused(service);
    markUnavailable(service, reset.reason);
    showAvailability(service, false);
  };
}

/** An administrator disabled the service: the stream resumes here, with what it missed, when re-enabled. */
function markPaused(service) {
  const section = $(service);
  if (!section) return;
  const note = section.querySelector(".unavailable");
  note.textContent = `The ${service} service is paused by an administrator; it resumes here when re-enabled.`;
  note.hidden = false;
  section.dataset.available = "paused";
}

function markResumed(service) {
  const section = $(service);
  if (!section || section.dataset.available !== "paused") return;
  section.querySelector(".unavailable").hidden = true;
  section.dataset.available = "true";
}

/** Ask again after a lost connection (the client waits for the next `welcome`). */
async function untilAnswered(call) {
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (error instanceof ServerError && error.code === "rate_limited") await sleep(RATE_LIMITED_WAIT_MS);
      else if (!(error instanceof ConnectionLost)) throw error;
    }
  }
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// --- rendering ----------------------------------------------------------------------------------

function showState(state) {
  const element = $("connection-state");
  element.textContent = state;
  element.dataset.state = state;
  element.dataset.history = `${element.dataset.history ?? ""} ${state}`.trim();
  if (!client) return;
  const { reconnects, lastReconnectMs } = client.stats;
  $("connection-detail").textContent = reconnects
    ? `${reconnects} reconnect(s), last took ${lastReconnectMs} ms`
    : "";
  if (state === "open") renderServices(client.welcome.services);
  if (state === "closed" && client.closeCode !== 1000) {
    showProblem(new ClientClosed(client.closeCode, client.closeReason));
  }
}

function renderServices(allowed) {
  for (const item of $("services").querySelectorAll("li[data-service]")) {
    showAvailability(item.dataset.service, allowed.includes(item.dataset.service));
  }
}

function showAvailability(service, available) {
  const item = document.querySelector(`#services li[data-service="${service}"]`);
  if (!item) return;
  item.dataset.available = String(available);
  item.querySelector(".availability").textContent = available ? "available" : "not available";
}

function markUnavailable(service, reason = "") {
  const section = $(service);
  if (!section) return;
  const note = section.querySelector(".unavailable");
  if (reason) note.textContent = `The ${service} service is no longer available to you (${reason}).`;
  note.hidden = false;
  section.dataset.available = "false";
}

function renderWidgets(inventory, changedId = null) {
  const rows = inventory.sorted().map((widget) => {
    const row = document.createElement("tr");
    row.dataset.widgetId = widget.id;
    if (widget.id === changedId) row.className = "changed";
    const updated = document.createElement("time");
    updated.dateTime = widget.updated_at ?? "";
    updated.textContent = widget.updated_at ? shortTime(new Date(widget.updated_at)) : "";
    for (const name of ["name", "colour", "quantity"]) {
      const cell = row.insertCell();
      cell.className = name;
      cell.textContent = widget[name];
    }
    row.insertCell().append(updated);
    return row;
  });
  $("widget-rows").replaceChildren(...rows);
  $("widgets-empty").hidden = rows.length > 0;
  $("widgets").dataset.applied = inventory.applied.join(" ");
  $("widgets").dataset.ready = "true";
}

/** The time of day for today's changes, the date for older ones: fits a phone's column. */
function shortTime(date) {
  const today = date.toDateString() === new Date().toDateString();
  return today ? date.toLocaleTimeString() : date.toLocaleDateString();
}

function renderLoad(workers) {
  const now = Date.now();
  const rows = [];
  for (const [id, load] of workers) {
    if (now - load.seenAt > LOAD_STALE_MS) {
      workers.delete(id);
      continue;
    }
    const row = document.createElement("tr");
    const cells = [
      `${load.host}:${load.pid}`,
      load.state,
      load.connections,
      load.subscriptions,
      formatRate(load.deliveries_per_s),
      formatPercent(load.cpu_percent),
      formatBytes(load.rss_bytes),
      formatDuration(load.loop_lag_ms / 1000),
    ];
    for (const value of cells) row.insertCell().textContent = value;
    rows.push(row);
  }
  $("load-rows").replaceChildren(...rows);
}

/** The page could not start streaming: say why and what to do, instead of empty tables. */
function refused(error) {
  showProblem(error);
  if (client && client.state !== "closed") return;
  showState("closed");
  renderServices([]);
  $("streams").hidden = true;
}

function showProblem(error) {
  console.error(error);
  const { message, detail, retry } = explain(error);
  $("problem-message").textContent = message;
  $("problem-detail").textContent = detail;
  $("problem-retry").hidden = !retry;
  $("problem-home").hidden = retry;
  $("problem-next").hidden = false;
  $("problem").hidden = false;
}

function explain(error) {
  if (error instanceof OAuthError) {
    const denied = ["access_denied", "invalid_scope"].includes(error.error);
    if (denied && !config.approved) {
      return { message: NOT_APPROVED, detail: ASK_ADMIN, retry: false };
    }
    if (error.error === "access_denied") {
      const detail = "Nothing is streamed until you allow it. You can change your mind at any time.";
      return { message: "You did not allow this page to stream for you.", detail, retry: true };
    }
    if (error.error === "invalid_grant") {
      return { message: "Your streaming sign-in has expired.", detail: error.description, retry: true };
    }
    return { message: "Signing in to the stream failed.", detail: error.message, retry: true };
  }
  if (error instanceof ClientClosed) {
    const message =
      error.code === 4403 ? "The server no longer lets this account stream." : "The stream was closed.";
    return { message, detail: `${error.reason} (${error.code})`, retry: error.code === 4401 };
  }
  const detail = String(error?.message ?? error);
  return { message: "Something went wrong on this page.", detail, retry: true };
}

$("problem-retry").addEventListener("click", () => {
  new Tokens(config).clear();
  beginAuthorization(config).catch(showProblem);
});

/** Signing out of the site also revokes this page's tokens. */
function revokeOnSignOut(tokens, client) {
  const form = document.querySelector(`header form[action="${config.logoutUrl}"]`);
  form?.addEventListener("submit", async (event) => {
    event.preventDefault();
    client.close();
    await tokens.revoke();
    form.submit();
  });
}
