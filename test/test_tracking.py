"""Tracking on synthetic detections: duplicates, association (swaps), misses, side hysteresis,
inheritance of a lost track, and the primary track of each side (TF ``hand_<side>``)."""
import numpy as np
import pytest

from hand_mesh_ros.core.tracking import (HandTracker, box_iou, keypoint_distance,
                                         suppress_duplicates)
from hand_mesh_ros.core.types import LEFT, RIGHT, Detection

# A hand, fingers up: 21 OpenPose keypoints in hand units (wrist at the origin, y down).
_HAND = np.array([
    (0.0, 0.0),
    (-0.2, -0.15), (-0.35, -0.3), (-0.45, -0.45), (-0.55, -0.58),      # thumb
    (-0.2, -0.55), (-0.22, -0.75), (-0.23, -0.88), (-0.24, -1.0),      # index
    (0.0, -0.57), (0.0, -0.8), (0.0, -0.93), (0.0, -1.05),             # middle
    (0.17, -0.55), (0.19, -0.75), (0.2, -0.87), (0.21, -0.97),         # ring
    (0.32, -0.5), (0.36, -0.65), (0.38, -0.74), (0.4, -0.82),          # pinky
])


def det(cx, cy=150.0, side=RIGHT, score=0.9, size=100.0, mirror=None, noise=0.0, rng=None):
    """A detection of a hand (right-hand shape unless ``mirror``; by default mirrored for
    LEFT) centred at (cx, cy) [px], ``size`` px tall."""
    mirror = (side == LEFT) if mirror is None else mirror
    kp = _HAND * [(-1 if mirror else 1) * size, size] + [cx, cy + size / 2]
    if noise:
        kp = kp + (rng or np.random.default_rng(0)).normal(0, noise, kp.shape)
    kp = kp.astype(np.float32)
    return Detection(side=side, score=score, bbox=np.concatenate([kp.min(0), kp.max(0)]),
                     keypoints_2d=kp)


def test_box_iou():
    a = np.array([[0, 0, 10, 10]])
    assert np.allclose(box_iou(a, np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])), [[1, 1 / 3, 0]])


def test_keypoint_distance_is_relative_to_hand_size():
    a, b = det(100), det(100)
    diag = np.hypot(*(a.bbox[2:] - a.bbox[:2]))
    shifted = det(100 + diag)
    d = keypoint_distance(np.stack([a.keypoints_2d]), a.bbox[None],
                          np.stack([b.keypoints_2d, shifted.keypoints_2d]), np.stack([b.bbox, shifted.bbox]))
    np.testing.assert_allclose(d, [[0.0, 1.0]], atol=1e-6)
    big = det(100, size=200.0)   # the same layout twice as large: the distance scales with size
    assert keypoint_distance(big.keypoints_2d[None], big.bbox[None], det(100 + 2 * diag, size=200.0).keypoints_2d[None],
                             det(100 + 2 * diag, size=200.0).bbox[None])[0, 0] == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------------ duplicates
def test_duplicates_suppressed_keep_the_higher_score():
    rng = np.random.default_rng(1)
    real = det(100, score=0.8)
    dup = det(102, score=0.95, side=LEFT, mirror=False, noise=2.0, rng=rng)  # same hand, other label
    other = det(400, side=LEFT, score=0.6)
    kept = suppress_duplicates([real, other, dup])
    assert [id(d) for d in kept] == [id(dup), id(other)]  # by descending score: the better twin kept
    # a duplicate whose thumb went astray: boxes overlap little, the skeletons still coincide
    stray = det(100, score=0.5)
    stray.keypoints_2d[1:5] += [90, 70]
    stray.bbox = np.concatenate([stray.keypoints_2d.min(0), stray.keypoints_2d.max(0)])
    assert box_iou(real.bbox[None], stray.bbox[None])[0, 0] < 0.5
    assert [id(d) for d in suppress_duplicates([real, stray])] == [id(real)]
    assert suppress_duplicates([]) == [] and suppress_duplicates([real]) == [real]


