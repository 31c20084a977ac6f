"""StampPairSynchronizer: approximate-time pairing with message_filters' semantics. The same
behaviour tests run on the real ``message_filters.ApproximateTimeSynchronizer`` (what the
node uses where it is installed), so the stand-in is checked against it, not only against
this file's reading of it."""
import threading
import time

import pytest

pytest.importorskip("rclpy")
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from hand_mesh_ros.ros.camera_inputs import StampBuffer  # noqa: E402
from hand_mesh_ros.ros.sync import StampPairSynchronizer, stamp_ns  # noqa: E402


def _img(t: float) -> Image:
    m = Image()
    m.header.stamp.sec, m.header.stamp.nanosec = int(t), int(round((t % 1) * 1e9))
    return m


def _info(t: float) -> CameraInfo:
    m = CameraInfo()
    m.header.stamp.sec, m.header.stamp.nanosec = int(t), int(round((t % 1) * 1e9))
    return m


class MessageFiltersPair:
    """``message_filters.ApproximateTimeSynchronizer`` over two inputs, fed through the
    ``StampPairSynchronizer`` interface (``add``, ``input_callback``, ``register_callback``)."""

    def __init__(self, queue_size, slop):
        import message_filters

        self.inputs = [message_filters.SimpleFilter() for _ in range(2)]
        self.sync = message_filters.ApproximateTimeSynchronizer(self.inputs, queue_size, slop)

    def register_callback(self, cb):
        self.sync.registerCallback(cb)

    def add(self, index, msg):
        self.inputs[index].signalMessage(msg)

    def input_callback(self, index):
        return lambda msg: self.add(index, msg)


@pytest.fixture(params=["standin", "message_filters"])
def make_sync(request):
    """A factory ``(queue_size, slop) -> synchronizer`` of either implementation."""
    if request.param == "standin":
        return lambda queue_size, slop: StampPairSynchronizer(2, queue_size, slop)
    from conftest import require_ros2_tools
    require_ros2_tools()
    return MessageFiltersPair


@pytest.fixture
def new_sync(make_sync):
    return lambda queue_size=10, slop=0.05: _pair(make_sync(queue_size, slop))


def _pair(s):
    out = []
    s.register_callback(lambda a, b: out.append((stamp_ns(a), stamp_ns(b), type(a), type(b))))
    return s, out


def test_exact_pairs_in_either_order(new_sync):
    s, out = new_sync()
    s.add(0, _img(1.0))
    assert out == []
    s.add(1, _info(1.0))
    s.add(1, _info(2.0))
    s.add(0, _img(2.0))
    assert [(a, b) for a, b, *_ in out] == [(1_000_000_000,) * 2, (2_000_000_000,) * 2]
    assert all(ta is Image and tb is CameraInfo for *_, ta, tb in out)


def test_slop_is_respected(new_sync):
    s, out = new_sync(slop=0.05)
    s.add(0, _img(1.0))
    s.add(1, _info(1.06))  # 60 ms apart: not paired
    assert out == []
    s.add(1, _info(1.03))  # 30 ms: paired with the image
    assert [(a, b) for a, b, *_ in out] == [(1_000_000_000, 1_030_000_000)]


def test_spread_equal_to_slop_is_not_paired(new_sync):
    s, out = new_sync(slop=0.05)
    s.add(0, _img(1.0))
    s.add(1, _info(1.05))
    assert out == []


def test_nearest_candidate_wins_and_is_consumed(new_sync):
    s, out = new_sync(slop=0.1)
    s.add(1, _info(0.95))
    s.add(1, _info(1.01))
    s.add(0, _img(1.0))
    assert [(a, b) for a, b, *_ in out] == [(1_000_000_000, 1_010_000_000)]
    # 1.01 was consumed; the next image near it pairs with the leftover 0.95 only if in slop
    s.add(0, _img(1.02))
    assert [(a, b) for a, b, *_ in out][1] == (1_020_000_000, 950_000_000)


def test_queue_size_drops_oldest(new_sync):
    s, out = new_sync(queue_size=2, slop=0.01)
    for t in (1.0, 2.0, 3.0):
        s.add(0, _img(t))
    s.add(1, _info(1.0))  # the image at 1.0 was pushed out
    assert out == []
    s.add(1, _info(3.0))
    assert [(a, b) for a, b, *_ in out] == [(3_000_000_000,) * 2]


def test_bad_arguments():
    with pytest.raises(ValueError):
        StampPairSynchronizer(2, 0, 0.1)
    with pytest.raises(ValueError):
        StampPairSynchronizer(2, 5, 0.0)
    with pytest.raises(ValueError):
        StampPairSynchronizer(1, 5, 0.1)


def test_threads_feeding_both_inputs(new_sync):
    s, out = new_sync(queue_size=1000, slop=0.001)
    n = 500
    ts = [1.0 + 0.01 * i for i in range(n)]
    a = threading.Thread(target=lambda: [s.input_callback(0)(_img(t)) for t in ts])
    b = threading.Thread(target=lambda: [s.input_callback(1)(_info(t)) for t in ts])
    a.start(), b.start()
    a.join(), b.join()
    assert len(out) == n and all(x == y for x, y, *_ in out)


# ------------------------------------------------------------------ depth buffer (camera_inputs)
def test_stamp_buffer_takes_nearest_within_slop_and_drops_older():
    buf = StampBuffer(size=10, slop=0.01)
    for t in (1.0, 1.1, 1.2):
        buf.add(_img(t))
    assert buf.take(int(1.15e9)) is None                       # 50 ms from anything
    assert stamp_ns(buf.take(int(1.101e9))) == int(1.1e9)      # nearest within 10 ms; older dropped
    assert buf.take(int(1.0e9)) is None and buf.take(int(1.1e9)) is None
    assert stamp_ns(buf.take(int(1.2e9))) == int(1.2e9)


def test_stamp_buffer_waits_for_a_late_message_at_most_the_timeout():
    """A colour frame's depth comes a few ms later: ``take`` waits up to ``timeout``."""
    buf = StampBuffer(size=10, slop=0.01)
    late = threading.Timer(0.03, buf.add, args=(_img(5.0),))
    late.start()
    got = buf.take(int(5e9), timeout=1.0)
    assert got is not None and stamp_ns(got) == int(5e9)
    t0 = time.monotonic()
    assert buf.take(int(9e9), timeout=0.05) is None           # never comes: waited 50 ms
    assert time.monotonic() - t0 >= 0.05
    buf.add(_img(7.0))
    assert buf.take(int(7e9), timeout=0.0) is not None         # 0: no wait, present
    late.join()
