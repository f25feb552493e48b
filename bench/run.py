"""Run the benchmark scenarios against ours, the raw `websockets` ceiling and the naive Channels design.

    .venv/bin/python bench/run.py                      # all scenarios, all targets, 5 s per step
    .venv/bin/python bench/run.py --scenarios 1,2 --targets ceiling,naive
    .venv/bin/python bench/run.py --quick              # ~5 s smoke of each scenario (the test suite's)

Prints one table per scenario (values per target and their ratios) and writes JSON to bench/results/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
import traceback
from typing import Any

from cluster import OursCluster
from procs import BENCH, kill_all, raise_fd_limit
from scenarios import NotApplicable, run_scenario
from session import Config
from targets import TARGETS, Ours, Target, Unavailable
from verdicts import verdict_lines

Row = tuple[str, str]

TITLES = {
    "1": "1 fan-out throughput (one stream, p99 <= 100 ms)",
    "2": "2 latency at fixed load (20 events/s)",
    "3": "3 idle cost (3 subscriptions per connection)",
    "4a": "4a cold connect storm (new clients)",
    "4b": "4b resume storm (SIGTERM, then SIGKILL, of the worker holding every client; 20 events/s)",
    "5": "5 multiplexing (10 services: one socket per client vs one per service)",
}
ALIASES = {"4": ["4a", "4b"]}


def resume_rows(prefix: str, name: str) -> list[Row]:
    return [
        (f"{name}: moved clients", f"{prefix}.moved"),
        (f"{name}: s until all hold every event", f"{prefix}.all_caught_up_s"),
        (f"{name}: gap close->caught up p50 ms", f"{prefix}.gap_p50_ms"),
        (f"{name}: gap close->caught up p99 ms", f"{prefix}.gap_p99_ms"),
        (f"{name}: gap close->caught up max ms", f"{prefix}.gap_max_ms"),
        (f"{name}: worst publish->deliver ms", f"{prefix}.worst_delay_ms"),
        (f"{name}: lost", f"{prefix}.lost"),
        (f"{name}: duplicated", f"{prefix}.duplicated"),
        (f"{name}: not recovered", f"{prefix}.unrecovered"),
        (f"{name}: readmitted by ticket", f"{prefix}.ticket_admissions"),
        (f"{name}: tickets refused (token retried)", f"{prefix}.ticket_refused"),
    ]


# One row per metric: its label and where it is in a target's result ("a.b" walks nested keys).
ROWS: dict[str, list[Row]] = {
    "1": [
        ("max sustained deliveries/s", "max_sustained_per_s"),
        ("peak deliveries/s (any latency)", "peak_per_s"),
        ("p50 ms at max", "p50_at_max_ms"),
        ("p99 ms at max", "p99_at_max_ms"),
        ("server CPU % at max", "server_cpu_pct_at_max"),
        ("loadgen CPU % (highest step)", "loadgen_cpu_pct_max"),
        ("publisher CPU % (highest step)", "publisher_cpu_pct_max"),
        ("max publishes/s achieved", "max_publishes_per_s"),
    ],
    "2": [
        ("p50 ms", "p50_ms"),
        ("p99 ms", "p99_ms"),
        ("max ms", "max_ms"),
        ("delivered % (within 20 s drain)", "delivered_pct"),
        ("deliveries/s", "deliveries_per_s"),
        ("server CPU %", "server_cpu_pct"),
        ("loadgen CPU %", "loadgen_cpu_pct"),
    ],
    "3": [
        ("KB RSS per conn (first count)", "rss_per_conn_kb.0"),
        ("KB RSS per conn (second count)", "rss_per_conn_kb.1"),
        ("KB RSS per conn (third count)", "rss_per_conn_kb.2"),
        ("idle CPU % (second count)", "idle_cpu_pct"),
        ("idle CPU % (third count)", "idle_cpu_pct_last"),
        ("server RSS MB", "rss_total_mb"),
        ("dropped connections", "dropped"),
    ],
    "4a": [
        ("connects/s", "connects_per_s"),
        ("s until all subscribed", "all_subscribed_s"),
        ("failed connections", "failed"),
    ],
    "4b": [
        ("subscribed resume clients", "clients"),
        ("drain window s (configured)", "drain_window_s"),
        *resume_rows("sigterm", "SIGTERM"),
        *resume_rows("sigkill", "SIGKILL"),
    ],
    "5": [
        ("mux: CPU us per delivered event", "mux.cpu_us_per_event"),
        ("split: CPU us per delivered event", "split.cpu_us_per_event"),
        ("mux: RSS MB for the sockets", "mux.rss_mb"),
        ("split: RSS MB for the sockets", "split.rss_mb"),
        ("mux: p99 ms", "mux.p99_ms"),
        ("split: p99 ms", "split.p99_ms"),
    ],
}
STAMP = time.strftime("%Y%m%d-%H%M%S")
RATIOS = (("ours", "ceiling"), ("ours", "naive"), ("ceiling", "naive"), ("ours", "naive-pubsub"))


def fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3g}"


def cell(results: dict[str, Any], target: str, row: Row) -> float | None:
    result = results.get(target)
    if not isinstance(result, dict) or "error" in result:
        return None
    value: Any = result
    for key in row[1].split("."):
        value = value[int(key)] if isinstance(value, list) else value.get(key)
        if value is None:
            return None
    return float(value)


def table(number: str, results: dict[str, Any], targets: list[str]) -> str:
    header = f"{'metric':<36}" + "".join(f"{t:>14}" for t in targets)
    ratios = [(a, b) for a, b in RATIOS if a in targets and b in targets]
    header += "".join(f"{a[:4] + '/' + b[:5]:>13}" for a, b in ratios)
    lines = [f"== {TITLES[number]} ==", header]
    for row in ROWS[number]:
        values = {t: cell(results, t, row) for t in targets}
        line = f"{row[0]:<36}" + "".join(f"{fmt(values[t]):>14}" for t in targets)
        for a, b in ratios:
            va, vb = values[a], values[b]
            line += f"{(fmt(va / vb) + 'x') if va is not None and vb else 'n/a':>13}"
        lines.append(line)
    lines += [f"  {t}: {results[t]['error']}" for t in targets if "error" in results.get(t, {})]
    lines += [f"  {t}: {results[t]['skipped']}" for t in targets if "skipped" in results.get(t, {})]
    return "\n".join(lines)


def make_target(number: str, name: str, config: Config, ours_env: dict[str, str]) -> Target:
    if name == "ours":
        return OursCluster(config.log_dir, ours_env) if number == "4b" else Ours(config.log_dir, ours_env)
    return TARGETS[name](config.log_dir)


def run_one(number: str, name: str, config: Config, ours_env: dict[str, str]) -> dict[str, Any]:
    target = make_target(number, name, config, ours_env)
    started = time.monotonic()
    try:
        result = run_scenario(number, target, config)
    except NotApplicable as exc:
        return {"skipped": f"does not apply - {exc}"}
    except Unavailable as exc:
        print(f"  {name}: UNAVAILABLE - {exc}", flush=True)
        return {"error": f"unavailable: {exc}"}
    except Exception as exc:  # one target failing must not stop the comparison of the others
        traceback.print_exc(file=sys.stderr)
        print(f"  {name}: FAILED - {exc}", flush=True)
        return {"error": f"failed: {exc}"}
    finally:
        target.stop()
    print(f"  {name}: done in {time.monotonic() - started:.1f} s", flush=True)
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--targets", default="ours,ceiling,naive", help="comma-separated: ours,ceiling,naive")
    parser.add_argument(
        "--scenarios", default="1,2,3,4,5", help="comma-separated: 1,2,3,4a,4b,5 (4 = 4a and 4b)"
    )
    parser.add_argument("--duration", type=float, help="seconds per publish step (default 5)")
    parser.add_argument("--idle-seconds", type=float, help="idle CPU window of scenario 3 (default 30)")
    parser.add_argument("--subscribers", type=int, help="subscribers of scenarios 1 and 2 (default 1000)")
    parser.add_argument("--storm", type=int, help="clients of scenarios 4a and 4b (default 5000)")
    parser.add_argument(
        "--idle-counts", help="comma-separated connection counts of scenario 3 (default 1000,5000,10000)"
    )
    parser.add_argument("--quick", action="store_true", help="small smoke of each scenario (~5 s each)")
    parser.add_argument(
        "--ours-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for our server, e.g. a raised per-user connection limit",
    )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    config = Config.quick_config() if args.quick else Config()
    overrides: dict[str, Any] = {
        "duration": args.duration,
        "idle_seconds": args.idle_seconds,
        "subscribers": args.subscribers,
        "storm": args.storm,
        "idle_counts": tuple(int(n) for n in args.idle_counts.split(",")) if args.idle_counts else None,
        "log_dir": config.log_dir / STAMP,
    }
    return dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    config = make_config(args)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise SystemExit(f"unknown targets: {unknown}")
    if not (BENCH / "node_modules" / "ws").is_dir():
        raise SystemExit("The load generator needs its dependency: run `cd bench && npm ci` first.")
    ours_env = dict(item.split("=", 1) for item in args.ours_env)
    numbers = [n for item in args.scenarios.split(",") for n in ALIASES.get(item.strip(), [item.strip()])]
    unknown = [n for n in numbers if n not in TITLES]
    if unknown:
        raise SystemExit(f"unknown scenarios: {unknown}")
    fd_limit = raise_fd_limit()
    config.log_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "argv": sys.argv,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "python": platform.python_version(),
        "fd_limit": fd_limit,
        "config": {k: str(v) for k, v in dataclasses.asdict(config).items()},
        "scenarios": {},
    }
    try:
        for number in numbers:
            print(f"-- scenario {TITLES[number]}", flush=True)
            results = {name: run_one(number, name, config, ours_env) for name in targets}
            report["scenarios"][number] = results
            report.setdefault("loadavg_after", {})[number] = os.getloadavg()
            print(table(number, results, targets), flush=True)
            print("\n".join(verdict_lines(number, results)), flush=True)
            print("load average (1/5/15 min): {:.2f} {:.2f} {:.2f}\n".format(*os.getloadavg()), flush=True)
    finally:
        kill_all()
        out = BENCH / "results" / f"bench-{STAMP}.json"
        out.write_text(json.dumps(report, indent=2, default=str))
        print(f"results: {out.relative_to(BENCH.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