def test_overlapping_distinct_hands_are_kept():
    """Two hands crossing (a right and a left hand, boxes overlapping by IoU 0.35): both stay."""
    a, b = det(100), det(135, side=LEFT, score=0.7)
    assert 0.2 < box_iou(a.bbox[None], b.bbox[None])[0, 0] < 0.5
    assert suppress_duplicates([a, b]) == [a, b]
    # the thresholds are the user's: a loose IoU threshold merges them
    assert suppress_duplicates([a, b], nms_iou=0.2) == [a]


# ------------------------------------------------------------------ association
def test_ids_stable_and_new_hand_gets_new_id():
    tr = HandTracker()
    a, b = tr.update([det(100), det(400, LEFT)])
    for x in range(105, 160, 5):                 # both move a little each frame, order swapped
        b2, a2 = tr.update([det(x + 300, LEFT), det(x)])
        assert (a2.track_id, b2.track_id) == (a.track_id, b.track_id)
    (c,) = tr.update([det(700)])                 # a third hand far away
    assert c.track_id not in (a.track_id, b.track_id)


@pytest.mark.parametrize("same_shape", [False, True])
def test_crossing_hands_keep_their_ids(same_shape):
    """Two hands crossing each other, 12 px per frame, detections in random order. With a
    right and a left hand (mirrored skeletons, different labels) and with two same-side,
    same-shape hands (only their motion tells them apart) each id follows its hand."""
    rng = np.random.default_rng(3)
    tr = HandTracker()
    side_b = RIGHT if same_shape else LEFT
    ids = None
    for f in range(40):
        xa, xb = 100 + 12 * f, 568 - 12 * f      # they cross at f = 19.5
        da, db = det(xa, noise=1.0, rng=rng), det(xb, 160, side=side_b, noise=1.0, rng=rng)
        order = [da, db] if rng.random() < 0.5 else [db, da]
        tracks = tr.update(order)
        got = {id(d): t.track_id for d, t in zip(order, tracks)}
        now = (got[id(da)], got[id(db)])
        ids = ids or now
        assert now == ids, f"frame {f}: ids {now} != {ids}"
    assert len({t.track_id for t in tr.tracks}) == 2


def test_crossing_with_occlusion_keeps_ids():
    """The hand behind is not detected for 3 frames while the two cross, then comes back."""
    tr = HandTracker(max_missed=5)
    for f in range(30):
        xa, xb = 100 + 12 * f, 460 - 12 * f      # cross at f = 15
        dets = [det(xa)] + ([] if 14 <= f <= 16 else [det(xb, 160, side=LEFT)])
        tracks = tr.update(dets)
        if f == 0:
            ia, ib = tracks[0].track_id, tracks[1].track_id
        assert tracks[0].track_id == ia
        if len(tracks) == 2:
            assert tracks[1].track_id == ib, f"frame {f}"


def test_assignment_is_optimal_not_greedy():
    """Detection 0 overlaps both tracks, detection 1 only the second: greedy IoU would give
    detection 0 the second track and start a new track for detection 1."""
    tr = HandTracker()
    t1, t2 = tr.update([det(100), det(190)])
    d0, d1 = det(150), det(215)                  # d0 nearer t2 than t1, d1 near t2 only
    iou = box_iou(np.stack([d0.bbox, d1.bbox]), np.stack([t1.bbox, t2.bbox]))
    assert iou[0, 1] > iou[0, 0] > 0.1 and iou[1, 1] > 0.1 and iou[1, 0] < 0.1
    a, b = tr.update([d0, d1])
    assert (a.track_id, b.track_id) == (t1.track_id, t2.track_id)


def test_keypoints_tell_apart_hands_whose_boxes_swap():
    """Two same-label hands of different shape (mirrored skeletons) 20 px apart swap their
    box positions: box IoU alone prefers the swap, the keypoints say each shape moved 20 px."""
    tr = HandTracker()
    a, b = tr.update([det(100), det(120, mirror=True)])
    b2, a2 = tr.update([det(100, mirror=True), det(120)])
    assert (a2, b2) == (a, b)


def test_side_label_breaks_a_tie():
    """Two same-shape hands at the same place, labelled right and left: the labels decide."""
    tr = HandTracker()
    r, l = tr.update([det(100, mirror=False), det(140, side=LEFT, mirror=False)])
    l2, r2 = tr.update([det(120, side=LEFT, mirror=False), det(120, mirror=False)])
    assert (r2, l2) == (r, l)


