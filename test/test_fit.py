"""Regressor 'fit': recovers known MANO pose / shape / translation from keypoints; its
analytic derivatives; convergence, restarts from wrong warm starts, poor fits flagged."""
import shutil

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

import hand_mesh_ros.core.fit as fit_mod
from hand_mesh_ros.core.camera import project
from hand_mesh_ros.core.fit import ManoFitter, right_jacobian, world_landmark_rotation
from hand_mesh_ros.core.kinematics import JointKinematics
from hand_mesh_ros.core.hand_model import load_hand_model
from hand_mesh_ros.core.mano_params import ManoParams
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
    intr = np.tile([K.fx, K.fy, K.cx, K.cy], (2, 1))
    # 3D keypoints as MediaPipe's world landmarks: own origin, axes of a camera looking
    # straight at the hand (the crop's), i.e. camera axes turned back by the viewing ray
    R = world_landmark_rotation(uv, intr)
    world = np.einsum("bji,bnj->bni", R, joints) + np.array([0.3, 0.1, -0.2])
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
    again = fitter.fit(joints, right, init=first.params.to_vector())
    assert again.error.max() <= first.error.max() + 1e-4


def test_fit_rejects_bad_keypoints(builtin):
    fitter = ManoFitter(builtin)
    bad = np.zeros((1, 21, 3))
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fitter.fit(bad, np.array([True]))
    with pytest.raises(ValueError, match=r"\(B,21,3\)"):
        fitter.fit(np.zeros((1, 20, 3)), np.array([True]))


# ---------------------------------------------------------------- analytic derivatives
@pytest.mark.parametrize("which", ["builtin", "mano"])
def test_kinematics_match_hand_model(which, request):
    """The numpy forward (keypoints, mesh) is the torch HandModel's, both sides, and its
    analytic Jacobian matches finite differences (MANO's tip pose blend shapes included)."""
    model = request.getfixturevalue(which)
    kin = JointKinematics(model)
    rng = np.random.default_rng(4)
    aa = rng.normal(size=(3, 16, 3)) * 0.5
    betas = rng.normal(size=(3, 10))
    side = np.array([1, 0, 1])
    R = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(3, 16, 3, 3)
    st = kin.forward(R, betas, side)
    with torch.no_grad():
        ref = model(torch.tensor(aa[:, 0]).float(), torch.tensor(aa[:, 1:].reshape(3, 45)).float(),
                    torch.tensor(betas).float(), torch.tensor(side == 1))
    assert np.abs(st.keypoints - ref.joints.numpy()).max() < 1e-6
    assert np.abs(kin.vertices(st, betas) - ref.vertices.numpy()).max() < 1e-6
    d_rot, d_betas = kin.jacobian(st)
    h = 1e-6
    for k in range(16):
        for c in range(3):
            delta = np.zeros(3)
            delta[c] = h
            R2 = R.copy()
            R2[:, k] = R[:, k] @ Rotation.from_rotvec(delta).as_matrix()
            num = (kin.forward(R2, betas, side).keypoints - st.keypoints).reshape(3, 63) / h
            assert np.abs(num - d_rot[:, :, 3 * k + c]).max() < 1e-5
    for k in range(10):
        b2 = betas.copy()
        b2[:, k] += h
        num = (kin.forward(R, b2, side).keypoints - st.keypoints).reshape(3, 63) / h
        assert np.abs(num - d_betas[:, :, k]).max() < 1e-6


