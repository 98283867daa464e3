"""An in-process token bucket per client IP for the public routes.

Each client address has a bucket of ``burst`` tokens refilled at ``rate`` tokens per second; a request takes
one token or is refused with the time until one is available (answered 429 with ``Retry-After``). At most
``max_clients`` buckets are kept (least recently used evicted), so a flood of addresses cannot exhaust memory.
Per process: behind several workers or a proxy, put the limit in the proxy instead (docs/node.md).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBucket:
    """Token buckets keyed by client; thread-safe."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate < 0 or burst < 0 or max_clients < 1:
            raise ValueError("rate and burst must be >= 0 and max_clients >= 1")
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0 and self.burst > 0

    def take(self, client: str) -> int | None:
        """Take a token for ``client``: ``None`` if allowed, else the whole seconds to wait (at least 1)."""
        if not self.enabled:
            return None
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = None
            else:
                self._buckets[client] = (tokens, now)
                wait = max(1, math.ceil((1.0 - tokens) / self.rate))
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
        return wait
