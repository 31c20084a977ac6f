"""The ROS-free pipeline: RGB images in, ``FrameResult`` (hands with MANO meshes) out.

Per batch of images (one per camera): detect hands (per camera) -> associate to tracks
(stable ids, side hysteresis) -> regress MANO (all hands of the batch together,
``batch_size`` at a time: "fit" warm-started per track, or "hamer" on the hand crops) -> place in the camera optical frame with
the real intrinsics -> optional One Euro smoothing. The ROS node and the offline CLI both
call this object; it knows nothing of ROS.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .detectors import DETECTOR_MODELS, DETECTORS, create_detector, resolve_detector
from .fit import FitConfig, ManoFitter
from .hamer.preprocess import valid_boxes
from .hamer.regressor import HamerItem, HamerRegressor
from .hand_model import load_hand_model
from .precision import PRECISIONS
from .tracking import SMOOTHING, HandTracker, OneEuroFilter
from .types import (RIGHT, TRANSLATION_ASSUMED, TRANSLATION_INTRINSICS, CameraIntrinsics,
                    FrameInput, FrameResult, Hand)

REGRESSORS = ("fit", "hamer")
DEVICES = ("auto", "cpu", "cuda")
#: A hand placed nearer or farther than this from the camera is rejected (counted) [m].
DEPTH_RANGE_M = (0.05, 20.0)


@dataclass
class PipelineConfig:
    """Pipeline settings; the ROS parameters of the same names map onto these.

    Attributes:
        detector: one of ``DETECTORS``: "mediapipe" (MediaPipe's CPU graph, one per camera),
            "mediapipe_torch" (the same networks run by torch on ``device``, batched across
            cameras and hands), "auto" (mediapipe_torch on CUDA, mediapipe on the CPU).
        detector_model: "full" or "lite" MediaPipe hand networks (model_complexity 1 / 0).
        regressor: one of ``REGRESSORS``: "fit" (fit the hand model to the detector's 3D
            keypoints) or "hamer" (a user's HaMeR checkpoint on the hand crops).
        device: "auto" (CUDA when available), "cpu" or "cuda" — for torch stages.
        batch_size: hands per regressor batch (>= 1).
        max_hands: hands per image at most (>= 1).
        min_score: detection confidence threshold in [0, 1].
        mano_model_dir: folder with the user's MANO_RIGHT.pkl (and MANO_LEFT.pkl); "" for the
            built-in, license-free hand.
        checkpoint: HaMeR checkpoint for "hamer" (its model_config.yaml next to it or two
            folders up, as HaMeR's release lays it out); unused by "fit".
        precision: compute precision of "hamer" and "mediapipe_torch": "auto" (bf16/fp16
            autocast on CUDA, fp32 on CPU), "fp32", "bf16", "fp16" (CUDA only).
        smoothing: "none" or "one_euro".
        mirrored: the images are mirrored (selfie view); affects left/right only.
        static_image_mode: True for unrelated images (no tracking between images).
    """

    detector: str = "auto"
    detector_model: str = "full"
    regressor: str = "fit"
    device: str = "auto"
    batch_size: int = 8
    max_hands: int = 2
    min_score: float = 0.5
    mano_model_dir: str = ""
    checkpoint: str = ""
    precision: str = "auto"
    smoothing: str = "none"
    mirrored: bool = False
    static_image_mode: bool = False

    def validate(self) -> None:
        """Raise ``ValueError`` naming the parameter and the allowed values."""
        choices = {"detector": DETECTORS, "detector_model": DETECTOR_MODELS, "regressor": REGRESSORS,
                   "device": DEVICES, "smoothing": SMOOTHING, "precision": PRECISIONS}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"parameter '{name}': {value!r} is not one of {list(allowed)}")
        if int(self.batch_size) < 1:
            raise ValueError(f"parameter 'batch_size': {self.batch_size} must be an integer >= 1")
        if int(self.max_hands) < 1:
            raise ValueError(f"parameter 'max_hands': {self.max_hands} must be an integer >= 1")
        if not 0.0 <= float(self.min_score) <= 1.0:
            raise ValueError(f"parameter 'min_score': {self.min_score} must be in [0, 1]")
        if self.regressor == "hamer" and not self.checkpoint:
            raise ValueError("parameter 'checkpoint': regressor 'hamer' needs a HaMeR checkpoint file "
                             "(e.g. _DATA/hamer_ckpts/checkpoints/hamer.ckpt)")
        if self.precision == "fp16" and self.device == "cpu":
            raise ValueError("parameter 'precision': fp16 needs device 'cuda' (or 'auto' with a GPU)")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("parameter 'device': 'cuda' requested but torch.cuda.is_available() is False; "
                             "use 'auto' or 'cpu'")

    @classmethod
    def field_names(cls) -> Tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


class HandMeshPipeline:
    """Detect, track, regress and place hands. One instance serves several cameras.

    Args:
        config: ``PipelineConfig`` (validated here).

    Raises:
        ValueError: invalid configuration.
        FileNotFoundError / ValueError: missing or malformed MANO directory (from
            ``hand_model.load_hand_model``; the message names the path and what to do).
    """

    def __init__(self, config: PipelineConfig):
        config.validate()
        self.config = config
        dev = config.device
        self.device = torch.device("cuda" if dev == "cuda" or (dev == "auto" and torch.cuda.is_available()) else "cpu")
        self.hamer = None
        self.fitter = None
        if config.regressor == "hamer":
            self.hamer = HamerRegressor(config.checkpoint, config.mano_model_dir, self.device,
                                        config.precision, config.batch_size)
            self.hand_model = self.hamer.hand_model
        else:
            self.hand_model = load_hand_model(config.mano_model_dir or None, device=self.device)
            self.fitter = ManoFitter(self.hand_model, FitConfig())
        c = config
        #: the detector actually used ("auto" resolved for the device)
        self.detector_name = resolve_detector(c.detector, self.device.type)
        self.detector = create_detector(
            self.detector_name, max_hands=c.max_hands, min_score=c.min_score, mirrored=c.mirrored,
            static_image_mode=c.static_image_mode, model=c.detector_model, device=self.device,
            precision=c.precision, batch_size=c.batch_size)
        self._trackers: Dict[str, HandTracker] = {}
        #: counted, skipped hands by reason (e.g. "depth_out_of_range")
        self.skipped: Dict[str, int] = {}

    # -- per-camera state ------------------------------------------------------------
    def _tracker(self, camera: str) -> HandTracker:
        return self._trackers.setdefault(camera, HandTracker())

    def reset(self, camera: Optional[str] = None) -> None:
        """Forget tracks (of one camera, or all)."""
        for key, tracker in self._trackers.items():
            if camera is None or key == camera:
                tracker.reset()

    def close(self) -> None:
        """Release detector resources."""
        self.detector.close()

    # -- processing ------------------------------------------------------------------
    def process(self, image: np.ndarray, intrinsics: Optional[CameraIntrinsics] = None,
                camera: str = "default", stamp: Optional[float] = None,
                depth: Optional[np.ndarray] = None) -> FrameResult:
        """Hands in one image; see ``process_batch``."""
        return self.process_batch([FrameInput(image, intrinsics, camera, stamp, depth)])[0]

    def process_batch(self, items: Sequence[tuple]) -> List[FrameResult]:
        """Hands in several images (typically the latest image of each camera).

        Args:
            items: ``types.FrameInput`` each (or a tuple of its fields in order,
                ``(image, intrinsics, camera[, stamp[, depth]])``); typically the latest
                image of each camera.

        Returns:
            One ``FrameResult`` per item, hands sorted by descending score, at most
            ``max_hands`` each, everything in that image's optical frame.

        Raises:
            ValueError: bad image (shape, dtype, empty), invalid intrinsics, or intrinsics
                whose size disagrees with the image.
        """
        t0 = time.perf_counter()
        items = [item if isinstance(item, FrameInput) else FrameInput(*item) for item in items]
        checked = [self._check(item.image, item.intrinsics) for item in items]
        detections = self.detector.detect_batch([(item.camera, item.image) for item in items])
        frames = []
        for item, intr, dets in zip(items, checked, detections):
            stamp = item.stamp if item.stamp is not None else time.monotonic()
            frames.append((item.image, intr, item.camera, stamp, dets[: self.config.max_hands]))
        t1 = time.perf_counter()

        jobs = []  # (frame index, detection, track)
        for f, (_, _, camera, _, dets) in enumerate(frames):
            tracker = self._tracker(camera)
            if self.config.static_image_mode:
                tracker.reset()
            for det, track in zip(dets, tracker.update(dets)):
                jobs.append((f, det, track))
        t2 = time.perf_counter()

        if self.hamer is not None:
            fits = self._regress_hamer(jobs, frames)
        else:
            fits = self._regress(jobs, [fr[1] for fr in frames])
        t3 = time.perf_counter()

        results = [FrameResult(hands=[], intrinsics=fr[1]) for fr in frames]
        for (f, det, track), fit in zip(jobs, fits):
            hand = self._place(det, track, fit, frames[f][1], frames[f][3])
            if hand is not None:
                results[f].hands.append(hand)
        t4 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3, "track": (t2 - t1) * 1e3,
                   "regress": (t3 - t2) * 1e3, "place": (t4 - t3) * 1e3}
        for r in results:
            r.hands.sort(key=lambda h: -h.score)
            r.timings_ms = dict(timings)
        return results

    @staticmethod
    def _check(image: np.ndarray, intr: Optional[CameraIntrinsics]) -> CameraIntrinsics:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got "
                             f"{getattr(image, 'shape', None)} {getattr(image, 'dtype', type(image))}")
        h, w = image.shape[:2]
        if h == 0 or w == 0:
            raise ValueError(f"empty image {w}x{h}")
        if intr is None:
            return CameraIntrinsics.assumed_for(w, h)
        intr.validate()
        if (intr.width, intr.height) != (w, h):
            raise ValueError(f"image is {w}x{h} but its CameraInfo says {intr.width}x{intr.height}")
        return intr

    def _regress(self, jobs, intrinsics: List[CameraIntrinsics]):
        """Fit all hands, ``batch_size`` at a time, with their 2D keypoints and intrinsics
        (the fit's offset is then the camera translation). Returns one dict per job, or
        None for a hand whose keypoints are degenerate (counted in ``skipped``)."""
        out = []
        bs = int(self.config.batch_size)
        for s in range(0, len(jobs), bs):
            chunk = jobs[s:s + bs]
            kp = np.stack([det.keypoints_3d for _, det, _ in chunk])
            kp2d = np.stack([det.keypoints_2d for _, det, _ in chunk])
            K = np.array([[intrinsics[f].fx, intrinsics[f].fy, intrinsics[f].cx, intrinsics[f].cy]
                          for f, _, _ in chunk])
            is_right = np.array([track.side == RIGHT for _, _, track in chunk])
            init = np.stack([t.params if t.params is not None else np.full(58, np.nan) for _, _, t in chunk])
            try:
                res = self.fitter.fit(kp, is_right, init=init, keypoints_2d=kp2d, intrinsics=K)
            except ValueError:  # degenerate keypoints (e.g. all on one pixel)
                self._count("degenerate_keypoints", len(chunk))
                out.extend([None] * len(chunk))
                continue
            for k, (_, _, track) in enumerate(chunk):
                params = np.concatenate([res.global_orient[k], res.hand_pose[k], res.betas[k]])
                track.params = params
                out.append(dict(params=params, joints=res.joints[k], vertices=res.vertices[k],
                                transl=res.offset[k].astype(np.float64),
                                joint_rotations=res.joint_rotations[k], error=float(res.error[k])))
        return out

    def _regress_hamer(self, jobs, frames):
        """HaMeR on the detector boxes of all hands (all cameras in one batched call);
        one dict per job as ``_regress``; None (counted) for an empty or non-finite box."""
        if not jobs:
            return []
        ok = valid_boxes(np.stack([det.bbox for _, det, _ in jobs])).tolist()
        if not all(ok):
            self._count("degenerate_box", ok.count(False))
        items = [HamerItem(frames[f][0], det.bbox, track.side == RIGHT, frames[f][1])
                 for (f, det, track), good in zip(jobs, ok) if good]
        fits = iter(self.hamer.regress(items))
        return [next(fits) if good else None for good in ok]

    def _count(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def _place(self, det, track, fit, intr: CameraIntrinsics, stamp: float) -> Optional[Hand]:
        """Range check on the fitted camera translation; optional smoothing."""
        if fit is None:
            return None
        transl = fit["transl"]
        if not (np.isfinite(transl).all() and DEPTH_RANGE_M[0] < transl[2] < DEPTH_RANGE_M[1]):
            self._count("depth_out_of_range")
            return None
        params, joints, verts, rots = fit["params"], fit["joints"], fit["vertices"], fit["joint_rotations"]
        if self.config.smoothing == "one_euro":
            params, transl, joints, verts, rots = self._smooth(track, params, transl, stamp)
        transl = transl.astype(np.float32)
        return Hand(side=track.side, score=det.score, bbox=det.bbox, keypoints_2d=det.keypoints_2d,
                    global_orient=params[:3].astype(np.float32), hand_pose=params[3:48].astype(np.float32),
                    betas=params[48:58].astype(np.float32), transl=transl,
                    vertices=(verts + transl).astype(np.float32), joints=(joints + transl).astype(np.float32),
                    joint_rotations=rots.astype(np.float32),
                    translation_source=TRANSLATION_ASSUMED if intr.assumed else TRANSLATION_INTRINSICS,
                    hand_model=self.hand_model.name, track_id=track.track_id, fit_error=fit["error"])

    def _smooth(self, track, params, transl, stamp):
        fp = track.filters.setdefault("params", OneEuroFilter(min_cutoff=1.0, beta=0.5))
        ft = track.filters.setdefault("transl", OneEuroFilter(min_cutoff=1.0, beta=5.0))
        params = fp(params, stamp)
        transl = ft(transl, stamp)
        p = torch.as_tensor(params[None], dtype=torch.float32, device=self.device)
        with torch.no_grad():
            o = self.hand_model(p[:, :3], p[:, 3:48], p[:, 48:58], torch.tensor([track.side == RIGHT], device=self.device))
        return (params, transl, o.joints[0].cpu().numpy(), o.vertices[0].cpu().numpy(),
                o.joint_rotations[0].cpu().numpy())
