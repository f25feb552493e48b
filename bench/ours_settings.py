"""Our server's settings for the benchmark: the real ones, plus bench services and no per-user cap.

Every bench connection uses one token, so the per-user connection limit (default 20) is lifted; the
per-worker admission limit stays as configured.
"""

from widgetapp.settings import *  # noqa: F403
from widgetapp.settings import INSTALLED_APPS, STREAMING

INSTALLED_APPS = [*INSTALLED_APPS, "benchapp"]
STREAMING = {**STREAMING, "MAX_CONNECTIONS_PER_USER": 1_000_000}
