"""HaMeR crops and crop-camera translation against the reference goldens (../shared/golden/hamer).

Run with ``-s`` to see the measured differences, errors and timings.
"""
import time

import cv2
import numpy as np
import pytest

from hand_mesh_ros.core.hamer.camera import (cam_crop_to_full_intrinsics,
                                             cam_crop_to_full_reference, flip_cam_for_side,
                                             reference_full_focal)
from hand_mesh_ros.core.hamer.preprocess import HamerCrops, crop_box, make_crops


def _load(golden, name):
    return dict(np.load(golden / name))


def _rgb(path):
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


@pytest.fixture
def pre(golden_hamer):
    g = _load(golden_hamer, "golden_preprocess.npz")
    g["images"] = [_rgb(golden_hamer / str(n)) for n in g["image_names"]]
    return g


def _per_image(pre, **kw):
    """make_crops once per golden image (as the demo builds one dataset per image)."""
    out = []
    for k, image in enumerate(pre["images"]):
        idx = np.flatnonzero(pre["image_index"] == k)
        out.append((idx, make_crops(image, pre["boxes_xyxy"][idx], pre["right"][idx], **kw)))
    return out


def test_crop_box_matches_reference(pre):
    center, size = crop_box(pre["boxes_xyxy"])
    assert center.dtype == np.float32 and np.array_equal(center, pre["box_center"])
    # the reference's side is float64 (307.3333333333333 for hand #1), reproduced exactly
    assert size.dtype == np.float64 and np.array_equal(size, pre["box_size"])


@pytest.mark.parametrize("roi", [True, False], ids=["roi", "whole_image"])
def test_patches_bit_identical(pre, roi):
    # input is RGB; the golden came from BGR with the channels reversed after the warp
    for idx, crops in _per_image(pre, roi=roi):
        assert isinstance(crops, HamerCrops) and len(crops) == len(idx)
        assert crops.patches.dtype == np.float32 and crops.patches.shape == (len(idx), 3, 256, 256)
        for j, i in enumerate(idx):
            diff = np.abs(crops.patches[j] - pre["img"][i]).max()
            print(f"hand {i} ({'roi' if roi else 'whole image'}): max |patch - golden| = {diff}")
            assert diff == 0
        assert np.array_equal(crops.affine, pre["affine_2x3"][idx])
        assert np.array_equal(crops.box_center, pre["box_center"][idx])
        assert np.array_equal(crops.box_size, pre["box_size"][idx].astype(np.float32))
        assert np.array_equal(crops.img_size, pre["img_size"][idx].astype(np.float32))
        assert np.array_equal(crops.is_right, pre["right"][idx] > 0)


def test_blur_path(pre):
    sigma = np.concatenate([c.blur_sigma for _, c in _per_image(pre)])
    assert np.array_equal(sigma, pre["blur_sigma"])
    assert list(sigma > 0) == [False, False, True, True]
    # unblurred patches come from the uint8 warp: integers before normalisation
    mean, std = 255 * pre["image_mean"][:, None, None], 255 * pre["image_std"][:, None, None]
    raw = pre["img"].astype(np.float64) * std + mean
    frac = np.abs(raw - np.round(raw)).max(axis=(1, 2, 3))
    assert np.all(frac[:2] < 1e-3) and np.all(frac[2:] > 1e-2)


def test_left_hand_is_mirrored_right_hand(pre):
    """A left hand's crop is the right-hand crop of the mirrored image with the mirrored box."""
    for k, rows in ((0, [1]), (1, [2, 3])):  # unblurred, blurred (sigma 0.23), radius-0 blur
        image = pre["images"][k]
        w = image.shape[1]
        boxes = pre["boxes_xyxy"][rows]
        mirrored = np.stack([w - 1 - boxes[:, 2], boxes[:, 1], w - 1 - boxes[:, 0], boxes[:, 3]], 1)
        left = make_crops(image, boxes, np.zeros(len(rows), bool))
        right = make_crops(np.ascontiguousarray(image[:, ::-1]), mirrored, np.ones(len(rows), bool))
        assert np.array_equal(left.patches, right.patches)
        assert np.array_equal(left.affine, right.affine)
        assert np.allclose(left.box_center[:, 0], w - 1 - right.box_center[:, 0])


