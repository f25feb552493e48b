"""Publishing into a running embedded server from other processes on the same machine.

In the embedded default the history and the hub live inside the server process, so `manage.py
shell`, `publish_event` and other local processes hand their events to it over a Unix socket
(`STREAMING["LOCAL_SOCKET"]`, mode 0600: only the installing user may publish). One request per
line, `{"service", "topic", "data"}` with `data` as JSON text; one reply per line,
`{"epoch", "seq", "frame"}` or `{"error"}`. The server numbers the event as if it were published
in-process, so ordering and history are the same whichever process published.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from streaming.delivery.history import Appended, StreamKey

logger = logging.getLogger(__name__)

#: Seconds a publishing process waits for the server's answer.
TIMEOUT = 5.0
#: Longest request line the server reads (the websocket frame cap is far below this).
MAX_LINE = 4 * 1024 * 1024


class ServerUnreachable(ConnectionError):
    """No running server accepts local publishes at the configured socket."""


def send(path: str, key: StreamKey, data_json: str) -> Appended:
    """Publish through the server listening at `path`; raises ServerUnreachable if none does."""
    request = json.dumps({"service": key[0], "topic": key[1], "data": data_json}).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(path)
            sock.sendall(request)
            reply = _read_line(sock)
    except OSError as exc:
        raise ServerUnreachable(f"No running server accepts local publishes at {path}: {exc}") from None
    answer = json.loads(reply)
    if "error" in answer:
        raise ValueError(answer["error"])
    return Appended(answer["epoch"], int(answer["seq"]), answer["frame"])


def _read_line(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    return b"".join(chunks)


def reachable(path: str) -> bool:
    """Whether a server accepts connections at `path` now."""
    if not path or not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        try:
            sock.connect(path)
        except OSError:
            return False
    return True


async def serve(path: str, append: Callable[[StreamKey, str], Appended]) -> asyncio.AbstractServer | None:
    """Accept local publishes at `path` and number them with `append`; None if another server has it."""
    if not _claim(path):
        logger.warning("Another server already accepts local publishes at %s; this one does not", path)
        return None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(_answer(line, append) + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            writer.close()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(handle, path, limit=MAX_LINE)
    finally:
        os.umask(old_umask)
    logger.info("Accepting local publishes at %s", path)
    return server


def _claim(path: str) -> bool:
    """Make `path` free for this server, unless another live server listens there."""
    if reachable(path):
        return False
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if os.path.exists(path):
        os.unlink(path)  # left behind by a server that did not exit cleanly
    return True


def _answer(line: bytes, append: Callable[[StreamKey, str], Appended]) -> bytes:
    try:
        request = json.loads(line)
        key = (str(request["service"]), str(request["topic"]))
        data_json = str(request["data"])
        json.loads(data_json)  # a publisher's JSON text goes into frames verbatim: it must be JSON
        appended = append(key, data_json)
    except (ValueError, KeyError, TypeError) as exc:
        return json.dumps({"error": f"Bad local publish: {exc}"}).encode()
    return json.dumps({"epoch": appended.epoch, "seq": appended.seq, "frame": appended.frame}).encode()
