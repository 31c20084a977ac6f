"""The ROS-free pipeline: RGB images in, ``FrameResult`` (hands with MANO meshes) out.

Per batch of images (the latest of each camera), one stage after the other over typed
records (``core.records``)::

    check      inputs.check_frames        image, intrinsics, depth -> Frame (bad input: ValueError)
    detect     detection.DetectionStage   all cameras in one detect_batch; re-detection of duplicates
    associate  association.Association    duplicates removed, max_hands kept, tracks -> TrackedHand
    regress    regressors.Regressor       MANO of all hands together, batch_size at a time
                                          ("fit" warm-started per track, or "hamer" on the crops)
    place      placement.Placement        camera translation from the real intrinsics or depth -> Hand
    smooth     smoothing_stage            optional One Euro per track, hand model posed again
    finish     finish.finish              bone-aligned joint frames, reprojection error

Skips and fallbacks are counted (``counters.StageCounters``: ``skipped``, ``fallbacks``).
State kept per hand track (warm starts, smoothers) lives in its stage, keyed by
``(camera, track id)``, and goes when the track ends or changes side. The ROS node and the
offline CLI both call this object; it knows nothing of ROS.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .association import Association
from .counters import StageCounters
from .detection import DetectionStage, detector_max_hands
from .detectors import DETECTOR_MODELS, DETECTORS, HandDetector, create_detector, resolve_detector
from .finish import finish
from .inputs import check_frames
from .placement import Placement
from .precision import PRECISIONS
from .records import PlacedHand, TrackKey
from .regressors import REGRESSORS, create_regressor
from .smoothing_stage import SmoothingStage
from .tracking import SMOOTHING
from .types import CameraIntrinsics, FrameInput, FrameResult, Hand

__all__ = ["DEVICES", "PRECISIONS", "FrameInput", "FrameResult", "Hand", "HandMeshPipeline", "PipelineConfig"]

_LOG = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")


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
        smoothing: "none" or "one_euro" (``core.smoothing``: One Euro on each track's
            rotations, betas and translation; the hand model is then run again on the
            filtered parameters).
        smoothing_min_cutoff: One Euro cutoff at rest [Hz], > 0 (lower = less jitter, more lag).
        smoothing_beta: One Euro speed coefficient, >= 0 (per rad/s of rotation, per hand
            length (0.1 m) per second of translation; higher = less lag when moving).
        track_max_missed: frames a track keeps its id unseen (>= 0).
        side_hysteresis: consecutive frames of the other side label needed to change a
            track's side (>= 1).
        nms_iou: two detections whose boxes overlap by this IoU or more are one hand, (0, 1].
        nms_keypoint_distance: ... as are two whose mean 2D keypoint distance is at most
            this many box diagonals (>= 0); see ``core.tracking``.
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
    smoothing_min_cutoff: float = 2.0
    smoothing_beta: float = 0.5
    track_max_missed: int = 5
    side_hysteresis: int = 10
    nms_iou: float = 0.5
    nms_keypoint_distance: float = 0.2
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
        ranges = {"smoothing_min_cutoff": ("> 0 [Hz]", lambda v: v > 0),
                  "smoothing_beta": (">= 0", lambda v: v >= 0),
                  "track_max_missed": ("an integer >= 0", lambda v: v >= 0 and v.is_integer()),
                  "side_hysteresis": ("an integer >= 1", lambda v: v >= 1 and v.is_integer()),
                  "nms_iou": ("in (0, 1]", lambda v: 0 < v <= 1),
                  "nms_keypoint_distance": (">= 0", lambda v: v >= 0)}
        for name, (allowed, ok) in ranges.items():
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and ok(float(value))):
                raise ValueError(f"parameter '{name}': {value!r} must be {allowed}")
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

    Attributes:
        device: the torch device of the hand model and the torch stages.
        hand_model: the regressor's ``HandModel`` (its ``name``, ``faces_for``).
        detector_name: the detector actually used ("auto" resolved for the device).
        detector_max_hands: hands the detector is asked for per image
            (``detection.detector_max_hands``).

    Raises:
        ValueError: invalid configuration.
        FileNotFoundError / ValueError: missing or malformed MANO directory (from
            ``hand_model.load_hand_model``; the message names the path and what to do).
    """

    def __init__(self, config: PipelineConfig):
        config.validate()
        self.config = c = config
        cuda = c.device == "cuda" or (c.device == "auto" and torch.cuda.is_available())
        self.device = torch.device("cuda" if cuda else "cpu")
        self.counters = StageCounters(_LOG)
        self.regressor = create_regressor(c.regressor, mano_model_dir=c.mano_model_dir, checkpoint=c.checkpoint,
                                          device=self.device, precision=c.precision, batch_size=c.batch_size,
                                          counters=self.counters)
        self.hand_model = self.regressor.hand_model
        self.detector_name = resolve_detector(c.detector, self.device.type)
        self.detector_max_hands = detector_max_hands(c.max_hands, c.static_image_mode)
        detector = create_detector(
            self.detector_name, max_hands=self.detector_max_hands, min_score=c.min_score, mirrored=c.mirrored,
            static_image_mode=c.static_image_mode, model=c.detector_model, device=self.device,
            precision=c.precision, batch_size=c.batch_size)
        self.detection = DetectionStage(detector, c.max_hands, c.static_image_mode, c.nms_iou,
                                        c.nms_keypoint_distance)
        self.association = Association(c.max_hands, c.track_max_missed, c.side_hysteresis, c.nms_iou,
                                       c.nms_keypoint_distance, c.static_image_mode)
        self.placement = Placement(self.hand_model, self.counters)
        self.smoothing = (SmoothingStage(self.regressor.kinematics, c.smoothing_min_cutoff, c.smoothing_beta)
                          if c.smoothing == "one_euro" else None)

    @property
    def detector(self) -> HandDetector:
        """The ``HandDetector`` (tracking state per camera key)."""
        return self.detection.detector

    @property
    def skipped(self) -> Dict[str, int]:
        """Counted, skipped hands by reason (e.g. "depth_out_of_range")."""
        return self.counters.skipped

    @property
    def fallbacks(self) -> Dict[str, int]:
        """Counted fallbacks by reason: the input was used in a reduced way, e.g.
        "distortion_model_unsupported" (image treated as undistorted)."""
        return self.counters.fallbacks

    @property
    def redetections(self) -> int:
        """Images detected a second time because a duplicate filled the detector's slots
        (tracking mode; ``core.detection``)."""
        return self.detection.redetections

    # -- lifecycle -------------------------------------------------------------------
    def reset(self, camera: Optional[str] = None) -> None:
        """Forget tracks (of one camera, or all), with their warm starts and smoothers."""
        self._forget(self.association.reset(camera))

    def close(self) -> None:
        """Release detector resources."""
        self.detector.close()

    def warm_up(self, cameras: Sequence[str], size: Tuple[int, int] = (480, 640)) -> float:
        """Pay the first-call costs before the first image.

        Per camera key the detector's graph is built and run once on a black image (then
        its tracking state is reset), and the fit (regressor "fit") solves the hand model's
        own rest pose once per side, 2D term included. Without it a camera's first image
        takes ~0.45 s instead of ~20 ms (MediaPipe's graph is created on a camera's first
        image; measured on the test video, 2-core Xeon: 452 ms, and 36 ms after a warm-up),
        which a node spends on its first frame. Results afterwards are the same as without.

        Args:
            cameras: the camera keys that ``process_batch`` will be given.
            size: (height, width) [px] of the black image.

        Returns:
            Seconds spent.
        """
        t0 = time.perf_counter()
        self.detection.warm_up(list(dict.fromkeys(cameras)), size)
        self.regressor.warm_up(size)
        return time.perf_counter() - t0

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
            ``max_hands`` each, everything in that image's optical frame; ``timings_ms``
            per stage ("detect" includes the input checks, "place" the finish).

        Raises:
            ValueError: bad image (shape, dtype, empty), invalid intrinsics, or intrinsics
                whose size disagrees with the image.
        """
        t0 = time.perf_counter()
        frames = check_frames([it if isinstance(it, FrameInput) else FrameInput(*it) for it in items], self.counters)
        self.detection.detect(frames)
        t1 = time.perf_counter()
        tracked, ended = self.association.associate(frames)
        self._forget(ended)
        t2 = time.perf_counter()
        regressed = self.regressor.regress(tracked)
        t3 = time.perf_counter()
        placed = []
        for hand, reg in zip(tracked, regressed):
            out = self.placement.place(hand, reg)
            if out is not None:
                placed.append(PlacedHand(hand, out))
        t4 = time.perf_counter()
        if self.smoothing is not None:
            self.smoothing.smooth(placed)
        t5 = time.perf_counter()
        finish(placed, self.regressor.kinematics)
        # a track that ended in a later frame of the same camera in this batch was given
        # state by the stages after the first forget: drop it for good
        self._forget(self.association.gone(ended))
        results = [FrameResult(hands=[], intrinsics=frame.intrinsics) for frame in frames]
        for p in placed:
            results[p.tracked.frame.index].hands.append(p.hand)
        t6 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3, "track": (t2 - t1) * 1e3, "regress": (t3 - t2) * 1e3,
                   "place": (t4 - t3 + t6 - t5) * 1e3, "smooth": (t5 - t4) * 1e3}
        for r in results:
            r.hands.sort(key=lambda h: -h.score)
            r.timings_ms = dict(timings)
        return results

    def _forget(self, keys: Iterable[TrackKey]) -> None:
        """Drop the per-track state of the stages for these tracks (ended, or changed side)."""
        keys = list(keys)
        if keys:
            self.regressor.forget(keys)
            if self.smoothing is not None:
                self.smoothing.forget(keys)
