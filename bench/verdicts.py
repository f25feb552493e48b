"""The issue's targets for our server, each printed as one met/missed line under its scenario's table.

Targets are reported, not enforced: a missed target does not fail the run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scenarios import ACHIEVED_MIN

Results = dict[str, Any]
# A target: its label and a function giving (value shown, met?) from the scenario's results, or None
# when there is nothing to judge (ours not run, or failed).
Check = Callable[[Results], tuple[str, bool] | None]

LOADGEN_LIMIT_PCT = 90.0  # a load generator (or publisher) this busy is the limit, not the server


def ours(results: Results) -> Results | None:
    result = results.get("ours")
    return result if isinstance(result, dict) and "error" not in result else None


def connects(results: Results) -> tuple[str, bool] | None:
    result, ceiling = ours(results), results.get("ceiling", {})
    if result is None:
        return None
    rate = result["connects_per_s"]
    ceiling_rate = ceiling.get("connects_per_s") if isinstance(ceiling, dict) else None
    ratio = f", {rate / ceiling_rate:.2f}x ceiling" if ceiling_rate else ""
    met = rate >= 2000 or (bool(ceiling_rate) and rate >= 0.8 * ceiling_rate)
    return f"{rate:,.0f}/s{ratio}", met


def lossless(results: Results) -> tuple[str, bool] | None:
    result = ours(results)
    if result is None:
        return None
    lost, duplicated = result["lost"], result["duplicated"]
    return f"{lost} lost, {duplicated} duplicated", lost == duplicated == 0


def killed_caught_up(results: Results) -> tuple[str, bool] | None:
    result = ours(results)
    if result is None:
        return None
    killed = result["sigkill"]
    seconds = killed["all_caught_up_s"]
    if seconds is None:
        return f"{killed['still_out']} still out, {killed['behind']} behind", False
    return f"{seconds:.2f} s ({killed['moved']} clients)", seconds <= 5.0


def drained_back(results: Results) -> tuple[str, bool] | None:
    result = ours(results)
    if result is None:
        return None
    drained = result["sigterm"]
    p99 = drained["gap_p99_ms"]
    if p99 is None or drained["still_out"]:
        return f"{drained['still_out']} of {drained['moved']} moved clients not back", False
    return f"p99 {p99:,.0f} ms ({drained['moved']} clients)", p99 <= 1000.0


def drained_delay(results: Results) -> tuple[str, bool] | None:
    result = ours(results)
    if result is None:
        return None
    worst = result["sigterm"]["worst_delay_ms"]
    return f"{worst:,.0f} ms", worst <= 1500.0


def idle_memory(results: Results) -> tuple[str, bool] | None:
    result = ours(results)
    if result is None:
        return None
    pairs = [(n, kb) for n, kb in zip(result["counts"], result["rss_per_conn_kb"], strict=True) if n >= 5000]
    pairs = pairs or list(zip(result["counts"], result["rss_per_conn_kb"], strict=True))[-1:]
    shown = ", ".join(f"{kb:.1f} KB at {n:,}" for n, kb in pairs)
    return shown, all(kb <= 24.0 for _, kb in pairs)


def idle_cpu(results: Results) -> tuple[str, bool] | None:
    result = ours(results)
    if result is None:
        return None
    return f"{result['idle_cpu_pct']:.2f} %", result["idle_cpu_pct"] <= 3.0


CHECKS: dict[str, list[tuple[str, Check]]] = {
    "3": [
        ("<= 24 KB RSS per idle connection (3 subscriptions; counts >= 5,000)", idle_memory),
        ("5,000 idle connections <= 3 % of a core", idle_cpu),
    ],
    "4a": [("authenticated connects/s per worker >= 2,000 or >= 0.8x ceiling", connects)],
    "4b": [
        ("resume storm: 0 lost and 0 duplicated", lossless),
        ("SIGKILL: every client reconnected and caught up <= 5 s after the kill", killed_caught_up),
        ("SIGTERM drain: moved clients back <= 1 s after their close (p99)", drained_back),
        ("SIGTERM drain: no event later than 1.5 s after publish", drained_delay),
    ],
}


def publish_limit(name: str, result: Results) -> str | None:
    """Scenario 1: what capped the ramp when the publisher could not get the offered rate through."""
    short = [s for s in result.get("steps", []) if s["achieved_rate"] < ACHIEVED_MIN * s["rate"]]
    if not short:
        return None
    step = min(short, key=lambda s: s["rate"])
    who = "the publisher" if step["publisher_cpu_pct"] >= LOADGEN_LIMIT_PCT else f"the publish path of {name}"
    return (
        f"  {name}: at {step['rate']:,.0f} events/s offered, {step['achieved_rate']:,.0f}/s were published"
        f" (publisher at {step['publisher_cpu_pct']:.0f} % of a core): {who} is the limit"
    )


def verdict_lines(number: str, results: Results) -> list[str]:
    """One line per target of this scenario, plus a line per saturated load generator or publisher."""
    lines = []
    for label, check in CHECKS.get(number, []):
        judged = check(results)
        if judged is not None:
            value, met = judged
            lines.append(f"  target {'met   ' if met else 'MISSED'} {label}: ours {value}")
    for name, result in results.items():
        if not isinstance(result, dict):
            continue
        limit = publish_limit(name, result) if number == "1" else None
        if limit:
            lines.append(limit)
        busiest = result.get("loadgen_cpu_pct_max", result.get("loadgen_cpu_pct"))
        if busiest is not None and busiest >= LOADGEN_LIMIT_PCT:
            lines.append(f"  {name}: the load generator used {busiest:.0f} % of its core: it is the limit")
    return lines
