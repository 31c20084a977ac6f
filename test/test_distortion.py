"""Lens distortion: CameraInfo models (plumb_bob, rational_polynomial, equidistant), undistortion
of keypoints before the placement, projection with distortion, fallback for unusable ones."""
import logging

import cv2
import numpy as np
import pytest

from hand_mesh_ros.core.camera import (distort_points, project, solve_translation, undistort_points,
                                       valid_radius)
from hand_mesh_ros.core.fit import FitConfig, ManoFitter, world_landmark_rotation
from hand_mesh_ros.core.hand_model import load_hand_model
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.render import render_overlay
from hand_mesh_ros.core.types import RIGHT, TRANSLATION_INTRINSICS, CameraIntrinsics

W, H = 640, 480
PINHOLE = dict(fx=520.0, fy=540.0, cx=318.0, cy=236.0, width=W, height=H)
#: Realistic lenses: a webcam (strong barrel), a rational model (RealSense/Azure Kinect style)
#: and a fisheye. At the image corner they move pixels by 40-120 px.
LENSES = {
    "plumb_bob": (-0.32, 0.13, 0.0012, -0.0009, -0.025),
    "rational_polynomial": (2.1, 0.9, 0.0008, -0.0004, 0.02, 2.45, 1.4, 0.12),
    "equidistant": (0.08, -0.02, 0.004, -0.001),
}


def camera(model: str) -> CameraIntrinsics:
    return CameraIntrinsics(**PINHOLE, distortion_model=model, distortion=LENSES[model])


def reference_distortion(xy: np.ndarray, model: str) -> np.ndarray:
    """The lens models written from their definitions (OpenCV calib3d / fisheye docs;
    Brown 1966, Kannala & Brandt 2006): normalised (x, y) -> distorted normalised."""
    x, y = xy[:, 0], xy[:, 1]
    k = np.zeros(8)
    k[:len(LENSES[model])] = LENSES[model]
    if model == "equidistant":
        r = np.hypot(x, y)
        th = np.arctan(r)
        thd = th * (1 + k[0] * th ** 2 + k[1] * th ** 4 + k[2] * th ** 6 + k[3] * th ** 8)
        scale = np.where(r > 0, thd / np.where(r > 0, r, 1), 1.0)
        return np.stack([x * scale, y * scale], 1)
    k1, k2, p1, p2, k3, k4, k5, k6 = k
    r2 = x * x + y * y
    radial = (1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3) / (1 + k4 * r2 + k5 * r2 ** 2 + k6 * r2 ** 3)
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return np.stack([xd, yd], 1)


def image_grid(step=16):
    u, v = np.meshgrid(np.arange(0, W, step, dtype=np.float64), np.arange(0, H, step, dtype=np.float64))
    return np.stack([u.ravel(), v.ravel()], 1)


@pytest.mark.parametrize("model", list(LENSES))
def test_project_follows_the_model_definition(model):
    K = camera(model)
    rng = np.random.default_rng(0)
    pts = np.c_[rng.uniform(-0.5, 0.5, (200, 2)), np.ones(200)] * rng.uniform(0.3, 2.0, (200, 1))
    xy = pts[:, :2] / pts[:, 2:]
    want = reference_distortion(xy, model) * [K.fx, K.fy] + [K.cx, K.cy]
    np.testing.assert_allclose(project(pts, K), want, rtol=0, atol=1e-9)
    corner = project(np.array([[-K.cx / K.fx, -K.cy / K.fy, 1.0]]), K)[0]
    print(f"{model}: the image corner (0, 0) moves by {np.hypot(*corner):.0f} px")
    assert np.hypot(*corner) > 20  # a lens that matters


@pytest.mark.parametrize("model", list(LENSES))
def test_undistort_inverts_the_projection(model):
    K = camera(model)
    raw = image_grid()
    ideal = undistort_points(raw, K)
    assert np.abs(distort_points(ideal, K) - raw).max() < 1e-6
    rays = np.c_[(ideal - [K.cx, K.cy]) / [K.fx, K.fy], np.ones(len(ideal))] * 0.7
    assert np.abs(project(rays, K) - raw).max() < 1e-6
    assert np.abs(ideal - raw).max() > 20  # really distorted
    # shapes are kept, NaN passes through
    grid = raw.reshape(-1, 2, 2)[:5]
    assert undistort_points(grid, K).shape == grid.shape
    assert np.isnan(undistort_points(np.array([[np.nan, 3.0]]), K)).all()


