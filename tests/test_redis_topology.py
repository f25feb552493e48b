"""Redis you can lose and outgrow: Sentinel failover never loses silently, and a Cluster carries the streams.

Real redis-server processes (primary, replica, 3 sentinels; or 3 Cluster primaries) on ports
7100-7199, `make serve` with 2 workers, 50 `StreamClient`s and 50 events/s as in the chaos tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from streaming.delivery import redis_clients
from streaming.delivery.redis_backend import RedisBackend
from streaming.ops import metrics
from streaming.ops.status import redis_summary
from tests.conftest import database_url_for_subprocess
from tests.redis_servers import ClusterSet, RedisNode, SentinelSet, free_redis_port, wait_until
from tests.servers import ROOT, ServedCluster
from tests.test_chaos import DRAIN_SECONDS, assert_every_event_once_in_order, report, run_chaos
from tests.test_chaos import tokens as tokens  # noqa: F401 - the fixture

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

KEY = ("widgets", "all")


@pytest.fixture
def sentinels(tmp_path) -> Iterator[SentinelSet]:
    topology = SentinelSet(tmp_path / "redis")
    try:
        yield topology.start()
    finally:
        topology.stop()


@pytest.fixture
def redis_cluster(tmp_path) -> Iterator[ClusterSet]:
    topology = ClusterSet(tmp_path / "cluster")
    try:
        yield topology.start()
    finally:
        topology.stop()


def serve_on(url: str, settings, run_dir: Path) -> ServedCluster:
    """`make serve` (2 workers) on this Redis URL; this process publishes into the same streams."""
    prefix = f"topo:{uuid.uuid4().hex[:8]}"
    settings.STREAMING = {**settings.STREAMING, "REDIS_URL": url, "REDIS_PREFIX": prefix}
    env = {
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": url,
        "STREAMING_REDIS_PREFIX": prefix,
        "STREAMING_DRAIN_SECONDS": str(DRAIN_SECONDS),
    }
    return ServedCluster(env, run_dir)


async def test_a_promoted_replica_that_lacks_events_starts_a_new_epoch(tmp_path):
    taken: set[int] = set()
    primary = RedisNode(
        free_redis_port(taken), tmp_path / "p", ['save ""', "repl-diskless-sync-delay 0"]
    ).start()
    replica = RedisNode(
        free_redis_port(taken), tmp_path / "r", ['save ""', f"replicaof 127.0.0.1 {primary.port}"]
    ).start()
    try:
        wait_until(lambda: replica.client.info("replication")["master_link_status"] == "up", 20, "replica")
        before = RedisBackend(f"redis://127.0.0.1:{primary.port}/0", "lost")
        first = [await before.aappend(KEY, f'{{"n": {n}}}') for n in range(1, 6)]
        wait_until(
            lambda: _offset(replica) >= primary.client.info("replication")["master_repl_offset"], 10, "sync"
        )
        replica.client.replicaof("127.0.0.1", free_redis_port(taken))  # the replication link is cut
        unreplicated = [await before.aappend(KEY, f'{{"n": {n}}}') for n in range(6, 9)]
        assert unreplicated[-1].seq == 8 and unreplicated[-1].epoch == first[0].epoch
        replica.client.replicaof("NO", "ONE")  # promoted with seq 5 only

        after = RedisBackend(f"redis://127.0.0.1:{replica.port}/0", "lost")
        resumed = await after.replay(KEY, first[0].epoch, 8)
        assert resumed.frames is None and resumed.epoch != first[0].epoch and resumed.seq == 0
        assert (await after.replay(KEY, first[0].epoch, 5)).frames is None
        again = await after.aappend(KEY, '{"n": 9}')
        assert (again.epoch, again.seq) == (resumed.epoch, 1)  # never a second, different seq 6
        assert (await before.aappend(KEY, '{"n": 10}')).epoch == first[0].epoch  # no failover, no reset
        await before.close()
        await after.close()
    finally:
        replica.stop()
        primary.stop()


def _offset(replica: RedisNode) -> int:
    return replica.client.info("replication")["slave_repl_offset"]


async def _failover(sentinels: SentinelSet, settings, tmp_path, tokens, capsys, *, lose_writes: bool) -> None:
    served = serve_on(sentinels.url, settings, tmp_path / "run").start()
    killed: list[float] = []
    promoted: list[float] = []
    unreplicated: list[int] = []

    async def kill_primary() -> None:
        if lose_writes:  # the replica stops replicating, the primary goes on announcing for 0.5 s
            sentinels.replica.client.replicaof("127.0.0.1", free_redis_port(set()))
            await asyncio.sleep(0.5)
            written = sentinels.primary.client.info("replication")["master_repl_offset"]
            unreplicated.append(written - _offset(sentinels.replica))
        sentinels.primary.kill()
        killed.append(time.monotonic())
        await asyncio.to_thread(sentinels.wait_promoted)
        promoted.append(time.monotonic())

    try:
        outcome = await run_chaos(served.ws_url, tokens, kill_primary)
    finally:
        served.stop()
    scenario = "Sentinel failover" + (" with lost writes" if lose_writes else "")
    report(capsys, scenario, outcome)
    epochs = [epoch for epoch, _, _ in outcome.published]
    with capsys.disabled():
        print(
            f"{scenario}: promoted {promoted[0] - killed[0]:.2f} s after SIGKILL; every client told of the "
            f"new epoch {max(outcome.resets_at) - killed[0]:.2f} s after it; "
            f"{outcome.published[-1][2] - len(outcome.published)} publishes refused meanwhile"
        )
    assert len(set(epochs)) == 2  # the promoted replica started a new epoch
    assert not lose_writes or unreplicated[0] > 0  # it lacked events the clients had received
    for items in outcome.received:
        assert assert_every_event_once_in_order(items, outcome.published, resets_allowed=True) >= 1


async def test_b_sentinel_failover_is_never_a_silent_loss(sentinels, settings, tmp_path, tokens, capsys):
    await _failover(sentinels, settings, tmp_path, tokens, capsys, lose_writes=False)


async def test_c_failover_that_lost_acknowledged_events_starts_a_new_epoch(
    sentinels, settings, tmp_path, tokens, capsys
):
    await _failover(sentinels, settings, tmp_path, tokens, capsys, lose_writes=True)


def test_d_protocol_ordering_and_resume_pass_on_a_cluster(redis_cluster, tmp_path):
    env = {
        **os.environ,
        "REDIS_URL": redis_cluster.url,
        "CHANNEL_LAYER_REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/test_streaming.py",
            "-q",
            "-k",
            "redis",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout.decode()[-3000:]
    passed = re.search(rb"(\d+) passed", result.stdout)
    assert passed and int(passed.group(1)) >= 10 and b"failed" not in result.stdout


async def test_e_a_worker_listens_only_to_the_shards_of_its_streams(redis_cluster, settings):
    backend = RedisBackend(redis_cluster.url, f"shards:{uuid.uuid4().hex[:6]}")
    cluster = redis_clients.sync_client(redis_cluster.url)
    owners: dict[str, str] = {}
    topic = 0
    while len(owners) < 2:  # two streams on two different shards
        topic += 1
        node = cluster.get_node_from_key(backend.channel(("widgets", f"t{topic}")))
        owners.setdefault(node.name, f"t{topic}")

    class Into:
        def __init__(self) -> None:
            self.got: list[tuple[str, int]] = []

        def deliver(self, key, epoch, seq, payload) -> None:
            self.got.append((key[1], seq))

        async def resync(self) -> None:
            return None

    hub = Into()
    backend.attach(hub)  # type: ignore[arg-type]
    first_node, first_topic = next(iter(owners.items()))
    await backend.listen(("widgets", first_topic))
    assert backend.feed is not None and backend.feed.shards() == [first_node]
    for topic_name in owners.values():
        await backend.aappend(("widgets", topic_name), "{}")
    await asyncio.sleep(0.3)
    assert hub.got == [(first_topic, 1)]  # the other shard's stream is not followed, nor connected to
    await backend.unlisten(("widgets", first_topic))
    assert backend.feed.shards() == []
    await backend.close()
    cluster.close()


async def test_f_status_and_metrics_show_the_primary_its_replica_and_the_failover(sentinels):
    backend = RedisBackend(sentinels.url, f"topo:{uuid.uuid4().hex[:6]}")
    before = await backend.topology()
    primary, replica = (f"127.0.0.1:{node.port}" for node in (sentinels.primary, sentinels.replica))
    assert [(s["primary"], s["replicas"], s["promoted"]) for s in before["shards"]] == [
        (primary, (replica,), False)
    ]
    sentinels.primary.kill()
    await asyncio.to_thread(sentinels.wait_promoted)
    after = await backend.topology()
    while after["error"]:  # the first command on the dead primary's connection fails
        after = await backend.topology()
    assert (
        after["failovers"] == 1
        and after["shards"][0]["primary"] == replica
        and after["shards"][0]["promoted"]
    )
    assert f"primary {replica} (promoted replica)" in redis_summary(after)
    worker = SimpleNamespace(id="w1", hub=SimpleNamespace(streams={}))
    samples = {
        (sample.name, sample.labels.get("role", "")): sample.value
        for family in metrics.redis_families(worker, after)  # type: ignore[arg-type]
        for sample in family.samples
    }
    assert samples[("streaming_redis_node", "primary")] == 1
    assert samples[("streaming_redis_failovers_total", "")] == 1
    await backend.close()
