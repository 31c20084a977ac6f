"""The hand model used by the pipeline: MANO (the user's files) or the built-in hand.

Both models are MANO-format arrays, turned into tensors by ``smplx.MANO`` (given the arrays
as a ``data_struct``, so smplx never unpickles anything) and posed by the same forward built
from ``smplx.lbs`` primitives: blend shapes, joint regression, Rodrigues, the rigid kinematic
chain and linear blend skinning (MANO: Romero et al., "Embodied Hands", SIGGRAPH Asia 2017;
LBS as in SMPL, Loper et al. 2015). Zero ``hand_pose`` is the flat hand
(smplx ``flat_hand_mean=True, use_pca=False``).

Left hands: either the user's ``MANO_LEFT.pkl`` or the exact x-mirror of the right model
(``mirror_model_data``). With a mirrored model, a left hand with mirrored parameters
(axis-angle ``(x, -y, -z)``) is the x-mirror of the right hand.
"""
from __future__ import annotations

import contextlib
import io
import logging
from typing import Dict, NamedTuple, Optional, Tuple, Union

import numpy as np
import smplx
import torch
from smplx.lbs import batch_rigid_transform, batch_rodrigues, blend_shapes, vertices2joints
from smplx.utils import Struct

from .builtin_hand import build_builtin_hand
from .mano_io import find_mano_files, load_mano_file
from .types import LEFT, RIGHT

_LOG = logging.getLogger(__name__)

#: 16 MANO joints + 5 fingertip vertices (indices 16..20: thumb, index, middle, ring, pinky)
#: -> OpenPose / MediaPipe order.
MANO_TO_OPENPOSE = (0, 13, 14, 15, 16, 1, 2, 3, 17, 4, 5, 6, 18, 10, 11, 12, 19, 7, 8, 9, 20)
#: smplx / HaMeR fingertip vertices of MANO (thumb, index, middle, ring, pinky).
MANO_FINGERTIP_IDS = (744, 320, 443, 554, 671)
#: MANO joint whose frame each fingertip takes (thumb, index, middle, ring, pinky distal).
_TIP_PARENTS = (15, 3, 6, 12, 9)
#: MANO joint (0..15) whose frame gives the rotation of each of the 21 OpenPose joints
#: (fingertips take their distal joint's frame).
JOINT_ROTATION_SOURCE = tuple(j if j < 16 else _TIP_PARENTS[j - 16] for j in MANO_TO_OPENPOSE)
_MIRROR = np.array([-1.0, 1.0, 1.0])


