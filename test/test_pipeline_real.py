"""The whole CPU pipeline (MediaPipe + MANO fit + placement) on real hand images.

Data: ../shared/data/hands (licenses in its README). The checks are what a user relies on:
the right number of hands, the true side (not MediaPipe's mirrored label), the mesh lying
where the hand is in the image, in front of the camera, at a hand's size.
"""
import cv2
import numpy as np
import pytest

from hand_mesh_ros.core.camera import project
from hand_mesh_ros.frames import FrameSource
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.types import LEFT, RIGHT, TRANSLATION_ASSUMED, TRANSLATION_INTRINSICS, CameraIntrinsics

VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"


def _rgb(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def video_frames(path):
    """(index, RGB frame) of every frame of a video (``frames.FrameSource``)."""
    return [(f.index, f.image) for f in FrameSource(path)]


def check_hand(name, hand, intr, max_reproj=0.04):
    """Published joints project onto the detector's 2D keypoints; metric sanity."""
    uv = project(hand.joints, intr)
    diag = float(np.hypot(*(hand.bbox[2:] - hand.bbox[:2])))
    err = np.linalg.norm(uv - hand.keypoints_2d, axis=1)
    med = float(np.median(err))
    palm = float(np.linalg.norm(hand.joints[9] - hand.joints[0]))
    print(f"{name}: side={'right' if hand.side == RIGHT else 'left'} reprojection median "
          f"{med:.1f} px = {100 * med / diag:.2f}% of box diagonal {diag:.0f} px; "
          f"wrist z={hand.joints[0, 2]:.2f} m; wrist->middle MCP {100 * palm:.1f} cm")
    assert med < max_reproj * diag
    assert (hand.vertices[:, 2] > 0).all() and (hand.joints[:, 2] > 0).all()
    assert 0.06 <= palm <= 0.12
    assert np.isfinite(hand.vertices).all()
    # the mesh covers the hand in the image: its projected centre lies inside the box
    c = project(hand.vertices, intr).mean(0)
    assert hand.bbox[0] <= c[0] <= hand.bbox[2] and hand.bbox[1] <= c[1] <= hand.bbox[3]


@pytest.fixture(scope="module")
def static_pipe():
    pipe = HandMeshPipeline(PipelineConfig(static_image_mode=True, max_hands=2))
    yield pipe
    pipe.close()


@pytest.mark.parametrize("rel", ["mediapipe_samples/thumbs-up.png",
                                 "mediapipe_samples/hand_landmarker_test_image.jpg"])
def test_single_right_hand_images(static_pipe, hands_data, rel):
    img = _rgb(hands_data / rel)
    res = static_pipe.process(img, None)
    assert len(res.hands) == 1, f"{rel}: {len(res.hands)} hands"
    hand = res.hands[0]
    assert hand.side == RIGHT
    assert hand.translation_source == TRANSLATION_ASSUMED and res.intrinsics.assumed
    check_hand(rel, hand, res.intrinsics)


def test_both_hands_over_face(static_pipe, hands_data):
    """test5.jpg: a woman facing the camera covers her face with both hands. Her right hand
    is on the image's left, so a left/right mix-up (MediaPipe's selfie labels) fails."""
    img = _rgb(hands_data / "hamer_example_data/test5.jpg")
    h, w = img.shape[:2]
    K = CameraIntrinsics(1400.0, 1400.0, w / 2, h / 2, w, h)
    res = static_pipe.process(img, K)
    assert sorted(hd.side for hd in res.hands) == [LEFT, RIGHT]
    right = next(hd for hd in res.hands if hd.side == RIGHT)
    left = next(hd for hd in res.hands if hd.side == LEFT)
    assert right.keypoints_2d[0, 0] < left.keypoints_2d[0, 0]
    assert right.joints[0, 0] < left.joints[0, 0]           # also in 3D (x right)
    for hd in res.hands:
        assert hd.translation_source == TRANSLATION_INTRINSICS
        check_hand(f"test5 {hd.side}", hd, K)


def test_video_right_hand_tracked(hands_data):
    """A real right hand (not mirrored) in every sampled frame, one stable track id."""
    pipe = HandMeshPipeline(PipelineConfig(static_image_mode=False, max_hands=2))
    K = CameraIntrinsics(520.0, 540.0, 318.0, 182.0, 640, 360)   # fx != fy on purpose
    ids, n = set(), 0
    for i, rgb in video_frames(hands_data / VIDEO):
        res = pipe.process(rgb, K, camera="video", stamp=i / 25.0)
        if i % 20:
            continue
        n += 1
        assert len(res.hands) == 1, f"frame {i}: {len(res.hands)} hands"
        hand = res.hands[0]
        assert hand.side == RIGHT, f"frame {i}"
        ids.add(hand.track_id)
        check_hand(f"video frame {i}", hand, K)
    pipe.close()
    assert n >= 10
    assert len(ids) == 1, f"track ids {ids}"


def test_image_without_hands(static_pipe):
    rng = np.random.default_rng(0)
    img = (rng.random((240, 320, 3)) * 40 + 100).astype(np.uint8)
    assert static_pipe.process(img, None).hands == []


@pytest.mark.parametrize("image, intr, match", [
    (np.zeros((0, 10, 3), np.uint8), None, "empty"),
    (np.zeros((10, 10), np.uint8), None, r"\(H, W, 3\)"),
    (np.zeros((10, 10, 3), np.float32), None, "uint8"),
    (np.zeros((48, 64, 3), np.uint8), CameraIntrinsics(50, 50, 32, 24, 640, 480), "64x48 but its CameraInfo says 640x480"),
    (np.zeros((48, 64, 3), np.uint8), CameraIntrinsics(float("nan"), 50, 32, 24, 64, 48), "not finite"),
    (np.zeros((48, 64, 3), np.uint8), CameraIntrinsics(0.0, 0.0, 32, 24, 64, 48), "must be > 0"),
])
def test_bad_input_clear_errors(static_pipe, image, intr, match):
    with pytest.raises(ValueError, match=match):
        static_pipe.process(image, intr)


@pytest.mark.parametrize("field, value, match", [
    ("detector", "yolo", "parameter 'detector'"), ("regressor", "magic", "parameter 'regressor'"),
    ("device", "tpu", "parameter 'device'"), ("smoothing", "kalman", "parameter 'smoothing'"),
    ("batch_size", 0, "parameter 'batch_size'"), ("max_hands", 0, "parameter 'max_hands'"),
    ("min_score", 1.5, "parameter 'min_score'"),
])
def test_invalid_config_names_parameter(field, value, match):
    with pytest.raises(ValueError, match=match):
        HandMeshPipeline(PipelineConfig(**{field: value}))


def test_warm_up_builds_the_graphs_and_changes_no_result(hands_data):
    """``warm_up`` builds each camera's MediaPipe graph and runs the fit once; afterwards the
    cameras track nothing yet, and the video's first frames give the same hands as a
    pipeline that was not warmed up."""
    frames = [f.image for f in FrameSource(str(hands_data / "mediapipe_samples/hand_landmarker_test_video.mp4"), 3)]
    config = PipelineConfig(detector="mediapipe", detection_tiling="off")
    cold, warm = HandMeshPipeline(config), HandMeshPipeline(config)
    try:
        assert warm.warm_up(["cam0", "cam1", "cam0"]) > 0
        assert set(warm.detector._by_camera) == {"cam0", "cam1"}
        for i, img in enumerate(frames):
            a = cold.process(img, None, camera="cam0", stamp=i / 25).hands
            b = warm.process(img, None, camera="cam0", stamp=i / 25).hands
            assert len(a) == len(b) == 1 and a[0].track_id == b[0].track_id == 1
            np.testing.assert_allclose(a[0].keypoints_2d, b[0].keypoints_2d, atol=1e-3)
            np.testing.assert_allclose(a[0].joints, b[0].joints, atol=1e-4)
    finally:
        cold.close()
        warm.close()