def test_zero_coefficients_are_a_pinhole():
    """All-zero / empty coefficients: the ideal pinhole fast path (any model but equidistant)."""
    for model, d in (("plumb_bob", (0.0,) * 5), ("rational_polynomial", ()), ("", ()), ("unknown", (0.0,) * 3)):
        K = CameraIntrinsics(**PINHOLE, distortion_model=model, distortion=d)
        assert not K.is_distorted and K.distortion_problem() is None
        uv = image_grid(64)
        out = undistort_points(uv, K)
        assert out is not uv and np.array_equal(out, uv)
        p = np.array([[0.1, -0.05, 0.8]])
        assert np.array_equal(project(p, K), [[K.fx * 0.125 + K.cx, K.fy * -0.0625 + K.cy]])


def test_equidistant_with_zero_coefficients_is_the_ideal_fisheye():
    """For the fisheye model zero coefficients still mean r = f theta (image_geometry always
    applies cv::fisheye to it), not a pinhole."""
    K = CameraIntrinsics(**PINHOLE, distortion_model="equidistant", distortion=(0.0,) * 4)
    assert K.is_distorted and K.distortion_problem() is None
    uv = project(np.array([[1.0, 0.0, 1.0]]), K)  # 45 deg off axis
    np.testing.assert_allclose(uv, [[K.cx + K.fx * np.pi / 4, K.cy]], atol=1e-9)
    empty = CameraIntrinsics(**PINHOLE, distortion_model="equidistant", distortion=())
    assert empty.distortion_problem() == "distortion_length_mismatch"


@pytest.mark.parametrize("model, d, reason", [
    ("kannala_brandt", (0.1, 0.0, 0.0, 0.0), "distortion_model_unsupported"),
    ("", (0.1,), "distortion_model_unsupported"),
    ("plumb_bob", (0.1, 0.01, 0.0, 0.0), "distortion_length_mismatch"),
    ("rational_polynomial", (0.1,) * 5, "distortion_length_mismatch"),
    ("equidistant", (0.1,) * 5, "distortion_length_mismatch"),
    ("plumb_bob", (np.nan, 0.0, 0.0, 0.0, 0.0), "distortion_not_finite"),
])
def test_unusable_distortion_is_named_and_refused_by_the_maths(model, d, reason):
    K = CameraIntrinsics(**PINHOLE, distortion_model=model, distortion=d)
    assert K.distortion_problem() == reason
    with pytest.raises(ValueError, match=reason):
        project(np.array([[0.0, 0.0, 1.0]]), K)
    with pytest.raises(ValueError, match=reason):
        undistort_points(np.array([[1.0, 2.0]]), K)
    assert K.without_distortion().distortion_problem() is None


def test_points_where_the_polynomial_folds_back_are_not_projected():
    """A strong barrel polynomial turns back beyond its calibrated field: a point far off axis
    would land inside the image. project() returns NaN there instead."""
    K = CameraIntrinsics(**PINHOLE, distortion_model="plumb_bob", distortion=(-0.45, 0.05, 0, 0, 0))
    r_max = valid_radius(K.distortion_model, K.distortion)
    r = np.linspace(0, 3, 301)
    radial = r * (1 - 0.45 * r ** 2 + 0.05 * r ** 4)
    fold = r[np.argmax(np.diff(radial) <= 0)]  # 0.94 (the radial derivative is 0 there)
    assert 0.9 < fold < 1.0
    assert abs(r_max - fold) < 0.02
    uv = project(np.array([[0.9 * r_max, 0, 1.0], [1.1 * r_max, 0, 1.0], [0.1, 0.1, -1.0]]), K)
    assert np.isfinite(uv[0]).all() and np.isnan(uv[1:]).all()


