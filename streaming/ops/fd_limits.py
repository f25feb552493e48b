"""Open-file limits against MAX_CONNECTIONS_PER_WORKER: each connection holds one file descriptor."""

from __future__ import annotations

import resource
import socket
from collections.abc import Iterable
from pathlib import Path

from streaming.conf import streaming_settings
from streaming.models import WorkerProcess

#: Descriptors a worker needs besides its connections: database, Redis, logs, the listening socket.
HEADROOM = 64


def soft_limit(pid: int) -> int | None:
    """The soft open-file limit of process `pid` on this host; None when it cannot be read."""
    try:
        lines = Path(f"/proc/{pid}/limits").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("Max open files"):
            value = line.split()[3]
            return None if value == "unlimited" else int(value)
    return None


def fd_warnings(workers: Iterable[WorkerProcess]) -> list[str]:
    """A sentence per running worker of this host (or for this shell) that could not hold its cap."""
    needed = int(streaming_settings.MAX_CONNECTIONS_PER_WORKER) + HEADROOM
    local = [w for w in workers if w.host == socket.gethostname() and w.state == WorkerProcess.State.RUNNING]
    limits = {w.worker_id: soft_limit(w.pid) for w in local}
    if not local:
        limits = {"this shell (no worker runs here)": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}
    return [
        f"warning: {name} may open {limit} files, but MAX_CONNECTIONS_PER_WORKER needs {needed}: "
        "raise NOFILE (ulimit -n, supervisord minfds) or lower the cap"
        for name, limit in limits.items()
        if limit is not None and 0 <= limit < needed
    ]
