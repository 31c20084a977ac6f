"""Tracking and smoothing on real video (../shared/data/hands), every frame, tracking mode.

* hand_landmarker_test_video.mp4 (one real right hand, 202 frames): one hand per frame (no
  duplicate), one track id, never a side flip, TF ``hand_right`` on every frame; with
  One Euro smoothing the published joints jitter less and stay near the unsmoothed ones.
* The same video stacked over its mirror image (a right hand above a left hand): MediaPipe,
  asked for three hands, reports duplicates; the pipeline publishes none, two ids, the
  right hand as ``hand_right`` and the left as ``hand_left`` throughout; asked for two (as
  the pipeline asks with max_hands 2) it finds both hands in every frame.
* A duplicate that scores higher than the real other hand does not push it out (static
  mode; tracking mode: test_redetection.py).
* The tracker's answers on those real detections do not hinge on rounding: the same with
  the keypoints and boxes perturbed by 0.5 px noise under 10 seeds.
"""
import numpy as np
import pytest
import torch

from hand_mesh_ros.core import pipeline as pipeline_mod
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.smoothing import joint_accelerations
from hand_mesh_ros.core.tracking import HandTracker, box_iou, suppress_duplicates
from hand_mesh_ros.core.types import LEFT, RIGHT, CameraIntrinsics, Detection
from hand_mesh_ros.frames import FrameSource
from hand_mesh_ros.ros.messages import hand_frame_prefixes

VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"
FPS = 25.0
K = CameraIntrinsics(520.0, 540.0, 318.0, 182.0, 640, 360)


@pytest.fixture(scope="module")
def frames(hands_data):
    return [f.image for f in FrameSource(str(hands_data / VIDEO), None)]


@pytest.fixture(scope="module")
def video_runs(frames):
    """The video through two pipelines, frame by frame: smoothing off and on (defaults)."""
    pipes = {s: HandMeshPipeline(PipelineConfig(smoothing=s)) for s in ("none", "one_euro")}
    out = {s: [] for s in pipes}
    try:
        for i, img in enumerate(frames):
            for s, p in pipes.items():
                out[s].append(p.process(img, K, camera="video", stamp=i / FPS).hands)
    finally:
        for p in pipes.values():
            p.close()
    return out, pipes["one_euro"].hand_model


@pytest.mark.parametrize("smoothing", ["none", "one_euro"])
def test_video_one_hand_one_id_no_side_flip(video_runs, smoothing):
    runs, _ = video_runs
    hands = runs[smoothing]
    assert len(hands) == 202
    counts = [len(h) for h in hands]
    assert counts == [1] * 202, f"frames with != 1 hand: {[i for i, c in enumerate(counts) if c != 1]}"
    assert {h[0].track_id for h in hands} == {1}
    assert [h[0].side for h in hands] == [RIGHT] * 202
    assert all(hand_frame_prefixes(h) == ["hand_right"] for h in hands)


def test_video_smoothing_reduces_jitter(video_runs):
    runs, model = video_runs
    raw = np.array([h[0].joints for h in runs["none"]], np.float64)
    smooth = np.array([h[0].joints for h in runs["one_euro"]], np.float64)
    jitter_raw, jitter_smooth = joint_accelerations(raw).mean(), joint_accelerations(smooth).mean()
    offset_mm = 1e3 * np.linalg.norm(smooth - raw, axis=-1).mean()
    print(f"jitter {jitter_raw:.2f} -> {jitter_smooth:.2f} mm/frame^2, mean offset {offset_mm:.2f} mm")
    assert jitter_smooth < 0.6 * jitter_raw
    assert offset_mm < 10.0
    # published joints and vertices are the hand model's on the published (filtered) parameters
    for hand in (runs["one_euro"][60][0], runs["one_euro"][150][0]):
        p = [torch.as_tensor(a[None]) for a in (hand.global_orient, hand.hand_pose, hand.betas)]
        with torch.no_grad():
            o = model(*p, torch.tensor([True]))
        np.testing.assert_allclose(hand.joints, o.joints[0].numpy() + hand.transl, atol=1e-5)
        np.testing.assert_allclose(hand.vertices, o.vertices[0].numpy() + hand.transl, atol=1e-5)


def _stacked(img):
    """The frame over its mirror image: a right hand above a left hand, 640x720."""
    return np.ascontiguousarray(np.concatenate([img, img[:, ::-1]], axis=0))


