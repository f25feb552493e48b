"""How this project runs a daphne worker: the flags every worker needs (tests and benchmarks use it).

`--websocket_timeout -1`: daphne would otherwise close every websocket after 24 hours.
`--websocket-max-message-size`: daphne's own frame limit, kept equal to STREAMING["MAX_FRAME_BYTES"]
(the Makefile and deploy/supervisord.conf pass the same value).
"""

from __future__ import annotations

import sys
from pathlib import Path

DAPHNE = str(Path(sys.executable).with_name("daphne"))
MAX_MESSAGE_BYTES = 65536
ASGI_APP = "widgetapp.asgi:application"


def daphne_argv(port: int, host: str = "127.0.0.1", shared_fd: int | None = None) -> list[str]:
    """Serve on host:port, and also on an inherited listening socket `shared_fd` (as under supervisord)."""
    return [
        DAPHNE,
        "-b",
        host,
        "-p",
        str(port),
        *(["--fd", str(shared_fd)] if shared_fd is not None else []),
        "--websocket_timeout",
        "-1",
        "--websocket-max-message-size",
        str(MAX_MESSAGE_BYTES),
        ASGI_APP,
    ]
