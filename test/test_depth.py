"""Depth fusion: a hand's translation from a registered depth image (core/depth.py, pipeline).

Depth images are rendered here by an independent z-buffer (dense points on every triangle,
nearest per pixel), from a known hand placement, with what real sensors add: background,
noise growing with depth, holes, flying pixels at the silhouette, an object in front."""
import logging

import cv2
import numpy as np
import pytest
import torch

from hand_mesh_ros.core.camera import project, solve_translation
from hand_mesh_ros.core.depth import REASONS, depth_in_metres, translation_from_depth
from hand_mesh_ros.core.hand_model import load_hand_model
from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
from hand_mesh_ros.core.render import render_depth
from hand_mesh_ros.core.types import (RIGHT, TRANSLATION_DEPTH, TRANSLATION_INTRINSICS, CameraIntrinsics)

W, H = 640, 480
K = CameraIntrinsics(600.0, 605.0, 322.0, 238.0, W, H)
K_LENS = CameraIntrinsics(600.0, 605.0, 322.0, 238.0, W, H, distortion_model="plumb_bob",
                          distortion=(-0.3, 0.1, 0.001, -0.001, -0.02))


def zbuffer(vertices, faces, cam, shape, samples=16):
    """Depth [m] of the nearest surface per pixel (0 = none): every triangle sampled densely
    (barycentric grid, linear depth), projected with ``cam``, nearest kept (np.minimum.at)."""
    i, j = np.meshgrid(np.arange(samples + 1), np.arange(samples + 1))
    keep = i + j <= samples
    bary = np.stack([i[keep], j[keep], samples - i[keep] - j[keep]], 1) / samples
    pts = np.einsum("sk,tkd->tsd", bary, np.asarray(vertices, np.float64)[faces]).reshape(-1, 3)
    uv = project(pts, cam)
    ok = np.isfinite(uv).all(1)
    pix = np.round(uv[ok]).astype(np.int64)
    inside = (pix[:, 0] >= 0) & (pix[:, 0] < shape[1]) & (pix[:, 1] >= 0) & (pix[:, 1] < shape[0])
    z = np.full(shape, np.inf)
    np.minimum.at(z, (pix[inside, 1], pix[inside, 0]), pts[ok][inside, 2])
    return np.where(np.isfinite(z), z, 0.0)


