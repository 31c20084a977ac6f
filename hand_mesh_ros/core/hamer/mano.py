"""MANO layer of HaMeR: posed by rotation matrices, 21 joints in OpenPose order.

Buffers carry the reference checkpoint's names and shapes (``mano.shapedirs`` ...), so that
the checkpoint's copy of the MANO arrays loads into them (HaMeR itself runs on the
checkpoint's copy). Posing is smplx's ``lbs`` with ``pose2rot=False`` (MANO: Romero et al.,
SIGGRAPH Asia 2017; LBS as SMPL, Loper et al. 2015): shape blend shapes, joints regressed
before the pose blend shapes, pose feature ``R_j - I`` of joints 1..15, rigid chain, linear
blend skinning. ``hand_components``, ``hand_mean`` and ``pose_mean`` are kept for key
compatibility only; rotation-matrix input does not use them.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional

import numpy as np
import torch
from smplx.lbs import lbs
from torch import nn

from ..hand_model import MANO_FINGERTIP_IDS, MANO_TO_OPENPOSE

NUM_PCA_COMPS = 6  # smplx.MANOLayer default, HaMeR's effective setting


class HamerManoOutput(NamedTuple):
    """vertices (B, V, 3), joints (B, 21, 3) OpenPose order, joints16 (B, 16, 3) MANO order,
    global_rotations (B, 16, 3, 3) world rotation of each MANO joint frame; all float32 [m],
    right-hand model frame, no translation."""

    vertices: torch.Tensor
    joints: torch.Tensor
    joints16: torch.Tensor
    global_rotations: torch.Tensor


class _VertexJointSelector(nn.Module):
    """Holds ``extra_joints_idxs`` under the reference's key (smplx's VertexJointSelector)."""

    def __init__(self, idxs: torch.Tensor):
        super().__init__()
        self.register_buffer("extra_joints_idxs", idxs.clone())


class HamerMano(nn.Module):
    """MANO right hand with HaMeR's buffer layout.

    Args:
        data: MANO arrays as ``mano_io.load_mano_file`` returns them (``v_template`` (V,3),
            ``shapedirs`` (V,3,10), ``posedirs`` (V,3,135), ``J_regressor`` (16,V),
            ``weights`` (V,16), ``kintree_table`` (2,16), ``f`` (F,3), ``hands_components``,
            ``hands_mean``); None gives zero buffers of MANO's sizes (778 vertices, 1538
            faces) to be filled from a checkpoint.
    """

    def __init__(self, data: Optional[Dict[str, np.ndarray]] = None, num_vertices: int = 778,
                 num_faces: int = 1538):
        super().__init__()
        f32 = torch.float32
        if data is None:
            v, nf = num_vertices, num_faces
            data = {"v_template": np.zeros((v, 3)), "shapedirs": np.zeros((v, 3, 10)),
                    "posedirs": np.zeros((v, 3, 135)), "J_regressor": np.zeros((16, v)),
                    "weights": np.zeros((v, 16)), "f": np.zeros((nf, 3), np.int64),
                    "kintree_table": np.array([[-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 0, 10, 11, 0, 13, 14],
                                               list(range(16))]),
                    "hands_components": np.eye(45), "hands_mean": np.zeros(45)}
        parents = np.asarray(data["kintree_table"][0], np.int64).copy()
        parents[0] = -1
        hand_mean = torch.as_tensor(data["hands_mean"], dtype=f32)
        tips = torch.tensor(MANO_FINGERTIP_IDS, dtype=torch.long)
        self.register_buffer("shapedirs", torch.as_tensor(data["shapedirs"][:, :, :10], dtype=f32))
        self.register_buffer("faces_tensor", torch.as_tensor(np.asarray(data["f"], np.int64)))
        self.register_buffer("v_template", torch.as_tensor(data["v_template"], dtype=f32))
        self.register_buffer("J_regressor", torch.as_tensor(data["J_regressor"], dtype=f32))
        posedirs = np.asarray(data["posedirs"]).reshape(-1, 135).T  # (135, 3V), column 3v + c
        self.register_buffer("posedirs", torch.as_tensor(np.ascontiguousarray(posedirs), dtype=f32))
        self.register_buffer("parents", torch.as_tensor(parents))
        self.register_buffer("lbs_weights", torch.as_tensor(data["weights"], dtype=f32))
        self.register_buffer("hand_components",
                             torch.as_tensor(data["hands_components"][:NUM_PCA_COMPS], dtype=f32))
        self.register_buffer("hand_mean", hand_mean)
        self.register_buffer("pose_mean", torch.cat([torch.zeros(3), hand_mean]))
        self.register_buffer("extra_joints_idxs", tips.clone())
        self.register_buffer("joint_map", torch.tensor(MANO_TO_OPENPOSE, dtype=torch.long))
        self.vertex_joint_selector = _VertexJointSelector(tips)

    def forward(self, global_orient: torch.Tensor, hand_pose: torch.Tensor, betas: torch.Tensor
                ) -> HamerManoOutput:
        """global_orient (B, 1, 3, 3), hand_pose (B, 15, 3, 3) rotation matrices (MANO joint
        order), betas (B, 10); computed in float32."""
        rot = torch.cat([global_orient, hand_pose], dim=1).float()
        verts, joints16 = lbs(betas.float(), rot, self.v_template, self.shapedirs, self.posedirs,
                              self.J_regressor, self.parents, self.lbs_weights, pose2rot=False)
        joints = torch.cat([joints16, verts[:, self.extra_joints_idxs]], dim=1)[:, self.joint_map]
        glob = [rot[:, 0]]
        for j, parent in enumerate(self.parents.tolist()[1:], start=1):
            glob.append(glob[parent] @ rot[:, j])
        return HamerManoOutput(verts, joints, joints16, torch.stack(glob, dim=1))
