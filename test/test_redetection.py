"""A duplicate that fills the detector's slots in tracking mode: re-detection from palms.

In tracking mode the pipeline asks the detector for ``max_hands`` exactly (one more would
make MediaPipe run its palm detector on every frame while two hands are tracked). When a
duplicate of one hand takes a slot, the other hand is missing from the detector's output
(and a tracking detector keeps tracking the duplicate instead of searching); the pipeline
then resets that camera's detector tracking and detects the same image again.

* Real networks (mediapipe_torch, two real hands side by side): a duplicate ROI injected
  into the detector's tracking state pushes the second hand out of the detector's output
  (the control); through the pipeline both hands are published, with one re-detection, and
  the next frame needs none.
* MediaPipe's CPU graph: a reset keeps the graph object (no 0.5 s rebuild) and the next
  image is searched from palm detection: both hands found.
* The conditions, on real detections replayed: re-detection only when the slots were full
  and a duplicate took one; never in static-image mode (one slot more is asked there).
"""
from dataclasses import replace

import numpy as np
import pytest

from hand_mesh_ros.core import pipeline as pipeline_mod
from hand_mesh_ros.core.detectors.mediapipe_torch.roi import iou
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.tracking import suppress_duplicates
from hand_mesh_ros.core.types import LEFT, RIGHT, Detection
from hand_mesh_ros.frames import FrameSource

VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"
#: columns of the video holding the hand
CROP = (60, 420)


def _two_hands(img):
    """A crop around the hand beside its mirror image: a left and a right hand, 720x360."""
    c = img[:, CROP[0]:CROP[1]]
    return np.ascontiguousarray(np.hstack([c[:, ::-1], c]))


@pytest.fixture(scope="module")
def frames(hands_data):
    return [_two_hands(f.image) for f in FrameSource(str(hands_data / VIDEO), 60)]


def _inject_duplicate(detector, camera, shift):
    """Replace ``camera``'s tracked ROIs by its first ROI and a copy shifted by ``shift``
    (fractions of its size): IoU under MediaPipe's 0.5, so both are tracked."""
    state = detector._cameras[camera]
    roi = state.rois[0]
    dup = replace(roi, x_center=roi.x_center + shift[0] * roi.width, y_center=roi.y_center + shift[1] * roi.height)
    assert iou(roi, dup) <= 0.5
    state.rois = [roi, dup]


@pytest.mark.parametrize("shift", [(0.35, 0.0), (0.3, 0.2)])
def test_duplicate_roi_pushes_a_hand_out_and_the_pipeline_detects_again(frames, shift):
    from hand_mesh_ros.core.detectors.mediapipe_torch import MediaPipeTorchHandDetector

    # control: the detector alone, tracking a duplicate, loses the second hand
    det = MediaPipeTorchHandDetector(max_hands=2)
    assert sorted(d.side for d in det.detect(frames[40], "c")) == [LEFT, RIGHT]
    _inject_duplicate(det, "c", shift)
    raw = det.detect(frames[41], "c")
    assert len(raw) == 2 and len(suppress_duplicates(raw)) == 1, "no duplicate: the test would prove nothing"

    pipe = HandMeshPipeline(PipelineConfig(detector="mediapipe_torch", max_hands=2))
    try:
        assert pipe.detector_max_hands == 2
        assert sorted(h.side for h in pipe.process(frames[40], None, camera="c").hands) == [LEFT, RIGHT]
        _inject_duplicate(pipe.detector, "c", shift)
        hands = pipe.process(frames[41], None, camera="c").hands
        assert sorted(h.side for h in hands) == [LEFT, RIGHT]
        left, right = sorted(hands, key=lambda h: h.bbox[0])
        assert left.bbox[2] < 360 <= right.bbox[0], "one hand on each half of the image"
        assert pipe.redetections == 1
        for img in frames[42:46]:
            assert len(pipe.process(img, None, camera="c").hands) == 2
        assert pipe.redetections == 1, "the duplicate was tracked on"
    finally:
        pipe.close()