def test_recent_track_has_priority_over_stale_one():
    """Matching cascade: a track seen in the last frame gets its hand before a track missed
    for a few frames that the detection happens to be nearer (a stale false positive)."""
    tr = HandTracker(max_missed=5)
    a, stale = tr.update([det(100, score=0.9), det(150, score=0.6)])
    for _ in range(2):
        (a2,) = tr.update([det(100)])
    (a3,) = tr.update([det(127)])                # moved towards the stale track's place
    assert a3 is a and stale.missed == 3


@pytest.mark.parametrize("gap", [1, 3, 5, 6, 9])
def test_short_miss_keeps_id_long_miss_gets_new_one(gap):
    tr = HandTracker(max_missed=5)
    for x in range(100, 140, 8):
        (a,) = tr.update([det(x)])
    for _ in range(gap):
        assert tr.update([]) == []
    (b,) = tr.update([det(150)])                 # back where it would be
    if gap <= 5:
        assert b.track_id == a.track_id and b is a
    else:
        assert b.track_id > a.track_id


def test_gate_refuses_far_detection():
    tr = HandTracker()
    (a,) = tr.update([det(100)])
    (b,) = tr.update([det(500)])                 # a hand far away: not the same one
    assert b.track_id != a.track_id


def test_max_missed_zero_drops_at_first_miss():
    tr = HandTracker(max_missed=0)
    (a,) = tr.update([det(100)])
    tr.update([])
    (b,) = tr.update([det(100)])
    assert b.track_id != a.track_id


def test_ended_tracks_are_reported_once():
    """A dropped or forgotten track's id goes to ``take_ended`` once (the stages then drop
    its warm start and smoother); a track that only misses frames is not reported."""
    tr = HandTracker(max_missed=2)
    a, b = tr.update([det(100), det(400)])
    assert tr.take_ended() == []
    for _ in range(2):
        (b2,) = tr.update([det(400)])
        assert b2 is b and tr.take_ended() == []
    tr.update([det(400)])                        # a missed a third time: dropped
    assert tr.take_ended() == [a.track_id] and tr.take_ended() == []
    tr.reset()
    assert tr.take_ended() == [b.track_id]


# ------------------------------------------------------------------ sides
def test_side_label_noise_never_flips_a_track():
    """Isolated wrong labels (runs shorter than side_hysteresis) leave the side and the
    warm start alone (no end of the track's state is reported)."""
    rng = np.random.default_rng(5)
    tr = HandTracker(side_hysteresis=4)
    (t,) = tr.update([det(100)])
    assert tr.take_ended() == []
    run = 0
    for f in range(300):
        wrong = rng.random() < 0.3 and run < 3
        run = run + 1 if wrong else 0
        (t2,) = tr.update([det(100 + rng.normal(0, 2), side=LEFT if wrong else RIGHT, mirror=False)])
        assert t2 is t and t.side == RIGHT and tr.take_ended() == [], f"frame {f}"


def test_side_changes_after_hysteresis_frames_and_clears_state():
    """The side change ends the track's state (warm start, smoother) in the stages: its
    id is reported once, in the frame of the change."""
    tr = HandTracker(side_hysteresis=3)
    (t,) = tr.update([det(100)])
    assert tr.take_ended() == []
    for k in range(3):
        (t2,) = tr.update([det(100, side=LEFT, mirror=False)])
        assert t2 is t
        assert t.side == (LEFT if k == 2 else RIGHT)
        assert tr.take_ended() == ([t.track_id] if k == 2 else [])


def test_new_track_takes_first_side_with_hysteresis():
    """A new track starts with its first detection's side and needs the same number of
    agreeing frames as an old one to change it."""
    tr = HandTracker(side_hysteresis=5)
    (t,) = tr.update([det(100, side=LEFT, mirror=False)])
    assert t.side == LEFT
    for _ in range(4):
        tr.update([det(100)])
    assert t.side == LEFT
    tr.update([det(100)])
    assert t.side == RIGHT


