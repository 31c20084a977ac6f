"""The ROS-free pipeline: RGB images in, ``FrameResult`` (hands with MANO meshes) out.

Per batch of images (the latest of each camera): detect hands (all cameras in one
``detect_batch``) -> remove duplicate detections, keep ``max_hands`` -> associate to tracks
(stable ids, side hysteresis, primary track per side; ``core.tracking``) -> regress MANO
(all hands of the batch together, ``batch_size`` at a time: "fit" warm-started per track,
or "hamer" on the hand crops) -> place in the camera optical frame with the real
intrinsics (lens distortion included) or from a registered depth image (``core.depth``),
with bone-aligned joint frames (``core.joint_frames``) -> optional One Euro smoothing
(``core.smoothing``). The ROS node and the offline CLI both call this object; it knows
nothing of ROS.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from .camera import project, undistort_points
from .depth import REASONS as DEPTH_REASONS
from .depth import DepthConfig, depth_in_metres, translation_from_depth
from .detectors import DETECTOR_MODELS, DETECTORS, check_tiling_support, create_detector, resolve_detector
from .detectors.mediapipe_torch import tiling
from .fit import FitConfig, ManoFitter
from .hamer.preprocess import valid_boxes
from .hamer.regressor import HamerItem, HamerRegressor
from .hand_model import JOINT_ROTATION_SOURCE, load_hand_model
from .joint_frames import joint_frames
from .kinematics import JointKinematics
from .precision import PRECISIONS
from .smoothing import HandSmoother
from .tracking import SMOOTHING, HandTracker, suppress_duplicates
from .types import (RIGHT, TRANSLATION_ASSUMED, TRANSLATION_DEPTH, TRANSLATION_INTRINSICS,
                    CameraIntrinsics, Detection, FrameInput, FrameResult, Hand)

_LOG = logging.getLogger(__name__)

REGRESSORS = ("fit", "hamer")
DEVICES = ("auto", "cpu", "cuda")
#: A hand placed nearer or farther than this from the camera is rejected (counted) [m].
DEPTH_RANGE_M = (0.05, 20.0)
#: A warning about the same fallback reason is logged at most once per this period [s].
WARN_THROTTLE_S = 5.0
#: In static-image mode the detector is asked for this many hands more than ``max_hands``
#: (when ``max_hands`` >= 2), so that a duplicate detection cannot push a real hand out
#: before de-duplication. Palm detection runs on every image in that mode anyway, so the
#: extra slot costs a landmark pass only when a further palm is found.
#:
#: In tracking (video) mode the detector is asked for ``max_hands`` exactly, and a duplicate
#: is handled when it happens (``HandMeshPipeline.redetections``): when the detector's
#: slots were full and de-duplication left fewer than ``max_hands`` hands, the camera's
#: detector tracking is reset and the same image detected again, from palm detection. One
#: slot more would cost on every frame: MediaPipe runs its palm detector while it tracks
#: fewer hands than asked, so with two hands in view 3 asked instead of 2 costs +70 %
#: (measured on this project's 2-core machines, 640x360 two-hand frames: p50 13.1 ->
#: 21.9 ms/frame; and MediaPipe asked for 2 gave both hands, no duplicate, in 202 of 202
#: frames of each two-hand test video). A reset costs 1.6 ms and the next detection ~20 ms more.
EXTRA_DETECTOR_CANDIDATES = 1


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
        detection_tiling: tiled palm search for small hands in large frames
            (``detectors.mediapipe_torch.tiling``): "auto" (457 px tiles when the frame is
            larger than 640x480), "off", or a tile side [px] (an integer >= 96, or its
            decimal string). Not "off" makes detector "auto" mediapipe_torch.
        tile_scan: "round_robin" (streams: the whole frame plus a rotating subset of the
            tiles per palm search) or "all"; static-image mode always scans all tiles.
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
    detection_tiling: Union[str, int] = "auto"
    tile_scan: str = "round_robin"

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
        # tiled palm search (detectors.mediapipe_torch.tiling)
        detection_tiling = tiling.parse_tiling(self.detection_tiling)
        tiling.check_tile_scan(self.tile_scan)
        if self.detector == "mediapipe":
            check_tiling_support(self.detector, detection_tiling)

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
        #: numpy kinematics of the hand model (the fit's; rest poses for the joint frames)
        self.kin = self.fitter.kin if self.fitter is not None else JointKinematics(self.hand_model)
        self.depth_config = DepthConfig()
        c = config
        #: the detector actually used ("auto" resolved for the device)
        detection_tiling = tiling.parse_tiling(c.detection_tiling)
        self.detector_name = resolve_detector(c.detector, self.device.type, detection_tiling)
        note = check_tiling_support(self.detector_name, detection_tiling)
        if note:
            _LOG.warning(note)
        extra = EXTRA_DETECTOR_CANDIDATES if c.static_image_mode and c.max_hands >= 2 else 0
        #: hands the detector is asked for per image (see ``EXTRA_DETECTOR_CANDIDATES``)
        self.detector_max_hands = c.max_hands + extra
        self.detector = create_detector(
            self.detector_name, max_hands=self.detector_max_hands, min_score=c.min_score, mirrored=c.mirrored,
            static_image_mode=c.static_image_mode, model=c.detector_model, device=self.device,
            precision=c.precision, batch_size=c.batch_size, detection_tiling=detection_tiling,
            tile_scan=c.tile_scan)
        self._trackers: Dict[str, HandTracker] = {}
        #: counted, skipped hands by reason (e.g. "depth_out_of_range")
        self.skipped: Dict[str, int] = {}
        #: counted fallbacks by reason: the input was used in a reduced way, e.g.
        #: "distortion_model_unsupported" (image treated as undistorted)
        self.fallbacks: Dict[str, int] = {}
        self._last_warning: Dict[str, float] = {}
        #: images detected a second time because a duplicate filled the detector's slots
        #: (tracking mode; see ``EXTRA_DETECTOR_CANDIDATES``)
        self.redetections = 0

    # -- per-camera state ------------------------------------------------------------
    def _tracker(self, camera: str) -> HandTracker:
        if camera not in self._trackers:
            c = self.config
            self._trackers[camera] = HandTracker(c.track_max_missed, c.side_hysteresis)
        return self._trackers[camera]

    def reset(self, camera: Optional[str] = None) -> None:
        """Forget tracks (of one camera, or all)."""
        for key, tracker in self._trackers.items():
            if camera is None or key == camera:
                tracker.reset()

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
        black = np.zeros((int(size[0]), int(size[1]), 3), np.uint8)
        cameras = list(dict.fromkeys(cameras))
        self.detector.detect_batch([(camera, black) for camera in cameras])
        for camera in cameras:
            self.detector.reset(camera)
        if self.fitter is not None:
            side = np.array([0, 1])
            kp = self.kin.rest_keypoints(np.zeros((2, 10)), side) + [0.0, 0.0, 0.5]   # 0.5 m ahead
            intr = CameraIntrinsics.assumed_for(int(size[1]), int(size[0]))
            uv = project(kp.reshape(-1, 3), intr).reshape(2, 21, 2)
            self.fitter.fit(kp - kp.mean(1, keepdims=True), side.astype(bool), keypoints_2d=uv,
                            intrinsics=np.tile(intr.pinhole, (2, 1)))
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
            ``max_hands`` each, everything in that image's optical frame.

        Raises:
            ValueError: bad image (shape, dtype, empty), invalid intrinsics, or intrinsics
                whose size disagrees with the image.
        """
        t0 = time.perf_counter()
        items = [item if isinstance(item, FrameInput) else FrameInput(*item) for item in items]
        checked = [self._check(item.image, item.intrinsics, item.camera) for item in items]
        depths = [self._check_depth(item.depth, intr, item.camera) for item, intr in zip(items, checked)]
        pairs = [(item.camera, item.image) for item in items]
        detections = self._redetect_duplicates(pairs, self.detector.detect_batch(pairs))
        frames = []
        for item, intr, dets in zip(items, checked, detections):
            stamp = item.stamp if item.stamp is not None else time.monotonic()
            frames.append((item.image, intr, item.camera, stamp, dets))
        t1 = time.perf_counter()

        jobs = []  # (frame index, detection, track)
        c = self.config
        for f, (_, _, camera, _, dets) in enumerate(frames):
            dets = suppress_duplicates(dets, c.nms_iou, c.nms_keypoint_distance)[: c.max_hands]
            tracker = self._tracker(camera)
            if c.static_image_mode:
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
        placed = []  # (frame index, hand, track)
        for (f, det, track), fit in zip(jobs, fits):
            hand = self._place(det, track, fit, frames[f][1], depths[f])
            if hand is not None:
                placed.append((f, hand, track))
        t4 = time.perf_counter()
        if c.smoothing == "one_euro":
            self._smooth([(hand, track, frames[f][3]) for f, hand, track in placed])
        t5 = time.perf_counter()
        self._finish([(hand, frames[f][1]) for f, hand, _ in placed])
        for f, hand, _ in placed:
            results[f].hands.append(hand)
        t6 = time.perf_counter()
        timings = {"detect": (t1 - t0) * 1e3, "track": (t2 - t1) * 1e3, "regress": (t3 - t2) * 1e3,
                   "place": (t4 - t3 + t6 - t5) * 1e3, "smooth": (t5 - t4) * 1e3}
        for r in results:
            r.hands.sort(key=lambda h: -h.score)
            r.timings_ms = dict(timings)
        return results

    def _redetect_duplicates(self, pairs: Sequence[Tuple[str, np.ndarray]],
                             detections: List[List[Detection]]) -> List[List[Detection]]:
        """Detect again, from palm detection, the images whose detector slots a duplicate
        filled (tracking mode): all ``detector_max_hands`` slots taken and fewer than
        ``max_hands`` distinct hands after ``suppress_duplicates``. The camera's detector
        tracking is reset first, so the duplicate is not tracked on into the next frame.

        Args:
            pairs: ``(camera key, image)`` as given to ``detect_batch``.
            detections: its result, one list per pair.

        Returns:
            ``detections`` with the re-detected images' lists replaced.
        """
        c = self.config
        if c.static_image_mode:
            return detections
        redo = []
        for k, dets in enumerate(detections):
            if len(dets) >= self.detector_max_hands:
                kept = suppress_duplicates(dets, c.nms_iou, c.nms_keypoint_distance)
                if len(kept) < min(len(dets), c.max_hands):
                    redo.append(k)
        if not redo:
            return detections
        for k in redo:
            self.detector.reset(pairs[k][0])
        again = self.detector.detect_batch([pairs[k] for k in redo])
        self.redetections += len(redo)
        _LOG.debug("duplicate detections filled the detector's slots: re-detected %d image(s)", len(redo))
        out = list(detections)
        for k, dets in zip(redo, again):
            out[k] = dets
        return out

    def _check(self, image: np.ndarray, intr: Optional[CameraIntrinsics], camera: str) -> CameraIntrinsics:
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
        problem = intr.distortion_problem()
        if problem is not None:
            self._fallback(problem, f"camera '{camera}': lens distortion ignored (model "
                                    f"{intr.distortion_model!r}, {len(intr.distortion)} coefficients; "
                                    f"supported: plumb_bob 5, rational_polynomial 8/12/14, equidistant 4)")
            intr = intr.without_distortion()
        return intr

    def _check_depth(self, depth, intr: CameraIntrinsics, camera: str) -> Optional[np.ndarray]:
        """The frame's depth in metres, or None (no depth, or unusable: counted fallback)."""
        if depth is None:
            return None
        depth_m, problem = depth_in_metres(depth, intr.width, intr.height)
        if problem is not None:
            self._fallback(problem, f"camera '{camera}': depth image ignored: {DEPTH_REASONS[problem]} "
                                    f"(depth {getattr(depth, 'shape', None)} {getattr(depth, 'dtype', type(depth))}, "
                                    f"image {intr.width}x{intr.height})")
        return depth_m

    def _regress(self, jobs, intrinsics: List[CameraIntrinsics]):
        """Fit all hands, ``batch_size`` at a time, with their 2D keypoints and intrinsics
        (the fit's offset is then the camera translation). Returns one dict per job, or
        None for a hand whose keypoints are degenerate (counted in ``skipped``). A fit that
        misses the fit's quality bounds (``FitResult.poor``) is counted (``fit_poor``) and
        published with its residual, but never kept as the track's warm start."""
        out = []
        bs = int(self.config.batch_size)
        for s in range(0, len(jobs), bs):
            chain = jobs[s:s + bs]
            kp = np.stack([det.keypoints_3d for _, det, _ in chain])
            kp2d = np.stack([undistort_points(det.keypoints_2d, intrinsics[f]) for f, det, _ in chain])
            K = np.stack([intrinsics[f].pinhole for f, _, _ in chain])  # kp2d: ideal pinhole pixels
            is_right = np.array([track.side == RIGHT for _, _, track in chain])
            init = np.stack([t.params if t.params is not None else np.full(58, np.nan) for _, _, t in chain])
            try:
                res = self.fitter.fit(kp, is_right, init=init, keypoints_2d=kp2d, intrinsics=K)
            except ValueError:  # degenerate keypoints (e.g. all on one pixel)
                self._count("degenerate_keypoints", len(chain))
                out.extend([None] * len(chain))
                continue
            if res.poor.any():  # published with its residual, never a warm start
                self._count("fit_poor", int(res.poor.sum()))
            for k, (_, _, track) in enumerate(chain):
                params = np.concatenate([res.global_orient[k], res.hand_pose[k], res.betas[k]])
                track.params = None if res.poor[k] else params
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

    def _fallback(self, reason: str, message: str) -> None:
        """Count a fallback in ``fallbacks[reason]``; log a warning at most once per
        ``WARN_THROTTLE_S`` per reason (with the count so far)."""
        n = self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last_warning.get(reason, -np.inf) >= WARN_THROTTLE_S:
            self._last_warning[reason] = now
            _LOG.warning("%s [%s, %d so far]", message, reason, n)

    def _place(self, det, track, fit, intr: CameraIntrinsics,
               depth_m: Optional[np.ndarray] = None) -> Optional[Hand]:
        """Range check on the fitted camera translation; with a depth image, the translation
        from depth (``depth.translation_from_depth``, counted fallback to the intrinsics-only
        one); the ``Hand``, whose ``joint_rotations`` are still the kinematic chain's (the
        regressor's) until ``_finish``."""
        if fit is None:
            return None
        transl = fit["transl"]
        if not (np.isfinite(transl).all() and DEPTH_RANGE_M[0] < transl[2] < DEPTH_RANGE_M[1]):
            self._count("depth_out_of_range")
            return None
        source = TRANSLATION_ASSUMED if intr.assumed else TRANSLATION_INTRINSICS
        if depth_m is not None:
            transl, source = self._depth_translation(track.side, fit["vertices"], transl, source, depth_m, intr)
        params, joints, verts, rots = fit["params"], fit["joints"], fit["vertices"], fit["joint_rotations"]
        transl = transl.astype(np.float32)
        hand = Hand(side=track.side, score=det.score, bbox=det.bbox, keypoints_2d=det.keypoints_2d,
                    global_orient=params[:3].astype(np.float32), hand_pose=params[3:48].astype(np.float32),
                    betas=params[48:58].astype(np.float32), transl=transl,
                    vertices=(verts + transl).astype(np.float32), joints=(joints + transl).astype(np.float32),
                    joint_rotations=rots, translation_source=source, hand_model=self.hand_model.name,
                    track_id=track.track_id, primary=track.primary, fit_error=fit.get("error", float("nan")))
        return hand

    def _finish(self, items) -> None:
        """In place, for ``items`` = [(Hand, intrinsics)] as placed (and smoothed): the
        chain rotations become the bone-aligned joint frames (``core.joint_frames``, all
        hands at once), and the reprojection error of the published joints is set."""
        if not items:
            return
        side = np.array([hand.side for hand, _ in items])
        betas = np.stack([hand.betas for hand, _ in items]).astype(np.float64)
        chain = np.stack([hand.joint_rotations for hand, _ in items])
        frames = joint_frames(chain, self.kin.rest_keypoints(betas, side), side)
        for (hand, intr), F in zip(items, frames):
            hand.joint_rotations = F
            hand.reprojection_error = _reprojection_error(hand, intr)

    def _depth_translation(self, side: int, vertices, transl, source: int, depth_m, intr: CameraIntrinsics):
        """(translation, translation_source) from the depth image, or the given ones on a
        counted fallback."""
        if intr.assumed:
            reason, detail = "depth_without_camera_info", DEPTH_REASONS["depth_without_camera_info"]
        else:
            res = translation_from_depth(vertices, self.hand_model.faces_for(side), transl, depth_m, intr,
                                         self.depth_config)
            if res.reason is None and DEPTH_RANGE_M[0] < res.transl[2] < DEPTH_RANGE_M[1]:
                return res.transl, TRANSLATION_DEPTH
            reason, detail = res.reason or "depth_disagrees", res.detail or "depth out of range"
        self._fallback(reason, f"hand placed from the intrinsics only: {detail}")
        return transl, source

    def _smooth(self, items) -> None:
        """One Euro smoothing of placed hands, in place: ``items`` = [(Hand, Track, image
        stamp [s])]. Each track's filter (``core.smoothing.HandSmoother``) smooths the
        hand's rotations, betas and translation; the hand model posed with the filtered
        parameters (``kinematics``, all hands at once) gives the joints, vertices and chain
        rotations, so they stay consistent with the published MANO parameters."""
        if not items:
            return
        params, transl = [], []
        for hand, track, stamp in items:
            if track.smoother is None:
                track.smoother = HandSmoother(self.config.smoothing_min_cutoff, self.config.smoothing_beta)
            go, hp, betas, t = track.smoother(hand.global_orient, hand.hand_pose, hand.betas, hand.transl, stamp)
            params.append(np.concatenate([go, hp, betas]))
            transl.append(t)
        params = np.stack(params).astype(np.float64)
        side = np.array([hand.side for hand, _, _ in items])
        rotations = Rotation.from_rotvec(params[:, :48].reshape(-1, 3)).as_matrix().reshape(-1, 16, 3, 3)
        ks = self.kin.forward(rotations, params[:, 48:], side)
        verts = self.kin.vertices(ks, params[:, 48:])
        chain = ks.global_rotations[:, JOINT_ROTATION_SOURCE]
        for k, (hand, _, _) in enumerate(items):
            t = transl[k].astype(np.float32)
            hand.global_orient, hand.hand_pose, hand.betas = (params[k][a:b].astype(np.float32)
                                                              for a, b in ((0, 3), (3, 48), (48, 58)))
            hand.transl = t
            hand.joints = (ks.keypoints[k] + t).astype(np.float32)
            hand.vertices = verts[k] + t
            hand.joint_rotations = chain[k]


def _reprojection_error(hand: Hand, intr: CameraIntrinsics) -> float:
    """Median distance [px] between the hand's joints projected with ``intr`` (lens
    distortion included) and the detector's raw 2D keypoints."""
    return float(np.median(np.linalg.norm(project(hand.joints, intr) - hand.keypoints_2d, axis=1)))
