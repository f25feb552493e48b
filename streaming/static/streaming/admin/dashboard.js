/**
 * The admin load dashboard: uPlot charts of the last hour from dashboard/data.json, refreshed every
 * few seconds. Fleet charts draw one line per worker; then one chart per worker (message rates) and
 * one per service (published, fanned-out and delivered events per second over the fleet).
 */

import uPlot from "../vendor/uplot/uPlot.esm.js";
import {
  formatBytes,
  formatCount,
  formatDuration,
  formatNumber,
  formatPercent,
  formatRate,
} from "../units.js";

const REFRESH_MS = 5_000;
const HEIGHT = 200;
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const FONT = "12px system-ui, sans-serif";
const INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 100_000];

/** Charts across the fleet: one line per worker. */
const FLEET = [
  { title: "Connections", field: "connections", format: (v) => formatCount(Math.round(v), "connection"),
    tick: formatNumber, integer: true },
  { title: "CPU", field: "cpu_percent", format: formatPercent },
  { title: "Memory (RSS)", field: "rss_bytes", format: formatBytes },
  { title: "Event-loop lag", field: "loop_lag_ms", format: (ms) => formatDuration(ms / 1000) },
];
/** One chart per worker, one line per field. */
const PER_WORKER = [
  { label: "messages in", field: "messages_in_per_s", format: formatRate },
  { label: "messages out", field: "messages_out_per_s", format: formatRate },
];
/** One chart per service over the fleet: events published, events fanned out, frames delivered. */
const PER_SERVICE = [
  { label: "published", field: "published_per_s", format: formatRate },
  { label: "events", field: "received_per_s", format: formatRate },
  { label: "delivered", field: "delivered_per_s", format: formatRate },
];

const board = document.getElementById("streaming-dashboard");
let charts = new Map(); // chart id -> uPlot

render(JSON.parse(document.getElementById("dashboard-data").textContent));
setInterval(refresh, REFRESH_MS);

async function refresh() {
  try {
    const response = await fetch(board.dataset.url, { credentials: "same-origin" });
    if (response.ok) render(await response.json());
  } catch {
    // the next tick tries again
  }
}

function render(data) {
  const workers = Object.keys(data.workers);
  summarise(data, workers);
  const specs = [
    ...FLEET.map((chart) => fleetChart(chart, data.workers)),
    ...workers.map((worker) => workerChart(worker, data.workers[worker])),
    ...Object.entries(data.services).map(([name, figures]) => serviceChart(name, figures, span(data, workers))),
  ].filter(Boolean);
  const fresh = new Map();
  for (const spec of specs) {
    const existing = charts.get(spec.id);
    if (existing && existing.series.length === spec.series.length + 1) {
      existing.setData(spec.data);
      fresh.set(spec.id, existing);
      charts.delete(spec.id);
    } else {
      existing?.destroy();
      charts.delete(spec.id);
      fresh.set(spec.id, draw(spec));
    }
  }
  for (const stale of charts.values()) stale.root.closest(".streaming-chart").remove();
  charts = fresh;
}

function summarise(data, workers) {
  const last = Math.max(0, ...workers.map((w) => data.workers[w].t.at(-1)));
  const age = last ? `; last sample ${formatDuration(Math.max(0, data.now - last))} ago` : "";
  const text = workers.length
    ? `${formatCount(workers.length, "worker")} reporting in the last ${data.minutes} min${age}.`
    : `No load samples in the last ${data.minutes} min: is a worker running?`;
  document.getElementById("streaming-dashboard-summary").textContent = `${text} Updated every 5 s.`;
}

function fleetChart(chart, workers) {
  const names = Object.keys(workers);
  if (!names.length) return null;
  const data = uPlot.join(names.map((name) => [workers[name].t, workers[name][chart.field]]));
  const series = names.map((name) => ({ label: name, format: chart.format }));
  return { id: `fleet-${chart.field}`, group: "fleet", title: chart.title, series, data, ...axisOf(chart) };
}

function workerChart(worker, samples) {
  const series = PER_WORKER.map((field) => ({ label: field.label, format: field.format }));
  const data = [samples.t, ...PER_WORKER.map((field) => samples[field.field])];
  return { id: `worker-${worker}`, group: "workers", title: `${worker}: messages`, series, data,
    ...axisOf(PER_WORKER[0]) };
}

/** The time the fleet's samples cover (a quiet service still gets the same x axis, at zero). */
function span(data, workers) {
  const first = Math.min(data.now, ...workers.map((w) => data.workers[w].t[0] ?? data.now));
  return [Math.min(first, data.now - 60), data.now];
}

function serviceChart(name, figures, [from, to]) {
  const series = PER_SERVICE.map((field) => ({ label: field.label, format: field.format }));
  const quiet = !figures.t.length;
  const t = quiet ? [from, to] : figures.t;
  const data = [t, ...PER_SERVICE.map((field) => (quiet ? [0, 0] : figures[field.field] ?? []))];
  const subscribed = formatCount(figures.subscribed_sessions ?? 0, "session");
  return { id: `service-${name}`, group: "services", title: `Service ${name} (${subscribed} subscribed now)`,
    series, data, ...axisOf(PER_SERVICE[0]) };
}

function axisOf(field) {
  return { tick: field.tick ?? field.format, integer: Boolean(field.integer) };
}

function draw(spec) {
  const holder = document.createElement("div");
  holder.className = "streaming-chart module";
  holder.dataset.chart = spec.id;
  document.getElementById(`streaming-charts-${spec.group}`).append(holder);
  const options = {
    title: spec.title,
    width: Math.max(280, holder.clientWidth - 16),
    height: HEIGHT,
    scales: {
      // A lone sample still gets a readable minute around it.
      x: { time: true, range: (u, min, max) => (min === max ? [min - 60, max + 1] : [min, max]) },
      y: { range: (u, min, max) => [0, spec.integer ? Math.max(1, Math.ceil(max * 1.1)) : max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      { font: FONT, stroke: "#57606a" },
      {
        font: FONT,
        stroke: "#57606a",
        size: 76,
        incrs: spec.integer ? INTEGER_STEPS : undefined,
        values: (u, splits) => splits.map((v) => spec.tick(v)),
      },
    ],
    series: [
      { value: (u, t) => (t == null ? "—" : new Date(t * 1000).toLocaleTimeString()) },
      ...spec.series.map((series, i) => ({
        label: series.label,
        stroke: COLORS[i % COLORS.length],
        width: 2,
        spanGaps: true,
        value: (u, v) => (v == null ? "—" : series.format(v)),
      })),
    ],
  };
  return new uPlot(options, spec.data, holder);
}
