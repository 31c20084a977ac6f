"""Detector mediapipe_torch against the whole mp.solutions.hands pipeline
(../shared/golden/mediapipe_hands: static images and every frame of the test video), its
batching across cameras, its tracking mode, and bad input."""
import json

import numpy as np
import pytest
import torch

from hand_mesh_ros.core.detectors.mediapipe_torch import MediaPipeTorchHandDetector
from hand_mesh_ros.core.detectors.mediapipe_torch.models import ModelFilesError
from hand_mesh_ros.core.types import LEFT, RIGHT
from hand_mesh_ros.frames import FrameSource

VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tflite_cache")


def _detector(cache_dir, **kw):
    return MediaPipeTorchHandDetector(cache_dir=cache_dir, **kw)


def _rgb(path):
    import cv2
    img = cv2.imread(str(path))
    assert img is not None, path
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def video_frames():
    from conftest import HANDS_DATA, require

    return [f.image for f in FrameSource(require(HANDS_DATA) / VIDEO)]


class ForwardSpy(torch.nn.Module):
    """Records the batch size of every forward of the wrapped network."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.sizes = []

    def forward(self, x):
        self.sizes.append(int(x.shape[0]))
        return self.net(x)


def _match_errors(dets, ref_px):
    """Per reference hand, the median landmark distance [px] to the closest detection."""
    return [min(np.median(np.linalg.norm(d.keypoints_2d - r, axis=1)) for d in dets) for r in ref_px]


def _static_against_solution(det, golden, data):
    solution = json.loads((golden / "solution_static.json").read_text())
    assert solution["settings"]["model_complexity"] == 1 and solution["settings"]["max_num_hands"] == 2
    checked = 0
    for name, ref in solution["images"].items():
        img = _rgb(data / name)
        h, w = img.shape[:2]
        assert (w, h) == (ref["width"], ref["height"])
        dets = det.detect(img)
        assert len(dets) == len(ref["hands"]), name
        for hand in ref["hands"]:
            ref_px = np.asarray(hand["landmarks"])[:, :2] * [w, h]
            best = min(dets, key=lambda d: np.median(np.linalg.norm(d.keypoints_2d - ref_px, axis=1)))
            err = np.linalg.norm(best.keypoints_2d - ref_px, axis=1)
            assert np.median(err) < 1.0, (name, np.median(err))
            # legacy label assumes a mirrored image: "Left" is the person's right hand
            assert best.side == (RIGHT if hand["label"] == "Left" else LEFT), name
            assert abs(best.score - hand["score"]) < 0.01
            np.testing.assert_allclose(best.keypoints_3d, hand["world_landmarks"], atol=3e-3)  # metres
            checked += 1
    return checked


@pytest.mark.parametrize("crop_backend", ["opencv", "torch"])
def test_static_images_match_mediapipe_solution(golden_mediapipe, hands_data, cache_dir, crop_backend):
    """Both crop implementations: OpenCV (the CPU default) and the tensor sampler (CUDA's)."""
    det = _detector(cache_dir, static_image_mode=True, crop_backend=crop_backend)
    assert _static_against_solution(det, golden_mediapipe, hands_data) == 7


def test_tensor_crops_match_opencv_warp(hands_data):
    """The device sampler against cv2.warpPerspective (what MediaPipe's CPU graph runs) on
    rotated ROIs inside, across and far outside a real image, both borders, up- and
    down-sampling: at most one grey level apart, on few pixels. 21 crops: the sampler cuts
    them in two chunks (``crops.CHUNK``)."""
    from hand_mesh_ros.core.detectors.mediapipe_torch.crops import CHUNK, sample_crops, warp_crops_opencv
    from hand_mesh_ros.core.detectors.mediapipe_torch.roi import Roi, crop_affine
    img = _rgb(hands_data / "hamer_example_data" / "test1.jpg")
    h, w = img.shape[:2]
    rng = np.random.default_rng(1)
    rois = [Roi(float(rng.uniform(-100, w + 100)), float(rng.uniform(-100, h + 100)), s, s,
                float(rng.uniform(-np.pi, np.pi))) for s in (40.0, 150.0, 224.0, 600.0, 2000.0) for _ in range(4)]
    rois.append(Roi(w / 2, h / 2, float(max(w, h)), float(max(w, h)), 0.0))  # the palm letterbox
    affines = [crop_affine(r, 224, 224) for r in rois]
    assert CHUNK < len(affines) < 2 * CHUNK
    for border in ("zero", "replicate"):
        ref = warp_crops_opencv(img, affines, (224, 224), border)
        got = sample_crops(torch.from_numpy(img), torch.from_numpy(np.stack(affines)), (224, 224), border)
        diff = (got - ref).abs() * 255
        assert diff.max() <= 1.0 + 1e-4, border
        assert (diff > 0.5).float().mean() < 0.01, border


def test_static_parity_does_not_hinge_on_rounding(golden_mediapipe, hands_data, cache_dir, monkeypatch):
    """Every crop's sampling grid moved by 1e-3 px (ten times float32 rounding of an ROI at
    ~1000 px), which flips some of the 1/32-pixel and uint8 roundings of the crops: still the
    same hands and sides, within 1 px of MediaPipe."""
    from hand_mesh_ros.core.detectors.mediapipe_torch import detector as detector_mod
    from hand_mesh_ros.core.detectors.mediapipe_torch import palm as palm_mod
    original = detector_mod.crop_affine

    def jittered(*args):
        a = original(*args)
        a[:, 2] += 1e-3
        return a

    monkeypatch.setattr(detector_mod, "crop_affine", jittered)
    monkeypatch.setattr(palm_mod, "crop_affine", jittered)
    det = _detector(cache_dir, static_image_mode=True)
    assert _static_against_solution(det, golden_mediapipe, hands_data) == 7


def test_landmark_z_and_world_follow_mediapipe(golden_mediapipe, hands_data, cache_dir):
    """MediaPipe's normalized z (z / 224 / 0.4 scaled by the ROI width) of the projected
    landmarks, checked through the detector's own ROI of the single-hand image."""
    from hand_mesh_ros.core.detectors.mediapipe_torch import landmark as lmk
    solution = json.loads((golden_mediapipe / "solution_static.json").read_text())
    name = "mediapipe_samples/hand_landmarker_test_image.jpg"
    ref = np.asarray(solution["images"][name]["hands"][0]["landmarks"])
    img = _rgb(hands_data / name)
    det = _detector(cache_dir, static_image_mode=True)
    h, w = img.shape[:2]
    images = {0: det._image(img)}
    rois = [p.roi for p in det._palm_rois(images, {0: (w, h)}, {0: ()})[0]]
    from hand_mesh_ros.core.detectors.mediapipe_torch.detector import _Hand
    raw, _, _, _ = det._landmarks(images, [_Hand(0, rois[0])])[0]
    lm = lmk.project_landmarks(raw, rois[0], w, h)
    np.testing.assert_allclose(lm[:, 2], ref[:, 2], atol=2e-3)
    np.testing.assert_allclose(lm[:, :2] / [w, h], ref[:, :2], atol=2e-3)


def test_mirrored_keeps_mediapipe_labels(hands_data, cache_dir):
    img = _rgb(hands_data / "hamer_example_data" / "test5.jpg")
    plain = _detector(cache_dir, static_image_mode=True).detect(img)
    mirrored = _detector(cache_dir, static_image_mode=True, mirrored=True).detect(img)
    assert sorted(d.side for d in plain) == [LEFT, RIGHT]
    for a, b in zip(plain, mirrored):
        assert b.side == 1 - a.side
        np.testing.assert_array_equal(a.keypoints_2d, b.keypoints_2d)


def test_detection_semantics_match_the_mediapipe_graph_detector(hands_data, cache_dir):
    """Same fields, units and conventions as MediaPipeHandDetector: keypoints_2d [px],
    keypoints_3d world landmarks [m], bbox = the keypoints' tight box, score = handedness."""
    from hand_mesh_ros.core.detectors.mediapipe_hands import MediaPipeHandDetector
    img = _rgb(hands_data / "hamer_example_data" / "test1.jpg")
    graph = MediaPipeHandDetector(static_image_mode=True)
    try:
        ref = graph.detect(img)
    finally:
        graph.close()
    ours = _detector(cache_dir, static_image_mode=True).detect(img)
    assert len(ours) == len(ref) == 2
    for d in ours:
        r = min(ref, key=lambda r: np.abs(r.keypoints_2d - d.keypoints_2d).mean())
        assert d.side == r.side
        assert d.keypoints_2d.shape == (21, 2) and d.keypoints_2d.dtype == np.float32
        assert d.keypoints_3d.shape == (21, 3) and d.keypoints_3d.dtype == np.float32
        np.testing.assert_allclose(d.bbox, np.r_[d.keypoints_2d.min(0), d.keypoints_2d.max(0)])
        assert np.median(np.linalg.norm(d.keypoints_2d - r.keypoints_2d, axis=1)) < 1.0
        np.testing.assert_allclose(d.keypoints_3d, r.keypoints_3d, atol=3e-3)
        assert abs(d.score - r.score) < 0.01 and 0.5 <= d.score <= 1.0
    assert [d.score for d in ours] == sorted((d.score for d in ours), reverse=True)


def test_video_mode_matches_mediapipe_on_every_frame(golden_mediapipe, video_frames, cache_dir):
    ref = np.load(golden_mediapipe / "solution_video.npz")
    assert len(video_frames) == ref["landmarks"].shape[0] == 202
    det = _detector(cache_dir)
    same, errors = 0, []
    for t, img in enumerate(video_frames):
        h, w = img.shape[:2]
        dets = det.detect(img)
        valid = ~np.isnan(ref["landmarks"][t, :, 0, 0])
        ref_px = [ref["landmarks"][t, j, :, :2] * [w, h] for j in np.flatnonzero(valid)]
        if len(dets) == len(ref_px):
            same += 1
            if dets:
                errors += _match_errors(dets, ref_px)
        # every label in the video is "Left" = the person's right hand (not mirrored)
        assert all(d.side == RIGHT for d in dets)
    assert same / len(video_frames) >= 0.98
    assert np.median(errors) < 2.0 and len(errors) >= 0.9 * len(video_frames)


def test_palm_detector_runs_only_while_fewer_than_max_hands_are_tracked(video_frames, cache_dir):
    det = _detector(cache_dir, max_hands=1)
    det.palm_net = ForwardSpy(det.palm_net)
    det.landmark_net = ForwardSpy(det.landmark_net)
    for img in video_frames[:10]:
        assert len(det.detect(img)) == 1
    assert det.palm_net.sizes == [1]  # first frame only; then tracked from the landmarks
    assert det.landmark_net.sizes == [1] * 10
    det.reset()
    det.detect(video_frames[10])
    assert det.palm_net.sizes == [1, 1]  # reset: searched again
    two = _detector(cache_dir, max_hands=2)
    two.palm_net = ForwardSpy(two.palm_net)
    two.landmark_net = ForwardSpy(two.landmark_net)
    counts = [len(two.detect(img)) for img in video_frames[:10]]
    assert two.palm_net.sizes == [1] * 10  # one hand tracked < 2: searched on every frame
    # the palm found on a tracked hand overlaps its tracked ROI and is dropped
    assert counts == [1] * 10 and two.landmark_net.sizes == [1] * 10


def test_a_batch_of_cameras_equals_single_calls_and_uses_one_forward_per_network(video_frames, cache_dir):
    """Four cameras (the video at four offsets), tracking mode; batched: one palm forward for
    all cameras that search, one landmark forward for all hands. Each step starts both from
    the same tracked ROIs (in tracking mode the next ROI comes from the landmarks, and the
    crops' 1/32-pixel and uint8 roundings would carry any last-bit difference of a forward
    into later frames; MediaPipe's own tracking does the same)."""
    import copy
    streams = {f"cam{i}": video_frames[start:start + 6] for i, start in enumerate((0, 60, 120, 180))}
    batched = _detector(cache_dir)
    batched.palm_net = ForwardSpy(batched.palm_net)
    batched.landmark_net = ForwardSpy(batched.landmark_net)
    singles = {cam: _detector(cache_dir) for cam in streams}
    for t in range(6):
        for cam, single in singles.items():
            single._cameras = copy.deepcopy({k: v for k, v in batched._cameras.items() if k == cam})
        items = [(cam, frames[t]) for cam, frames in streams.items()]
        n_palm, n_lm = len(batched.palm_net.sizes), len(batched.landmark_net.sizes)
        out = batched.detect_batch(items)
        assert len(batched.palm_net.sizes) - n_palm == 1 and len(batched.landmark_net.sizes) - n_lm == 1
        assert batched.landmark_net.sizes[-1] == sum(len(o) for o in out) == 4
        for (cam, img), got in zip(items, out):
            want = singles[cam].detect(img, camera=cam)
            assert [d.side for d in got] == [d.side for d in want]
            for a, b in zip(got, want):
                np.testing.assert_allclose(a.keypoints_2d, b.keypoints_2d, atol=1e-3)
                np.testing.assert_allclose(a.keypoints_3d, b.keypoints_3d, atol=1e-5)
                assert abs(a.score - b.score) < 1e-4
    assert batched.palm_net.sizes == [4] * 6  # max_hands 2 > 1 tracked: every camera searches


def test_batch_size_caps_every_forward(video_frames, hands_data, cache_dir):
    still = _rgb(hands_data / "hamer_example_data" / "test1.jpg")
    items = [("a", video_frames[0]), ("b", still), ("c", still)]
    capped = _detector(cache_dir, batch_size=2, static_image_mode=True)
    capped.palm_net = ForwardSpy(capped.palm_net)
    capped.landmark_net = ForwardSpy(capped.landmark_net)
    got = capped.detect_batch(items)
    assert capped.palm_net.sizes == [2, 1]
    assert sum(capped.landmark_net.sizes) == 5 and max(capped.landmark_net.sizes) <= 2
    want = _detector(cache_dir, batch_size=8, static_image_mode=True).detect_batch(items)
    for g, w in zip(got, want):
        assert len(g) == len(w)
        for a, b in zip(g, w):
            np.testing.assert_allclose(a.keypoints_2d, b.keypoints_2d, atol=0.01)


def test_same_camera_twice_in_a_batch_is_tracked_in_order(video_frames, cache_dir):
    a, b = _detector(cache_dir, max_hands=1), _detector(cache_dir, max_hands=1)
    got = a.detect_batch([("cam", video_frames[0]), ("cam", video_frames[1])])
    want = [b.detect(video_frames[0], "cam"), b.detect(video_frames[1], "cam")]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g[0].keypoints_2d, w[0].keypoints_2d, atol=0.01)


