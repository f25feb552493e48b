"""Throwaway Redis topologies for tests: a primary with a replica under 3 sentinels, a 3-shard Cluster.

Every process is a real redis-server (sentinels too: `redis-server --sentinel`) on a free port of
REDIS_PORTS, with its files in a temporary directory; `stop()` ends each one it started.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

#: Ports these tests may use for Redis, sentinels and Cluster nodes (a Cluster bus adds 10000).
REDIS_PORTS = range(7100, 7200)
MASTER_NAME = "streams"


def free_redis_port(taken: set[int]) -> int:
    """A port of REDIS_PORTS nobody listens on (and not handed out before in this run)."""
    for port in random.sample(list(REDIS_PORTS), len(REDIS_PORTS)):
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise RuntimeError("no free port for Redis in 7100-7199")


def wait_until(check: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `check` until it is true (Redis errors count as not yet)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready in time")


class RedisNode:
    """One redis-server process (a server, replica, sentinel or Cluster node)."""

    def __init__(self, port: int, data_dir: Path, args: list[str], sentinel: bool = False) -> None:
        self.port = port
        self.data_dir = data_dir
        self.args = args
        self.sentinel = sentinel
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def start(self) -> RedisNode:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        conf = self.data_dir / "redis.conf"
        lines = [f"port {self.port}", "bind 127.0.0.1", f'dir "{self.data_dir}"', *self.args]
        conf.write_text("\n".join(lines) + "\n")
        argv = ["redis-server", str(conf)] + (["--sentinel"] if self.sentinel else [])
        log = open(self.data_dir / "redis.log", "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self.client.ping, 10, f"redis on {self.port}")
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


def _server_args() -> list[str]:
    return ['save ""', "appendonly no", "repl-diskless-sync-delay 0"]


class SentinelSet:
    """1 primary + 1 replica watched by 3 sentinels (quorum 2, primary down after 1 s)."""

    def __init__(self, root: Path) -> None:
        taken: set[int] = set()
        primary_port = free_redis_port(taken)
        self.primary = RedisNode(primary_port, root / "primary", _server_args())
        replica_args = [*_server_args(), f"replicaof 127.0.0.1 {primary_port}"]
        self.replica = RedisNode(free_redis_port(taken), root / "replica", replica_args)
        watch = [
            f"sentinel monitor {MASTER_NAME} 127.0.0.1 {primary_port} 2",
            f"sentinel down-after-milliseconds {MASTER_NAME} 1000",
            f"sentinel failover-timeout {MASTER_NAME} 10000",
        ]
        self.sentinels = [
            RedisNode(free_redis_port(taken), root / f"sentinel{i}", watch, sentinel=True) for i in range(3)
        ]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{MASTER_NAME}/0"

    def start(self) -> SentinelSet:
        self.primary.start()
        self.replica.start()
        wait_until(
            lambda: self.replica.client.info("replication")["master_link_status"] == "up", 20, "replica"
        )
        for sentinel in self.sentinels:
            sentinel.start()
        wait_until(self._watched, 20, "sentinels")
        return self

    def _watched(self) -> bool:
        for sentinel in self.sentinels:
            master = sentinel.client.execute_command("SENTINEL", "MASTER", MASTER_NAME)
            fields = dict(zip(master[::2], master[1::2], strict=True))
            if int(fields[b"num-slaves"]) < 1 or int(fields[b"num-other-sentinels"]) < 2:
                return False
        return True

    def primary_port(self) -> int:
        host, port = self.sentinels[0].client.execute_command(
            "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
        )
        return int(port)

    def wait_promoted(self, timeout: float = 30.0) -> None:
        """Until the sentinels name the replica as primary and it accepts writes."""
        wait_until(
            lambda: (
                self.primary_port() == self.replica.port
                and self.replica.client.info("replication")["role"] == "master"
            ),
            timeout,
            "failover",
        )

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            node.stop()


class ClusterSet:
    """A Redis Cluster of 3 primaries (no replicas), slots spread evenly by redis-cli."""

    def __init__(self, root: Path, shards: int = 3) -> None:
        taken: set[int] = set()
        args = [*_server_args(), "cluster-enabled yes", "cluster-config-file nodes.conf"]
        self.nodes = []
        for i in range(shards):
            self.nodes.append(RedisNode(free_redis_port(taken), root / f"node{i}", args))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)

    def start(self) -> ClusterSet:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        wait_until(
            lambda: all(n.client.cluster("info")["cluster_state"] == "ok" for n in self.nodes), 20, "cluster"
        )
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
