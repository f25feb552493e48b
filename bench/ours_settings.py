"""Our server's settings for the benchmark: the real ones, plus bench services and no per-user cap.

Every bench connection uses one token, so the per-user connection limit (default 20) is lifted; the
per-worker admission limit stays as configured. The benchmark's publisher is one token publishing
thousands of events a second on purpose, so the publish rate limits (50/s per token, 500/s per
service by default) are lifted too: the scenarios measure fan-out, not the limiter.
"""

from widgetapp.settings import *  # noqa: F403
from widgetapp.settings import INSTALLED_APPS, STREAMING

INSTALLED_APPS = [*INSTALLED_APPS, "benchapp"]
STREAMING = {
    **STREAMING,
    "MAX_CONNECTIONS_PER_USER": 1_000_000,
    "PUBLISH_PER_SECOND": 1_000_000.0,
    "PUBLISH_BURST": 1_000_000,
    "SERVICE_PUBLISH_PER_SECOND": 1_000_000.0,
}
