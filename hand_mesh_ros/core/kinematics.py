"""The 21 keypoints of a MANO-format hand and their analytic Jacobian, in float64 numpy.

The ``fit`` regressor evaluates the hand's 21 keypoints (16 MANO joints + 5 fingertip
vertices, OpenPose order) and their derivatives a few times per hand and frame. For one
hand these are a few hundred numbers, where numpy's per-call cost (~1 µs) beats torch's
(~10 µs) and a GPU's launch latency by far, so this module is plain numpy on the host
whatever the pipeline's device (the full mesh is still posed by ``HandModel`` on the
device, once per hand).

Forward (the same equations as ``smplx.lbs`` / ``HandModel.forward``; MANO: Romero
et al. 2017, LBS as in SMPL, Loper et al. 2015)::

    J      = J_template + S_J β                       rest joints (16, 3)
    G_0    = R_0,        p_0 = J_0
    G_j    = G_par(j) R_j,  p_j = p_par(j) + G_par(j) (J_j - J_par(j))     (posed joints)
    x_tj   = G_j (v_t - J_j) + p_j,  v_t = T_t + S_t β + P_t f(R)         (tip t moved by joint j)
    tip_t  = Σ_j w_tj x_tj                            (linear blend skinning of the tips)

Jacobian with respect to a *local* perturbation of each joint rotation,
``R_k <- R_k exp([δ_k]x)`` (a rotation of the subtree of ``k`` about ``p_k`` by the world
axis ``ω = G_k δ_k``)::

    ∂p_i/∂δ_k   = -[p_i - p_k]x G_k                     for k a strict ancestor of i
    ∂tip_t/∂δ_k = -[Σ_{j ∈ sub(k)} w_tj (x_tj - p_k)]x G_k      (sub(k): k and its descendants)

plus, for the tips, the pose-corrective term through ``∂R_k/∂δ_k = R_k [e]x``
(``Σ_j w_tj G_j ∂v_t/∂δ_k``; zero for the built-in hand, which has no pose blend shapes),
and with respect to the betas by the chain recursion
``∂p_j/∂β = ∂p_par/∂β + G_par (S_J,j - S_J,par)``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .hand_model import MANO_TO_OPENPOSE

#: ``hand_model.MANO_TO_OPENPOSE`` as an index array: MANO joint index (16 joints, then 5
#: fingertips as 16..20) of each OpenPose joint.
_OPENPOSE_ORDER = np.asarray(MANO_TO_OPENPOSE)


def skew(v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) cross-product matrices ``[v]x`` (``[v]x u = v x u``) of (..., 3) vectors."""
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2], out[..., 1, 2] = -v[..., 2], v[..., 1], -v[..., 0]
    out[..., 1, 0], out[..., 2, 0], out[..., 2, 1] = v[..., 2], -v[..., 1], v[..., 0]
    return out


#: [e_c]x for the three unit vectors, (3, 3, 3).
_SKEW_BASIS = skew(np.eye(3))


class KinematicState(NamedTuple):
    """Posed hand of ``JointKinematics.forward`` (B hands), everything float64.

    Attributes:
        keypoints: (B, 21, 3) keypoints [m], OpenPose order, model frame (no translation).
        positions: (B, 16, 3) posed MANO joints p_j [m].
        global_rotations: (B, 16, 3, 3) G_j.
        tip_points: (B, 5, 16, 3) x_tj, tip t as moved by joint j alone [m].
        rotations: (B, 16, 3, 3) the local rotations posed.
        side: (B,) int64, 0 = left, 1 = right (index of the model arrays).
    """

    keypoints: np.ndarray
    positions: np.ndarray
    global_rotations: np.ndarray
    tip_points: np.ndarray
    rotations: np.ndarray
    side: np.ndarray


