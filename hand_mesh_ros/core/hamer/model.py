"""The HaMeR network: ViT backbone + MANO transformer-decoder head + MANO layer.

Forward on normalised 256x256 crops (``preprocess.make_crops``); everything in the crop's
right-hand frame (left hands arrive mirrored and are mirrored back by the caller). The crop
camera follows the reference: ``pred_cam = [s, tx, ty]`` (weak perspective for a
``image_size`` crop), ``pred_cam_t = [tx, ty, 2 f / (image_size s + 1e-9)]`` with
``f = focal_length`` (5000 px for 256 px), ``pred_keypoints_2d`` the perspective projection
of the joints with focal ``f / image_size`` and principal point 0 (normalised crop units;
patch pixels = ``kp * image_size + image_size / 2``). Axes: x right, y down, z forward.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
from torch import nn

from .config import HamerConfig
from .head import ManoHead
from .mano import HamerMano
from .vit import ViT


class Hamer(nn.Module):
    """HaMeR with the reference checkpoint's state-dict layout (minus the training-only
    ``discriminator.*``).

    Args:
        cfg: sizes and options (``config.HamerConfig``).
        mano_data: MANO arrays (``mano_io.load_mano_file``) or None (zero buffers, filled
            by the checkpoint).
    """

    def __init__(self, cfg: HamerConfig, mano_data: Optional[Dict[str, np.ndarray]] = None):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("initialized", torch.tensor(False))
        self.backbone = ViT(cfg.vit)
        self.mano_head = ManoHead(cfg.decoder)
        self.mano = HamerMano(mano_data)
        cut = (cfg.image_size - cfg.bbox_shape[0] * cfg.image_size // cfg.bbox_shape[1]) // 2
        self._cut = cut  # columns cut on each side: 32 for 256 -> 192

    def forward(self, patches: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Args:
            patches: (B, 3, S, S) normalised RGB crops, S = ``cfg.image_size``.

        Returns dict (float32 unless noted):
            ``pred_cam`` (B, 3) [s, tx, ty]; ``pred_cam_t`` (B, 3) [m];
            ``focal_length`` (B, 2) [px for an S crop];
            ``global_orient`` (B, 1, 3, 3), ``hand_pose`` (B, 15, 3, 3), ``betas`` (B, 10);
            ``global_rotations`` (B, 16, 3, 3) (world rotation of each MANO joint frame);
            ``keypoints_3d`` (B, 21, 3) [m] OpenPose order, ``vertices`` (B, V, 3) [m],
            both model frame without translation; ``keypoints_2d`` (B, 21, 2) normalised
            crop units; ``features`` (B, C, Hp, Wp) in the compute dtype.
        """
        x = patches[:, :, :, self._cut:patches.shape[-1] - self._cut] if self._cut else patches
        feats = self.backbone(x)
        out = self.mano_head(feats)
        mano = self.mano(out["global_orient"], out["hand_pose"], out["betas"])
        cam = out["pred_cam"]
        f = torch.full((cam.shape[0], 2), self.cfg.focal_length, dtype=cam.dtype, device=cam.device)
        cam_t = torch.stack([cam[:, 1], cam[:, 2],
                             2 * f[:, 0] / (self.cfg.image_size * cam[:, 0] + 1e-9)], dim=-1)
        p = mano.joints + cam_t[:, None]
        kp2d = p[..., :2] / p[..., 2:] * (self.cfg.focal_length / self.cfg.image_size)
        return {"pred_cam": cam, "pred_cam_t": cam_t, "focal_length": f,
                "global_orient": out["global_orient"], "hand_pose": out["hand_pose"], "betas": out["betas"],
                "global_rotations": mano.global_rotations, "keypoints_3d": mano.joints,
                "vertices": mano.vertices, "keypoints_2d": kp2d, "features": feats,
                "pose_6d": out["pose_6d"], "token": out["token"], "joints16": mano.joints16}