@pytest.mark.parametrize("shape", [(1, 1), (1, 5000), (5000, 1), (3, 4000), (6000, 8000), (2, 2), (1, 40000)])
def test_images_of_any_size_do_not_crash(cache_dir, shape, video_frames):
    det = _detector(cache_dir)
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    dets = det.detect(img)
    assert isinstance(dets, list)
    if shape == (6000, 8000):  # a real hand in a huge frame is still found
        import cv2
        big = cv2.resize(video_frames[0], (8000, 6000))
        found = det.detect(big, camera="big")
        assert len(found) == 1 and found[0].keypoints_2d.max() < 8000
    # and a camera whose image size changes drops its tracking state instead of misusing it
    det.detect(video_frames[0], camera="c")
    assert isinstance(det.detect(img, camera="c"), list)


@pytest.mark.parametrize("bad", [np.zeros((0, 10, 3), np.uint8), np.zeros((10, 10), np.uint8),
                                 np.zeros((10, 10, 4), np.uint8), np.zeros((10, 10, 3), np.float32), "image"])
def test_bad_images_raise_value_error(cache_dir, bad):
    det = _detector(cache_dir)
    with pytest.raises(ValueError, match="uint8 RGB image|empty image"):
        det.detect(bad)


def test_wheel_without_model_files_is_a_clear_start_up_error(tmp_path):
    with pytest.raises(ModelFilesError, match=r"mediapipe==0\.10\.21") as e:
        MediaPipeTorchHandDetector(models_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert "palm_detection_full.tflite" in str(e.value)
    assert not (tmp_path / "cache").exists()


def test_bad_arguments(cache_dir):
    for kw in (dict(max_hands=0), dict(min_score=1.5), dict(batch_size=0), dict(model="huge"),
               dict(precision="fp16")):  # fp16 needs CUDA
        with pytest.raises(ValueError):
            _detector(cache_dir, **kw)


def test_bf16_autocast_runs_and_stays_close(hands_data, cache_dir):
    img = _rgb(hands_data / "mediapipe_samples" / "hand_landmarker_test_image.jpg")
    fp32 = _detector(cache_dir, static_image_mode=True).detect(img)
    bf16 = _detector(cache_dir, static_image_mode=True, precision="bf16").detect(img)
    assert len(fp32) == len(bf16) == 1 and fp32[0].side == bf16[0].side
    assert np.median(np.linalg.norm(fp32[0].keypoints_2d - bf16[0].keypoints_2d, axis=1)) < 5.0


@pytest.mark.parametrize("crop_backend", ["opencv", "torch"])
def test_read_only_and_strided_images(cache_dir, video_frames, crop_backend):
    """Images as the node gets them: a read-only view of a message buffer, or a channel-
    reversed (BGR -> RGB) view; no warning, the same hand."""
    import warnings
    det = _detector(cache_dir, static_image_mode=True, crop_backend=crop_backend)
    want = det.detect(video_frames[0])
    ro = video_frames[0].copy()
    ro.setflags(write=False)
    strided = np.ascontiguousarray(video_frames[0][..., ::-1])[..., ::-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for img in (ro, strided):
            got = det.detect(img)
            assert len(got) == len(want) == 1
            np.testing.assert_array_equal(got[0].keypoints_2d, want[0].keypoints_2d)
