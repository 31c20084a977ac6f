"""Batched HaMeR inference for the pipeline: boxes in images -> MANO hands in camera frames.

Per call: crops of all hands of all images (``preprocess.make_crops``; left hands mirrored),
one forward per ``batch_size`` crops under ``torch.inference_mode`` (CUDA: optional bf16 /
fp16 autocast; a CUDA out-of-memory error halves the batch and retries, with a warning),
then per hand: left hands mirrored back (x of vertices and joints, ``M R M`` for rotations
with ``M = diag(-1, 1, 1)``), the crop camera turned into a metric translation with the
image's real intrinsics (``camera.cam_crop_to_full_intrinsics``; crops taken in square pixels,
``pixel_aspect = fx/fy``), the hand turned from the crop's viewing ray into the camera frame
(``core.camera.viewing_ray_rotation``: root orientation, joint rotations, vertices and joints),
rotations to axis-angle. With lens distortion the crop centre is undistorted (and the crop
size scaled by the local undistortion scale) before the camera maths; the crop itself is cut
from the raw image, so the network sees the lens's local distortion (small for a hand-sized
crop of an ordinary lens).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from ..camera import undistort_points, undistortion_scale, viewing_ray_rotation
from ..hand_model import JOINT_ROTATION_SOURCE, HandModel, mirror_model_data
from ..mano_io import load_mano_file
from ..mano_params import ManoParams
from ..precision import resolve_precision
from ..records import RegressedHand
from ..types import CameraIntrinsics
from .camera import cam_crop_to_full_intrinsics, flip_cam_for_side
from .checkpoint import load_into, load_state_dict
from .config import HamerConfig, find_mano_right, find_model_config
from .model import Hamer
from .preprocess import make_crops

_LOG = logging.getLogger(__name__)

_FLIP = np.array([-1.0, 1.0, 1.0])


@dataclass
class HamerItem:
    """One hand to regress: ``image`` (H, W, 3) uint8 RGB, ``bbox`` (4,) x0, y0, x1, y1 [px],
    ``is_right``, ``intrinsics`` of the image. Items of the same image should share the
    same ``image`` object (it is cropped once per image)."""

    image: np.ndarray
    bbox: np.ndarray
    is_right: bool
    intrinsics: CameraIntrinsics


@dataclass
class HamerHand(RegressedHand):
    """One hand as HaMeR regressed it (``records.RegressedHand``: ``params`` float64 for the
    item's side, a left hand's the mirror ``(x, -y, -z)`` of the right-hand prediction;
    ``global_orient`` in the camera frame, corrected for the crop's viewing ray; ``error``
    NaN), plus how it was placed:

    Attributes:
        pred_cam: (3,) float32 the network's raw crop camera ``(s, tx, ty)``.
        ray_rotation: (3, 3) float64 the crop's viewing-ray rotation applied
            (``camera.viewing_ray_rotation``; identity for a crop at the principal point).
    """

    pred_cam: np.ndarray
    ray_rotation: np.ndarray


class HamerRegressor:
    """A user's HaMeR checkpoint, loaded once, run on batches of hand boxes.

    Args:
        checkpoint: ``hamer.ckpt`` (Lightning) or a plain state dict file.
        mano_model_dir: folder with MANO_RIGHT.pkl; "" = the config's ``MANO.MODEL_PATH``.
        device: torch device.
        precision: one of ``PRECISIONS`` (autocast on CUDA; fp32 on CPU unless "bf16").
        batch_size: crops per forward (>= 1).
        config: ``model_config.yaml`` path; default found by ``config.find_model_config``.
        warmup: run one forward at construction (first-call allocations, kernel selection).

    Attributes:
        hand_model: the matching ``HandModel`` ("mano"; left = mirrored right, as HaMeR).
        oom_splits: how often a CUDA out-of-memory error made a batch smaller.

    Raises:
        FileNotFoundError: checkpoint, model_config.yaml or MANO file missing (named).
        ValueError: unreadable / wrong-architecture checkpoint, config mismatch (keys named),
            unsupported config option, bad precision.
    """

    def __init__(self, checkpoint: str, mano_model_dir: str = "", device="cpu", precision: str = "auto",
                 batch_size: int = 8, config: Optional[str] = None, warmup: bool = True):
        if not checkpoint:
            raise ValueError("parameter 'checkpoint': regressor 'hamer' needs a HaMeR checkpoint file "
                             "(hamer.ckpt with its model_config.yaml)")
        self.device = torch.device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        if int(batch_size) < 1:
            raise ValueError(f"parameter 'batch_size': {batch_size} must be >= 1")
        self.batch_size = int(batch_size)
        self.cfg = HamerConfig.from_yaml(config or find_model_config(checkpoint))
        mano_path = find_mano_right(self.cfg, mano_model_dir)
        mano_data = load_mano_file(str(mano_path))
        model = Hamer(self.cfg, mano_data)
        load_into(model, load_state_dict(checkpoint), path=checkpoint)
        self.model = model.eval().to(self.device)
        self.hand_model = HandModel("mano", mano_data, mirror_model_data(mano_data),
                                    tuple(int(i) for i in self.model.mano.extra_joints_idxs),
                                    source=str(mano_path)).to(self.device)
        self.oom_splits = 0
        if warmup:
            s = self.cfg.image_size
            self._forward(torch.zeros(1, 3, s, s))

    # -- network --------------------------------------------------------------------------
    def _forward(self, patches: torch.Tensor) -> Dict[str, np.ndarray]:
        keep = ("pred_cam", "global_orient", "hand_pose", "betas", "global_rotations", "keypoints_3d",
                "vertices")
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                                    enabled=self.autocast_dtype is not None):
            out = self.model(patches.to(self.device, non_blocking=True))
        return {k: out[k].float().cpu().numpy() for k in keep}

    def forward_patches(self, patches: np.ndarray) -> Dict[str, np.ndarray]:
        """Network outputs (right-hand crop frame) for (N, 3, S, S) float32 normalised crops,
        ``batch_size`` at a time; on CUDA out of memory the batch is halved (warning) and the
        call still completes. Keys as ``Hamer.forward`` (numpy float32)."""
        n = len(patches)
        chunks: List[Dict[str, np.ndarray]] = []
        i, bs = 0, self.batch_size
        while i < n:
            x = torch.from_numpy(np.ascontiguousarray(patches[i:i + bs]))
            try:
                chunks.append(self._forward(x))
            except torch.OutOfMemoryError:
                if len(x) == 1:
                    raise
                bs = max(1, len(x) // 2)
                self.oom_splits += 1
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                _LOG.warning("HaMeR: out of memory at a batch of %d crops; retrying with %d", len(x), bs)
                continue
            i += len(x)
        return {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]} if chunks else {}

    # -- hands ----------------------------------------------------------------------------
    def regress(self, items: Sequence[HamerItem]) -> List[HamerHand]:
        """MANO hands for ``items``, one ``HamerHand`` per item, in their cameras' optical
        frames: ``params`` float64 (``transl`` [m] in the optical frame), ``vertices`` (V, 3)
        and ``joints`` (21, 3) float32 [m] the hand model posed with ``params`` (add
        ``params.transl``), ``joint_rotations`` (21, 3, 3) float32 in the camera frame.
        """
        if not items:
            return []
        groups: Dict[int, List[int]] = {}
        for k, it in enumerate(items):
            groups.setdefault(id(it.image), []).append(k)
        order, patches, centers, sizes = [], [], [], []
        for idx in groups.values():
            K = items[idx[0]].intrinsics
            crops = make_crops(items[idx[0]].image, np.stack([items[k].bbox for k in idx]),
                               np.array([items[k].is_right for k in idx]),
                               image_size=self.cfg.image_size, bbox_shape=self.cfg.bbox_shape,
                               mean=self.cfg.image_mean, std=self.cfg.image_std, pixel_aspect=K.fx / K.fy)
            order += idx
            patches.append(crops.patches)
            centers.append(crops.box_center)
            sizes.append(crops.box_size)
        out = self.forward_patches(np.concatenate(patches))
        centers, sizes = np.concatenate(centers), np.concatenate(sizes)
        results: List[Optional[HamerHand]] = [None] * len(items)
        for row, k in enumerate(order):
            results[k] = self._hand(items[k], {n: v[row] for n, v in out.items()}, centers[row], sizes[row])
        return results  # type: ignore[return-value]

    def _hand(self, it: HamerItem, o: Dict[str, np.ndarray], center, size) -> HamerHand:
        right = bool(it.is_right)
        K = it.intrinsics
        center = np.asarray(center, np.float64)[None]
        size = float(size) * undistortion_scale(center, K)  # crop side in ideal pixels
        center = undistort_points(center, K)
        cam = flip_cam_for_side(o["pred_cam"][None], np.array([right]))
        transl = cam_crop_to_full_intrinsics(cam, center, size, K.fx, K.fy, K.cx, K.cy)[0]
        local = np.concatenate([o["global_orient"], o["hand_pose"]]).astype(np.float64)  # (16, 3, 3)
        aa = Rotation.from_matrix(local).as_rotvec()
        rots = o["global_rotations"][list(JOINT_ROTATION_SOURCE)].astype(np.float64)
        verts, joints = o["vertices"].astype(np.float64), o["keypoints_3d"].astype(np.float64)
        if not right:
            aa = aa * np.array([1.0, -1.0, -1.0])
            verts, joints = verts * _FLIP, joints * _FLIP
            rots = _FLIP[:, None] * rots * _FLIP[None, :]  # M R M
        # crop frame -> camera frame: X_cam = R_ray X + transl (camera.py). MANO's root rotation
        # turns about the root joint J0, so posing with R_ray R moves the model by
        # J0 - R_ray J0; transl takes the opposite, keeping X_cam = vertices + transl.
        ray = viewing_ray_rotation(center, K.fx, K.fy, K.cx, K.cy)[0]
        root = joints[0].copy()
        aa[0] = Rotation.from_matrix(ray @ Rotation.from_rotvec(aa[0]).as_matrix()).as_rotvec()
        verts = (verts - root) @ ray.T + root
        joints = (joints - root) @ ray.T + root
        rots = ray @ rots
        transl = transl + ray @ root - root
        params = ManoParams.from_rotvecs(aa, o["betas"].astype(np.float64), np.asarray(transl, np.float64))
        return HamerHand(params, verts.astype(np.float32), joints.astype(np.float32), rots.astype(np.float32),
                         float("nan"), pred_cam=o["pred_cam"], ray_rotation=ray)