@pytest.mark.parametrize("max_hands", [2, 3])
def test_two_hands_duplicates_removed_names_stable(frames, max_hands):
    """Frames 0-59 (MediaPipe, asked for 3 hands, gives duplicates in frames 5-11; it calls
    the left hand 'right' in frames 17-23): two hands in every frame, never a duplicate,
    the sides right and the names stable. With max_hands 3 the duplicates fit within
    max_hands (only de-duplication removes them); with max_hands 2 the detector is asked
    for 2 (tracking mode) and gives both hands without a duplicate or a re-detection.
    Tiling off: these 640x720 frames would get tiles, and a tiled search merges duplicates
    itself (test_detection_tiling); here the pipeline's own de-duplication is under test."""
    pipe = HandMeshPipeline(PipelineConfig(max_hands=max_hands, detection_tiling="off"))
    raw_counts = []
    try:
        assert pipe.detector_max_hands == max_hands
        det = pipe.detector
        detect_batch = det.detect_batch

        def counting(items):
            out = detect_batch(items)
            raw_counts.extend(len(d) for d in out)
            return out

        det.detect_batch = counting
        ids, results = set(), []
        for i, img in enumerate(frames[:60]):
            hands = pipe.process(_stacked(img), None, camera="stack", stamp=i / FPS).hands
            results.append(hands)
    finally:
        pipe.close()
    if max_hands == 3:
        assert max(raw_counts) > 2, "the detector gave no duplicate: the test would prove nothing"
    else:
        assert raw_counts == [2] * 60 and pipe.redetections == 0
    for i, hands in enumerate(results):
        assert len(hands) == 2, f"frame {i}: {len(hands)} hands"
        assert box_iou(hands[0].bbox[None], hands[1].bbox[None])[0, 0] < 0.1
        top, bottom = sorted(hands, key=lambda h: h.bbox[1])
        assert (top.side, bottom.side) == (RIGHT, LEFT), f"frame {i}"
        names = dict(zip(hand_frame_prefixes([top, bottom]), (top, bottom)))
        assert set(names) == {"hand_right", "hand_left"}, f"frame {i}"
        ids.add((top.track_id, bottom.track_id))
    assert len(ids) == 1, ids


def test_duplicate_does_not_push_out_the_other_hand(frames, monkeypatch):
    """A detector reporting the right hand twice, the copy scoring above the real left hand:
    with max_hands 2 the pipeline publishes the right and the left hand (de-duplication
    before the max_hands cut), and it asked the detector for 3 hands."""
    pipe = HandMeshPipeline(PipelineConfig(max_hands=2, static_image_mode=True))
    real = pipe.detector.detect(_stacked(frames[40]), camera="probe")
    pipe.close()
    assert sorted(d.side for d in real) == [LEFT, RIGHT]
    right = next(d for d in real if d.side == RIGHT)
    left = next(d for d in real if d.side == LEFT)
    copy = Detection(side=RIGHT, score=min(1.0, left.score + 0.02), bbox=right.bbox + 3,
                     keypoints_2d=right.keypoints_2d + 3, keypoints_3d=right.keypoints_3d)
    asked = {}

    class Replay:
        def __init__(self, **kwargs):
            asked.update(kwargs)

        def detect_batch(self, items):
            return [sorted([right, copy, left], key=lambda d: -d.score) for _ in items]

        def close(self):
            pass

    monkeypatch.setattr(pipeline_mod, "create_detector", lambda name, **kw: Replay(**kw))
    pipe = HandMeshPipeline(PipelineConfig(max_hands=2, static_image_mode=True))
    try:
        hands = pipe.process(_stacked(frames[40]), None).hands
    finally:
        pipe.close()
    assert asked["max_hands"] == 3
    assert sorted(h.side for h in hands) == [LEFT, RIGHT]
    assert sorted(hand_frame_prefixes(hands)) == ["hand_left", "hand_right"]


def test_tracking_decisions_survive_perturbed_detections(frames):
    """MediaPipe's detections of the stacked video (duplicates in frames 5-11, the left hand
    labelled 'right' in frames 17-23), perturbed by 0.5 px Gaussian noise under 10 seeds,
    de-duplicated and tracked as in the pipeline: every seed gives two hands per frame, the
    same two ids, the right hand on top as the primary right track, the left as primary left."""
    pipe = HandMeshPipeline(PipelineConfig(max_hands=2))
    try:
        recorded = [pipe.detector.detect(_stacked(img), camera="stack") for img in frames[:60]]
    finally:
        pipe.close()
    c = PipelineConfig()
    for seed in range(10):
        rng = np.random.default_rng(seed)
        tracker = HandTracker(c.track_max_missed, c.side_hysteresis)
        ids = set()
        for i, dets in enumerate(recorded):
            noisy = []
            for d in dets:
                kp = d.keypoints_2d + rng.normal(0, 0.5, d.keypoints_2d.shape).astype(np.float32)
                noisy.append(Detection(d.side, d.score, d.bbox + rng.normal(0, 0.5, 4).astype(np.float32), kp,
                                       d.keypoints_3d))
            kept = suppress_duplicates(noisy, c.nms_iou, c.nms_keypoint_distance)[: 2]
            tracks = tracker.update(kept)
            assert len(tracks) == 2, f"seed {seed} frame {i}"
            top, bottom = (t for _, t in sorted(zip([d.bbox[1] for d in kept], tracks), key=lambda x: x[0]))
            assert (top.side, bottom.side, top.primary, bottom.primary) == (RIGHT, LEFT, True, True), \
                f"seed {seed} frame {i}"
            ids.add((top.track_id, bottom.track_id))
        assert len(ids) == 1, f"seed {seed}: {ids}"
