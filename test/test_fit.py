"""Regressor 'fit': recovers known MANO pose / shape / translation from keypoints."""
import shutil

import numpy as np
import pytest
import torch

from hand_mesh_ros.core.camera import project
from hand_mesh_ros.core.fit import ManoFitter
from hand_mesh_ros.core.hand_model import load_hand_model
from hand_mesh_ros.core.types import CameraIntrinsics


@pytest.fixture(scope="module")
def builtin():
    return load_hand_model(None)


@pytest.fixture(scope="module")
def mano(tmp_path_factory, request):
    from conftest import GOLDEN_HAMER

    src = GOLDEN_HAMER / "synthetic_MANO_RIGHT.pkl"
    if not src.exists():
        pytest.skip(f"synthetic MANO file not found: {src}")
    d = tmp_path_factory.mktemp("mano")
    shutil.copy(src, d / "MANO_RIGHT.pkl")
    return load_hand_model(str(d))


def _random_hands(model, B, seed, pose_std=0.3):
    g = torch.Generator().manual_seed(seed)
    go = torch.randn(B, 3, generator=g)
    hp = torch.randn(B, 45, generator=g) * pose_std
    betas = torch.randn(B, 10, generator=g) * 0.8
    right = torch.arange(B) % 2 == 0
    with torch.no_grad():
        out = model(go, hp, betas, right)
    return out.joints.numpy().astype(np.float64), right.numpy(), (go, hp, betas)


@pytest.mark.parametrize("which", ["builtin", "mano"])
def test_fit_recovers_model_keypoints(which, request):
    model = request.getfixturevalue(which)
    joints, right, _ = _random_hands(model, 4, seed=0)
    target = joints + np.array([0.01, -0.02, 0.3])          # arbitrary keypoint origin
    res = ManoFitter(model).fit(target, right)
    err = np.linalg.norm(res.joints + res.offset[:, None] - target, axis=-1)
    print(f"{which}: max joint error {err.max() * 1000:.2f} mm")
    assert err.max() < 2e-3
    # the mesh and joints come from the same forward pass
    assert res.vertices.shape == (4, model.num_vertices, 3)


def test_fit_recovers_shape(builtin):
    """Betas are identifiable from joints (bone lengths): the fitted shape reproduces the
    true rest-pose skeleton."""
    joints, right, (go, hp, betas) = _random_hands(builtin, 2, seed=5)
    res = ManoFitter(builtin).fit(joints, right)
    zeros = torch.zeros(2, 3), torch.zeros(2, 45)
    with torch.no_grad():
        rest_true = builtin(*zeros, betas, torch.as_tensor(right)).joints.numpy()
        rest_fit = builtin(*zeros, torch.as_tensor(res.betas), torch.as_tensor(right)).joints.numpy()
    bones = lambda j: np.linalg.norm(j[:, 1:] - j[:, :1], axis=-1)
    assert np.abs(bones(rest_true) - bones(rest_fit)).max() < 3e-3


def test_fit_noisy_keypoints(builtin):
    joints, right, _ = _random_hands(builtin, 4, seed=1)
    noise = np.random.default_rng(0).normal(0, 0.003, joints.shape)   # 3 mm per axis
    res = ManoFitter(builtin).fit(joints + noise, right)
    err = np.linalg.norm(res.joints + res.offset[:, None] - joints, axis=-1).mean()
    noise_mag = np.linalg.norm(noise, axis=-1).mean()
    print(f"noisy: mean error to the clean joints {err * 1000:.2f} mm (noise {noise_mag * 1000:.2f} mm)")
    assert err < noise_mag


def test_fit_with_2d_recovers_camera_translation(builtin):
    K = CameraIntrinsics(612.3, 655.9, 301.7, 251.2, 640, 480)
    joints, right, _ = _random_hands(builtin, 2, seed=2)
    t_true = np.array([[0.05, -0.02, 0.5], [-0.1, 0.04, 0.9]])
    uv = np.stack([project(j + t, K) for j, t in zip(joints, t_true)])
    world = joints + np.array([0.3, 0.1, -0.2])          # 3D keypoints with their own origin
    intr = np.tile([K.fx, K.fy, K.cx, K.cy], (2, 1))
    res = ManoFitter(builtin).fit(world, right, keypoints_2d=uv, intrinsics=intr)
    assert np.abs(res.offset - t_true).max() < 2e-3
    placed = res.joints + res.offset[:, None]
    assert np.linalg.norm(placed - (joints + t_true[:, None]), axis=-1).max() < 2e-3
    reproj = np.stack([project(p, K) for p in placed])
    assert np.abs(reproj - uv).max() < 2.0   # px


def test_warm_start_stays_converged(builtin):
    joints, right, _ = _random_hands(builtin, 2, seed=3)
    fitter = ManoFitter(builtin)
    first = fitter.fit(joints, right)
    init = np.concatenate([first.global_orient, first.hand_pose, first.betas], 1)
    again = fitter.fit(joints, right, init=init)
    assert again.error.max() <= first.error.max() + 1e-4


def test_fit_rejects_bad_keypoints(builtin):
    fitter = ManoFitter(builtin)
    bad = np.zeros((1, 21, 3))
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitter.fit(bad, np.array([True]))
    with pytest.raises(ValueError, match=r"\(B,21,3\)"):
        fitter.fit(np.zeros((1, 20, 3)), np.array([True]))
