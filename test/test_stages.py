"""The pipeline's typed stages: ``ManoParams`` (the one place that knows the 58-vector's
layout) and the per-track state the stages keep (the fit's warm starts, the smoothers),
keyed by (camera, track id): kept through short misses, dropped when the track ends or is
forgotten, started again on a side change. Real MediaPipe detections of a real hand (and
of its mirror image, a real left hand) are replayed through the real pipeline."""
from dataclasses import replace

import numpy as np
import pytest

from hand_mesh_ros.core import pipeline as pipeline_mod
from hand_mesh_ros.core.mano_params import ManoParams
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.types import LEFT, RIGHT
from hand_mesh_ros.frames import FrameSource

VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"
FPS = 25.0


# ------------------------------------------------------------------ ManoParams
def test_mano_params_vector_layout_and_round_trips():
    rng = np.random.default_rng(3)
    go, hp, betas, transl = rng.normal(size=(4, 3)), rng.normal(size=(4, 45)), rng.normal(size=(4, 10)), \
        rng.normal(size=(4, 3))
    p = ManoParams(go, hp, betas, transl)
    v = p.to_vector()
    assert v.shape == (4, 58) and ManoParams.SIZE == 58
    # the documented order: global_orient, hand_pose (joints 1..15), betas
    np.testing.assert_array_equal(v, np.hstack([go, hp, betas]))
    back = ManoParams.from_vector(v, transl)
    for a, b in ((back.global_orient, go), (back.hand_pose, hp), (back.betas, betas), (back.transl, transl)):
        np.testing.assert_array_equal(a, b)
    rot = p.rotvecs()
    assert rot.shape == (4, 16, 3)
    np.testing.assert_array_equal(rot[:, 0], go)
    np.testing.assert_array_equal(rot[:, 5], hp[:, 12:15])   # joint 5 of MANO = hand_pose's 5th triple
    again = ManoParams.from_rotvecs(rot, betas, transl)
    np.testing.assert_array_equal(again.to_vector(), v)
    one = p[2]
    np.testing.assert_array_equal(one.to_vector(), v[2])
    np.testing.assert_array_equal(ManoParams.stack([p[k] for k in range(4)]).to_vector(), v)
    assert ManoParams(go[0], hp[0], betas[0]).transl.tolist() == [0.0, 0.0, 0.0]
    assert p.astype(np.float32).betas.dtype == np.float32
    with pytest.raises(ValueError, match="58"):
        ManoParams.from_vector(np.zeros(57))
    with pytest.raises(ValueError, match="16, 3"):
        ManoParams.from_rotvecs(np.zeros((15, 3)), np.zeros(10))


# ------------------------------------------------------------------ per-track state
@pytest.fixture(scope="module")
def real_hands(hands_data):
    """A frame of the video; MediaPipe's right hand in it; the left hand of its mirror
    image, moved onto the right hand's place (so it continues the same track)."""
    img = next(iter(FrameSource(str(hands_data / VIDEO), 1))).image
    pipe = HandMeshPipeline(PipelineConfig(static_image_mode=True, max_hands=1))
    try:
        (right,) = pipe.detector.detect(img, camera="right")
        (left,) = pipe.detector.detect(np.ascontiguousarray(img[:, ::-1]), camera="left")
    finally:
        pipe.close()
    assert (right.side, left.side) == (RIGHT, LEFT)
    shift = ((right.bbox[:2] + right.bbox[2:]) - (left.bbox[:2] + left.bbox[2:])) / 2
    left = replace(left, bbox=left.bbox + np.tile(shift, 2), keypoints_2d=left.keypoints_2d + shift)
    return img, right, left


class Scripted:
    """A detector replaying detections: item k of a batch gets ``script[k]`` (the last
    entry for the items after it)."""

    def __init__(self):
        self.script = [[]]

    def detect_batch(self, items):
        return [list(self.script[min(k, len(self.script) - 1)]) for k in range(len(items))]

    def reset(self, camera=None):
        pass

    def close(self):
        pass


