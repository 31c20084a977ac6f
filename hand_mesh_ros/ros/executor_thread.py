"""An rclpy executor spinning in its own thread, stopped so that no callback outlives it.

Why not ``executor.shutdown(timeout_sec)`` and then ``node.destroy_node()``: rclpy's
``Executor.shutdown`` (7.1.5 in Jazzy, 9.1.2 in Kilted) sets its shut-down flag and then
tests that same flag to decide whether to wait for the callbacks in progress, so it never
waits. A callback still running in the executor's thread can then meet a destroyed publisher
or a context that Ctrl-C shut down, raise, and end the thread with a traceback (one was seen
in the launch test on Jazzy; the test holds a callback to show the race).
``ExecutorThread.stop`` joins the thread instead: when it returns True, no callback runs any
more and the node can be destroyed.

A callback's exception does not end the thread: while the executor runs it is logged as an
error (with its traceback, throttled) and passed to ``on_error``, and spinning goes on, so one
bad callback does not leave the node alive but deaf; once ``stop`` has begun (or the context
is shut down) it is expected and logged at debug level.
"""
from __future__ import annotations

import threading
import traceback
from typing import Callable, Optional

import rclpy.executors
import rclpy.utilities

#: Longest wait in ``ExecutorThread.stop`` for the callback in progress [s].
STOP_TIMEOUT_S = 5.0
#: At most one error log per this many seconds [s].
ERROR_THROTTLE_S = 5.0


class ExecutorThread:
    """``executor.spin()`` in a daemon thread named ``name``; ``stop()`` ends it.

    ``context`` is the executor's rclpy context (the default one when None), ``logger`` an
    rclpy logger, ``on_error`` called with no argument for each callback exception raised
    while running (e.g. a diagnostics error counter)."""

    def __init__(self, executor: rclpy.executors.Executor, logger, context=None,
                 on_error: Optional[Callable[[], None]] = None, name: str = "executor"):
        self.executor = executor
        self._logger = logger
        self._context = context if context is not None else rclpy.utilities.get_default_context()
        self._on_error = on_error
        #: set by ``stop``: from then on a callback's exception is expected
        self.stopping = threading.Event()
        self._thread = threading.Thread(target=self._spin, name=name, daemon=True)

    def start(self) -> "ExecutorThread":
        self._thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> bool:
        """Shut the executor down and join its thread, at most ``timeout`` [s]. Returns
        whether the thread ended (False: a callback still runs; logged as a warning)."""
        self.stopping.set()
        self.executor.shutdown(timeout_sec=timeout)
        if self._thread.ident is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if self._thread.is_alive():
            self._logger.warning(f"a callback was still running {timeout:.1f} s after shutdown")
            return False
        return True

    def _spin(self) -> None:
        while True:
            try:
                self.executor.spin()
                return
            except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
                return
            except Exception:  # a callback raised: the thread must not die with it
                if self.stopping.is_set() or not self._context.ok():
                    self._logger.debug("callback failed while shutting down:\n" + traceback.format_exc())
                    return
                self._logger.error("callback failed:\n" + traceback.format_exc(),
                                   throttle_duration_sec=ERROR_THROTTLE_S)
                if self._on_error is not None:
                    self._on_error()
