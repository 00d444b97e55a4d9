"""A thread-safe token bucket: the messages-per-second ceiling every transport can share."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """At most `rate` tokens per second on average, bursts of at most `burst` tokens."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        if burst <= 0:
            raise ValueError(f"burst must be positive, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = burst
        self._updated = clock()

    def reserve(self, tokens: float = 1.0) -> float:
        """Take `tokens` now (possibly into debt); returns how long the caller must wait."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._updated = now
            # Going into debt instead of waiting for a full bucket lets a request of 1,000
            # messages through a bucket of 10: it pays afterwards, and callers queue in order.
            self._tokens -= tokens
            return max(0.0, -self._tokens / self.rate)

    def acquire(self, tokens: float = 1.0) -> float:
        """Take `tokens`, sleeping until the ceiling allows them; returns the seconds waited."""
        wait = self.reserve(tokens)
        if wait > 0:
            # Sleep outside the lock so other threads can queue their own reservations.
            self._sleep(wait)
        return wait


def make_bucket(max_per_second: float | None) -> TokenBucket | None:
    """A bucket for a configured ceiling, or None when sending is unthrottled."""
    if max_per_second is None or max_per_second <= 0:
        return None
    return TokenBucket(max_per_second)
