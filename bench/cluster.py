"""Ours as `make serve` runs it: daphne workers sharing one listening socket, plus a publish worker.

Like supervisord's fcgi-program, the runner opens the socket once and every worker inherits it, so a
worker that drains (SIGTERM) or dies (SIGKILL) never makes the address refuse a connection: the
kernel hands new connections to whichever worker accepts next. Each worker also listens on a private
port, only to tell when it is up. Events are published through a third worker on its own port, so a
publish is never cut off by the worker under test being killed.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from procs import free_port, http_ok, pinned, spawn, stop, wait_until
from targets import Ours, Unavailable, daphne_argv


class OursCluster(Ours):
    """Ours with `workers` daphne processes on one shared socket; workers can be signalled and restarted."""

    def __init__(self, log_dir: Path, extra_env: dict[str, str] | None = None, workers: int = 2) -> None:
        super().__init__(log_dir, extra_env)
        self.listener: socket.socket | None = None
        self.workers: list[subprocess.Popen[str] | None] = [None] * workers
        self.publish_port = 0

    @property
    def pid(self) -> int:
        worker = self.workers[0]
        assert worker is not None
        return worker.pid

    def start(self) -> None:
        """The shared socket, the publish worker, and worker 0 only: clients connect to it first."""
        self.prepare()
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.listener.set_inheritable(True)
        self.port = self.listener.getsockname()[1]
        self.publish_port, self.proc = self.spawn_worker("publish")
        self.start_worker(0)

    def spawn_worker(self, name: str, shared: bool = False) -> tuple[int, subprocess.Popen[str]]:
        assert self.listener is not None
        port = free_port()
        fd = self.listener.fileno() if shared else None
        argv = pinned("0", daphne_argv(port, shared_fd=fd))
        log = self.log_dir / f"server-{self.name}-{name}.log"
        proc = spawn(argv, env=self.env(), log=log, pass_fds=(fd,) if fd is not None else ())
        try:
            url = f"http://127.0.0.1:{port}/healthz"
            wait_until(lambda: http_ok(url), proc, url)
        except RuntimeError as exc:
            raise Unavailable(f"worker {name} did not come up: {exc}") from exc
        return port, proc

    def start_worker(self, index: int) -> None:
        self.workers[index] = self.spawn_worker(f"worker{index}", shared=True)[1]

    def signal_worker(self, index: int, sig: signal.Signals) -> None:
        worker = self.workers[index]
        assert worker is not None
        worker.send_signal(sig)

    def wait_exit(self, index: int, timeout: float) -> float:
        """Seconds until the signalled worker exited (it is then gone from the list)."""
        worker = self.workers[index]
        assert worker is not None
        started = time.monotonic()
        try:
            worker.wait(timeout)
        finally:
            stop(worker)
            self.workers[index] = None
        return time.monotonic() - started

    def publisher_argv(self) -> list[str]:
        return ["ours", "--url", f"http://127.0.0.1:{self.publish_port}"]

    def stop(self) -> None:
        for worker in self.workers:
            if worker is not None:
                stop(worker)
        self.workers = [None] * len(self.workers)
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        super().stop()
