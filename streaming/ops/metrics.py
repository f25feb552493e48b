"""Prometheus metrics for /metrics: this worker's live counters plus every worker's last heartbeat.

Multi-process safe without shared files: each scrape reads the answering process's own worker
(labelled `worker`), and the `streaming_fleet_*` series come from the WorkerProcess rows every worker
writes each heartbeat, so any worker answers for the whole fleet. With PROMETHEUS_MULTIPROC_DIR set,
metrics other code records through prometheus-client's multiprocess mode are merged in as well.

Series (all gauges unless marked counter):

- streaming_worker_info{worker,host,pid} 1 for the answering process once its worker runs
- streaming_draining{worker}                1 while the worker drains (readiness is 503 then)
- streaming_connections{worker}             open authenticated websockets of this worker
- streaming_subscriptions{worker}           subscriptions held by those connections
- streaming_messages_in_total{worker}       counter: client messages received
- streaming_deliveries_total{worker}        counter: events delivered to subscribers
- streaming_service_published_total{worker,service}  counter: events published through this worker
- streaming_service_received_total{worker,service}   counter: events this worker received to fan out
- streaming_service_deliveries_total{worker,service} counter: frames delivered to subscribers
- streaming_publisher_published_total{worker,service,publisher}  counter: publishes over HTTP, by
                                            publisher ("user:<id>" or "app:<id>")
- streaming_loop_lag_seconds{worker}        event-loop lag measured by the worker tick
- streaming_layer_latency_seconds{worker}   channel-layer round trip at the last heartbeat
- streaming_recorder_cpu_seconds_total{worker}  counter: CPU the session/load recording used
- streaming_recorder_flushes_total{worker}  counter: heartbeats written to the database
- streaming_fleet_{connections,subscriptions,messages_in_per_second,messages_out_per_second,
  cpu_percent,rss_bytes,loop_lag_seconds,heartbeat_age_seconds}{worker,host,state}
                                            per live worker, from its last heartbeat
- streaming_redis_node{worker,shard,role,address}  1 per Redis primary and replica this worker sees
- streaming_redis_failovers_total{worker}   counter: primaries seen taking over (new replication history)
- streaming_redis_feed_reconnects_total{worker}  counter: times the announcement feed came back
- streaming_redis_feed_connections{worker}  pub/sub connections of the feed (Cluster: one per shard)
- streaming_sessions_open                   open sessions recorded over all workers
- streaming_service_enabled{service}        1 if enabled, 0 if an admin disabled it
- process_*                                 CPU, memory, file descriptors of the answering process
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streaming import services
from streaming.delivery import publish
from streaming.delivery.worker import Worker
from streaming.models import ServiceConfig, StreamSession, WorkerProcess
from streaming.ops.records import recorder_of

#: streaming_fleet_* name -> (WorkerProcess column, scale to the Prometheus base unit, help)
FLEET = {
    "connections": ("connections", 1.0, "Open connections at the last heartbeat."),
    "subscriptions": ("subscriptions", 1.0, "Subscriptions at the last heartbeat."),
    "messages_in_per_second": ("messages_in_per_s", 1.0, "Client messages per second."),
    "messages_out_per_second": ("messages_out_per_s", 1.0, "Messages sent to clients per second."),
    "cpu_percent": ("cpu_percent", 1.0, "CPU of the worker process, percent of one core."),
    "rss_bytes": ("rss_bytes", 1.0, "Resident memory of the worker process."),
    "loop_lag_seconds": ("loop_lag_ms", 0.001, "Event-loop lag."),
}


class Snapshot(Collector):
    """Metric families read beforehand (on the worker's loop and in a database thread)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)


def _gauge(name: str, doc: str, labels: list[str], samples: list[tuple[list[str], float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _counter(name: str, doc: str, worker: str, value: float) -> Metric:
    family = CounterMetricFamily(name, doc, labels=["worker"])
    family.add_metric([worker], value)
    return family


def worker_families(worker: Worker | None) -> list[Metric]:
    """This process's worker; call on its event loop (it reads live connection state)."""
    if worker is None:
        return []
    w = worker.id
    recorder = recorder_of(worker)
    subscriptions = sum(len(conn.subscriptions) for conn in worker.connections.values())
    latency = recorder.layer_latency if recorder and recorder.layer_latency is not None else float("nan")
    return [
        _gauge(
            "streaming_worker_info",
            "This worker process.",
            ["worker", "host", "pid"],
            [([w, worker.host, str(worker.pid)], 1)],
        ),
        _gauge("streaming_draining", "1 while draining.", ["worker"], [([w], float(worker.draining))]),
        _gauge("streaming_connections", "Open connections.", ["worker"], [([w], len(worker.connections))]),
        _gauge("streaming_subscriptions", "Subscriptions held.", ["worker"], [([w], subscriptions)]),
        _counter("streaming_messages_in", "Client messages received.", w, worker.messages_in),
        _counter("streaming_deliveries", "Events delivered to subscribers.", w, worker.hub.deliveries),
        _gauge("streaming_loop_lag_seconds", "Event-loop lag.", ["worker"], [([w], worker.loop_lag)]),
        _gauge("streaming_layer_latency_seconds", "Channel-layer round trip.", ["worker"], [([w], latency)]),
        _counter(
            "streaming_recorder_cpu_seconds",
            "CPU used by recording.",
            w,
            recorder.cpu_seconds if recorder else 0.0,
        ),
        _counter("streaming_recorder_flushes", "Heartbeats written.", w, recorder.flushes if recorder else 0),
        *flow_families(worker),
    ]


def flow_families(worker: Worker) -> list[Metric]:
    """Per-service and per-publisher counters of this worker (rates come from Prometheus' rate())."""
    w, per_service = worker.id, worker.hub.per_service
    published = CounterMetricFamily(
        "streaming_service_published", "Events published through this worker.", labels=["worker", "service"]
    )
    received = CounterMetricFamily(
        "streaming_service_received", "Events received to fan out.", labels=["worker", "service"]
    )
    delivered = CounterMetricFamily(
        "streaming_service_deliveries", "Frames delivered to subscribers.", labels=["worker", "service"]
    )
    by_publisher = CounterMetricFamily(
        "streaming_publisher_published",
        "Events published over HTTP, by publisher.",
        labels=["worker", "service", "publisher"],
    )
    for service, count in publish.published.items():
        published.add_metric([w, service], count)
    for service, (events, deliveries) in per_service.items():
        received.add_metric([w, service], events)
        delivered.add_metric([w, service], deliveries)
    for (service, publisher), count in publish.published_by.items():
        if publisher:
            by_publisher.add_metric([w, service, publisher], count)
    return [published, received, delivered, by_publisher]


def redis_families(worker: Worker | None, topology: dict[str, Any]) -> list[Metric]:
    """The Redis topology this worker sees (`Backend.topology()`); nothing for the embedded backend."""
    if worker is None or not topology:
        return []
    w = worker.id
    nodes = []
    for index, shard in enumerate(topology["shards"]):
        nodes.append(([w, str(index), "primary", shard["primary"]], 1.0))
        nodes.extend(([w, str(index), "replica", replica], 1.0) for replica in shard["replicas"])
    feed = max(len(topology["feed_shards"]), 1) if worker.hub.streams else 0
    return [
        _gauge(
            "streaming_redis_node",
            "Redis nodes this worker sees.",
            ["worker", "shard", "role", "address"],
            nodes,
        ),
        _counter("streaming_redis_failovers", "Redis primaries seen taking over.", w, topology["failovers"]),
        _counter(
            "streaming_redis_feed_reconnects",
            "Announcement feed reconnections.",
            w,
            topology["feed_reconnects"],
        ),
        _gauge("streaming_redis_feed_connections", "Feed pub/sub connections.", ["worker"], [([w], feed)]),
    ]


def fleet_families() -> list[Metric]:
    """Every live worker's last heartbeat, open sessions and service switches (database reads)."""
    now = timezone.now()
    alive = list(
        WorkerProcess.objects.filter(state__in=[WorkerProcess.State.RUNNING, WorkerProcess.State.DRAINING])
    )
    labels = ["worker", "host", "state"]
    families = [
        _gauge(
            f"streaming_fleet_{name}",
            doc,
            labels,
            [([w.worker_id, w.host, w.state], getattr(w, column) * scale) for w in alive],
        )
        for name, (column, scale, doc) in FLEET.items()
    ]
    families.append(
        _gauge(
            "streaming_fleet_heartbeat_age_seconds",
            "Seconds since the last heartbeat.",
            labels,
            [([w.worker_id, w.host, w.state], (now - w.heartbeat_at).total_seconds()) for w in alive],
        )
    )
    families.append(
        _gauge(
            "streaming_sessions_open",
            "Open sessions over all workers.",
            [],
            [([], StreamSession.objects.filter(closed_at__isnull=True).count())],
        )
    )
    disabled = set(ServiceConfig.objects.filter(enabled=False).values_list("name", flat=True))
    families.append(
        _gauge(
            "streaming_service_enabled",
            "1 if the service is enabled.",
            ["service"],
            [([name], float(name not in disabled)) for name in services.names()],
        )
    )
    return families


def exposition(families: list[Metric]) -> tuple[bytes, str]:
    """The text exposition of these families, process metrics and any multiprocess metrics."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    ProcessCollector(registry=registry)
    registry.register(Snapshot(families))
    return generate_latest(registry), CONTENT_TYPE_LATEST