def test_mediapipe_graph_reset_is_cheap_and_searches_again(frames):
    """PerCameraDetector.reset keeps MediaPipe's graph (``Hands.reset``), and after it the
    next image still gives both hands."""
    pipe = HandMeshPipeline(PipelineConfig(detector="mediapipe", max_hands=2))
    try:
        det = pipe.detector
        assert len(det.detect(frames[10], "c")) == 2
        graph = det._by_camera["c"]
        det.reset("c")
        assert det._by_camera["c"] is graph
        assert sorted(d.side for d in det.detect(frames[11], "c")) == [LEFT, RIGHT]
    finally:
        pipe.close()


@pytest.fixture(scope="module")
def real_detections(frames):
    """MediaPipe's right and left hand in one real frame, and a copy of the right hand
    scoring above the left (a duplicate, 3 px off)."""
    pipe = HandMeshPipeline(PipelineConfig(max_hands=2, static_image_mode=True))
    try:
        dets = pipe.detector.detect(frames[40], camera="probe")
    finally:
        pipe.close()
    right = next(d for d in dets if d.side == RIGHT)
    left = next(d for d in dets if d.side == LEFT)
    copy = Detection(side=RIGHT, score=min(1.0, left.score + 0.02), bbox=right.bbox + 3,
                     keypoints_2d=right.keypoints_2d + 3, keypoints_3d=right.keypoints_3d)
    return right, left, copy


class Replay:
    """A detector that replays scripted detections: ``script[n]`` on the n-th call after
    the last reset (the last entry repeated); records what it was asked."""

    def __init__(self, script, **kwargs):
        self.script, self.kwargs, self.calls, self.resets = script, kwargs, 0, []

    def detect_batch(self, items):
        out = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        return [sorted(out, key=lambda d: -d.score) for _ in items]

    def reset(self, camera=None):
        self.resets.append(camera)
        self.calls = 0
        self.script = self.script[-1:]

    def close(self):
        pass


def _pipe(monkeypatch, script, **config):
    made = []
    monkeypatch.setattr(pipeline_mod, "create_detector",
                        lambda name, **kw: made.append(Replay(script, **kw)) or made[-1])
    return HandMeshPipeline(PipelineConfig(**config)), made


def test_full_slots_with_a_duplicate_are_detected_again(frames, real_detections, monkeypatch):
    right, left, copy = real_detections
    pipe, (det,) = _pipe(monkeypatch, [[right, copy], [right, left]], max_hands=2)
    try:
        assert det.kwargs["max_hands"] == 2
        hands = pipe.process(frames[40], None, camera="cam").hands
        assert sorted(h.side for h in hands) == [LEFT, RIGHT]
        assert det.resets == ["cam"] and pipe.redetections == 1
        pipe.process(frames[40], None, camera="cam")
        assert pipe.redetections == 1
    finally:
        pipe.close()


@pytest.mark.parametrize("case", ["free slot", "no duplicate", "static"])
def test_no_redetection_when_no_hand_can_have_been_pushed_out(frames, real_detections, monkeypatch, case):
    right, left, copy = real_detections
    script, config, published = {
        "free slot": ([[right, copy]], dict(max_hands=3), 1),     # a slot was free: nothing pushed out
        "no duplicate": ([[right, left]], dict(max_hands=2), 2),
        "static": ([[right, copy, left]], dict(max_hands=2, static_image_mode=True), 2),
    }[case]
    pipe, (det,) = _pipe(monkeypatch, script, **config)
    try:
        assert det.kwargs["max_hands"] == config["max_hands"] + (1 if case == "static" else 0)
        assert len(pipe.process(frames[40], None, camera="cam").hands) == published
        assert det.resets == [] and pipe.redetections == 0
    finally:
        pipe.close()
