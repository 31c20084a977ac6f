"""Per-reason throttled warnings (``core.throttle``), with a controlled clock."""
import pytest

from hand_mesh_ros.core.throttle import ReasonThrottle, with_held_count


def test_throttle_is_per_reason_and_counts_what_it_held_back():
    now = [100.0]
    th = ReasonThrottle(5.0, lambda: now[0])
    # three kinds of problem within 3 s: each is logged (one shared throttle logged only the first)
    assert [th(k) for k in ("unsupported_encoding", "bad_camera_info", "empty_image")] == [0, 0, 0]
    now[0] += 1.0
    assert th("unsupported_encoding") is None and th("unsupported_encoding") is None
    now[0] += 4.5
    assert th("unsupported_encoding") == 2  # the next message says 2 were held back
    assert th("empty_image") == 0
    assert with_held_count("skipping", 2) == "skipping (2 more since the last such message)"
    assert with_held_count("skipping", 0) == "skipping"
    with pytest.raises(ValueError):
        ReasonThrottle(0.0)
