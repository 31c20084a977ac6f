"""Tracking: stable ids, side hysteresis, One Euro smoothing."""
import numpy as np

from hand_mesh_ros.core.tracking import HandTracker, OneEuroFilter, box_iou
from hand_mesh_ros.core.types import LEFT, RIGHT, Detection


def det(x, side=RIGHT, score=0.9):
    return Detection(side=side, score=score, bbox=np.array([x, 100, x + 80, 200], np.float32),
                     keypoints_2d=np.zeros((21, 2), np.float32))


def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    assert np.allclose(box_iou(a, np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])), [[1, 1 / 3, 0]])


def test_ids_stable_and_new_hand_gets_new_id():
    tr = HandTracker()
    a, b = tr.update([det(100), det(400, LEFT)])
    for x in range(105, 160, 5):                 # both move a little each frame
        a2, b2 = tr.update([det(x + 300, LEFT), det(x)])
        assert (a2.track_id, b2.track_id) == (b.track_id, a.track_id)
    (c,) = tr.update([det(700)])                 # a third hand far away
    assert c.track_id not in (a.track_id, b.track_id)


def test_lost_track_dropped_after_max_missed():
    tr = HandTracker(max_missed=2)
    (a,) = tr.update([det(100)])
    for _ in range(3):
        tr.update([])
    (b,) = tr.update([det(100)])
    assert b.track_id != a.track_id


def test_side_hysteresis_ignores_single_flip():
    tr = HandTracker()
    for _ in range(5):
        (t,) = tr.update([det(100, RIGHT)])
    (t,) = tr.update([det(100, LEFT)])            # one mislabelled frame
    assert t.side == RIGHT
    for _ in range(10):                          # persistent evidence flips it
        (t,) = tr.update([det(100, LEFT)])
    assert t.side == LEFT


def test_one_euro_smooths_noise_and_follows_motion():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.0)
    raw = 1.0 + rng.normal(0, 0.01, 300)
    out = np.array([f(np.array([v]), i / 30.0)[0] for i, v in enumerate(raw)])
    assert out[50:].std() < 0.5 * raw[50:].std()
    g = OneEuroFilter(min_cutoff=1.0, beta=5.0)
    ramp = np.array([g(np.array([i * 0.05]), i / 30.0)[0] for i in range(60)])
    assert abs(ramp[-1] - 59 * 0.05) < 0.1       # little lag on fast motion
