"""Real daphne worker processes for end-to-end, restart and chaos tests."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from widgetapp.serving import daphne_argv

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_make(args: list[str], env: dict[str, str], log: Path, timeout: float) -> None:
    """`make -s ARGS` from the repository root, its output appended to `log`; fails on a non-zero exit."""
    with open(log, "ab") as out:
        subprocess.run(
            ["make", "-s", *args],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=True,
            timeout=timeout,
        )


class Listening:
    """Something serving on 127.0.0.1:<port>."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/stream/"


class DaphneProcess(Listening):
    """One daphne worker on 127.0.0.1:<port>, started with the given environment."""

    def __init__(self, env: dict[str, str], port: int | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        # Its own relay socket for local publishes (embedded default), never the checkout's shared one.
        local = {"STREAMING_LOCAL_SOCKET": f"/tmp/widgetapp-test-{self.port}.sock"}
        self.env = {**os.environ, "DJANGO_DEBUG": "1", **local, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> DaphneProcess:
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            daphne_argv(self.port),
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daphne exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("daphne did not become healthy in time")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class ServedCluster(Listening):
    """`make serve` itself — supervisord, WORKERS daphne workers on one socket — on a free port."""

    def __init__(self, env: dict[str, str], run_dir: Path, workers: int = 2) -> None:
        self.port = free_port()
        self.run_dir = run_dir
        self.workers = workers
        self.env = {**os.environ, "DJANGO_DEBUG": "1", **env}
        self.proc: subprocess.Popen[bytes] | None = None

    def _make_args(self, target: str) -> list[str]:
        return [
            target,
            f"PORT={self.port}",
            f"RUN_DIR={self.run_dir}",
            f"WORKERS={self.workers}",
        ]

    def make(self, target: str, timeout: float = 120.0) -> None:
        run_make(self._make_args(target), self.env, self.run_dir / f"make-{target}.log", timeout)

    def start(self, timeout: float = 60.0) -> ServedCluster:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        out = open(self.run_dir / "make-serve.log", "ab")
        self.proc = subprocess.Popen(
            ["make", "-s", *self._make_args("serve")],
            cwd=ROOT,
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"make serve exited with {self.proc.returncode}")
            if len(self.pids()) == self.workers and self.healthy():
                return self
            time.sleep(0.3)
        raise RuntimeError("make serve did not become healthy in time")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def ctl(self, *args: str) -> str:
        command = [
            str(Path(sys.executable).with_name("supervisorctl")),
            "-c",
            str(ROOT / "deploy" / "supervisord.conf"),
            *args,
        ]
        env = {**self.env, "RUN_DIR": str(self.run_dir)}
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, timeout=30)
        return result.stdout.decode()

    def pids(self) -> dict[str, int]:
        """Running workers by supervisord name (`widgetapp:worker0` → pid)."""
        pids = {}
        for line in self.ctl("status").splitlines():
            fields = line.replace(",", " ").split()
            if len(fields) >= 4 and fields[1] == "RUNNING" and fields[2] == "pid":
                pids[fields[0]] = int(fields[3])
        return pids

    def log(self) -> str:
        return (self.run_dir / "supervisord.log").read_text()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.make("stop", timeout=60)
            self.proc.wait(30)
        except (subprocess.SubprocessError, OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class RedisServer:
    """A throwaway redis-server on a free port (never the machine's own), for restarting it in tests."""

    def __init__(self, data_dir: Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data_dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start in time")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class PostgresServer:
    """A throwaway PostgreSQL cluster (trust auth, user postgres) on 127.0.0.1:<port>, for stopping it in
    tests without touching the machine's own; initdb refuses root, so it runs as `postgres` then."""

    def __init__(self, base_dir: Path, port: int) -> None:
        self.port = port
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.bin_dir = Path(sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1])

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.bin_dir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def init(self) -> PostgresServer:
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        return self

    def start(self) -> PostgresServer:
        options = f"-p {self.port} -k {self.base_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.base_dir / "postgresql.log")
        self._run("pg_ctl", "-D", str(self.data_dir), "-l", log, "-o", options, "-w", "start")
        return self

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-m", mode, "-w", "stop")

    def create_database(self, name: str) -> PostgresServer:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self
