"""Client message rate limiting: a token bucket per connection that also counts sustained abuse."""

from __future__ import annotations

import time

#: Seconds without a rate-limited message after which the strike count starts again.
STRIKE_FORGIVE_SECONDS = 2.0


class TokenBucket:
    """`rate` tokens per second up to `burst`; each client message takes one.

    `strikes` counts refused messages since the client last kept to the rate for a while, so a
    flood that refills a token now and then is still sustained abuse.
    """

    __slots__ = ("rate", "burst", "tokens", "stamp", "strikes", "limited_at")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.strikes = 0
        self.limited_at = 0.0

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            if self.strikes and now - self.limited_at > STRIKE_FORGIVE_SECONDS:
                self.strikes = 0
            return True
        self.strikes += 1
        self.limited_at = now
        return False