def test_side_hysteresis_one_follows_the_detector():
    tr = HandTracker(side_hysteresis=1)
    (t,) = tr.update([det(100)])
    tr.update([det(100, side=LEFT, mirror=False)])
    assert t.side == LEFT


def test_detection_near_recently_lost_track_inherits_id_and_side():
    """A right hand lost for 2 frames reappears near where it was, mislabelled 'left': it
    keeps its id and its side (a new track would have taken the raw label)."""
    tr = HandTracker(max_missed=5, side_hysteresis=3)
    for x in range(100, 130, 6):
        (a,) = tr.update([det(x)])
    tr.update([])
    tr.update([])
    (b,) = tr.update([det(140, side=LEFT, mirror=False)])
    assert b is a and b.side == RIGHT


def test_invalid_arguments():
    with pytest.raises(ValueError, match="max_missed"):
        HandTracker(max_missed=-1)
    with pytest.raises(ValueError, match="side_hysteresis"):
        HandTracker(side_hysteresis=0)


# ------------------------------------------------------------------ primary track per side
def test_primary_is_the_oldest_track_kept_until_lost():
    tr = HandTracker(max_missed=2)
    (a,) = tr.update([det(100, score=0.6)])
    assert a.primary
    a2, b = tr.update([det(100, score=0.6), det(400, score=0.99)])   # a better-scoring right hand
    assert a2 is a and a.primary and not b.primary
    for _ in range(2):                                               # a missed: still primary
        (b2,) = tr.update([det(400)])
        assert b2 is b and not b.primary and a.primary
    (b2,) = tr.update([det(400)])                                    # a dropped: b takes over
    assert b.primary and a not in tr.tracks
    a3, b3 = tr.update([det(100), det(400)])                          # a hand back there: new track
    assert a3.track_id > b.track_id and not a3.primary and b3.primary


def test_without_primary_the_oldest_visible_track_takes_it():
    tr = HandTracker(max_missed=1)
    a, b, c = tr.update([det(100, score=0.9), det(300, score=0.8), det(500, score=0.7)])
    assert [t.primary for t in (a, b, c)] == [True, False, False]   # first = best score = oldest
    for _ in range(2):
        tr.update([det(500, score=0.99), det(300, score=0.5)])      # a dropped
    assert b.primary and not c.primary                                # b is older than c


def test_primary_per_side_and_on_side_change():
    tr = HandTracker(side_hysteresis=2)
    r, l = tr.update([det(100), det(400, side=LEFT)])
    assert r.primary and l.primary                                   # one per side
    r2, l2 = tr.update([det(100), det(400, side=RIGHT, mirror=True)])
    r2, l2 = tr.update([det(100), det(400, side=RIGHT, mirror=True)])
    assert l.side == RIGHT and r.primary and not l.primary           # the older right track keeps it
    assert all(not t.primary for t in tr.tracks if t.side == LEFT)


def test_reset_forgets_tracks_and_primaries():
    tr = HandTracker()
    (a,) = tr.update([det(100)])
    tr.reset()
    (b,) = tr.update([det(100)])
    assert b.track_id > a.track_id and b.primary and tr.tracks == [b]


def test_a_camera_twice_in_a_batch_keeps_each_frames_side():
    """``Association``, one camera twice in a batch (its second image tracked from its first,
    as ``process_batch`` allows): the second frame turns the track's side (side_hysteresis
    1), the first frame's hand keeps the side it had."""
    from hand_mesh_ros.core.association import Association
    from hand_mesh_ros.core.records import Frame
    from hand_mesh_ros.core.types import CameraIntrinsics

    a = Association(max_hands=2, track_max_missed=5, side_hysteresis=1, nms_iou=0.5, nms_keypoint_distance=0.1,
                    static_image_mode=False)
    img, intr = np.zeros((300, 400, 3), np.uint8), CameraIntrinsics.assumed_for(400, 300)
    frames = [Frame(0, img, intr, "cam", 1.0, None, [det(200, side=RIGHT)]),
              Frame(1, img, intr, "cam", 1.1, None, [det(200, side=LEFT, mirror=False)])]
    hands, _ = a.associate(frames)
    assert [h.key for h in hands] == [("cam", 1), ("cam", 1)]
    assert [h.side for h in hands] == [RIGHT, LEFT]