def _hand(side=RIGHT, seed=0):
    model = load_hand_model(None)
    rng = np.random.default_rng(seed)
    import torch
    go = torch.tensor([[2.6, 0.3, -0.4]])
    pose = torch.as_tensor(rng.normal(0, 0.15, (1, 45)), dtype=torch.float32)
    out = model(go, pose, torch.zeros(1, 10), torch.tensor([side == RIGHT]))
    return model, out.joints[0].numpy().astype(np.float64), out.vertices[0].numpy().astype(np.float64)


@pytest.mark.parametrize("model", list(LENSES))
def test_placement_recovered_from_distorted_keypoints(model):
    """A known hand near the image corner, seen through the lens: undistorting the keypoints
    recovers its translation exactly; ignoring the lens is centimetres off."""
    K = camera(model)
    _, joints, _ = _hand()
    t_true = np.array([-0.13, -0.1, 0.45])  # towards the top-left corner
    raw = project(joints + t_true, K)
    assert ((raw > 0) & (raw < [W, H])).all()
    t = solve_translation(joints, undistort_points(raw, K), K)
    t_ignored = solve_translation(joints, raw, K)
    print(f"{model}: placement error {1e3 * np.linalg.norm(t - t_true):.2g} mm undistorted, "
          f"{1e3 * np.linalg.norm(t_ignored - t_true):.0f} mm with the lens ignored")
    assert np.linalg.norm(t - t_true) < 1e-6
    assert np.linalg.norm(t_ignored - t_true) > 0.01


@pytest.mark.parametrize("model", list(LENSES))
def test_fit_with_undistorted_keypoints_places_the_hand(model):
    """The fit path as the pipeline runs it: 3D keypoints + undistorted 2D keypoints + K."""
    K = camera(model)
    hand_model, joints, _ = _hand(seed=1)
    t_true = np.array([0.16, 0.12, 0.5])  # bottom-right
    raw = project(joints + t_true, K)
    fitter = ManoFitter(hand_model, FitConfig())
    uv = undistort_points(raw, K)[None]
    # detector world keypoints: origin at the hand centre, axes of a camera looking straight
    # at the hand (MediaPipe's; the fit turns them onto the viewing ray)
    R = world_landmark_rotation(uv, K.pinhole[None])[0]
    kp3d = ((joints - joints.mean(0)) @ R)[None]
    res = fitter.fit(kp3d, np.array([True]), keypoints_2d=uv, intrinsics=K.pinhole[None])
    placed = res.joints[0] + res.offset[0]
    err_3d = np.linalg.norm(placed - (joints + t_true), axis=1).max()
    err_px = np.linalg.norm(project(placed, K) - raw, axis=1).max()
    print(f"{model}: fit joints within {1e3 * err_3d:.2f} mm, {err_px:.2f} px in the raw image")
    assert err_3d < 0.005 and err_px < 2.0


