"""Approximate-time pairing of messages by ``header.stamp``, for when ``message_filters``
is not installed (the pip-wheel environment). Where ``message_filters`` is importable the
node uses its ``ApproximateTimeSynchronizer`` instead; this class reproduces the semantics
of that Python implementation:

* each input keeps the last ``queue_size`` messages keyed by stamp (older ones dropped; a
  second message with an equal stamp replaces the first);
* when a message arrives, for every other input the queued stamps within ``slop`` of it
  are candidates, nearest first; the first combination whose overall spread
  (max stamp - min stamp) is strictly below ``slop`` is emitted, and the emitted messages
  are removed from their queues (unmatched older messages stay until pushed out);
* callbacks receive the messages in input order.

Thread-safe (one lock); callbacks run outside the lock, in the thread that delivered the
completing message.
"""
from __future__ import annotations

import itertools
import threading
from typing import Callable, Dict, List


def stamp_ns(msg) -> int:
    """``msg.header.stamp`` as integer nanoseconds."""
    s = msg.header.stamp
    return int(s.sec) * 1_000_000_000 + int(s.nanosec)


class StampPairSynchronizer:
    """Approximate-time synchronizer for N inputs (the node uses N = 2: image, camera_info).

    Args:
        num_inputs: number of inputs (>= 2).
        queue_size: messages kept per input (>= 1).
        slop: largest stamp spread of a synchronized set [s] (> 0).

    Usage: ``sync.register_callback(cb)``; feed input ``i`` with ``sync.add(i, msg)``
    (or the bound callbacks from :meth:`input_callback`). ``cb(*msgs)`` is called once
    per synchronized set.
    """

    def __init__(self, num_inputs: int = 2, queue_size: int = 10, slop: float = 0.05):
        if num_inputs < 2:
            raise ValueError(f"num_inputs must be >= 2, got {num_inputs}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        if not slop > 0:
            raise ValueError(f"slop must be > 0 s, got {slop}")
        self.queue_size = int(queue_size)
        self.slop_ns = int(round(float(slop) * 1e9))
        self._queues: List[Dict[int, object]] = [dict() for _ in range(num_inputs)]
        self._callbacks: List[Callable] = []
        self._lock = threading.Lock()

    def register_callback(self, cb: Callable) -> None:
        """Call ``cb(msg_0, ..., msg_{N-1})`` for each synchronized set."""
        self._callbacks.append(cb)

    def input_callback(self, index: int) -> Callable:
        """A one-argument callback feeding input ``index`` (for ``create_subscription``)."""
        return lambda msg: self.add(index, msg)

    def add(self, index: int, msg) -> None:
        """Queue ``msg`` on input ``index`` and emit a synchronized set if one is complete."""
        t = stamp_ns(msg)
        emitted = None
        with self._lock:
            q = self._queues[index]
            q[t] = msg
            while len(q) > self.queue_size:
                del q[min(q)]
            candidates = []
            for j, other in enumerate(self._queues):
                if j == index:
                    continue
                near = sorted((abs(s - t), s) for s in other if abs(s - t) <= self.slop_ns)
                if not near:
                    return
                candidates.append([s for _, s in near])
            for combo in itertools.product(*candidates):
                stamps = list(combo)
                stamps.insert(index, t)
                if max(stamps) - min(stamps) < self.slop_ns:
                    emitted = [self._queues[j].pop(s) for j, s in enumerate(stamps)]
                    break
        if emitted is not None:
            for cb in list(self._callbacks):
                cb(*emitted)