def sensor(depth_hand, background_m=1.3, rng=None, holes=0.25, occluder=None):
    """A realistic depth image around a rendered hand: a wall behind, noise 1 mm + 0.25 % of
    depth^2 (structured light / stereo), flying pixels on the silhouette, random holes and a
    dropout blob, optionally a bar in front of the hand (occluder = (v0, v1, depth))."""
    rng = rng or np.random.default_rng(0)
    hand = depth_hand > 0
    d = np.where(hand, depth_hand, background_m)
    edge = hand & ~(cv2.erode(hand.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0)
    mix = rng.uniform(0, 1, d.shape)
    d = np.where(edge, mix * d + (1 - mix) * background_m, d)  # flying pixels
    if occluder is not None:
        v0, v1, z = occluder
        d[v0:v1] = np.minimum(d[v0:v1], z)
    d = d + rng.normal(0, 1, d.shape) * (0.001 + 0.0025 * d ** 2)
    d[rng.uniform(0, 1, d.shape) < holes] = 0.0
    ys, xs = np.nonzero(hand)
    if len(ys):
        cy, cx = ys[len(ys) // 3], xs[len(xs) // 3]
        d[max(cy - 6, 0):cy + 6, max(cx - 6, 0):cx + 6] = 0.0  # a dropout blob on the hand
    return d.astype(np.float32)


@pytest.fixture(scope="module")
def hand_model():
    return load_hand_model(None)


def posed_hand(model, seed=0, side=RIGHT, pose_error=0.0):
    """A posed hand (vertices, joints, faces); ``pose_error`` [rad] perturbs the pose (the same
    hand as a fit with that error would give it)."""
    rng = np.random.default_rng(seed)
    go = rng.normal(0, 0.4, (1, 3)) + [2.9, 0.0, 0.0]
    pose = rng.normal(0, 0.2, (1, 45))
    if pose_error:
        err = np.random.default_rng(1000 + seed)
        go, pose = go + err.normal(0, pose_error, go.shape), pose + err.normal(0, pose_error, pose.shape)
    f32 = lambda a: torch.as_tensor(a, dtype=torch.float32)
    out = model(f32(go), f32(pose), torch.zeros(1, 10), torch.tensor([side == RIGHT]))
    return (out.vertices[0].numpy().astype(np.float64), out.joints[0].numpy().astype(np.float64),
            np.asarray(model.faces_for(side), np.int64))


def scene(model, scale, t_true, cam, seed=0, pose_error=0.0, pixel_noise=0.0, **sensor_kw):
    """True hand = the model hand scaled by ``scale`` (a person's hand is not the model's size)
    at ``t_true``; the model (its pose off by ``pose_error`` rad per angle, as a fit's) is placed
    from the true hand's 2D joints (with ``pixel_noise`` px of noise) only, as without depth."""
    true_verts, true_joints, faces = posed_hand(model, seed)
    verts, joints, _ = posed_hand(model, seed, pose_error=pose_error)
    true_v, true_j = scale * true_verts + t_true, scale * true_joints + t_true
    uv_ideal = project(true_j, cam.without_distortion())
    uv_ideal = uv_ideal + np.random.default_rng(seed).normal(0, pixel_noise, uv_ideal.shape)
    t_intr = solve_translation(joints, uv_ideal, cam)
    depth = sensor(zbuffer(true_v, faces, cam, (H, W)), rng=np.random.default_rng(seed), **sensor_kw)
    return verts, faces, t_intr, true_v.mean(0), depth


def centre_error(verts, t, true_centre):
    return np.linalg.norm((verts + t).mean(0) - true_centre)


@pytest.mark.parametrize("cam", [K, K_LENS], ids=["pinhole", "plumb_bob"])
@pytest.mark.parametrize("scale, t_true", [
    (1.0, (0.03, -0.02, 0.45)), (0.85, (-0.12, 0.08, 0.6)), (1.2, (0.1, 0.1, 0.5)),
    (1.1, (-0.2, -0.1, 0.9)), (0.9, (0.05, 0.02, 1.4)),
])
def test_depth_recovers_the_placement_within_1cm(hand_model, cam, scale, t_true):
    verts, faces, t_intr, true_centre, depth = scene(hand_model, scale, np.array(t_true), cam, seed=int(10 * scale),
                                                     pose_error=0.1, pixel_noise=1.0)
    res = translation_from_depth(verts, faces, t_intr, depth, cam)
    assert res.reason is None, res.detail
    err = centre_error(verts, res.transl, true_centre)
    err_intr = centre_error(verts, t_intr, true_centre)
    print(f"hand x{scale} at {t_true[2]} m ({cam.distortion_model or 'pinhole'}): intrinsics-only "
          f"{1e3 * err_intr:.0f} mm, depth {1e3 * err:.1f} mm ({res.inliers}/{res.pixels} inlier px)")
    assert err < 0.01
    if scale != 1.0:
        assert err_intr > 0.04


def test_depth_accuracy_table(hand_model):
    """README figures: hand-centre error of the intrinsics-only placement and of the depth
    placement, over hand sizes (true hand / model) and depths, 3 poses each, sensor effects on
    (``sensor``: 25 % holes, noise 1 mm + 0.25 % z^2, flying pixels, a dropout blob); the model
    either exact, or as a fit gives it: pose off by 0.1 rad per angle (root included), 2D
    keypoints off by 2 px. The centre error of a model whose pose is off includes the centre
    shift of the pose error itself (a few mm)."""
    rows = []
    for z in (0.4, 0.7, 1.0, 2.0):
        for scale in (0.85, 1.0, 1.15):
            err = {"intr": [], "exact": [], "fit": []}
            for seed in range(3):
                t = np.array([0.25 * z * np.cos(seed), 0.15 * z * np.sin(seed), z])
                for kind, kw in (("exact", {}), ("fit", dict(pose_error=0.1, pixel_noise=2.0))):
                    verts, faces, t_intr, true_centre, depth = scene(hand_model, scale, t, K, seed=seed, **kw)
                    res = translation_from_depth(verts, faces, t_intr, depth, K)
                    assert res.reason is None, res.detail
                    err[kind].append(1e3 * centre_error(verts, res.transl, true_centre))
                    if kind == "fit":
                        err["intr"].append(1e3 * centre_error(verts, t_intr, true_centre))
            rows.append((z, scale, np.mean(err["intr"]), np.mean(err["exact"]), np.max(err["exact"]),
                         np.mean(err["fit"]), np.max(err["fit"])))
    print("\n| depth [m] | hand / model size | intrinsics only, mean [mm] | depth, exact model: mean / max [mm] "
          "| depth, model as fitted: mean / max [mm] |")
    print("|---|---|---|---|---|")
    for z, scale, ei, em, ex, fm, fx in rows:
        print(f"| {z} | {scale} | {ei:.0f} | {em:.1f} / {ex:.1f} | {fm:.1f} / {fx:.1f} |")
    assert max(r[4] for r in rows) < 5.0
    assert max(r[5] for r in rows) < 10.0 and max(r[6] for r in rows) < 15.0


def test_depth_with_an_object_in_front_and_many_holes(hand_model):
    verts, faces, t_intr, true_centre, _ = scene(hand_model, 1.15, np.array([0.0, 0.0, 0.55]), K)
    hand_rows = np.nonzero(render_depth(verts + t_intr, faces, K)[0].any(axis=1))[0]
    v0 = render_depth(verts + t_intr, faces, K)[1][1]
    band = (v0 + hand_rows[len(hand_rows) // 2] - 6, v0 + hand_rows[len(hand_rows) // 2] + 6)
    _, _, _, _, depth = scene(hand_model, 1.15, np.array([0.0, 0.0, 0.55]), K, holes=0.5,
                              occluder=(band[0], band[1], 0.45))
    res = translation_from_depth(verts, faces, t_intr, depth, K)
    assert res.reason is None and centre_error(verts, res.transl, true_centre) < 0.01


def test_depth_result_does_not_hinge_on_rounding(hand_model):
    """The same scene with the depth perturbed by 1e-6 m noise (float rounding scale), 5 seeds:
    the translation moves by well under a millimetre."""
    verts, faces, t_intr, _, depth = scene(hand_model, 1.1, np.array([0.05, 0.0, 0.6]), K)
    base = translation_from_depth(verts, faces, t_intr, depth, K).transl
    for seed in range(5):
        noisy = depth + np.where(depth > 0, np.random.default_rng(seed).normal(0, 1e-6, depth.shape), 0)
        t = translation_from_depth(verts, faces, t_intr + 1e-7 * seed, noisy.astype(np.float32), K).transl
        assert np.linalg.norm(t - base) < 2e-4


@pytest.mark.parametrize("make, reason", [
    (lambda d: np.zeros_like(d), "depth_too_few_pixels"),
    (lambda d: np.full_like(d, np.nan), "depth_too_few_pixels"),
    (lambda d: np.where(np.random.default_rng(1).uniform(size=d.shape) < 0.95, 0, d).astype(np.float32),
     "depth_too_few_pixels"),
    (lambda d: np.random.default_rng(2).uniform(0.35, 0.65, d.shape).astype(np.float32), "depth_inconsistent"),
    (lambda d: np.random.default_rng(2).uniform(0.2, 4.0, d.shape).astype(np.float32), "depth_disagrees"),
    (lambda d: np.full_like(d, 2.5), "depth_disagrees"),
])
def test_unusable_depth_is_a_named_fallback(hand_model, make, reason):
    verts, faces, t_intr, _, depth = scene(hand_model, 1.0, np.array([0.0, 0.0, 0.5]), K)
    res = translation_from_depth(verts, faces, t_intr, make(depth), K)
    assert res.transl is None and res.reason == reason and reason in REASONS, res.detail
    assert res.detail


def test_hand_outside_the_image_is_a_fallback(hand_model):
    verts, faces, _, _, depth = scene(hand_model, 1.0, np.array([0.0, 0.0, 0.5]), K)
    res = translation_from_depth(verts, faces, np.array([3.0, 0.0, 0.5]), depth, K)
    assert res.reason == "depth_hand_outside_image"


def test_depth_in_metres():
    mm = np.full((4, 6), 1234, np.uint16)
    d, why = depth_in_metres(mm, 6, 4)
    assert why is None and d.dtype == np.float32 and np.allclose(d, 1.234)
    f = np.ones((4, 6), np.float32)
    assert depth_in_metres(f, 6, 4)[0] is f
    assert depth_in_metres(f[:, :, None], 6, 4)[0].shape == (4, 6)
    assert depth_in_metres(f, 5, 4) == (None, "depth_size_mismatch")
    assert depth_in_metres(np.ones((4, 6, 3), np.float32), 6, 4) == (None, "depth_size_mismatch")
    assert depth_in_metres(np.ones((4, 6), np.int8), 6, 4) == (None, "depth_dtype_unsupported")


def test_render_depth_matches_the_independent_zbuffer(hand_model):
    verts, _, faces = posed_hand(hand_model, 3)
    for cam in (K, K_LENS):
        placed = verts + [0.02, 0.01, 0.5]
        patch, (u0, v0) = render_depth(placed, faces, cam)
        ref = zbuffer(placed, faces, cam, (H, W))[v0:v0 + patch.shape[0], u0:u0 + patch.shape[1]]
        both = (patch > 0) & (ref > 0)
        assert both.sum() > 0.9 * (ref > 0).sum()
        assert np.median(np.abs(patch[both] - ref[both])) < 5e-4


# ------------------------------------------------------------------ through the pipeline
@pytest.fixture(scope="module")
def pipe():
    p = HandMeshPipeline(PipelineConfig(static_image_mode=True, max_hands=2))
    yield p
    p.close()


@pytest.fixture
def real(hands_data):
    rgb = cv2.cvtColor(cv2.imread(str(hands_data / "hamer_example_data/test5.jpg")), cv2.COLOR_BGR2RGB)
    h, w = rgb.shape[:2]
    return rgb, CameraIntrinsics(0.9 * w, 0.9 * w, w / 2, h / 2, w, h)


def consistent_depth(pipe, hands, cam, factor, shape):
    """A depth image consistent with the colour image: every hand's mesh scaled by ``factor``
    about the camera centre projects onto the same pixels, ``factor`` times as far (a hand
    ``factor`` times larger than the model), rendered with the sensor effects."""
    d = np.zeros(shape)
    for hd in hands:
        z = zbuffer(factor * hd.vertices.astype(np.float64), np.asarray(pipe.hand_model.faces_for(hd.side)), cam, shape)
        d = np.where((z > 0) & ((d == 0) | (z < d)), z, d)
    return sensor(d, background_m=1.6)


def test_pipeline_real_image_with_consistent_depth(pipe, real):
    rgb, cam = real
    ref = pipe.process(rgb, cam).hands
    assert len(ref) == 2 and all(hd.translation_source == TRANSLATION_INTRINSICS for hd in ref)
    factor = 1.2
    depth = consistent_depth(pipe, ref, cam, factor, rgb.shape[:2])
    got = pipe.process(rgb, cam, depth=depth).hands
    assert sorted(hd.side for hd in got) == sorted(hd.side for hd in ref)
    for hd in got:
        r = next(x for x in ref if x.side == hd.side)
        want = factor * r.vertices.mean(0)  # the true centre
        err = np.linalg.norm(hd.vertices.mean(0) - want)
        print(f"side {hd.side}: intrinsics-only centre {1e3 * np.linalg.norm(r.vertices.mean(0) - want):.0f} mm "
              f"off, depth {1e3 * err:.1f} mm off")
        assert hd.translation_source == TRANSLATION_DEPTH
        assert err < 0.01
        # still on the hand in the image: the centre keeps its pixel
        assert np.linalg.norm(project(hd.vertices.mean(0), cam) - project(r.vertices.mean(0), cam)) < 1.0
    # uint16 millimetres (a ROS 16UC1 image) give the same answer
    mm = np.round(np.nan_to_num(depth) * 1000).astype(np.uint16)
    got_mm = pipe.process(rgb, cam, depth=mm).hands
    for a, b in zip(sorted(got, key=lambda x: x.side), sorted(got_mm, key=lambda x: x.side)):
        assert b.translation_source == TRANSLATION_DEPTH and np.abs(a.transl - b.transl).max() < 0.002


@pytest.mark.parametrize("bad, reason", [
    (lambda d: d[:-2], "depth_size_mismatch"),
    (lambda d: np.zeros_like(d), "depth_too_few_pixels"),
    (lambda d: np.full_like(d, np.nan), "depth_too_few_pixels"),
    (lambda d: np.full_like(d, 3.0), "depth_disagrees"),
    (lambda d: d.astype(np.int32), "depth_dtype_unsupported"),
])
def test_pipeline_bad_depth_falls_back_counted(pipe, real, bad, reason, caplog):
    rgb, cam = real
    ref = pipe.process(rgb, cam).hands
    depth = consistent_depth(pipe, ref, cam, 1.2, rgb.shape[:2])
    before = dict(pipe.fallbacks)
    with caplog.at_level(logging.WARNING, logger="hand_mesh_ros.core.pipeline"):
        got = pipe.process(rgb, cam, depth=bad(depth)).hands
    assert len(got) == len(ref)
    for hd in got:
        r = next(x for x in ref if x.side == hd.side)
        assert hd.translation_source == TRANSLATION_INTRINSICS
        np.testing.assert_allclose(hd.transl, r.transl, atol=1e-6)
    new = {k: v - before.get(k, 0) for k, v in pipe.fallbacks.items() if v != before.get(k, 0)}
    frame_level = reason in ("depth_size_mismatch", "depth_dtype_unsupported")
    assert new == {reason: 1 if frame_level else len(ref)}


def test_pipeline_depth_needs_camera_info(pipe, real):
    rgb, cam = real
    ref = pipe.process(rgb, cam).hands
    depth = consistent_depth(pipe, ref, cam, 1.2, rgb.shape[:2])
    before = pipe.fallbacks.get("depth_without_camera_info", 0)
    got = pipe.process(rgb, None, depth=depth).hands
    assert all(hd.translation_source != TRANSLATION_DEPTH for hd in got)
    assert pipe.fallbacks["depth_without_camera_info"] == before + len(got)