@pytest.mark.parametrize("with_2d", [True, False])
def test_normal_equations_match_finite_differences(builtin, with_2d):
    """JᵀJ and Jᵀr of all residuals (3D, 2D, priors) against a numeric Jacobian."""
    fitter = ManoFitter(builtin)
    joints, right, _ = _random_hands(builtin, 1, seed=6)
    K = np.array([[600.0, 620.0, 320.0, 240.0]])
    uv = np.stack([project(j + [0.05, 0.0, 0.5], CameraIntrinsics(*K[0], 640, 480)) for j in joints])
    problem = fit_mod._Problem(joints, right.astype(np.int64), uv if with_2d else None, K if with_2d else None, None)
    state = fit_mod._State(np.empty((1, 3, 3)), np.empty((1, 15, 3)), np.zeros((1, 10)), None, None)
    state = fitter._closed_form(state, np.array([True]), joints, problem.side)
    rng = np.random.default_rng(1)
    state = state._replace(hand_pose=state.hand_pose + rng.normal(size=(1, 15, 3)) * 0.1,
                           betas=rng.normal(size=(1, 10)))
    state, problem, _ = fitter._start(problem, state)
    r, ks = fitter._evaluate(problem, state)
    JtJ, g = fitter._normal_equations(problem, state, ks, r)
    P = JtJ.shape[1]
    num = np.zeros((r.shape[1], P))
    for k in range(P):
        step = np.zeros((1, P))
        step[0, k] = 1e-7
        num[:, k] = (fitter._evaluate(problem, fitter._step(state, step))[0][0] - r[0]) / 1e-7
    assert np.abs(num.T @ num - JtJ[0]).max() < 1e-6 * np.abs(JtJ).max()
    assert np.abs(num.T @ r[0] - g[0]).max() < 1e-5 * np.abs(g).max()


def test_right_jacobian():
    """exp(θ + dθ) = exp(θ) exp(J_r(θ) dθ) to first order, also near 0."""
    rng = np.random.default_rng(0)
    for theta in (rng.normal(size=3), np.array([1e-6, -2e-6, 0.0]), np.array([0.0, 0.0, 3.0])):
        d = rng.normal(size=3) * 1e-6
        lhs = Rotation.from_rotvec(theta + d).as_matrix()
        rhs = Rotation.from_rotvec(theta).as_matrix() @ Rotation.from_rotvec(right_jacobian(theta) @ d).as_matrix()
        assert np.abs(lhs - rhs).max() < 1e-11


# ---------------------------------------------------------------- convergence and restarts
def test_fit_reports_convergence_and_quality(builtin):
    joints, right, _ = _random_hands(builtin, 2, seed=3)
    res = ManoFitter(builtin).fit(joints, right)
    assert res.converged.all() and not res.poor.any() and not res.restarted.any()
    assert (res.error < 2e-3).all() and np.isnan(res.reprojection_error).all()


def test_bad_warm_start_is_restarted(builtin):
    """A warm start from a wrong local minimum (another hand's pose) is detected by its
    residual, solved again from the closed-form guess and the better result kept."""
    K = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
    joints, right, (go, hp, betas) = _random_hands(builtin, 2, seed=8, pose_std=0.4)
    t = np.array([0.02, 0.01, 0.45])
    uv = np.stack([project(j + t, K) for j in joints])
    intr = np.tile([K.fx, K.fy, K.cx, K.cy], (2, 1))
    world = np.einsum("bji,bnj->bni", world_landmark_rotation(uv, intr), joints)
    wrong = ManoParams((go + np.pi * torch.tensor([0.0, 1.0, 0.0])).numpy(), -hp.numpy(), betas.numpy()).to_vector()
    fitter = ManoFitter(builtin)
    res = fitter.fit(world, right, init=wrong, keypoints_2d=uv, intrinsics=intr)
    assert res.restarted.all()
    assert (res.error < 3e-3).all() and (res.reprojection_error < 2.0).all() and not res.poor.any()


def test_inconsistent_keypoints_are_flagged_poor(builtin):
    """3D keypoints of one hand with 2D keypoints of another: no pose explains both; the
    fit says so (``poor``) instead of returning a silently wrong hand."""
    K = CameraIntrinsics(600.0, 600.0, 320.0, 240.0, 640, 480)
    joints, right, _ = _random_hands(builtin, 2, seed=9, pose_std=0.6)
    uv = np.stack([project(j + [0.0, 0.0, 0.4], K) for j in joints[::-1]])
    intr = np.tile([K.fx, K.fy, K.cx, K.cy], (2, 1))
    res = ManoFitter(builtin).fit(joints, right, keypoints_2d=uv, intrinsics=intr)
    assert res.poor.all()
