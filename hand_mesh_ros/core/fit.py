"""Regressor ``fit``: MANO parameters fitted to a detector's 21 keypoints, in 3D and in 2D.

Given per hand 21 metric 3D keypoints ``K`` (MediaPipe world landmarks, OpenPose order,
origin near the hand centre) and, with the camera intrinsics, the 21 image keypoints
``uv``, find ``global_orient`` (3), ``hand_pose`` (45, axis-angle), ``betas`` (10), the
camera translation ``t`` and the free origin ``c`` of the 3D keypoints minimising::

    r_3d = w_3d (J(θ, β) + t - R_ray K - c)                  [mm]                       63
    r_2d = w_2d (π(J(θ, β) + t) - uv) z₀ / f̄                [px -> mm at the hand's depth z₀] 42
    r_θ  = P_k θ_k,  P_k = λ_pose (I - b bᵀ) + λ_twist b bᵀ    [mm]   45 (towards the flat hand)
    r_β  = λ_betas β                                                                    10

so the mesh keeps the detector's metric 3D shape (which fixes the depth ``t_z``) and lies
on the hand in the image (both weights 1: a millimetre of 3D disagreement weighs as much as
a millimetre of image disagreement at the hand's depth). ``R_ray`` takes the world landmarks, which MediaPipe regresses as if its crop were seen straight on,
into the camera's axes (``world_landmark_rotation``). The pose prior keeps finger swings small and their twists about
their own bone ``b`` (which fingers barely have and keypoints hardly observe) smaller.
Without intrinsics only ``r_3d`` (``t`` an offset, no ``c``, no ``R_ray``) and the priors.

Solver: Levenberg-Marquardt (Marquardt 1963; damping ``mu max(diag(JᵀJ), floor)``), all
hands of a batch at once with per-hand damping, step acceptance and stopping (a hand has
converged when an accepted step lowers its cost by less than ``ftol``). The root rotation
is updated on the manifold, ``R_0 <- R_0 exp([δ]x)``, the finger rotations additively in
MANO's axis-angle through the right Jacobian of SO(3) (Solà et al., "A micro Lie theory
for state estimation in robotics", 2018); the keypoints' Jacobian is analytic
(``kinematics.JointKinematics``). All float64 numpy on the host: one hand is a 64-parameter
problem, where numpy's per-call cost beats torch's and a GPU round trip by far.

Starting points:

1. Closed form (Umeyama 1991 Kabsch for the palm, then a minimal swing per bone, parents
   first) — for a new hand, and as the restart below.
2. Warm start: the same track's previous ``[global_orient, hand_pose, betas]``
   (``ManoParams.to_vector``).

A warm start can lead into a wrong local minimum and stay there frame after frame (seen
on another CPU's rounding: 23 mm 3D RMS instead of 5). So each fit's quality is checked
against ``max_error_3d`` / ``max_error_2d``; a warm-started fit that misses them is solved
again from the closed form and the result with the lower cost is kept
(``FitResult.restarted``); one that still misses them is ``FitResult.poor`` — the caller
publishes it with its residual (``error``, ``reprojection_error``) and never warm-starts
from it.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np
from scipy.linalg.lapack import dposv
from scipy.spatial.transform import Rotation
from threadpoolctl import ThreadpoolController

from .camera import solve_translation_batch, viewing_ray_rotation
from .hand_model import JOINT_ROTATION_SOURCE, MANO_TO_OPENPOSE
from .kinematics import JointKinematics, skew
from .mano_params import ManoParams

#: (63, 3) d(keypoints)/d(translation): one identity per keypoint.
_EYE_T = np.tile(np.eye(3), (21, 1))
_THREADPOOLS: Optional[ThreadpoolController] = None

#: Extended (16 joints + 5 tips) indices of the palm points used for the root rotation:
#: wrist + 4 MCPs.
PALM = np.array([0, 1, 4, 7, 10])

#: Columns of the LM unknowns (and of the Jacobian): the MANO parameter vector's layout
#: (``ManoParams``; the root as a manifold perturbation δ_root), then the camera translation
#: t (3) and, with 2D keypoints, the keypoint origin c (3).
_ROOT, _POSE, _BETAS = ManoParams.GLOBAL_ORIENT, ManoParams.HAND_POSE, ManoParams.BETAS
_T = slice(ManoParams.SIZE, ManoParams.SIZE + 3)
_C = slice(_T.stop, _T.stop + 3)


@dataclass
class FitConfig:
    """Fit settings. Residual units: joints in mm, pose in rad, betas unitless.

    Attributes:
        iterations: most LM iterations from the closed-form guess.
        warm_iterations: most LM iterations from a warm start.
        ftol: a hand has converged when an accepted step lowers its cost by less than this
            fraction.
        weight_3d: w_3d, weight of the 3D keypoint residual.
        weight_2d: w_2d, weight of the reprojection residual (module docstring).
        pose_prior: λ_pose [mm / rad], pulls finger rotations towards the flat hand (their
            swing: flexion and spread).
        twist_prior: [mm / rad], the same for the twist of each finger joint about its own
            bone, which real fingers barely have and keypoints hardly observe (without it
            the Gauss-Newton steps swing twists by radians and get rejected).
        betas_prior: λ_betas [mm / unit], pulls betas towards the mean shape.
        mu0: initial LM damping.
        damping_floor: [mm² per parameter unit²] the damping is ``mu * max(diag(JᵀJ), floor)``
            (Marquardt's scaling, floored): a short bone's rotation (a DIP joint) has a tiny
            diagonal entry, and without the floor its Gauss-Newton step swings it by radians
            beyond where the linearisation holds (measured: rejected steps, and 3D RMS up to
            9.8 mm instead of 7.0 mm on the test video's fast frames).
        max_error_3d: a fit with a larger 3D RMS [m] is poor ...
        max_error_2d: ... and so is one with a larger median reprojection error, as a
            fraction of the 2D keypoints' box diagonal. A poor warm-started fit is solved
            again from the closed-form guess; a fit still poor after that is flagged
            (``FitResult.poor``). On the test video good fits stay under 7 mm and 3.2 %, a
            fit stuck in a wrong minimum was at 23 mm and 5.6 %.
    """

    iterations: int = 20
    warm_iterations: int = 8
    ftol: float = 1e-2
    weight_3d: float = 1.0
    weight_2d: float = 1.0
    pose_prior: float = 2.0
    twist_prior: float = 10.0
    betas_prior: float = 1.0
    mu0: float = 1e-2
    damping_floor: float = 1e5
    max_error_3d: float = 0.010
    max_error_2d: float = 0.04


@dataclass
class FitResult:
    """Per-hand fitted parameters, B hands.

    Attributes:
        global_orient: (B, 3) float32 axis-angle [rad], camera-aligned axes, |.| <= pi.
        hand_pose: (B, 45) float32 axis-angle [rad].
        betas: (B, 10) float32.
        offset: (B, 3) float32 [m]: the camera translation ``t`` (optical frame) when 2D
            keypoints and intrinsics were given, else the offset model -> keypoint frame.
        joints: (B, 21, 3) float32 model joints without offset [m], OpenPose order.
        vertices: (B, V, 3) float32 model vertices without offset [m].
        joint_rotations: (B, 21, 3, 3) float32 global kinematic-chain rotation moving each
            OpenPose joint's bone (as ``HandModelOutput.joint_rotations``; identity = rest).
        error: (B,) float32 RMS distance between the fitted joints and the 3D keypoints [m]
            (after the free origin ``c``).
        reprojection_error: (B,) float32 median distance between the projected joints and
            the 2D keypoints [px]; NaN without 2D keypoints.
        converged: (B,) bool, the solve stopped on ``ftol`` (not on the iteration cap).
        restarted: (B,) bool, a warm start was replaced by a restart from the closed form.
        poor: (B,) bool, the fit misses ``max_error_3d`` / ``max_error_2d``: do not trust
            it, do not warm-start from it.
        iterations: (B,) int, LM iterations used (both solves together).
    """

    global_orient: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    offset: np.ndarray
    joints: np.ndarray
    vertices: np.ndarray
    joint_rotations: np.ndarray
    error: np.ndarray
    reprojection_error: np.ndarray
    converged: np.ndarray
    restarted: np.ndarray
    poor: np.ndarray
    iterations: np.ndarray

    @property
    def params(self) -> ManoParams:
        """(B, ...) float32 ``global_orient``, ``hand_pose``, ``betas`` and ``offset`` as ``transl``."""
        return ManoParams(self.global_orient, self.hand_pose, self.betas, self.offset)


def _min_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(B, 3, 3) smallest rotations taking directions ``a`` (B, 3) onto ``b`` (B, 3)."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(1e-9)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(1e-9)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    angle = np.arctan2(s, (a * b).sum(-1))
    ortho = np.cross(a, np.where(np.abs(a[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]]))  # antiparallel
    axis = np.where((s < 1e-8)[:, None], ortho, axis)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True).clip(1e-12)
    return Rotation.from_rotvec(axis * angle[:, None]).as_matrix()


def _kabsch(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(B, 3, 3) rotations R minimising ``|R (src - mean) - (dst - mean)|`` for (B, N, 3)."""
    s = src - src.mean(1, keepdims=True)
    d = dst - dst.mean(1, keepdims=True)
    U, _, Vt = np.linalg.svd(np.einsum("bni,bnj->bij", s, d))
    V, Ut = Vt.transpose(0, 2, 1), U.transpose(0, 2, 1)
    S = np.tile(np.eye(3), (len(src), 1, 1))
    S[:, 2, 2] = np.sign(np.linalg.det(V @ Ut))
    return V @ S @ Ut


def _exp(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation matrices of (..., 3) axis-angle vectors (Rodrigues)."""
    return Rotation.from_rotvec(v.reshape(-1, 3)).as_matrix().reshape(v.shape[:-1] + (3, 3))


def _log(R: np.ndarray) -> np.ndarray:
    """(..., 3) axis-angle vectors (norm <= pi) of (..., 3, 3) rotation matrices:
    ``θ = acos((tr R - 1) / 2)``, axis from the skew part (scipy's ``Rotation`` for angles
    within 1e-3 rad of pi, where that part vanishes; scipy's conversion costs several times
    more on one matrix)."""
    flat = R.reshape(-1, 3, 3)
    cos = ((np.einsum("bii->b", flat) - 1.0) / 2.0).clip(-1.0, 1.0)
    angle = np.arccos(cos)
    vee = np.stack([flat[:, 2, 1] - flat[:, 1, 2], flat[:, 0, 2] - flat[:, 2, 0], flat[:, 1, 0] - flat[:, 0, 1]], 1)
    small = angle < 1e-6
    factor = np.where(small, 0.5, angle / (2.0 * np.sin(np.where(small, 1.0, angle))))
    out = factor[:, None] * vee
    near_pi = angle > np.pi - 1e-3
    if near_pi.any():
        out[near_pi] = Rotation.from_matrix(flat[near_pi]).as_rotvec()
    return out.reshape(R.shape[:-2] + (3,))


def right_jacobian(theta: np.ndarray) -> np.ndarray:
    """(..., 3, 3) right Jacobian of SO(3) at axis-angle ``theta`` (..., 3):
    ``exp(θ + dθ) ≈ exp(θ) exp(J_r(θ) dθ)``, with
    ``J_r = I - (1 - cos a) / a² [θ]x + (a - sin a) / a³ [θ]x²``, ``a = |θ|`` (Solà et al.,
    "A micro Lie theory for state estimation in robotics", 2018, eq. 143; the coefficients
    tend to 1/2 and 1/6 at 0)."""
    a2 = (theta ** 2).sum(-1)
    a = np.sqrt(a2)
    small = a < 1e-4
    s = np.where(small, 1.0, a)
    c1 = np.where(small, 0.5 - a2 / 24.0, (1.0 - np.cos(s)) / s ** 2)
    c2 = np.where(small, 1.0 / 6.0 - a2 / 120.0, (s - np.sin(s)) / s ** 3)
    # [θ]x² = θθᵀ - |θ|² I
    out = (c2[..., None, None] * theta[..., :, None]) * theta[..., None, :] - c1[..., None, None] * skew(theta)
    out += (1.0 - c2 * a2)[..., None, None] * np.eye(3)
    return out


@contextmanager
def single_threaded_blas():
    """One BLAS thread (numpy's OpenBLAS) for the block, restored after.

    The fit's matrices are tiny (a 64 x 64 system per hand): handing them to a second
    thread costs more than the work, and on a 2-core machine OpenBLAS's threads also wait
    for torch's OpenMP threads (measured: the fit took 1.6x as long with 2 BLAS threads)."""
    global _THREADPOOLS
    if _THREADPOOLS is None:
        _THREADPOOLS = ThreadpoolController()
    with _THREADPOOLS.limit(limits=1, user_api="blas"):
        yield


class _Problem(NamedTuple):
    """The data of B hands' least squares (float64)."""

    target: np.ndarray          # (B, 21, 3) 3D keypoints [m]
    side: np.ndarray            # (B,) 0 left, 1 right
    uv: Optional[np.ndarray]    # (B, 21, 2) 2D keypoints [px], or None
    intr: Optional[np.ndarray]  # (B, 4) fx, fy, cx, cy [px]
    scale: Optional[np.ndarray]  # (B,) m per px at the hand (z0 / f̄)

    def take(self, idx: np.ndarray) -> "_Problem":
        return _Problem(*(None if a is None else a[idx] for a in self))


class _State(NamedTuple):
    """Parameters of B hands: root rotation matrix (B, 3, 3), hand_pose axis-angle
    (B, 15, 3), betas (B, 10), translation t (B, 3), keypoint origin c (B, 3; zeros and
    unused without 2D)."""

    root: np.ndarray
    hand_pose: np.ndarray
    betas: np.ndarray
    t: np.ndarray
    c: np.ndarray

    def take(self, idx: np.ndarray) -> "_State":
        return _State(*(a[idx] for a in self))

    def rotations(self) -> np.ndarray:
        """(B, 16, 3, 3) local joint rotations."""
        return np.concatenate([self.root[:, None], _exp(self.hand_pose)], 1)


class ManoFitter:
    """Fits a ``HandModel`` (MANO or the built-in hand) to 21 keypoints, batched (module
    docstring).

    Args:
        hand_model: a ``hand_model.HandModel``; its arrays are copied to numpy once, its
            torch forward poses the final meshes (on its device).
        config: ``FitConfig``.
    """

    def __init__(self, hand_model, config: Optional[FitConfig] = None):
        self.model = hand_model
        self.cfg = config or FitConfig()
        self.kin = JointKinematics(hand_model)
        rest = self.kin.forward(np.tile(np.eye(3), (2, 16, 1, 1)), np.zeros((2, 10)), np.array([0, 1]))
        self._rest_ext = np.empty((2, 21, 3))      # [side] rest keypoints, extended order
        self._rest_ext[:, MANO_TO_OPENPOSE] = rest.keypoints
        # pose prior per side (each side's own rest bones): (2, 15, 3, 3) blocks
        self._prior_blocks = np.stack([self._joint_prior(s) for s in (0, 1)])
        prior = np.zeros((2, 45, 45))
        for k in range(15):
            prior[:, 3 * k:3 * k + 3, 3 * k:3 * k + 3] = self._prior_blocks[:, k]
        #: (2, 64, 64) JᵀJ of the (linear) prior residuals, per side
        self._prior_normal = np.zeros((2, _C.stop, _C.stop))
        self._prior_normal[:, _POSE, _POSE] = prior.transpose(0, 2, 1) @ prior
        self._prior_normal[:, _BETAS, _BETAS] = self.cfg.betas_prior ** 2 * np.eye(10)

    def _joint_prior(self, side: int) -> np.ndarray:
        """(15, 3, 3) prior matrices ``λ_pose (I - b bᵀ) + λ_twist b bᵀ`` per finger joint,
        ``b`` the joint's rest bone direction (local rotations are in rest-aligned axes)."""
        rest = self._rest_ext[side]
        child = _bone_child(self.kin.parents)
        b = rest[child[1:]] - rest[1:16]
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        bb = b[:, :, None] * b[:, None, :]
        return self.cfg.pose_prior * (np.eye(3) - bb) + self.cfg.twist_prior * bb

    # -- starting point ----------------------------------------------------------------
    def initial_rotations(self, keypoints: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Closed-form pose (module docstring, 1.).

        Args:
            keypoints: (B, 21, 3) [m], OpenPose order.
            side: (B,) int, 0 left, 1 right.

        Returns:
            (B, 16, 3, 3) float64 local joint rotations.
        """
        B = len(keypoints)
        tgt = np.empty((B, 21, 3))
        tgt[:, MANO_TO_OPENPOSE] = keypoints
        rest = self._rest_ext[side]
        parents = self.kin.parents
        child = _bone_child(parents)
        G = np.zeros((B, 16, 3, 3))
        local = np.zeros((B, 16, 3, 3))
        G[:, 0] = local[:, 0] = _kabsch(rest[:, PALM], tgt[:, PALM])
        for j in range(1, 16):
            p, c = parents[j], child[j]
            bone_if_rigid = np.einsum("bij,bj->bi", G[:, p], rest[:, c] - rest[:, j])
            G[:, j] = _min_rotation(bone_if_rigid, tgt[:, c] - tgt[:, j]) @ G[:, p]
            local[:, j] = G[:, p].transpose(0, 2, 1) @ G[:, j]
        return local

    # -- public entry ------------------------------------------------------------------
    def fit(self, keypoints: np.ndarray, is_right: np.ndarray,
            init: Optional[np.ndarray] = None, keypoints_2d: Optional[np.ndarray] = None,
            intrinsics: Optional[np.ndarray] = None) -> FitResult:
        """Fit B hands.

        Args:
            keypoints: (B, 21, 3) float [m], OpenPose order, camera-aligned axes.
            is_right: (B,) bool.
            init: optional (B, 58) warm start ``[global_orient, hand_pose, betas]``
                (``ManoParams.to_vector``); rows with a NaN start from the closed-form guess.
            keypoints_2d: optional (B, 21, 2) [px] image keypoints (undistorted, pinhole);
                with ``intrinsics`` (B, 4) ``fx, fy, cx, cy`` [px] the fit includes the
                reprojection term and ``FitResult.offset`` is the camera translation.

        Returns:
            ``FitResult``.

        Raises:
            ValueError: wrong shapes, non-finite input, or degenerate 2D keypoints.
        """
        kp = np.asarray(keypoints, np.float64)
        side = np.asarray(is_right, bool).astype(np.int64)
        if kp.ndim != 3 or kp.shape[1:] != (21, 3) or side.shape != (len(kp),):
            raise ValueError(f"keypoints (B,21,3) and is_right (B,) expected, got {kp.shape}, {side.shape}")
        if not np.isfinite(kp).all():
            raise ValueError("keypoints contain NaN or inf")
        B = len(kp)
        uv = intr = None
        if keypoints_2d is not None and intrinsics is not None:
            uv = np.asarray(keypoints_2d, np.float64)
            intr = np.asarray(intrinsics, np.float64).reshape(B, 4)
            if uv.shape != (B, 21, 2) or not (np.isfinite(uv).all() and np.isfinite(intr).all()):
                raise ValueError(f"keypoints_2d (B,21,2) and finite intrinsics expected, got {uv.shape}")
            kp = kp @ np.swapaxes(world_landmark_rotation(uv, intr), 1, 2)
        with single_threaded_blas():
            return self._fit(_Problem(kp, side, uv, intr, None), init)

    def _fit(self, problem: _Problem, init: Optional[np.ndarray]) -> FitResult:
        kp, side = problem.target, problem.side
        B = len(kp)
        cold = np.ones(B, bool)
        state = _State(np.empty((B, 3, 3)), np.empty((B, 15, 3)), np.zeros((B, 10)), None, None)
        if init is not None:
            init = np.asarray(init, np.float64).reshape(B, ManoParams.SIZE)
            cold = ~np.isfinite(init).all(1)
            warm = ManoParams.from_vector(init[~cold])
            state.root[~cold] = _exp(warm.global_orient)
            state.hand_pose[~cold] = warm.hand_pose.reshape(-1, 15, 3)
            state.betas[~cold] = warm.betas
        if cold.any():
            state = self._closed_form(state, cold, kp, side)
        state, problem, ks = self._start(problem, state)

        iters = np.where(cold, self.cfg.iterations, self.cfg.warm_iterations)
        state, ks, cost, n_iter, converged = self._levenberg_marquardt(problem, state, ks, iters)
        quality = self._quality(problem, state, ks)
        restarted = np.zeros(B, bool)
        retry = ~cold & self._poor(problem, *quality)
        if retry.any():
            idx = np.flatnonzero(retry)
            sub = problem.take(idx)
            s2 = self._closed_form(state.take(idx), np.ones(len(idx), bool), kp[idx], side[idx])
            s2, sub, ks2 = self._start(sub, s2)
            s2, ks2, cost2, it2, conv2 = self._levenberg_marquardt(sub, s2, ks2, np.full(len(idx), self.cfg.iterations))
            n_iter[idx] += it2
            better = cost2 < cost[idx]
            keep = idx[better]
            for a, b in zip(state, s2):
                a[keep] = b[better]
            for a, b in zip(ks, ks2):
                a[keep] = b[better]
            converged[keep] = conv2[better]
            restarted[keep] = True
            quality = self._quality(problem, state, ks)
        return self._result(problem, state, ks, quality, converged, restarted, n_iter)

    # -- internals ---------------------------------------------------------------------
    def _closed_form(self, state: _State, rows: np.ndarray, kp: np.ndarray, side: np.ndarray) -> _State:
        """``state`` with the closed-form pose and zero betas in ``rows`` (B,) bool."""
        local = self.initial_rotations(kp[rows], side[rows])
        state.root[rows] = local[:, 0]
        state.hand_pose[rows] = _log(local[:, 1:])
        state.betas[rows] = 0.0
        return state

    def _start(self, problem: _Problem, state: _State):
        """Initial translation (linear solve on the 2D keypoints, or the mean offset),
        keypoint origin and, unless ``problem`` has it (a restart keeps the first one, so
        that the costs of both solves compare), the depth scale for a starting pose; and the
        pose's kinematic state (the translation does not change it)."""
        ks = self.kin.forward(state.rotations(), state.betas, problem.side)
        kp0 = ks.keypoints
        if problem.uv is None:
            return state._replace(t=(problem.target - kp0).mean(1), c=np.zeros((len(kp0), 3))), problem, ks
        t = solve_translation_batch(kp0, problem.uv, problem.intr)
        c = (kp0 + t[:, None] - problem.target).mean(1)
        if problem.scale is None:
            problem = problem._replace(scale=t[:, 2].clip(0.05) / problem.intr[:, :2].mean(1))
        return state._replace(t=t, c=c), problem, ks

    def _evaluate(self, problem: _Problem, state: _State, ks=None):
        """Residuals (B, R) [mm] (module docstring) and the kinematic state they came from
        (``ks``, if given, is ``state``'s: not posed again)."""
        cfg = self.cfg
        if ks is None:
            ks = self.kin.forward(state.rotations(), state.betas, problem.side)
        B = len(state.t)
        X = ks.keypoints + state.t[:, None]                            # (B, 21, 3) camera frame
        parts = [1000.0 * cfg.weight_3d * (X - problem.target - state.c[:, None]).reshape(B, 63)]
        if problem.uv is not None:
            parts.append((1000.0 * cfg.weight_2d * problem.scale)[:, None]
                         * (_project(X, problem.intr) - problem.uv).reshape(B, 42))
        prior = (self._prior_blocks[problem.side] @ state.hand_pose[..., None]).reshape(B, 45)
        parts += [prior, cfg.betas_prior * state.betas]
        return np.concatenate(parts, 1), ks

    def _data_jacobian(self, problem: _Problem, state: _State, ks) -> np.ndarray:
        """(B, 63 [+ 42], P) Jacobian of the data residuals (3D, then 2D) of ``_evaluate``
        with respect to ``[δ_root (3), hand_pose (45), β (10), t (3)(, c (3))]`` (columns
        ``_ROOT``, ``_POSE``, ``_BETAS``, ``_T``, ``_C``; δ_root: the root rotation perturbed
        on the manifold, ``R_0 <- R_0 exp([δ]x)``)."""
        cfg = self.cfg
        B = len(state.t)
        d_rot, d_betas = self.kin.jacobian(ks)                           # (B, 63, 48), (B, 63, 10)
        # hand_pose is additive axis-angle: chain through the right Jacobian of each joint
        jr = right_jacobian(state.hand_pose)                             # (B, 15, 3, 3)
        d_pose = (d_rot[:, :, _POSE].reshape(B, 63, 15, 1, 3) @ jr[:, None]).reshape(B, 63, 45)
        eye_t = np.broadcast_to(_EYE_T, (B, 63, 3))
        dX = np.concatenate([d_rot[:, :, _ROOT], d_pose, d_betas, eye_t], 2)   # (B, 63, 61)
        w3 = 1000.0 * cfg.weight_3d
        if problem.uv is None:
            return w3 * dX
        Jac = np.empty((B, 105, _C.stop))
        Jac[:, :63, :_T.stop] = w3 * dX
        Jac[:, :63, _C] = -w3 * eye_t
        Jac[:, 63:, _C] = 0.0
        X = ks.keypoints + state.t[:, None]
        fx, fy = problem.intr[:, 0, None], problem.intr[:, 1, None]
        z = X[..., 2].clip(1e-3)
        dpi = np.zeros((B, 21, 2, 3))                                    # d proj / d X
        dpi[..., 0, 0] = fx / z
        dpi[..., 0, 2] = -fx * X[..., 0] / z ** 2
        dpi[..., 1, 1] = fy / z
        dpi[..., 1, 2] = -fy * X[..., 1] / z ** 2
        w2 = (1000.0 * cfg.weight_2d * problem.scale)[:, None, None, None]
        Jac[:, 63:, :_T.stop] = (w2 * (dpi @ dX.reshape(B, 21, 3, _T.stop))).reshape(B, 42, _T.stop)
        return Jac

    def _normal_equations(self, problem: _Problem, state: _State, ks, r: np.ndarray):
        """Gauss-Newton ``JᵀJ`` (B, P, P) and ``Jᵀr`` (B, P) of all residuals: the data
        rows from ``_data_jacobian``, the priors' (linear, constant Jacobian) from
        ``_prior_normal`` (``Jᵀr`` of a linear residual ``J x`` is ``JᵀJ x``)."""
        Jd = self._data_jacobian(problem, state, ks)
        n, P = Jd.shape[1], Jd.shape[2]
        prior = self._prior_normal[problem.side][:, :P, :P]
        x = np.zeros((len(r), P))
        x[:, _POSE] = state.hand_pose.reshape(-1, 45)
        x[:, _BETAS] = state.betas
        JtJ = Jd.transpose(0, 2, 1) @ Jd + prior
        g = (r[:, None, :n] @ Jd)[:, 0] + (prior @ x[..., None])[..., 0]
        return JtJ, g

    @staticmethod
    def _step(state: _State, step: np.ndarray) -> _State:
        c = state.c + step[:, _C] if step.shape[1] > _T.stop else state.c
        return _State(state.root @ _exp(step[:, _ROOT]), state.hand_pose + step[:, _POSE].reshape(-1, 15, 3),
                      state.betas + step[:, _BETAS], state.t + step[:, _T], c)

    def _levenberg_marquardt(self, problem: _Problem, state: _State, ks, iterations: np.ndarray):
        """LM on B hands from ``state`` (kinematic state ``ks``); hand b stops after
        ``iterations[b]`` or on ``ftol``. Returns (state, kinematic state, cost (B,),
        iterations used (B,), converged (B,))."""
        B = len(state.t)
        state = _State(*(a.copy() for a in state))
        r, ks = self._evaluate(problem, state, ks)
        ks_all = _take_kinematics(ks, np.arange(B))
        cost = (r ** 2).sum(1)
        mu = np.full(B, self.cfg.mu0)
        used = np.zeros(B, np.int64)
        converged = np.zeros(B, bool)
        active = np.flatnonzero(iterations > 0)
        r, ks = r[active], _take_kinematics(ks, active)
        while len(active):
            if len(active) == B:    # every hand still iterating (one hand: always): no copies
                sub, prob = state, problem
            else:
                sub, prob = state.take(active), problem.take(active)
            JtJ, g = self._normal_equations(prob, sub, ks, r)
            step = np.stack([_damped_solve(JtJ[b], g[b], mu[a], self.cfg.damping_floor) for b, a in enumerate(active)])
            new = self._step(sub, step)
            r_new, ks_new = self._evaluate(prob, new)
            cost_new = (r_new ** 2).sum(1)
            ok = cost_new < cost[active]
            for a, b in zip(state, new):
                a[active[ok]] = b[ok]
            for a, b in zip(ks_all, ks_new):
                a[active[ok]] = b[ok]
            done = ok & (cost[active] - cost_new <= self.cfg.ftol * cost[active])
            cost[active[ok]] = cost_new[ok]
            mu[active] = np.where(ok, mu[active] / 3.0, mu[active] * 4.0).clip(1e-9, 1e9)
            stalled = ~ok & (mu[active] >= 1e9)          # no descent at any damping
            used[active] += 1
            converged[active[done | stalled]] = True
            r = np.where(ok[:, None], r_new, r)
            ks = _select_kinematics(ok, ks_new, ks)
            keep = ~(done | stalled) & (used[active] < iterations[active])
            active, r, ks = active[keep], r[keep], _take_kinematics(ks, np.flatnonzero(keep))
        return state, ks_all, cost, used, converged

    @staticmethod
    def _quality(problem: _Problem, state: _State, ks):
        """(3D RMS [m], median reprojection error [px] or NaN) per hand, from the
        kinematic state ``ks`` of ``state``."""
        X = ks.keypoints + state.t[:, None]
        rms = np.sqrt(((X - problem.target - state.c[:, None]) ** 2).sum(-1).mean(1))
        if problem.uv is None:
            return rms, np.full(len(rms), np.nan)
        return rms, np.median(np.linalg.norm(_project(X, problem.intr) - problem.uv, axis=-1), 1)

    def _poor(self, problem: _Problem, rms: np.ndarray, reproj: np.ndarray) -> np.ndarray:
        """(B,) bool: the fit misses the quality bounds ``max_error_3d`` / ``max_error_2d``."""
        bad = rms > self.cfg.max_error_3d
        if problem.uv is not None:
            diag = np.linalg.norm(problem.uv.max(1) - problem.uv.min(1), axis=-1)
            bad |= reproj > self.cfg.max_error_2d * diag
        return bad

    def _result(self, problem: _Problem, state: _State, ks, quality, converged, restarted,
                iterations) -> FitResult:
        B = len(state.t)
        rms, reproj = quality
        f32 = lambda a: np.ascontiguousarray(a, np.float32)
        return FitResult(global_orient=f32(_log(state.root)), hand_pose=f32(state.hand_pose.reshape(B, 45)),
                         betas=f32(state.betas), offset=f32(state.t), joints=f32(ks.keypoints),
                         vertices=self.kin.vertices(ks, state.betas),
                         joint_rotations=f32(ks.global_rotations[:, JOINT_ROTATION_SOURCE]),
                         error=f32(rms), reprojection_error=f32(reproj), converged=converged,
                         restarted=restarted, poor=self._poor(problem, rms, reproj), iterations=iterations)


def world_landmark_rotation(keypoints_2d: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """(B, 3, 3) ``R_ray``: the rotation from the axes of MediaPipe's world landmarks to the
    camera's, ``camera.viewing_ray_rotation`` of each hand's 2D box centre.

    The world landmarks are regressed from a crop around the hand as if that crop were seen
    straight on: their axes are the image axes, but the camera sees a hand away from the
    image centre along another ray (measured on the test video: rigidly placed world
    landmarks disagree with the 2D keypoints by 3.4 % of the box diagonal, 2.4 % after this
    rotation).

    Args:
        keypoints_2d: (B, 21, 2) ideal pinhole pixels [px]; intrinsics: (B, 4) ``fx, fy, cx, cy``.
    """
    centre = (keypoints_2d.min(1) + keypoints_2d.max(1)) / 2.0
    return viewing_ray_rotation(centre, *intrinsics.T)


def _project(X: np.ndarray, intr: np.ndarray) -> np.ndarray:
    """(B, N, 2) pinhole projections [px] of (B, N, 3) points (z clipped at 1 mm) with
    (B, 4) intrinsics ``fx, fy, cx, cy``."""
    z = X[..., 2].clip(1e-3)
    return np.stack([intr[:, 0, None] * X[..., 0] / z + intr[:, 2, None],
                     intr[:, 1, None] * X[..., 1] / z + intr[:, 3, None]], -1)


def _damped_solve(JtJ: np.ndarray, g: np.ndarray, mu: float, floor: float = 1e-6) -> np.ndarray:
    """(P,) LM step ``-(JᵀJ + mu max(diag(JᵀJ), floor))⁻¹ Jᵀr``: one LAPACK ``dposv``
    (Cholesky; the matrix is symmetric positive definite)."""
    A = JtJ.copy()
    d = np.einsum("ii->i", A)       # a writable view of the diagonal
    d += mu * np.maximum(d, floor)
    _, x, info = dposv(A, g, lower=0, overwrite_a=1, overwrite_b=0)
    if info != 0:                    # not positive definite (e.g. NaN): no step
        return np.zeros_like(g)
    return -x


def _take_kinematics(ks, idx: np.ndarray):
    return type(ks)(*(a[idx] for a in ks))


def _select_kinematics(mask: np.ndarray, a, b):
    """Per hand, ``a`` where ``mask`` else ``b`` (two ``KinematicState`` of B hands)."""
    return type(a)(*(np.where(mask.reshape((-1,) + (1,) * (x.ndim - 1)), x, y) for x, y in zip(a, b)))


def _bone_child(parents: np.ndarray) -> np.ndarray:
    """Extended index (16 joints, 16..20 the thumb, index, middle, ring, pinky tips) of the
    point each MANO joint 1..15 points at: its child joint, or the fingertip after the last
    joint of a finger."""
    n = len(parents)
    child = np.full(n, -1)
    for j in range(1, n):
        if parents[j] > 0:
            child[parents[j]] = j
    tip_of_finger = {}  # last joint of each finger -> tip (fingers ordered by MANO_TO_OPENPOSE)
    ext_order = MANO_TO_OPENPOSE
    for f in range(5):   # OpenPose finger f: joints 4f+1..4f+4, the last one is the tip
        last_joint = ext_order[4 * f + 3]
        tip = ext_order[4 * f + 4]
        tip_of_finger[last_joint] = tip
    for j, tip in tip_of_finger.items():
        child[j] = tip
    return child
