"""Shared fixtures: per-test Redis prefixes, real daphne workers."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import User
from streaming.delivery import options as stream_options_table
from streaming.delivery import redis_clients
from streaming.delivery.backend import get_backend
from streaming.delivery.worker import Worker, get_worker
from tests.servers import DaphneProcess
from tests.streaming_helpers import make_user


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix: None) -> None:
    """A test database per pytest process, so concurrent runs on one machine never collide."""
    test = settings.DATABASES["default"].setdefault("TEST", {})
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        test["NAME"] = f"test_widgetapp_{os.getpid()}"
    else:
        # A file, not SQLite's shared in-memory database: its table locks fail at once instead of
        # waiting, and server subprocesses could not open it.
        test["NAME"] = str(Path(tempfile.gettempdir()) / f"test_widgetapp_{os.getpid()}.sqlite3")


@pytest.fixture(autouse=True)
def _no_local_relay(settings) -> None:  # noqa: F811
    """Tests never publish into a developer's running `make run` through the checkout's socket."""
    settings.STREAMING = {**settings.STREAMING, "LOCAL_SOCKET": ""}


@pytest.fixture(autouse=True)
def _no_stream_options_rows() -> Iterator[None]:
    """The stream-options table is per process, like a worker's: no test leaves its rows behind."""
    yield
    stream_options_table.set_rows({})


@pytest.fixture
def redis_prefix(settings) -> Iterator[str]:  # noqa: F811 - pytest-django's settings fixture
    """Isolate Redis per test with a unique key prefix; its keys are deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex[:12]}"
    settings.STREAMING = {**settings.STREAMING, "REDIS_PREFIX": prefix}
    yield prefix
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    client = redis_clients.sync_client(url)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
def store(request, settings):  # noqa: F811
    """Run each test on the embedded backend and on Redis (with a per-test key prefix);
    REDIS_URL=redis+cluster://… runs the Redis half on a Cluster."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    if request.param == "redis":
        request.getfixturevalue("redis_prefix")
        settings.STREAMING = {**settings.STREAMING, "REDIS_URL": REDIS_URL}
    else:
        settings.STREAMING = {**settings.STREAMING, "REDIS_URL": ""}
        get_backend().reset()
    return request.param


@pytest.fixture
async def worker_cleanup():
    yield
    await get_worker().close()


def database_url_for_subprocess() -> str:
    """The URL of the test database pytest-django created, for server subprocesses."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


@pytest.fixture
def server_env(redis_prefix, settings) -> dict[str, str]:  # noqa: F811
    """Environment for real workers that share Redis (history, channel layer) and the test database
    with this test process, under the test's Redis prefix."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "prefix": f"{redis_prefix}:layer:"},
        }
    }
    settings.STREAMING = {**settings.STREAMING, "REDIS_URL": REDIS_URL}
    return {
        "DATABASE_URL": database_url_for_subprocess(),
        "REDIS_URL": REDIS_URL,
        "STREAMING_REDIS_PREFIX": redis_prefix,
    }


@pytest.fixture
def memory(settings) -> None:  # noqa: F811
    """The embedded backend and in-memory channel layer: one worker, driven in-process."""
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.STREAMING = {**settings.STREAMING, "REDIS_URL": ""}
    get_backend().reset()


@pytest.fixture
async def worker(memory) -> AsyncIterator[Worker]:
    """This process's worker on the embedded backend; closed at the end of the test."""
    worker = get_worker()
    yield worker
    await worker.close()


@pytest.fixture
def alice(db) -> User:
    """An approved user (widgets and notifications; may publish widgets)."""
    return make_user("alice")


@pytest.fixture
def server(daphne_factory, server_env) -> DaphneProcess:
    """One real daphne worker sharing this test's database and Redis (history and control bus)."""
    return daphne_factory(server_env)


@pytest.fixture
def two_workers(daphne_factory, server_env) -> tuple[DaphneProcess, DaphneProcess]:
    """Two real daphne workers sharing this test's database, Redis and control bus."""
    return daphne_factory(server_env), daphne_factory(server_env)


@pytest.fixture
def daphne_factory(tmp_path) -> Iterator:
    """Start real daphne workers; all are stopped at the end of the test."""
    started: list[DaphneProcess] = []

    def start(env: dict[str, str] | None = None, port: int | None = None) -> DaphneProcess:
        log = tmp_path / f"daphne-{len(started)}.log"
        proc = DaphneProcess(env or {}, port=port, log_path=log)
        started.append(proc)
        return proc.start()

    yield start
    for proc in started:
        proc.stop()
        if proc.log_path and proc.log_path.exists():
            print(f"--- {proc.log_path.name} ---\n{proc.log_path.read_text(errors='replace')[-4000:]}")


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Threads of sync_to_async keep DB connections; end them so the test database can be dropped."""
    yield
    with django_db_blocker.unblock():
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )


#: Fixtures that start processes, and fixtures that need PostgreSQL/Redis (not the embedded default).
PROCESS_FIXTURES = {"daphne_factory", "server", "two_workers", "site", "throwaway_redis", "cluster", "served"}
SERVICE_FIXTURES = {"redis_prefix", "server_env"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what starts a process (`process`) or needs Redis (`services`), so `make check` skips it."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.process)
        if names & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
