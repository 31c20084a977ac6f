"""ExecutorThread: the node's executor in its own thread, with the real rclpy executor.

rclpy's own ``Executor.shutdown`` returns while a callback still runs (see
``hand_mesh_ros.ros.executor_thread``); these tests hold a callback in progress and check
that ``stop`` waits for it, and that a callback's exception neither kills the thread nor
shows as an error when it comes from the shutdown itself.
"""
import threading

import pytest

rclpy = pytest.importorskip("rclpy")
import rclpy.executors  # noqa: E402
from std_msgs.msg import String  # noqa: E402

from conftest import DOMAIN_ID  # noqa: E402
from hand_mesh_ros.ros.executor_thread import ExecutorThread  # noqa: E402

WAIT_S = 30.0  # generous: a loaded 2-core machine


@pytest.fixture
def graph():
    """A private context, one node and a single-threaded executor on it."""
    ctx = rclpy.context.Context()
    rclpy.init(args=["test"], context=ctx, domain_id=DOMAIN_ID)
    node = rclpy.create_node("executor_thread_test", context=ctx)
    executor = rclpy.executors.SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    yield ctx, node, executor
    rclpy.try_shutdown(context=ctx)


def _thread_errors(monkeypatch):
    """Exceptions that end a thread (what would print 'Exception in thread ...')."""
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    return seen


def _executor_thread(ctx, node, executor):
    """An ``ExecutorThread`` of the graph, not started, and the list its ``on_error`` fills."""
    errors = []
    return ExecutorThread(executor, node.get_logger(), context=ctx, on_error=lambda: errors.append(1)), errors


def test_stop_returns_only_after_the_running_callback(graph, monkeypatch):
    """A timer callback is in progress when the node shuts down. It waits (at most 2 s) for
    destroy_node, then publishes: with rclpy's shutdown alone the node is destroyed under it
    (the publish then raises); with ``stop`` the callback ends first."""
    ctx, node, executor = graph
    dead = _thread_errors(monkeypatch)
    pub = node.create_publisher(String, "executor_thread_test", 10)
    entered, destroyed, outcome = threading.Event(), threading.Event(), []

    def callback():
        if entered.is_set():
            return
        entered.set()
        outcome.append(destroyed.wait(2.0))  # True would mean: destroyed under this callback
        pub.publish(String(data="still here"))
        outcome.append("published")

    node.create_timer(0.01, callback)
    spinner, errors = _executor_thread(ctx, node, executor)
    spinner.start()
    assert entered.wait(WAIT_S), "the timer never fired"
    assert spinner.stop(WAIT_S)
    node.destroy_node()
    destroyed.set()
    assert outcome == [False, "published"]
    assert not errors and not dead


def test_a_callback_error_is_counted_and_spinning_goes_on(graph, monkeypatch):
    ctx, node, executor = graph
    dead = _thread_errors(monkeypatch)
    calls, again = [], threading.Event()

    def callback():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in a callback")
        again.set()

    node.create_timer(0.01, callback)
    spinner, errors = _executor_thread(ctx, node, executor)
    spinner.start()
    assert again.wait(WAIT_S), "spinning stopped after the callback's exception"
    assert spinner.stop(WAIT_S)
    node.destroy_node()
    assert errors == [1] and not dead


@pytest.mark.parametrize("how", ["stop", "context"])
def test_a_callback_error_during_shutdown_is_not_an_error(graph, monkeypatch, how):
    """The callback raises once the shutdown has begun (``stop`` called, or the context shut
    down as Ctrl-C does): not counted, and the thread ends without a traceback."""
    ctx, node, executor = graph
    dead = _thread_errors(monkeypatch)
    entered, raised = threading.Event(), threading.Event()
    spinner, errors = _executor_thread(ctx, node, executor)

    def callback():
        if entered.is_set():
            return
        entered.set()
        shut = spinner.stopping if how == "stop" else _ContextDown(ctx)
        assert shut.wait(WAIT_S)
        raised.set()
        raise RuntimeError("publisher's context is invalid")

    node.create_timer(0.01, callback)
    spinner.start()
    assert entered.wait(WAIT_S), "the timer never fired"
    if how == "context":
        rclpy.try_shutdown(context=ctx)
        assert raised.wait(WAIT_S)  # before stop: only the context says it is shutting down
    assert spinner.stop(WAIT_S)
    assert raised.is_set() and not errors and not dead
    node.destroy_node()


class _ContextDown:
    """``wait`` until ``ctx`` is shut down (its on-shutdown callback)."""

    def __init__(self, ctx):
        self._event = threading.Event()
        ctx.on_shutdown(self._event.set)
        if not ctx.ok():
            self._event.set()

    def wait(self, timeout):
        return self._event.wait(timeout)
