"""Bench subprocesses: pinned to a core, driven over JSON lines, and always killed at the end."""

from __future__ import annotations

import atexit
import ctypes
import json
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVER_CORE, CLIENT_CORE = "0", "1"

PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)  # loaded here: a preexec_fn must not import or load anything
_children: list[subprocess.Popen[str]] = []


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the runner dies (even by SIGKILL), and the raised fd limit."""
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    raise_fd_limit()


def raise_fd_limit(wanted: int = 65536) -> int:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (up to the hard limit); returns the soft limit now.

    The idle scenario holds 10,000 sockets in one server and one load generator, far over the usual
    soft limit of 1,024; children inherit the limit, and `spawn` sets it again in each one.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: str, argv: list[str]) -> list[str]:
    """`argv` run on one core with taskset (exec'd, so the pid is the program's own)."""
    return ["taskset", "-c", core, *argv] if shutil.which("taskset") else argv


def spawn(
    argv: list[str],
    *,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    pipes: bool = False,
    pass_fds: tuple[int, ...] = (),
) -> subprocess.Popen[str]:
    """Start a child in its own session; it is killed by `kill_all` (also at exit and on SIGTERM)."""
    out = open(log, "a") if log else subprocess.DEVNULL  # closed with the child
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        text=True,
        start_new_session=True,
        preexec_fn=_die_with_parent,
        stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
        stdout=subprocess.PIPE if pipes else out,
        stderr=out,
        pass_fds=pass_fds,
    )
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen[str], grace: float = 5.0) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(grace)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)
    if proc in _children:
        _children.remove(proc)


def kill_all() -> None:
    for proc in list(_children):
        stop(proc, grace=2.0)


atexit.register(kill_all)
signal.signal(signal.SIGTERM, lambda *_: (kill_all(), os._exit(143)))


class LineChild:
    """A child that answers each JSON command line with one JSON line (loadgen.js, publisher.py)."""

    def __init__(
        self, argv: list[str], *, env: dict[str, str] | None = None, log: Path | None = None
    ) -> None:
        self.proc = spawn(argv, env=env, log=log, pipes=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put("")

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.proc.args[-1]}: no answer within {timeout:.0f} s") from None
        if not line:
            raise RuntimeError(f"{self.proc.args} exited with {self.proc.wait(5)}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def send(self, command: dict[str, Any]) -> None:
        """Send a command without waiting; `reply` collects its answer."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def ask(self, command: dict[str, Any], timeout: float = 120.0) -> dict[str, Any]:
        self.send(command)
        return self.reply(timeout)

    def close(self) -> None:
        try:
            self.ask({"cmd": "close"}, timeout=5)
        except (RuntimeError, OSError):
            pass
        stop(self.proc)


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as resp:
        return bool(resp.status < 300)


def port_open(port: int) -> bool:
    socket.create_connection(("127.0.0.1", port), timeout=1).close()
    return True


def wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[str], what: str, timeout: float = 30.0
) -> None:
    """Poll `ready` until it is true, or fail if the server process died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} not ready within {timeout:.0f} s")


class Meter:
    """CPU % and RSS of one process between two `lap()` calls."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.lap()

    def cpu_seconds(self) -> float:
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.process.memory_info().rss)

    def lap(self) -> dict[str, float]:
        """CPU seconds and % of one core since the previous lap."""
        now, cpu = time.monotonic(), self.cpu_seconds()
        previous = getattr(self, "_mark", (now, cpu))
        self._mark = (now, cpu)
        wall = max(now - previous[0], 1e-9)
        return {"cpu_s": cpu - previous[1], "cpu_pct": 100 * (cpu - previous[1]) / wall, "wall_s": wall}
