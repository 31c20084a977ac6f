"""Throttling of log messages per reason (ROS-free; the pipeline and the node both use it).

One shared throttle hides every warning but the first of a burst: after an unsupported
encoding, a NaN-intrinsics frame and an empty image within a few seconds, only the first
would be logged. :class:`ReasonThrottle` keeps one period per key (e.g. ``(camera,
reason)``), so each kind of problem is logged at least once per period, and it counts what
it held back so the next message can say so.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, Hashable, Optional

#: Default period of a :class:`ReasonThrottle`: a message of the same kind is logged at
#: most once per this time [s].
WARN_THROTTLE_S = 5.0


class ReasonThrottle:
    """At most one message per key per ``period_s``.

    Args:
        period_s: shortest time between two messages of the same key [s] (> 0).
        clock: monotonic time source [s] (default ``time.monotonic``).

    Usage::

        suppressed = throttle("unsupported_encoding")
        if suppressed is not None:
            log(f"... ({suppressed} more since the last one)" if suppressed else "...")

    Thread-safe.
    """

    def __init__(self, period_s: float = WARN_THROTTLE_S, clock: Callable[[], float] = time.monotonic):
        if not period_s > 0:
            raise ValueError(f"period_s must be > 0, got {period_s}")
        self.period_s = float(period_s)
        self._clock = clock
        self._last: Dict[Hashable, float] = {}
        self._held: Dict[Hashable, int] = {}
        self._lock = threading.Lock()

    def __call__(self, key: Hashable) -> Optional[int]:
        """None when a message of ``key`` must be held back (counted); else the number of
        messages of ``key`` held back since the last one let through (0 for the first)."""
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.period_s:
                self._held[key] = self._held.get(key, 0) + 1
                return None
            self._last[key] = now
            return self._held.pop(key, 0)


def with_held_count(text: str, held: int) -> str:
    """``text``, plus how many messages of its kind were held back since the last one."""
    return f"{text} ({held} more since the last such message)" if held else text