class JointKinematics:
    """Keypoints and their Jacobian for a ``hand_model.HandModel`` (both sides).

    Args:
        hand_model: the ``HandModel`` whose arrays (rest joints, joint shape space, fingertip
            template / shape / pose blend shapes / skinning weights, kinematic tree) are
            copied to float64 numpy once.
    """

    def __init__(self, hand_model):
        sides = (hand_model.left, hand_model.right)
        tips = list(hand_model.fingertip_vertex_ids)

        # float64 copies made once per side (posedirs alone is 135 x 3V: converting it for each
        # table below cost 0.3 s of the node's start-up)
        arrays = [{k: getattr(m, k).detach().cpu().double().numpy() for k in
                   ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights")} for m in sides]

        def stack(fn):  # per side, [left, right], float64
            return np.stack([fn(a) for a in arrays])

        self.parents = hand_model.right.parents.detach().cpu().numpy().astype(np.int64)
        # the joint regressor applied to the template and the shape space (it is linear), and
        # the 5 fingertip vertices' template, blend shapes and skinning weights
        self.j_template = stack(lambda m: m["J_regressor"] @ m["v_template"])             # (2, 16, 3)
        self.j_shapedirs = stack(lambda m: np.einsum("jv,vck->jck", m["J_regressor"], m["shapedirs"]))  # (2, 16, 3, 10)
        self.tip_template = stack(lambda m: m["v_template"][tips])                         # (2, 5, 3)
        self.tip_shapedirs = stack(lambda m: m["shapedirs"][tips])                         # (2, 5, 3, 10)
        self.tip_posedirs = stack(lambda m: m["posedirs"].reshape(len(m["posedirs"]), -1, 3)[:, tips])  # (2, 135, 5, 3)
        self.tip_weights = stack(lambda m: m["lbs_weights"][tips])                         # (2, 5, 16)
        n = len(self.parents)
        depth = np.zeros(n, np.int64)
        for j in range(1, n):
            depth[j] = depth[self.parents[j]] + 1
        #: joint indices per tree level below the root, parents before children.
        self.levels = [np.flatnonzero(depth == d) for d in range(1, depth.max() + 1)]
        #: ancestors[i, k]: k is a strict ancestor of joint i.
        self.ancestors = np.zeros((n, n), bool)
        for i in range(n):
            k = self.parents[i]
            while k >= 0:
                self.ancestors[i, k] = True
                k = self.parents[k]
        #: subtree[k, j]: j is k or a descendant of k.
        self.subtree = self.ancestors.T | np.eye(n, dtype=bool)
        #: the (joint, strict ancestor) pairs, the only nonzero blocks of d(joint)/d(rotation)
        self._pair_joint, self._pair_ancestor = np.nonzero(self.ancestors)
        self._has_posedirs = bool(np.abs(self.tip_posedirs).max() > 0)
        # the whole mesh, for the fit's final pose ([left, right]; float32 like the published
        # vertices: it halves the memory traffic of the big blend-shape arrays)
        sides = (hand_model.left, hand_model.right)
        f32 = lambda t: t.detach().cpu().float().numpy()
        self.v_template = np.stack([f32(m.v_template) for m in sides])            # (2, V, 3)
        self.shapedirs = np.stack([f32(m.shapedirs).reshape(-1, 10) for m in sides])  # (2, 3V, 10)
        self.posedirs = np.stack([f32(m.posedirs) for m in sides])                # (2, 135, 3V)
        self.lbs_weights = np.stack([f32(m.lbs_weights) for m in sides])          # (2, V, 16)
        self._mesh_posedirs = bool(np.abs(self.posedirs).max() > 0)

    def rest_joints(self, betas: np.ndarray, side: np.ndarray) -> np.ndarray:
        """(B, 16, 3) shaped rest joints ``J`` [m] for betas (B, 10) and side (B,) 0/1."""
        return self.j_template[side] + (self.j_shapedirs[side] @ betas[:, None, :, None])[..., 0]

    def rest_keypoints(self, betas: np.ndarray, side: np.ndarray) -> np.ndarray:
        """(B, 21, 3) keypoints [m] at zero pose (the shaped rest hand), OpenPose order: the
        rest joints and the shaped fingertip vertices (at rest every skinning transform is
        the identity and the pose blend shapes vanish)."""
        betas = np.asarray(betas, np.float64).reshape(-1, 10)
        side = np.asarray(side, np.int64).reshape(-1)
        tips = self.tip_template[side] + (self.tip_shapedirs[side] @ betas[:, None, :, None])[..., 0]
        return np.concatenate([self.rest_joints(betas, side), tips], 1)[:, _OPENPOSE_ORDER]

    def forward(self, rotations: np.ndarray, betas: np.ndarray, side: np.ndarray) -> KinematicState:
        """Pose B hands.

        Args:
            rotations: (B, 16, 3, 3) local joint rotations (0 = global_orient, then MANO's
                15 finger joints).
            betas: (B, 10) shape coefficients.
            side: (B,) int, 0 = left, 1 = right.

        Returns:
            ``KinematicState``.
        """
        B = len(rotations)
        J = self.rest_joints(betas, side)
        G = np.empty_like(rotations)
        p = np.empty_like(J)
        G[:, 0] = rotations[:, 0]
        p[:, 0] = J[:, 0]
        for idx in self.levels:
            par = self.parents[idx]
            G[:, idx] = G[:, par] @ rotations[:, idx]
            p[:, idx] = p[:, par] + (G[:, par] @ (J[:, idx] - J[:, par])[..., None])[..., 0]
        v = self.tip_template[side] + (self.tip_shapedirs[side] @ betas[:, None, :, None])[..., 0]
        if self._has_posedirs:
            feature = (rotations[:, 1:] - np.eye(3)).reshape(B, 1, -1)
            v = v + (feature @ self.tip_posedirs[side].reshape(B, feature.shape[2], -1)).reshape(v.shape)
        x = (G[:, None] @ (v[:, :, None, :] - J[:, None])[..., None])[..., 0] + p[:, None]
        tips = (self.tip_weights[side][:, :, None, :] @ x)[:, :, 0]
        keypoints = np.concatenate([p, tips], 1)[:, _OPENPOSE_ORDER]
        return KinematicState(keypoints, p, G, x, rotations, np.asarray(side))

    def vertices(self, state: KinematicState, betas: np.ndarray) -> np.ndarray:
        """(B, V, 3) float32 posed mesh [m], model frame: blend shapes and linear blend
        skinning with the chain of ``state`` (``smplx.lbs.lbs`` in numpy)."""
        B = len(betas)
        J = self.rest_joints(betas, state.side)
        G, p = state.global_rotations, state.positions
        A = np.concatenate([G, (p - (G @ J[..., None])[..., 0])[..., None]], -1).astype(np.float32)
        out = np.empty((B,) + self.v_template.shape[1:], np.float32)
        for s in np.unique(state.side):      # per side: views of the big arrays, no copies
            rows = np.flatnonzero(state.side == s)
            n = len(rows)
            v = self.v_template[s] + (betas[rows].astype(np.float32) @ self.shapedirs[s].T).reshape(n, -1, 3)
            if self._mesh_posedirs:
                feature = (state.rotations[rows, 1:] - np.eye(3)).reshape(n, -1).astype(np.float32)
                v = v + (feature @ self.posedirs[s]).reshape(v.shape)
            T = (self.lbs_weights[s] @ A[rows].reshape(n, -1, 12)).reshape(n, -1, 3, 4)  # (n, V, 3, 4)
            out[rows] = np.einsum("bvij,bvj->bvi", T[..., :3], v) + T[..., 3]
        return out

    def jacobian(self, state: KinematicState):
        """Derivatives of the 21 keypoints (module docstring).

        Args:
            state: ``forward`` output.

        Returns:
            ``(d_rot, d_betas)``: (B, 63, 48) with respect to the local rotation
            perturbations ``δ`` (3 per joint, joint-major) and (B, 63, 10) with respect to
            the betas; rows are keypoint-major (x, y, z of OpenPose joint 0, then 1, ...).
        """
        p, G, x, side = state.positions, state.global_rotations, state.tip_points, state.side
        B, n = p.shape[:2]
        w = self.tip_weights[side]                                           # (B, 5, 16)
        # joints: -[p_i - p_k]x G_k for the strict ancestors k of i
        i, k = self._pair_joint, self._pair_ancestor
        d_joint = np.zeros((B, n, n, 3, 3))                                  # (B, 16 joints, 16 rotations, 3, 3)
        d_joint[:, i, k] = -skew(p[:, i] - p[:, k]) @ G[:, k]
        # tips: -[sum_{j in sub(k)} w_tj (x_tj - p_k)]x G_k
        w_sub = w[:, :, None, :] * self.subtree                              # (B, 5, 16 k, 16 j)
        m = w_sub @ x - w_sub.sum(-1)[..., None] * p[:, None]                # (B, 5, 16, 3)
        d_tip = -skew(m) @ G[:, None]                                        # (B, 5, 16, 3, 3)
        WG = (w @ G.reshape(B, n, 9)).reshape(B, -1, 3, 3)                   # (B, 5, 3, 3)
        if self._has_posedirs:   # pose blend shapes of the tips: d(R_k - I) = R_k [e_c]x
            d_feature = np.einsum("bkad,cde->bkcae", state.rotations[:, 1:], _SKEW_BASIS)
            posedirs = self.tip_posedirs[side].reshape(B, n - 1, 9, -1, 3)
            d_v = np.einsum("bkcf,bkftx->btkcx", d_feature.reshape(B, n - 1, 3, 9), posedirs)
            d_tip[:, :, 1:] += np.einsum("btxy,btkcy->btkxc", WG, d_v)
        d_rot = np.concatenate([d_joint, d_tip], 1)[:, _OPENPOSE_ORDER]    # (B, 21, 16, 3, 3)
        d_rot = d_rot.transpose(0, 1, 3, 2, 4).reshape(B, 63, 3 * n)
        # betas: chain recursion for the joints, then skinning of the tips
        S = self.j_shapedirs[side]                                           # (B, 16, 3, 10)
        dp = np.empty_like(S)
        dp[:, 0] = S[:, 0]
        for idx in self.levels:
            par = self.parents[idx]
            dp[:, idx] = dp[:, par] + G[:, par] @ (S[:, idx] - S[:, par])
        GS = G @ S                                                           # (B, 16, 3, 10)
        d_tips_b = WG @ self.tip_shapedirs[side] + (w @ (dp - GS).reshape(B, n, -1)).reshape(B, -1, 3, 10)
        d_betas = np.concatenate([dp, d_tips_b], 1)[:, _OPENPOSE_ORDER].reshape(B, 63, -1)
        return d_rot, d_betas