def test_roi_path_matches_whole_image_path(golden_hamer, pre):
    """Window-only blur/mirror == the reference's whole-image path, on a 1080p frame too."""
    big = cv2.resize(_rgb(golden_hamer / "test1.jpg"), (1920, 1080))
    rng = np.random.default_rng(0)
    c = rng.uniform([-300, -300], [2220, 1380], (60, 2))
    wh = np.vstack([rng.uniform(10, 280, (30, 2)), rng.uniform(280, 900, (30, 2))])
    boxes = np.vstack([np.hstack([c - wh / 2, c + wh / 2]),
                       [[-2000, -2000, -1500, -1500], [1800, 900, 2900, 1900], [0, 0, 1920, 1080],
                        [100.3, 200.7, 140.1, 260.9], [1900.5, 5.25, 1919.75, 30]]])
    right = rng.integers(0, 2, len(boxes))
    fast, ref = make_crops(big, boxes, right), make_crops(big, boxes, right, roi=False)
    sigma = fast.blur_sigma  # unblurred, radius-0 (sigma < 0.125) and real blurs all occur
    assert np.sum(sigma == 0) > 10 and np.sum((sigma > 0) & (sigma < 0.125)) and np.sum(sigma > 1)
    assert np.array_equal(fast.patches, ref.patches)
    assert np.array_equal(fast.affine, ref.affine)

    def ms(image, b, r, roi, n=5):
        make_crops(image, b, r, roi=roi)
        t = time.perf_counter()
        for _ in range(n):
            make_crops(image, b, r, roi=roi)
        return (time.perf_counter() - t) / n * 1e3

    rows = np.flatnonzero(pre["image_index"] == 1)
    cases = {"test2.jpg, golden hands #2/#3": (pre["images"][1], pre["boxes_xyxy"][rows],
                                               pre["right"][rows]),
             "1920x1080, two 933-px blurred crops": (big, [[300, 200, 650, 500],
                                                            [1200, 400, 1550, 700]], [1, 0])}
    for name, (image, b, r) in cases.items():
        t_ref, t_fast = ms(image, b, r, False), ms(image, b, r, True)
        print(f"make_crops {name}: whole-image {t_ref:.1f} ms, roi {t_fast:.1f} ms "
              f"(x{t_ref / t_fast:.1f})")


def test_empty_and_bad_inputs(pre):
    image = pre["images"][0]
    box = [[10, 10, 50, 60]]
    empty = make_crops(image, np.zeros((0, 4)), [])
    assert empty.patches.shape == (0, 3, 256, 256) and empty.affine.shape == (0, 2, 3)
    assert empty.box_center.shape == (0, 2) and empty.img_size.shape == (0, 2)
    bad = [
        (dict(image_rgb=image.astype(np.float32)), "uint8"),
        (dict(image_rgb=image[..., 0]), r"\(H, W, 3\)"),
        (dict(image_rgb=np.zeros((4, 4, 4), np.uint8)), r"\(H, W, 3\)"),
        (dict(image_rgb=np.zeros((0, 4, 3), np.uint8)), "empty"),
        (dict(boxes_xyxy=[[10, 10, 50]]), r"\(N, 4\)"),
        (dict(boxes_xyxy=[[10, 10, np.nan, 60]]), "non-finite"),
        (dict(boxes_xyxy=[[50, 10, 10, 60]]), "x1 > x0"),
        (dict(boxes_xyxy=[[10, 60, 50, 60]]), "y1 > y0"),
        (dict(boxes_xyxy=[[1e8, 10, 1e8 + 1, 60]]), "in float32"),
        (dict(is_right=[1, 0]), "one flag per box"),
    ]
    for kw, msg in bad:
        args = dict(image_rgb=image, boxes_xyxy=box, is_right=[1]) | kw
        with pytest.raises(ValueError, match=msg):
            make_crops(**args)


@pytest.fixture
def cam(golden_hamer):
    return _load(golden_hamer, "golden_forward.npz"), _load(golden_hamer, "golden_cam_full.npz")


def test_cam_crop_to_full_reference(cam):
    fwd, full = cam
    raw = fwd["pred_cam"].copy()
    flipped = flip_cam_for_side(fwd["pred_cam"], full["right"])
    assert np.array_equal(fwd["pred_cam"], raw)  # not modified in place
    assert np.array_equal(flipped, full["pred_cam_flipped"])
    focal = reference_full_focal(full["img_size"])
    assert np.array_equal(focal, full["scaled_focal_length"])
    t = cam_crop_to_full_reference(flipped, full["box_center"], full["box_size"],
                                   full["img_size"], focal)
    want = full["pred_cam_t_full"]
    print("max |pred_cam_t_full - golden| =", np.abs(t - want).max())
    assert t.dtype == np.float32 and np.all(np.abs(t - want) <= 1e-5 * np.abs(want))

    torch = pytest.importorskip("torch")
    g = {k: torch.from_numpy(v) for k, v in full.items()}
    raw_t = torch.from_numpy(raw.copy())
    tt = cam_crop_to_full_reference(flip_cam_for_side(raw_t, g["right"]), g["box_center"],
                                    g["box_size"], g["img_size"],
                                    reference_full_focal(g["img_size"]))
    assert isinstance(tt, torch.Tensor) and tt.dtype == torch.float32
    assert np.array_equal(raw_t.numpy(), raw)
    assert np.all(np.abs(tt.numpy() - want) <= 1e-5 * np.abs(want))


def _project(points, fx, fy, cx, cy):
    fx, fy, cx, cy = (np.broadcast_to(np.asarray(v, np.float64), (len(points),))[:, None]
                      for v in (fx, fy, cx, cy))
    p = np.asarray(points, np.float64)
    return np.stack([fx * p[..., 0] / p[..., 2] + cx, fy * p[..., 1] / p[..., 2] + cy], -1)


