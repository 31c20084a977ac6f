"""Camera geometry: projection, intrinsics validation, metric translation solve."""
import numpy as np
import pytest

from hand_mesh_ros.core.camera import project, solve_translation, solve_translation_batch
from hand_mesh_ros.core.types import CameraIntrinsics

# fx != fy and an off-centre principal point, as a real CameraInfo may have.
K = CameraIntrinsics(fx=612.3, fy=655.9, cx=301.7, cy=251.2, width=640, height=480)


def _hand_like_points(rng, n=21):
    return rng.normal(0, 0.04, (n, 3))


def test_project_known_values():
    uv = project(np.array([[0.1, -0.2, 2.0]]), K)
    assert np.allclose(uv, [[612.3 * 0.05 + 301.7, 655.9 * -0.1 + 251.2]])


@pytest.mark.parametrize("t_true", [(0.05, -0.03, 0.45), (-0.3, 0.2, 1.7), (0.0, 0.0, 0.2)])
def test_translation_exact_on_synthetic_projections(t_true):
    rng = np.random.default_rng(1)
    joints = _hand_like_points(rng)
    uv = project(joints + t_true, K)
    t = solve_translation(joints, uv, K)
    assert np.abs(t - t_true).max() < 1e-9


def test_translation_uses_both_focal_lengths():
    """Assuming fx = fy (as HaMeR does) would place the hand at the wrong depth."""
    rng = np.random.default_rng(2)
    joints = _hand_like_points(rng)
    t_true = np.array([0.02, 0.01, 0.6])
    uv = project(joints + t_true, K)
    wrong = CameraIntrinsics(K.fx, K.fx, K.cx, K.cy, K.width, K.height)
    assert abs(solve_translation(joints, uv, wrong)[2] - t_true[2]) > 0.01
    assert abs(solve_translation(joints, uv, K)[2] - t_true[2]) < 1e-9


def test_translation_weights_ignore_outliers():
    rng = np.random.default_rng(3)
    joints = _hand_like_points(rng)
    t_true = np.array([0.1, 0.0, 0.8])
    uv = project(joints + t_true, K)
    uv[4] += 200.0                      # one wildly wrong keypoint
    w = np.ones(21)
    w[4] = 0.0
    assert np.abs(solve_translation(joints, uv, K, weights=w) - t_true).max() < 1e-9
    assert np.abs(solve_translation(joints, uv, K) - t_true).max() > 1e-3


def test_translation_batch_matches_single():
    rng = np.random.default_rng(4)
    joints = rng.normal(0, 0.04, (3, 21, 3))
    ts = np.array([[0, 0, 0.5], [0.1, -0.1, 1.0], [-0.2, 0.05, 0.3]])
    intr = np.array([[500, 520, 320, 240], [612.3, 655.9, 301.7, 251.2], [900, 900, 640, 360.0]])
    uv = np.stack([project(j + t, CameraIntrinsics(*k, 1, 1)) for j, t, k in zip(joints, ts, intr)])
    assert np.abs(solve_translation_batch(joints, uv, intr) - ts).max() < 1e-9


def test_translation_degenerate_raises():
    with pytest.raises(ValueError, match="degenerate"):
        solve_translation(np.zeros((21, 3)), np.full((21, 2), 100.0), K)
    with pytest.raises(ValueError, match="at least 2"):
        solve_translation(np.zeros((21, 3)), np.zeros((21, 2)), K, weights=np.zeros(21))
    with pytest.raises(ValueError, match=r"\(N,3\)"):
        solve_translation(np.zeros((21, 2)), np.zeros((21, 2)), K)


@pytest.mark.parametrize("bad", [dict(fx=float("nan")), dict(fy=0.0), dict(cx=float("inf")), dict(width=0)])
def test_intrinsics_validate_rejects_bad_values(bad):
    kw = dict(fx=500.0, fy=500.0, cx=320.0, cy=240.0, width=640, height=480)
    kw.update(bad)
    with pytest.raises(ValueError, match="camera intrinsics"):
        CameraIntrinsics(**kw).validate()


def test_assumed_intrinsics_documented_fov():
    a = CameraIntrinsics.assumed_for(640, 480)
    assert a.assumed and a.cx == 320 and a.cy == 240 and a.fx == a.fy
    hfov = 2 * np.degrees(np.arctan(320 / a.fx))
    assert abs(hfov - CameraIntrinsics.ASSUMED_HFOV_DEG) < 1e-9
