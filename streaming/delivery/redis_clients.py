"""Redis clients built from one URL: a single server, a Sentinel-managed primary, or a Cluster.

Every Redis connection of the engine is made here, so the three topologies are one setting:

  redis://[:password@]host:port/db                      one server (also rediss://, unix://)
  redis+sentinel://[:password@]host:port,host:port/master_name[/db]
                                                        the primary Sentinel names; the password
                                                        is the primary's, the sentinels have none
  redis+cluster://[:password@]host:port[,host:port]     any reachable nodes of a Redis Cluster

Clients follow the topology by themselves: a Sentinel client asks the sentinels for the primary on
every new connection (so it reaches the promoted replica after a failover), a Cluster client
re-reads the slot map when a node answers MOVED or goes away.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as AsyncClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode

SENTINEL_SCHEME = "redis+sentinel"
CLUSTER_SCHEME = "redis+cluster"

#: Seconds to open a connection; a dead primary must fail fast so the next attempt asks again.
CONNECT_TIMEOUT = 2.0
#: Seconds a command may take before its connection is considered lost.
COMMAND_TIMEOUT = 5.0

AsyncClient = aioredis.Redis | aioredis.RedisCluster
SyncClient = redis.Redis | redis.RedisCluster


@dataclass(frozen=True, slots=True)
class Topology:
    """What a Redis URL names: its kind, the addresses it lists, and the primary's credentials."""

    kind: str  # "server", "sentinel" or "cluster"
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    master: str = ""
    db: int = 0
    password: str | None = None
    username: str | None = None

    @property
    def is_cluster(self) -> bool:
        return self.kind == "cluster"

    def credentials(self) -> dict[str, Any]:
        return {"username": self.username, "password": self.password}


def _nodes(netloc: str) -> tuple[tuple[str, int], ...]:
    hosts = netloc.rsplit("@", 1)[-1]
    pairs = []
    for item in filter(None, hosts.split(",")):
        host, _, port = item.rpartition(":")
        pairs.append((host.strip("[]") or "127.0.0.1", int(port)))
    return tuple(pairs)


def parse(url: str) -> Topology:
    """The topology a REDIS_URL names; a plain URL is passed to redis-py as it is."""
    parts = urlsplit(url)
    if parts.scheme not in (SENTINEL_SCHEME, CLUSTER_SCHEME):
        return Topology("server", url)
    userinfo = parts.netloc.rsplit("@", 1)[0] if "@" in parts.netloc else ""
    username, _, password = userinfo.partition(":")
    path = [piece for piece in parts.path.split("/") if piece]
    common = {
        "url": url,
        "nodes": _nodes(parts.netloc),
        "username": unquote(username) or None,
        "password": unquote(password) or None,
    }
    if parts.scheme == CLUSTER_SCHEME:
        return Topology("cluster", **common)
    if not path:
        raise ValueError(
            f"{SENTINEL_SCHEME} URL needs the primary's name: {SENTINEL_SCHEME}://host:port/name"
        )
    return Topology("sentinel", master=path[0], db=int(path[1]) if len(path) > 1 else 0, **common)


def sentinel_url(sentinels: list[str], master: str, password: str = "", db: int = 0) -> str:
    """The URL for REDIS_SENTINELS ("host:port,…") and REDIS_SENTINEL_MASTER in the environment."""
    auth = f":{password}@" if password else ""
    return f"{SENTINEL_SCHEME}://{auth}{','.join(sentinels)}/{master}/{db}"


def _timeouts() -> dict[str, Any]:
    return {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": COMMAND_TIMEOUT}


def async_client(url: str) -> AsyncClient:
    """A client for the running event loop."""
    top = parse(url)
    if top.kind == "sentinel":
        sentinel = aioredis.Sentinel(list(top.nodes), socket_connect_timeout=CONNECT_TIMEOUT)
        return sentinel.master_for(top.master, db=top.db, **top.credentials(), **_timeouts())
    if top.is_cluster:
        nodes = [AsyncClusterNode(host, port) for host, port in top.nodes]
        return aioredis.RedisCluster(startup_nodes=nodes, **top.credentials(), **_timeouts())
    return aioredis.Redis.from_url(url, **_timeouts())


def sync_client(url: str) -> SyncClient:
    """A thread-safe client for code outside the event loop (publishing from Django views, tasks)."""
    top = parse(url)
    if top.kind == "sentinel":
        sentinel = redis.Sentinel(list(top.nodes), socket_connect_timeout=CONNECT_TIMEOUT)
        return sentinel.master_for(top.master, db=top.db, **top.credentials(), **_timeouts())
    if top.is_cluster:
        nodes = [ClusterNode(host, port) for host, port in top.nodes]
        return redis.RedisCluster(startup_nodes=nodes, **top.credentials(), **_timeouts())
    return redis.Redis.from_url(url, **_timeouts())


def node_client(host: str, port: int, url: str) -> aioredis.Redis:
    """A direct connection to one node (a shard's sharded pub/sub); errors surface, never retried."""
    once = Retry(NoBackoff(), 0)
    return aioredis.Redis(host=host, port=port, retry=once, **parse(url).credentials(), **_timeouts())


def channel_layer_host(url: str) -> str | dict[str, Any]:
    """The channels-redis `hosts` entry for a URL; channels-redis cannot use a Redis Cluster."""
    top = parse(url)
    if top.is_cluster:
        raise ValueError("channels-redis does not speak the Cluster protocol: set CHANNEL_LAYER_REDIS_URL")
    if top.kind == "sentinel":
        return {"sentinels": list(top.nodes), "master_name": top.master, "db": top.db, **top.credentials()}
    return url