class HandModelOutput(NamedTuple):
    """Output of ``HandModel.forward``.

    Attributes:
        vertices: (B, V, 3) float32 [m], model frame, no translation.
        joints: (B, 21, 3) float32 [m], OpenPose/MediaPipe order.
        joint_rotations: (B, 21, 3, 3) float32 global rotation of each joint's frame
            (fingertips take their parent joint's).
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    joint_rotations: torch.Tensor


def mirror_model_data(data: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """The x-mirror (M = diag(-1, 1, 1)) of a MANO-format right model: the matching left model.

    ``v_template`` and ``shapedirs`` get x negated; ``posedirs`` are transformed so that the
    pose feature of R' = M R M gives the mirrored offsets (entry (joint, a, b) of ``R - I``
    times ``m_a m_b``, output axis c times ``m_c``); ``J_regressor`` and ``weights`` are
    unchanged; faces are reversed (``f[:, ::-1]``) so normals stay outward.
    """
    out = dict(data)
    out["v_template"] = data["v_template"] * _MIRROR
    out["shapedirs"] = data["shapedirs"] * _MIRROR[None, :, None]
    sign_ab = np.outer(_MIRROR, _MIRROR).ravel()  # (9,) for row-major (a, b)
    sign = np.tile(sign_ab, 15)  # (135,)
    out["posedirs"] = data["posedirs"] * _MIRROR[None, :, None] * sign[None, None, :]
    out["f"] = np.ascontiguousarray(data["f"][:, ::-1])
    return out


def fix_left_shapedirs(left: Dict[str, np.ndarray], right: Dict[str, np.ndarray]) -> bool:
    """Fix the known sign error of the released MANO_LEFT.pkl in place (smplx issue #48):
    its ``shapedirs[:, 0, :]`` (x) equals the right model's instead of its negation.
    Returns True when a fix was applied."""
    lx, rx = left["shapedirs"][:, 0, :], right["shapedirs"][:, 0, :]
    if np.allclose(lx, rx, atol=1e-6) and not np.allclose(lx, -rx, atol=1e-6):
        left["shapedirs"] = left["shapedirs"].copy()
        left["shapedirs"][:, 0, :] *= -1.0
        return True
    return False


class _SideModel(torch.nn.Module):
    """Tensors of one side's model, built by ``smplx.MANO`` from MANO-format arrays."""

    def __init__(self, data: Dict[str, np.ndarray], is_rhand: bool, source: str):
        super().__init__()
        struct = Struct(**{k: v for k, v in data.items() if k != "fingertip_vertex_ids"})
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a 10-betas notice
            mano = smplx.MANO(source, is_rhand=is_rhand, data_struct=struct, use_pca=False,
                              flat_hand_mean=True, num_betas=10, num_pca_comps=45,
                              create_global_orient=False, create_hand_pose=False,
                              create_betas=False, create_transl=False, dtype=torch.float32)
        for name in ("v_template", "shapedirs", "posedirs", "J_regressor", "lbs_weights"):
            self.register_buffer(name, getattr(mano, name).detach().clone().float())
        self.register_buffer("parents", mano.parents.detach().clone().long())
        self.faces = np.asarray(mano.faces_tensor.cpu().numpy(), np.int64)
        self.has_posedirs = bool(self.posedirs.abs().max() > 0)

    def forward(self, full_pose: torch.Tensor, betas: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """full_pose (B,48) axis-angle, betas (B,10) -> vertices (B,V,3), joints (B,16,3),
        global rotations (B,16,3,3). Same steps as ``smplx.lbs.lbs`` (pose2rot=True), kept
        open to expose the chain's global rotations."""
        b = full_pose.shape[0]
        rot = batch_rodrigues(full_pose.reshape(-1, 3)).view(b, 16, 3, 3)
        v_shaped = self.v_template + blend_shapes(betas, self.shapedirs)
        joints_rest = vertices2joints(self.J_regressor, v_shaped)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        v_posed = v_shaped
        if self.has_posedirs:  # the built-in hand has no pose-corrective shapes
            pose_feature = (rot[:, 1:] - eye).reshape(b, -1)
            v_posed = v_shaped + torch.matmul(pose_feature, self.posedirs).view(b, -1, 3)
        joints, rel = batch_rigid_transform(rot, joints_rest, self.parents, dtype=rot.dtype)
        t = torch.matmul(self.lbs_weights, rel.reshape(b, 16, 16)).view(b, -1, 4, 4)
        verts = torch.matmul(t[..., :3, :3], v_posed.unsqueeze(-1)).squeeze(-1) + t[..., :3, 3]
        return verts, joints, rel[..., :3, :3]


class HandModel(torch.nn.Module):
    """MANO-format hand model (both sides), posed with smplx's LBS.

    Attributes:
        name: "mano" or "builtin".
        num_vertices: V (778 for MANO).
        fingertip_vertex_ids: (thumb, index, middle, ring, pinky) vertex ids.
    """

    def __init__(self, name: str, right: Dict[str, np.ndarray], left: Dict[str, np.ndarray],
                 fingertip_vertex_ids: Tuple[int, ...], source: str = ""):
        super().__init__()
        self.name = name
        self.right = _SideModel(right, True, source)
        self.left = _SideModel(left, False, source)
        if self.right.v_template.shape != self.left.v_template.shape:
            raise ValueError(f"{name}: left and right models have different vertex counts")
        self.num_vertices = int(self.right.v_template.shape[0])
        self.fingertip_vertex_ids = tuple(int(i) for i in fingertip_vertex_ids)
        self.register_buffer("_tips", torch.tensor(self.fingertip_vertex_ids, dtype=torch.long))
        self.register_buffer("_order", torch.tensor(MANO_TO_OPENPOSE, dtype=torch.long))
        self.register_buffer("_rot_order", torch.tensor(JOINT_ROTATION_SOURCE, dtype=torch.long))
        if not torch.equal(self.right.parents, self.left.parents):
            raise ValueError(f"{name}: left and right kinematic trees differ")

    @property
    def device(self) -> torch.device:
        """Device of the model's tensors."""
        return self.right.v_template.device

    def faces_for(self, side: int) -> np.ndarray:
        """(F,3) int64 triangles with outward winding for ``side`` (LEFT=0, RIGHT=1)."""
        if side not in (LEFT, RIGHT):
            raise ValueError(f"side must be LEFT (0) or RIGHT (1), got {side!r}")
        return (self.right if side == RIGHT else self.left).faces.copy()

    def _side_forward(self, side: _SideModel, full_pose: torch.Tensor, betas: torch.Tensor
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        verts, joints16, rots16 = side(full_pose, betas)
        joints = torch.cat([joints16, verts[:, self._tips]], dim=1)[:, self._order]
        return verts, joints, rots16[:, self._rot_order]

    def forward(self, global_orient: torch.Tensor, hand_pose: torch.Tensor, betas: torch.Tensor,
                is_right: Union[torch.Tensor, bool]) -> HandModelOutput:
        """Pose and shape the hand (differentiable, batched, mixed sides allowed).

        Args:
            global_orient: (B,3) float32 root rotation, axis-angle [rad].
            hand_pose: (B,45) float32 15 finger joint rotations, axis-angle [rad], MANO joint
                order; zeros = flat hand.
            betas: (B,10) float32 shape coefficients.
            is_right: (B,) bool (or a single bool for the whole batch).
        Returns:
            ``HandModelOutput`` (vertices (B,V,3), joints (B,21,3), joint_rotations (B,21,3,3)).
        Raises:
            ValueError: inconsistent shapes.
        """
        b = global_orient.shape[0]
        if global_orient.shape != (b, 3) or hand_pose.shape != (b, 45) or betas.shape != (b, 10):
            raise ValueError(f"expected global_orient (B,3), hand_pose (B,45), betas (B,10); got "
                             f"{tuple(global_orient.shape)}, {tuple(hand_pose.shape)}, {tuple(betas.shape)}")
        dev = self.right.v_template.device
        is_right = torch.as_tensor(is_right, dtype=torch.bool, device=dev).reshape(-1)
        if is_right.numel() == 1 and b != 1:
            is_right = is_right.expand(b)
        if is_right.shape != (b,):
            raise ValueError(f"is_right must have shape ({b},), got {tuple(is_right.shape)}")
        full_pose = torch.cat([global_orient, hand_pose], dim=1)
        n_right = int(is_right.sum())
        if n_right == b or n_right == 0:
            out = self._side_forward(self.right if n_right == b else self.left, full_pose, betas)
            return HandModelOutput(*out)
        idx_r = torch.nonzero(is_right).squeeze(1)
        idx_l = torch.nonzero(~is_right).squeeze(1)
        out_r = self._side_forward(self.right, full_pose[idx_r], betas[idx_r])
        out_l = self._side_forward(self.left, full_pose[idx_l], betas[idx_l])
        merged = []
        for r, l in zip(out_r, out_l):
            full = r.new_zeros((b,) + tuple(r.shape[1:]))
            merged.append(full.index_copy(0, idx_r, r).index_copy(0, idx_l, l))
        return HandModelOutput(*merged)

    __call__ = forward

    def to(self, device: Union[str, torch.device]) -> "HandModel":  # type: ignore[override]
        """Move the model's tensors to ``device``; returns self."""
        super().to(device)
        return self


def load_hand_model(mano_model_dir: Optional[str] = None,
                    device: Union[str, torch.device] = "cpu") -> HandModel:
    """Build the pipeline's hand model.

    Args:
        mano_model_dir: directory holding ``MANO_RIGHT.pkl`` (required) and ``MANO_LEFT.pkl``
            (optional; if absent the left model is the exact mirror of the right one). Empty
            or None -> the built-in license-free hand.
        device: torch device for the tensors.
    Raises:
        FileNotFoundError: the directory or MANO_RIGHT.pkl is missing (message says what to do).
        ManoFileError: a MANO file is refused or malformed.
    """
    if not mano_model_dir:
        right = build_builtin_hand()
        tips = tuple(int(i) for i in right.pop("fingertip_vertex_ids"))
        model = HandModel("builtin", right, mirror_model_data(right), tips, source="builtin")
        return model.to(device)
    right_path, left_path = find_mano_files(str(mano_model_dir))
    right = load_mano_file(right_path)
    if left_path is None:
        left = mirror_model_data(right)
    else:
        left = load_mano_file(left_path)
        if fix_left_shapedirs(left, right):
            _LOG.warning("%s: shapedirs x-component had the known MANO_LEFT sign error; fixed", left_path)
    model = HandModel("mano", right, left, MANO_FINGERTIP_IDS, source=right_path)
    return model.to(device)