# ------------------------------------------------------------------ pipeline, real image
def _distorted_view(rgb: np.ndarray, K: CameraIntrinsics) -> np.ndarray:
    """The raw image a lens ``K`` would deliver of a scene whose ideal pinhole image is ``rgb``
    (same fx, fy, cx, cy): raw(p) = ideal(undistort(p)), bilinear."""
    h, w = rgb.shape[:2]
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    ideal = undistort_points(np.stack([u, v], -1), K).astype(np.float32)
    return cv2.remap(rgb, ideal[..., 0], ideal[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


@pytest.fixture(scope="module")
def pipe():
    # whole-frame search: these tests are about the lens; a tiled static search of these
    # large images takes seconds on a loaded CPU, and the throttle check below needs two
    # calls within WARN_THROTTLE_S
    p = HandMeshPipeline(PipelineConfig(static_image_mode=True, max_hands=2, detection_tiling="off"))
    yield p
    p.close()


@pytest.mark.parametrize("model", list(LENSES))
def test_pipeline_on_a_distorted_real_image(pipe, hands_data, model):
    """test5.jpg seen through a lens: with the lens in the CameraInfo the hands land where they
    are on the undistorted image; the overlay (mesh projected with the distortion) lies on the
    hand in the raw image; ignoring the lens misplaces them."""
    rgb = cv2.cvtColor(cv2.imread(str(hands_data / "hamer_example_data/test5.jpg")), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    f = 0.55 * w  # a wide lens (85 deg horizontal)
    ideal_K = CameraIntrinsics(f, 1.02 * f, 0.49 * w, 0.51 * h, w, h)
    # the fisheye with RealSense T265-like coefficients (on this wide a view)
    coeffs = (-0.004, 0.037, -0.035, 0.0056) if model == "equidistant" else LENSES[model]
    K = CameraIntrinsics(ideal_K.fx, ideal_K.fy, ideal_K.cx, ideal_K.cy, w, h, distortion_model=model,
                         distortion=coeffs)
    raw = _distorted_view(rgb, K)
    ref = {hd.side: hd for hd in pipe.process(rgb, ideal_K).hands}
    got = {hd.side: hd for hd in pipe.process(raw, K).hands}
    ignored = {hd.side: hd for hd in pipe.process(raw, K.without_distortion()).hands}
    assert sorted(ref) == sorted(got) == sorted(ignored) and len(ref) == 2
    for side in ref:
        centre = ref[side].joints.mean(0)
        z = centre[2]
        err = np.linalg.norm(got[side].joints.mean(0) - centre)
        err_ignored = np.linalg.norm(ignored[side].joints.mean(0) - centre)
        # published 2D keypoints are the raw detector pixels; the mesh projects onto them
        diag = np.hypot(*(got[side].bbox[2:] - got[side].bbox[:2]))
        reproj = np.median(np.linalg.norm(project(got[side].joints, K) - got[side].keypoints_2d, axis=1))
        print(f"{model} side {side}: hand centre {1e3 * err:.0f} mm from the undistorted-image result "
              f"({100 * err / z:.1f}% of depth), lens ignored {1e3 * err_ignored:.0f} mm; raw reprojection "
              f"{100 * reproj / diag:.2f}% of the box diagonal")
        assert got[side].translation_source == TRANSLATION_INTRINSICS
        # MediaPipe on the resampled image gives a hand depth a few % different (measured
        # 0-3.4 %, either sign; lateral <= 5 mm); ignoring the lens: 2.8-5.1 cm, always too far
        assert err < 0.05 * z and err < 0.5 * err_ignored
        assert reproj < 0.04 * diag
    over = render_overlay(raw, list(got.values()), K, pipe.hand_model.faces_for, draw_skeleton=False,
                          draw_label=False)
    for hd in got.values():  # the mesh is drawn on the hand: the wrist-to-middle-MCP pixels change
        for u, v in hd.keypoints_2d[[0, 9]].astype(int):
            assert (over[v, u] != raw[v, u]).any()


def test_pipeline_unusable_distortion_is_a_counted_fallback(pipe, hands_data, caplog):
    rgb = cv2.cvtColor(cv2.imread(str(hands_data / "mediapipe_samples/thumbs-up.png")), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    good = CameraIntrinsics(800.0, 800.0, w / 2, h / 2, w, h)
    ref = pipe.process(rgb, good).hands
    before = dict(pipe.fallbacks)
    with caplog.at_level(logging.WARNING, logger="hand_mesh_ros.core.pipeline"):
        for model, d in (("kannala_brandt", (0.1, 0.0, 0.0, 0.0)), ("plumb_bob", (0.1, 0.2)),
                         ("plumb_bob", (0.1, 0.2)), ("equidistant", (np.inf, 0, 0, 0))):
            res = pipe.process(rgb, CameraIntrinsics(800.0, 800.0, w / 2, h / 2, w, h,
                                                     distortion_model=model, distortion=d))
            assert not res.intrinsics.is_distorted
            assert len(res.hands) == len(ref) == 1
            np.testing.assert_allclose(res.hands[0].joints, ref[0].joints, atol=1e-6)
    counts = {k: pipe.fallbacks.get(k, 0) - before.get(k, 0) for k in pipe.fallbacks}
    assert counts == {"distortion_model_unsupported": 1, "distortion_length_mismatch": 2,
                      "distortion_not_finite": 1}
    msgs = [r.getMessage() for r in caplog.records]
    assert any("distortion_length_mismatch" in m and "plumb_bob 5" in m for m in msgs)
    # throttled: the second length mismatch within WARN_THROTTLE_S logs nothing new
    assert sum("distortion_length_mismatch" in m for m in msgs) == 1
