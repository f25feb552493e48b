"""Publish rate limits of the HTTP publish API: a token bucket per token and one per service."""

from __future__ import annotations

import math

from streaming.conf import streaming_settings
from streaming.sessions.ratelimit import TokenBucket

#: Buckets kept before idle ones are forgotten (a forgotten bucket starts full again).
MAX_BUCKETS = 10_000

_by_token: dict[str, TokenBucket] = {}
_by_service: dict[str, TokenBucket] = {}


def _bucket(buckets: dict[str, TokenBucket], key: str, rate: float, burst: int) -> TokenBucket:
    bucket = buckets.get(key)
    if bucket is None or bucket.rate != rate or bucket.burst != burst:
        if len(buckets) >= MAX_BUCKETS:
            buckets.clear()
        bucket = buckets[key] = TokenBucket(rate, burst)
    return bucket


def retry_after(checksum: str, service: str) -> int | None:
    """Take one publish for this token and service; None when allowed, else seconds to wait."""
    per_token = streaming_settings.PUBLISH_PER_SECOND
    token = _bucket(_by_token, checksum, per_token, int(streaming_settings.PUBLISH_BURST))
    if not token.take():
        return math.ceil(1 / per_token)
    per_service = streaming_settings.SERVICE_PUBLISH_PER_SECOND
    if not _bucket(_by_service, service, per_service, max(1, int(per_service))).take():
        return math.ceil(1 / per_service)
    return None