def test_cam_intrinsics_equals_reference_for_its_camera(cam):
    fwd, full = cam
    pc = flip_cam_for_side(fwd["pred_cam"], full["right"])
    f = full["scaled_focal_length"]
    w, h = full["img_size"][:, 0], full["img_size"][:, 1]
    t = cam_crop_to_full_intrinsics(pc, full["box_center"], full["box_size"], f, f, w / 2, h / 2)
    ref32 = cam_crop_to_full_reference(pc, full["box_center"], full["box_size"],
                                       full["img_size"], f)
    assert t.dtype == np.float64
    np.testing.assert_allclose(t, ref32, rtol=1e-6)  # float32 reference rounding
    # the reference formula in float64, without its 1e-9: the same up to rounding
    pc64, c, b = pc.astype(np.float64), full["box_center"].astype(np.float64), full["box_size"]
    bs = b * pc64[:, 0]
    ref64 = np.stack([2 * (c[:, 0] - w / 2) / bs + pc64[:, 1],
                      2 * (c[:, 1] - h / 2) / bs + pc64[:, 2], 2 * f.astype(np.float64) / bs], -1)
    np.testing.assert_allclose(t, ref64, rtol=1e-12, atol=1e-15)


def test_cam_intrinsics_projects_onto_the_crop(cam):
    """With fx != fy and an off-centre principal point the hand lands where the crop saw it.

    The crop is taken in square pixels (``make_crops(pixel_aspect=fx/fy)``): a crop unit is
    ``box_size * fx/fy`` image pixels horizontally and ``box_size`` vertically."""
    fwd, full = cam
    right = full["right"] > 0
    pc = flip_cam_for_side(fwd["pred_cam"], full["right"])
    size, center = full["box_size"], full["box_center"].astype(np.float64)
    kp2d = fwd["pred_keypoints_2d"].astype(np.float64)
    kp2d[..., 0] *= np.where(right, 1.0, -1.0)[:, None]
    joints = full["keypoints_3d_flipped"].astype(np.float64)
    a = size * pc[:, 0] / 2.0  # crop scale [square px/m]
    tz_crop = 2 * 5000.0 / (256 * pc[:, 0])  # depth of the crop's own perspective camera [m]
    # measured (median over joints / box_size): fx=600,fy=660: 0.015..0.07 (hand depth
    # 0.31..0.76 m, so the joints' +-0.1 m depth spread matters); fx=16000,fy=17000: <= 0.002
    for (fx, fy, cx, cy), bound in (((600.0, 660.0, 310.0, 250.0), 0.10),
                                    ((16000.0, 17000.0, 400.0, 300.0), 0.01)):
        aspect = np.array([fx / fy, 1.0])
        # where the crop camera put the joints, in original-image pixels (x mirrored back for left)
        target = kp2d * size[:, None, None] * aspect + center[:, None, :]
        t = cam_crop_to_full_intrinsics(pc, center, size, fx, fy, cx, cy)
        # the model origin projects exactly onto the crop camera's image of it
        origin = _project(t[:, None, :], fx, fy, cx, cy)[:, 0]
        np.testing.assert_allclose(origin, center + a[:, None] * aspect * pc[:, 1:], rtol=0, atol=1e-9)
        err = np.median(np.linalg.norm(
            _project(joints + t[:, None, :], fx, fy, cx, cy) - target, axis=-1), axis=1)
        # first-order size of what weak perspective leaves out: off-axis perspective of the
        # joints' depth spread in both cameras (no anisotropy term: the crop is isotropic)
        z = np.abs(joints[..., 2])
        off_axis = np.linalg.norm(target - [cx, cy], axis=-1) * z / t[:, 2, None]
        crop = a[:, None] * np.linalg.norm((joints[..., :2] + pc[:, None, 1:]) * aspect, axis=-1) * z \
            / tz_crop[:, None]
        expect = np.median(off_axis + crop, axis=1)
        print(f"fx={fx} fy={fy}: depth {np.round(t[:, 2], 3)} m, median joint error "
              f"{np.round(err, 2)} px = {np.round(err / size, 4)} x box_size "
              f"(first-order estimate {np.round(expect, 2)} px)")
        assert np.all(err <= expect) and np.all(err / size < bound)


def test_cam_bad_inputs(cam):
    fwd, full = cam
    args = (fwd["pred_cam"], full["box_center"], full["box_size"])
    for fx, fy, msg in ((0.0, 500.0, "fx and fy"), (500.0, np.nan, "fx and fy")):
        with pytest.raises(ValueError, match=msg):
            cam_crop_to_full_intrinsics(*args, fx, fy, 320.0, 240.0)
    with pytest.raises(ValueError, match="cx and cy"):
        cam_crop_to_full_intrinsics(*args, 500.0, 500.0, np.inf, 240.0)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        cam_crop_to_full_intrinsics(fwd["pred_cam"][:, :2], *args[1:], 500.0, 500.0, 320.0, 240.0)
    # s <= 0 is not an input error: the depth comes out non-positive for the pipeline to reject
    bad = fwd["pred_cam"].copy()
    bad[0, 0] = -1.0
    assert cam_crop_to_full_intrinsics(bad, *args[1:], 500.0, 500.0, 320.0, 240.0)[0, 2] < 0
