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
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import torch

from ..config import DEVICES, REGRESSORS, PipelineConfig
from .association import Association
from .counters import StageCounters
from .detection import DetectionStage, detector_max_hands
from .detectors import HandDetector, check_tiling_support, create_detector, resolve_detector
from .finish import finish
from .inputs import check_frames
from .placement import Placement
from .records import PlacedHand, TrackKey
from .regressors import create_regressor
from .smoothing_stage import SmoothingStage
from .types import CameraIntrinsics, FrameInput, FrameResult, Hand

__all__ = ["DEVICES", "REGRESSORS", "FrameInput", "FrameResult", "Hand", "HandMeshPipeline", "PipelineConfig"]

_LOG = logging.getLogger(__name__)


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
        self.detector_name = resolve_detector(c.detector, self.device.type, c.detection_tiling)
        note = check_tiling_support(self.detector_name, c.detection_tiling)
        if note:
            _LOG.warning(note)
        self.detector_max_hands = detector_max_hands(c.max_hands, c.static_image_mode)
        detector = create_detector(
            self.detector_name, max_hands=self.detector_max_hands, min_score=c.min_score, mirrored=c.mirrored,
            static_image_mode=c.static_image_mode, model=c.detector_model, device=self.device,
            precision=c.precision, batch_size=c.batch_size, detection_tiling=c.detection_tiling,
            tile_scan=c.tile_scan)
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
