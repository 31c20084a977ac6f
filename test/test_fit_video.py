"""The fit on every frame of a real video, with given and with assumed intrinsics, and with
its 2D input perturbed (issue: a warm-started fit that got stuck in a wrong minimum on
another CPU's rounding).

Figures per frame, as a user checks a result:

* reprojection: median distance between the published joints projected with the
  intrinsics and the detector's 2D keypoints, as a share of the hand box diagonal;
* 3D RMS: distance between the published joints and the detector's metric world keypoints
  after the best rigid alignment (Kabsch): the world keypoints have their own origin and,
  for a hand away from the image centre, their own axes.

Bounds (every frame, all runs): video median of the reprojection <= 2 %, worst frame
<= 4 %, 3D RMS <= 8 mm; measured on this project's machines: 1.1 % / 3.4 % / 7.0 mm.
"""
import numpy as np
import pytest

from conftest import HANDS_DATA, require
from hand_mesh_ros.core.camera import project
from hand_mesh_ros.core.detectors import create_detector
from hand_mesh_ros.core.fit import ManoFitter, _kabsch
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.types import RIGHT, CameraIntrinsics
from hand_mesh_ros.frames import FrameSource

VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"
GIVEN = CameraIntrinsics(520.0, 540.0, 318.0, 182.0, 640, 360)    # fx != fy on purpose
ASSUMED = CameraIntrinsics.assumed_for(640, 360)
MAX_MEDIAN, MAX_WORST, MAX_RMS = 0.02, 0.04, 0.008


@pytest.fixture(scope="module")
def frames():
    out = [f.image for f in FrameSource(require(HANDS_DATA) / VIDEO)]
    assert len(out) == 202
    return out


@pytest.fixture(scope="module")
def detections(frames):
    """MediaPipe (tracking mode) on every frame: one right hand each."""
    det = create_detector("mediapipe", max_hands=2, min_score=0.5, mirrored=False, static_image_mode=False)
    out = [det.detect(f) for f in frames]
    det.close()
    assert all(len(d) == 1 and d[0].side == RIGHT for d in out)
    return [d[0] for d in out]


def figures(joints, det, K):
    """(reprojection share of the box diagonal, rigid 3D RMS [m]) of one published hand."""
    diag = float(np.hypot(*(det.bbox[2:] - det.bbox[:2])))
    reproj = float(np.median(np.linalg.norm(project(joints, K) - det.keypoints_2d, axis=1))) / diag
    J, W = np.asarray(joints, np.float64), np.asarray(det.keypoints_3d, np.float64)
    R = _kabsch(W[None], J[None])[0]
    aligned = (W - W.mean(0)) @ R.T + J.mean(0)
    return reproj, float(np.sqrt(((aligned - J) ** 2).sum(1).mean()))


def check(name, rows):
    rows = np.asarray(rows)
    median, worst, rms = np.median(rows[:, 0]), rows[:, 0].max(), rows[:, 1].max()
    print(f"{name}: reprojection median {100 * median:.2f} %, worst frame {100 * worst:.2f} %, "
          f"3D RMS worst {1000 * rms:.2f} mm over {len(rows)} frames")
    assert median <= MAX_MEDIAN and worst <= MAX_WORST and rms <= MAX_RMS, name
    return median, worst, rms


@pytest.mark.parametrize("K", [GIVEN, ASSUMED], ids=["given", "assumed"])
def test_pipeline_every_frame(frames, detections, K):
    """The whole pipeline (MediaPipe, tracking, warm-started fit, placement) on all 202
    frames; the published fit residual agrees and no fit is poor."""
    pipe = HandMeshPipeline(PipelineConfig(static_image_mode=False, max_hands=2))
    rows = []
    for i, rgb in enumerate(frames):
        res = pipe.process(rgb, None if K.assumed else K, camera="video", stamp=i / 25.0)
        assert len(res.hands) == 1, f"frame {i}"
        hand = res.hands[0]
        rows.append(figures(hand.joints, detections[i], K))
        assert hand.fit_error <= MAX_RMS, f"frame {i}: fit_error {hand.fit_error}"
        diag = np.hypot(*(hand.bbox[2:] - hand.bbox[:2]))
        assert hand.reprojection_error <= MAX_WORST * diag, f"frame {i}"
    assert pipe.skipped.get("fit_poor", 0) == 0
    pipe.close()
    check(f"pipeline, {'assumed' if K.assumed else 'given'} intrinsics", rows)


def _fit_video(detections, K, noise, seed):
    """The fit as the pipeline runs it on a track (warm start = the previous frame's
    result unless it was poor), the 2D keypoints moved by uniform noise in [-noise, noise] px."""
    fitter = ManoFitter(_fit_video.model)
    rng = np.random.default_rng(seed)
    intr = np.array([[K.fx, K.fy, K.cx, K.cy]])
    init, rows = None, []
    for det in detections:
        uv = det.keypoints_2d.astype(np.float64) + rng.uniform(-noise, noise, (21, 2))
        res = fitter.fit(det.keypoints_3d[None], np.array([True]), init=init, keypoints_2d=uv[None], intrinsics=intr)
        init = None if res.poor[0] else res.params.to_vector()
        rows.append(figures(res.joints[0] + res.offset[0], det, K))
    return rows


@pytest.mark.parametrize("K", [GIVEN, ASSUMED], ids=["given", "assumed"])
def test_fit_does_not_hinge_on_rounding(detections, K):
    """±0.01 px on the 2D keypoints (far more than float32 rounding at 640 px), 10 seeds:
    every run stays within the bounds, and its worst frame moves by < 0.2 % / 0.5 mm."""
    from hand_mesh_ros.core.hand_model import load_hand_model

    _fit_video.model = load_hand_model(None)
    name = "assumed" if K.assumed else "given"
    ref = check(f"fit, {name}, no noise", _fit_video(detections, K, 0.0, 0))
    for seed in range(10):
        got = check(f"fit, {name}, ±0.01 px seed {seed}", _fit_video(detections, K, 0.01, seed))
        assert abs(got[1] - ref[1]) < 0.002 and abs(got[2] - ref[2]) < 0.0005
