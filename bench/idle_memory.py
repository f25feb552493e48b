"""Where an idle connection's memory goes: our server in-process under tracemalloc, N sockets opened.

    .venv/bin/python bench/idle_memory.py --connections 2000

Runs daphne's `Server` with our application in this process (the same settings, database and Redis as
the `ours` bench target), opens `--warmup` connections from bench/loadgen.js (a subprocess; each
authenticates and subscribes to 3 services) so one-time costs (worker start, Redis feeds) are paid,
snapshots, opens `--connections` more, snapshots again, and prints the growth per connection:
traced bytes grouped by the file that allocated them, by the package that owns the allocation (the
innermost frame outside the standard library), by source line, and live objects by type.
tracemalloc counts Python allocations only; RSS (printed too) adds allocator overhead, and under
tracemalloc also the traces themselves.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

import daphne.server  # installs the asyncio Twisted reactor, which must precede anything else of Twisted
import django
import psutil
from procs import free_port, kill_all, raise_fd_limit
from session import connect_command, start_loadgen
from targets import ROOT, Ours

from widgetapp.serving import MAX_MESSAGE_BYTES

FRAMES = 25  # traceback depth kept per allocation: enough to reach the owning library's frame
STDLIB = os.path.dirname(os.__file__)
SITE = "site-packages" + os.sep


def owner(trace: tracemalloc.Traceback) -> str:
    """The package (or project directory) of the innermost frame outside the standard library."""
    for frame in reversed(trace):  # tracemalloc lists the oldest frame first
        name = frame.filename
        if SITE in name:
            return name.split(SITE, 1)[1].split(os.sep, 1)[0]
        if name.startswith(str(ROOT)):
            return os.path.relpath(name, ROOT).split(os.sep, 1)[0] + "/" + Path(name).name
        if not name.startswith(STDLIB):
            return name
    return "stdlib " + Path(trace[-1].filename).name if len(trace) else "?"


def by_owner(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot) -> Counter[str]:
    grown: Counter[str] = Counter()
    for stat in after.compare_to(before, "traceback"):
        grown[owner(stat.traceback)] += stat.size_diff
    return grown


def live_types() -> Counter[str]:
    gc.collect()
    sizes: Counter[str] = Counter()
    for obj in gc.get_objects():
        sizes[type(obj).__qualname__] += sys.getsizeof(obj)
    return sizes


def show(title: str, grown: Counter[str], per: int, top: int) -> None:
    print(f"\n-- {title} (bytes per connection)")
    for name, size in grown.most_common(top):
        print(f"{size / per:>10,.0f}  {name}")
    print(f"{sum(grown.values()) / per:>10,.0f}  total")


def measure(target: Ours, args: argparse.Namespace, stop: Any) -> None:
    """In a thread while the reactor runs: warm up, snapshot, open N more, snapshot, report."""
    loadgen = start_loadgen(target.log_dir / "loadgen-idle-memory.log")
    streams = target.streams(3)
    try:
        loadgen.ask(connect_command(target, args.warmup, streams), timeout=300)
        time.sleep(2.0)
        process = psutil.Process()
        rss0, types0 = process.memory_info().rss, live_types()
        snap0 = tracemalloc.take_snapshot()
        # Few handshakes in flight: the traced server is slow, and a timed-out handshake is no idle socket.
        done = loadgen.ask(connect_command(target, args.connections, streams, concurrency=50), timeout=600)
        time.sleep(2.0)
        rss1, types1 = process.memory_info().rss, live_types()
        snap1 = tracemalloc.take_snapshot()
        per = max(done["subscribed"], 1)
        print(f"{done['subscribed']} of {args.connections} connections subscribed to 3 services each", end="")
        print(f" (failures: {done['errors']})" if done["errors"] else "")
        print(f"RSS growth per connection (with tracemalloc's own traces): {(rss1 - rss0) / per:,.0f} bytes")
        files = Counter({s.traceback[0].filename: s.size_diff for s in snap1.compare_to(snap0, "filename")})
        show("traced, by allocating file", files, per, args.top)
        show("traced, by owning package (innermost non-stdlib frame)", by_owner(snap0, snap1), per, args.top)
        lines = Counter({str(s.traceback[0]): s.size_diff for s in snap1.compare_to(snap0, "lineno")})
        show("traced, by source line", lines, per, args.top)
        show("live objects by type (sys.getsizeof)", types1 - types0, per, args.top)
    finally:
        loadgen.close()
        stop()


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--port", type=int, help="port of the in-process server (default: a free one)")
    args = parser.parse_args()
    raise_fd_limit()
    log_dir = ROOT / "bench" / "results" / "logs" / time.strftime("idle-memory-%Y%m%d-%H%M%S")
    log_dir.mkdir(parents=True, exist_ok=True)
    target = Ours(log_dir)
    target.prepare()
    target.port = args.port or free_port()
    os.environ.update(target.env())
    sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
    serve(target, args)


def serve(target: Ours, args: argparse.Namespace) -> None:
    django.setup()
    logging.getLogger("daphne.server").setLevel(logging.ERROR)  # not one line per socket at shutdown
    # Imported only now: the module builds the application from the settings chosen in main().
    from widgetapp.asgi import application

    tracemalloc.start(FRAMES)
    reactor = daphne.server.reactor
    server = daphne.server.Server(
        application,
        endpoints=[f"tcp:port={target.port}:interface=127.0.0.1"],
        websocket_timeout=-1,
        websocket_max_message_size=MAX_MESSAGE_BYTES,
        application_close_timeout=1,
        verbosity=0,
        ready_callable=lambda: threading.Thread(
            target=measure, args=(target, args, lambda: reactor.callFromThread(reactor.stop)), daemon=True
        ).start(),
    )
    try:
        server.run()
    finally:
        kill_all()
        target.stop()


if __name__ == "__main__":
    main()