def _pipe(monkeypatch, **config):
    det = Scripted()
    monkeypatch.setattr(pipeline_mod, "create_detector", lambda name, **kw: det)
    return HandMeshPipeline(PipelineConfig(smoothing="one_euro", **config)), det


def _state(pipe):
    return set(pipe.regressor.warm_starts), set(pipe.smoothing.smoothers)


def test_track_state_lives_as_long_as_the_track(real_hands, monkeypatch):
    img, right, _ = real_hands
    pipe, det = _pipe(monkeypatch, track_max_missed=3)
    det.script = [[right]]
    stamp = iter(np.arange(100) / FPS)
    (hand,) = pipe.process(img, None, camera="c", stamp=next(stamp)).hands
    (again,) = pipe.process(img, None, camera="c", stamp=next(stamp)).hands
    key = ("c", hand.track_id)
    assert again.track_id == hand.track_id and _state(pipe) == ({key}, {key})
    det.script = [[]]
    for _ in range(3):   # missed, not yet ended: the state waits for the hand
        assert pipe.process(img, None, camera="c", stamp=next(stamp)).hands == []
        assert _state(pipe) == ({key}, {key})
    pipe.process(img, None, camera="c", stamp=next(stamp))   # missed once too often: ended
    assert _state(pipe) == (set(), set())
    det.script = [[right]]
    (new,) = pipe.process(img, None, camera="c", stamp=next(stamp)).hands
    assert new.track_id != hand.track_id and _state(pipe) == ({("c", new.track_id)},) * 2
    pipe.reset("other")
    assert _state(pipe) == ({("c", new.track_id)},) * 2
    pipe.reset("c")
    assert _state(pipe) == (set(), set())


def test_a_track_ending_later_in_the_same_batch_leaves_no_state(real_hands, monkeypatch):
    """One camera twice in a batch: its track, regressed in the first image, is dropped in
    the second (track_max_missed 0); nothing of it stays behind."""
    img, right, _ = real_hands
    pipe, det = _pipe(monkeypatch, track_max_missed=0)
    det.script = [[right], []]
    first, second = pipe.process_batch([(img, None, "c", 0.0), (img, None, "c", 0.04)])
    assert len(first.hands) == 1 and second.hands == []
    assert _state(pipe) == (set(), set())


def test_a_side_change_starts_the_tracks_state_again(real_hands, monkeypatch):
    """The track turns left (hysteresis 1): its warm start and smoother start again, so its
    hand is exactly the one a fresh pipeline publishes for that detection."""
    img, right, left = real_hands
    pipe, det = _pipe(monkeypatch, side_hysteresis=1)
    det.script = [[right]]
    for i in range(3):
        (hand,) = pipe.process(img, None, camera="c", stamp=i / FPS).hands
    key = ("c", hand.track_id)
    warm_right, smoother = pipe.regressor.warm_starts[key].copy(), pipe.smoothing.smoothers[key]
    det.script = [[left]]
    (turned,) = pipe.process(img, None, camera="c", stamp=3 / FPS).hands
    assert (turned.side, turned.track_id) == (LEFT, hand.track_id)
    assert pipe.smoothing.smoothers[key] is not smoother

    fresh, fresh_det = _pipe(monkeypatch, side_hysteresis=1)
    fresh_det.script = [[left]]
    (want,) = fresh.process(img, None, camera="c", stamp=3 / FPS).hands
    np.testing.assert_array_equal(pipe.regressor.warm_starts[key], fresh.regressor.warm_starts[("c", want.track_id)])
    for name in ("global_orient", "hand_pose", "betas", "transl", "joints", "vertices"):
        np.testing.assert_array_equal(getattr(turned, name), getattr(want, name), err_msg=name)
    # control: had the right hand's warm start been kept, the left hand would differ
    stale, stale_det = _pipe(monkeypatch, side_hysteresis=1)
    stale_det.script = [[left]]
    stale.regressor.warm_starts[("c", 1)] = warm_right
    (kept,) = stale.process(img, None, camera="c", stamp=3 / FPS).hands
    assert kept.track_id == 1 and np.abs(kept.hand_pose - want.hand_pose).max() > 0.05  # rad; 0.29 measured
