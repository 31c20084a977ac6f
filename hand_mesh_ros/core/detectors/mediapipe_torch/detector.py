"""MediaPipe Hands with the networks executed by torch, batched across cameras and hands.

The same two networks as ``mp.solutions.hands`` (converted from the installed
mediapipe 0.10.21 wheel's ``.tflite`` files, see ``models`` / ``cache``) and the same graph
logic around them (``palm``, ``landmark``, ``roi``), but run by torch on the configured
device and batched: per call, the frames of all cameras that need a palm search go through
the palm detector in one forward, and all hand ROIs of all cameras through the landmark
network in one forward (``batch_size`` caps a forward). Each camera keeps its own tracking
state, as one MediaPipe graph per camera would.

Tracking (video) mode, as ``hand_landmark_tracking_cpu.pbtxt``: the ROIs of a camera's next
frame come from this frame's landmarks; the palm detector runs for a camera only while it
tracks fewer than ``max_hands`` hands; palm ROIs overlapping a tracked ROI (IoU > 0.5) are
dropped. Static mode runs the palm detector on every image.

Tiles (``detection_tiling``, ``tiling``): the palm search also looks at tiles of a large
frame, in the same forward. In a palm search of a frame that gets tiles (whichever of its
tiles ``tile_scan`` scans this time), up to ``TILED_PALMS`` palms go to the landmark
network; each hand found from a palm is read ``REFINE_PASSES`` more times on the ROI of its
own landmarks (the ROI tracking mode uses on the next frame), so its keypoints do not depend
on whether a tile or the whole frame found it; a hand found by tiles alone is kept only
when the presence of the last read is at least ``NEW_HAND_PRESENCE``, and a new hand only
when its ROI is not nested in another hand's
(``NESTED_SIDE``: a fine tile can read part of a large hand as a small one); then a hand
whose landmark ROI overlaps an earlier one's (IoU > ``TRACKING_IOU``; tracked hands first,
then by palm score) is dropped as the same hand, and at most ``max_hands`` are kept.
Without tiles nothing of this runs: ``detection_tiling: off`` is MediaPipe bit for bit.

Device: on CUDA, images are copied to the device once and the crops are cut there with
tensor ops (``crops.sample_crops``); on the CPU they are cut by ``cv2.warpPerspective``, as
MediaPipe's CPU graph does, which is faster there. The networks run on the device; only the
palm candidates above the threshold (a few rows) and the landmark outputs (128 numbers per
hand) come back to the host, where the small sequential steps (weighted NMS, ROI geometry)
run — as in MediaPipe's own GPU graph, whose NMS runs on the CPU.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from ....config import BY_NAME, check_value
from ...precision import resolve_precision
from ...types import LEFT, RIGHT, Detection, check_rgb_image
from . import landmark as lmk
from . import palm, tiling
from .cache import load_network
from .crops import sample_crops, warp_crops_opencv
from .models import model_files
from .roi import Roi, associate, crop_affine, inside_share, iou

#: IoU above which a palm ROI is dropped in favour of a tracked one (AssociationNormRectCalculator).
TRACKING_IOU = 0.5
#: Frames with tiles: most palm ROIs that go to the landmark network (at least ``2 max_hands``:
#: the same hand can be found by the whole frame and by tiles; duplicates are dropped after
#: the landmarks). Many tiles mean many false palms, which outscore a small hand's own:
#: measured 12.6 per hand-free 1920x1080 frame on average, 28 at most (40 mosaics, 148
#: tiles); with the earlier cap of 2 max_hands the hand's palm was cut in 2 of 30 frames
#: of 80 px hands. A false palm costs one landmark read (its presence stays near 0).
TILED_PALMS = 32
#: Frames with tiles: further landmark passes for a hand found from a palm, each on the ROI of
#: the previous pass's landmarks (tracking mode's next-frame ROI), so its answer does not
#: depend on the view (tile or whole frame) whose palm found it. A small tile's palm can give
#: a poor first region (too small, turned); the reads converge over the passes (presence
#: 0.55 -> 0.79 -> 0.94 -> 0.97 for a 120 px hand of the tiling tests), false palms do not.
REFINE_PASSES = 4
#: Frames with tiles: presence a new hand found by tiles alone needs on the last of those
#: passes (a pyramid shows the palm network many more views, so many more false palms reach
#: the landmark network; a hand MediaPipe's own whole-frame search finds keeps its rule, a
#: presence above ``min_score``: a blurred video hand converges only to 0.87).
#: Measured with 192 px pyramids (``hand_scenes``, 1280x720 and 1920x1080, static mode, one
#: torch thread) over all new hands of frames with tiles, a superset of those the rule now
#: applies to: 307 real hands of 56-240 px, 0.955-0.998 (5 % below 0.979); the 15 false
#: palms of 300 hand-free mosaics that got past the first read, 0.858 at most.
NEW_HAND_PRESENCE = 0.9
#: Frames with tiles: a new hand whose landmark ROI has at most this share of another hand's
#: ROI side and lies mostly (more than half its area) inside it is part of that hand read as a
#: small hand by a fine tile (seen: the ring of an OK sign of a 240 px hand in 1920x1080, a
#: 25 px "hand" with handedness score 1.0 and presence above ``NEW_HAND_PRESENCE``).
NESTED_SIDE = 0.8
#: ``crop_backend`` values: "auto" = OpenCV for a CPU device, torch tensor ops otherwise.
CROP_BACKENDS = ("auto", "torch", "opencv")
#: OpenCV's remap refuses images with a side of SHRT_MAX (32767) pixels or more.
OPENCV_MAX_SIDE = 32767


@dataclass
class _CameraState:
    size: Tuple[int, int]
    rois: List[Roi]


class _Reading(NamedTuple):
    """A hand read by the landmark network: ``landmarks`` (21, 3) [px, px, normalized z],
    ``world`` landmarks (21, 3) [m], the ``roi`` they give (tracking mode's next region),
    MediaPipe ``says_right``, the handedness ``score`` and the hand ``presence`` in [0, 1]."""

    landmarks: np.ndarray
    world: np.ndarray
    roi: Roi
    says_right: bool
    score: float
    presence: float


@dataclass
class _Hand:
    item: int
    roi: Roi
    #: a new hand (from a palm) of a frame with tiles: refined by ``_refine``
    refine: bool = False
    #: ... found by tiles alone (no whole-frame palm of MediaPipe's own search overlaps its
    #: palm): kept only with a presence of ``NEW_HAND_PRESENCE``
    verify: bool = False


class _Palm(NamedTuple):
    """A palm found by the palm search: the hand ``roi`` it gives, and whether the tiles
    alone found it (``tiles_only``: no whole-frame palm candidate overlaps it by more than
    the NMS's IoU; always False in a frame without tiles)."""

    roi: Roi
    tiles_only: bool = False


def _overlaps_any(roi: Roi, others: Sequence[Roi]) -> bool:
    """Whether ``roi`` overlaps one of ``others`` by more than ``TRACKING_IOU`` (IoU of the
    axis-aligned bounds, as MediaPipe associates ROIs): the same hand."""
    return any(iou(roi, other) > TRACKING_IOU for other in others)


def _best_first(palms: List[_Palm]) -> List[_Palm]:
    """Palms of a frame with tiles, best first, without those whose ROI overlaps a better
    one's (``_overlaps_any``). ``roi.associate`` lets the later of two such ROIs win (in
    MediaPipe they are the palm and the tracked region); among a pyramid's many palms the
    later is the worse one (seen: a 96 px hand's best palm, presence 0.93, replaced by a
    turned one of score 0.65, presence 0.84 falling to 0.59 over the re-reads)."""
    kept: List[_Palm] = []
    for p in palms:
        if not _overlaps_any(p.roi, [k.roi for k in kept]):
            kept.append(p)
    return kept


class MediaPipeTorchHandDetector:
    """Hands from MediaPipe's networks run by torch: 21 keypoints in 2D [px] and 3D [m], box,
    handedness score, side — ``Detection`` exactly as ``MediaPipeHandDetector`` makes them.

    Args:
        max_hands: palm detections kept per image (MediaPipe's ``max_num_hands``).
        min_score: palm detection and hand presence threshold in [0, 1]
            (``min_detection_confidence`` = ``min_tracking_confidence``); hands whose
            handedness score is below it are not returned (they are still tracked).
        mirrored: the images are mirrored (selfie view): keep MediaPipe's labels.
        static_image_mode: palm detection on every image, no tracking.
        model: "full" or "lite" (MediaPipe's model_complexity 1 / 0), both networks.
        device: torch device of the networks and of every image-sized tensor.
        precision: "auto" | "fp32" | "bf16" | "fp16" (autocast; see ``precision.py``).
        batch_size: most crops per network forward (>= 1).
        models_dir: folder laid out like the wheel's ``mediapipe/modules`` (default: the
            installed wheel's).
        cache_dir: converted-model cache (default ``cache.default_cache_dir()``).
        crop_backend: "auto" (OpenCV on a CPU device, else torch), "torch" or "opencv".
        detection_tiling: "off" (default here: the whole frame only, as MediaPipe),
            "auto" or a tile side [px]: the palm search also looks at overlapping tiles of
            large frames (``tiling``; the pipeline's default is "auto").
        tile_scan: "round_robin" (streams: a rotating subset of the tiles per palm search,
            ``tiling.RoundRobin``) or "all"; static-image mode always scans all tiles.

    Raises:
        ValueError: out-of-range arguments.
        models.ModelFilesError: the mediapipe==0.10.21 model files are missing.
        convert.ConversionError: a model cannot be converted (names the operator).
    """

    def __init__(self, max_hands: int = 2, min_score: float = 0.5, mirrored: bool = False,
                 static_image_mode: bool = False, model: str = "full", device="cpu",
                 precision: str = "auto", batch_size: int = 8, models_dir=None, cache_dir=None,
                 crop_backend: str = "auto", detection_tiling="off", tile_scan: str = "round_robin"):
        if int(max_hands) < 1:
            raise ValueError(f"max_hands must be >= 1, got {max_hands}")
        if not 0.0 <= float(min_score) <= 1.0:
            raise ValueError(f"min_score must be in [0, 1], got {min_score}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        check_value(BY_NAME["detector_model"], model)
        self.max_hands = int(max_hands)
        self.min_score = float(min_score)
        self.mirrored = bool(mirrored)
        self.static_image_mode = bool(static_image_mode)
        self.batch_size = int(batch_size)
        if crop_backend not in CROP_BACKENDS:
            raise ValueError(f"crop_backend must be one of {CROP_BACKENDS}, got {crop_backend!r}")
        self.device = torch.device(device)
        self.autocast_dtype = resolve_precision(precision, self.device)
        if crop_backend == "auto":
            crop_backend = "opencv" if self.device.type == "cpu" else "torch"
        self.crop_backend = crop_backend
        self.detection_tiling = tiling.parse_tiling(detection_tiling)
        self.tile_scan = tiling.check_tile_scan(tile_scan)
        palm_path, landmark_path = model_files(model, models_dir)
        self.palm_net = self._prepare(load_network(palm_path, cache_dir))
        self.landmark_net = self._prepare(load_network(landmark_path, cache_dir))
        self.anchors = torch.from_numpy(palm.ssd_anchors()).to(self.device)
        self._cameras: Dict[str, _CameraState] = {}
        #: round-robin tile schedules per camera (kept across ``reset``: not tracking state)
        self._schedules: Dict[str, tiling.RoundRobin] = {}
        # warm-up: first-call allocations and kernel selection happen here, not on a frame
        self._forward(self.palm_net, torch.zeros(1, 3, palm.INPUT_SIZE, palm.INPUT_SIZE, device=self.device))
        self._forward(self.landmark_net, torch.zeros(1, 3, lmk.INPUT_SIZE, lmk.INPUT_SIZE, device=self.device))

    def _prepare(self, net: torch.nn.Module) -> torch.nn.Module:
        return net.to(self.device).to(memory_format=torch.channels_last)

    def _forward(self, net: torch.nn.Module, x: torch.Tensor) -> List[torch.Tensor]:
        """All outputs of ``net`` on ``x`` (N, 3, H, W), ``batch_size`` at a time, float32."""
        chunks = []
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                                                    enabled=self.autocast_dtype is not None):
            for s in range(0, x.shape[0], self.batch_size):
                chunks.append(net(x[s:s + self.batch_size]))
        return [torch.cat([c[k] for c in chunks]).float() for k in range(len(chunks[0]))]

    # -- public API ------------------------------------------------------------------
    def detect(self, image: np.ndarray, camera: str = "default") -> List[Detection]:
        """Hands in one image of ``camera``; see ``detect_batch``."""
        return self.detect_batch([(camera, image)])[0]

    def detect_batch(self, items: Sequence[Tuple[str, np.ndarray]]) -> List[List[Detection]]:
        """Hands in several images, typically the latest image of each camera.

        Args:
            items: ``(camera key, image)`` pairs; images (H, W, 3) uint8 RGB of any size.
                A camera listed twice is processed in list order (its second image is
                tracked from its first).

        Returns:
            Per item, detections sorted by descending score: ``keypoints_2d`` (21, 2)
            [px], ``keypoints_3d`` (21, 3) world landmarks [m] (image axes, origin near the
            hand centre), ``bbox`` the keypoints' tight box [px], ``score`` the handedness
            score, ``side`` the true side (MediaPipe's label swapped unless ``mirrored``).

        Raises:
            ValueError: an image that is not a non-empty (H, W, 3) uint8 array.
        """
        for _, image in items:
            check_rgb_image(image)
        results: List[List[Detection]] = [[] for _ in items]
        pending = list(range(len(items)))
        while pending:  # rounds in which every camera appears at most once
            seen, now, later = set(), [], []
            for k in pending:
                (later if items[k][0] in seen else now).append(k)
                seen.add(items[k][0])
            self._round(items, now, results)
            pending = later
        return results

    def reset(self, camera: Optional[str] = None) -> None:
        """Forget the tracked hands of ``camera`` (all cameras when None)."""
        if camera is None:
            self._cameras.clear()
        else:
            self._cameras.pop(camera, None)

    def close(self) -> None:
        """Drop tracking state and tile schedules (the networks are freed with the object)."""
        self._cameras.clear()
        self._schedules.clear()

    # -- one round -------------------------------------------------------------------
    def _round(self, items, ks: List[int], results: List[List[Detection]]) -> None:
        images = {k: self._image(items[k][1]) for k in ks}
        sizes = {k: (items[k][1].shape[1], items[k][1].shape[0]) for k in ks}
        tracked = {}
        for k in ks:
            state = self._cameras.get(items[k][0])
            ok = state is not None and not self.static_image_mode and state.size == sizes[k]
            tracked[k] = state.rois if ok else []
        searched = [k for k in ks if len(tracked[k]) < self.max_hands]
        grids = {k: tiling.frame_tiles(self.detection_tiling, *sizes[k]) for k in searched}
        palms = self._palm_rois(images, sizes, grids, {k: items[k][0] for k in searched})
        tiled = {k for k in searched if grids[k]}
        hands = [hand for k in ks for hand in associate(
            [_Hand(k, p.roi, refine=k in tiled, verify=p.tiles_only) for p in palms.get(k, [])],
            [_Hand(k, roi) for roi in tracked[k]], min_iou=TRACKING_IOU, key=lambda hand: hand.roi)]
        hands.sort(key=lambda hand: (hand.item, hand.refine))  # grouped by image; tracked hands first
        reads = [self._read(hand, out, *sizes[hand.item]) for hand, out in zip(hands, self._landmarks(images, hands))]
        self._refine(images, sizes, hands, reads)
        self._drop_nested(hands, reads)
        next_rois: Dict[int, List[Roi]] = {k: [] for k in ks}
        kept: Dict[int, List[Roi]] = {k: [] for k in tiled}
        for hand, read in zip(hands, reads):
            if read is None:
                continue
            if hand.item in kept and not self._first_sight(read.roi, kept[hand.item]):
                continue
            if read.roi.is_valid():
                next_rois[hand.item].append(read.roi)
            if read.score < self.min_score:
                continue
            kp2d = read.landmarks[:, :2].astype(np.float32)
            results[hand.item].append(Detection(
                side=RIGHT if read.says_right == self.mirrored else LEFT, score=float(read.score),
                bbox=np.concatenate([kp2d.min(0), kp2d.max(0)]).astype(np.float32),
                keypoints_2d=kp2d, keypoints_3d=read.world.astype(np.float32)))
        for k in ks:
            results[k].sort(key=lambda d: -d.score)
            if not self.static_image_mode:
                self._cameras[items[k][0]] = _CameraState(sizes[k], next_rois[k])

    def _read(self, hand: _Hand, out, w: int, h: int) -> Optional[_Reading]:
        """One landmark output of ``hand`` in a W x H image as a ``_Reading``; None when the
        hand is not present (presence not above ``min_score``, MediaPipe's
        ThresholdingCalculator; NaN fails) or an output is not finite."""
        landmarks, presence, left_score, world = out
        if not presence > self.min_score:
            return None
        lm = lmk.project_landmarks(landmarks, hand.roi, w, h)
        world = lmk.world_landmarks(world, hand.roi)
        if not np.isfinite(lm).all() or not np.isfinite(world).all():
            return None
        return _Reading(lm, world, lmk.tracking_roi(lm), *lmk.handedness(left_score), presence)

    def _refine(self, images, sizes, hands: List[_Hand], reads: list) -> None:
        """Hands of frames with tiles found from a palm (not tracked): ``REFINE_PASSES`` more
        landmark passes, each on the ROI of the previous landmarks (what tracking mode reads
        on the next frame), all such hands in one forward per pass; ``reads`` replaced in
        place: None once the hand is not present, or, for a hand found by tiles alone
        (``_Hand.verify``), when the last pass's presence is below ``NEW_HAND_PRESENCE``."""
        for _ in range(REFINE_PASSES):
            redo = [i for i, (hand, read) in enumerate(zip(hands, reads))
                    if hand.refine and read is not None and read.roi.is_valid()]
            if not redo:
                break
            again = [_Hand(hands[i].item, reads[i].roi) for i in redo]
            for i, hand, out in zip(redo, again, self._landmarks(images, again)):
                reads[i] = self._read(hand, out, *sizes[hand.item])
        for i, hand in enumerate(hands):
            if hand.verify and reads[i] is not None and not reads[i].presence >= NEW_HAND_PRESENCE:
                reads[i] = None

    @staticmethod
    def _drop_nested(hands: List[_Hand], reads: list) -> None:
        """New hands of frames with tiles (``_Hand.refine``) whose landmark ROI is nested in
        another hand's of the same image (``NESTED_SIDE``): ``reads`` set to None in place."""
        for i, (hand, read) in enumerate(zip(hands, reads)):
            if not hand.refine or read is None:
                continue
            side = max(read.roi.width, read.roi.height)
            for other, other_read in zip(hands, reads):
                if other_read is None or other_read is read or other.item != hand.item:
                    continue
                if (side <= NESTED_SIDE * max(other_read.roi.width, other_read.roi.height)
                        and inside_share(read.roi, other_read.roi) > 0.5):
                    reads[i] = None
                    break

    def _first_sight(self, roi: Roi, kept: List[Roi]) -> bool:
        """Whether a hand of a frame with tiles whose landmarks give ``roi`` is a new hand, not
        one already kept (its landmark ROI overlapping, IoU > ``TRACKING_IOU``, as MediaPipe
        associates ROIs), and ``max_hands`` are not yet kept; records it in ``kept``."""
        if len(kept) >= self.max_hands or _overlaps_any(roi, kept):
            return False
        kept.append(roi)
        return True

    def _palm_rois(self, images, sizes, grids: Dict[int, Tuple[tiling.Tile, ...]],
                   cameras: Optional[Dict[int, str]] = None) -> Dict[int, List[_Palm]]:
        """Palms (hand ROIs) from the palm detector for the images ``k`` of ``grids`` (each
        image's tiles, ``tiling.frame_tiles``): the whole frames and the tiles scanned on them
        (``_tiles_to_scan``) in one forward; per image, the tile palm candidates the tiles are
        for (``_tile_candidates``) are mapped into the whole frame's letterbox coordinates and
        merged with the whole-frame candidates by the weighted NMS; up to ``max_hands`` palms,
        ``TILED_PALMS`` for an image with tiles (then ``_best_first``, each marked
        ``tiles_only`` when no whole-frame candidate supports it)."""
        ks = list(grids)
        if not ks:
            return {}
        cameras = cameras or {}
        scans = {k: self._tiles_to_scan(cameras.get(k, "default"), grids[k]) for k in ks}
        crops, first = [], {}
        for k in ks:
            first[k] = sum(c.shape[0] for c in crops)
            affines = [palm.letterbox_affine(*sizes[k])] + [t.affine(palm.INPUT_SIZE) for t in scans[k]]
            crops.append(self._crops(images[k], affines, palm.INPUT_SIZE, "zero"))
        regressors, logits = self._forward(self.palm_net, torch.cat(crops).permute(0, 3, 1, 2))
        index, rows = palm.decode(regressors, logits, self.anchors, self.min_score)
        index, rows = index.cpu().numpy(), rows.cpu().numpy()
        out = {}
        for k in ks:
            w, h = sizes[k]
            candidates = whole = rows[index == first[k]]
            if scans[k]:
                tile_rows = (rows[index == first[k] + 1 + i] for i in range(len(scans[k])))
                candidates = np.concatenate([whole] + [self._tile_candidates(r, whole, t, w, h)
                                                       for r, t in zip(tile_rows, scans[k])])
            pad = palm.letterbox(w, h)[1]
            palms = palm.weighted_nms(candidates)[: max(TILED_PALMS, 2 * self.max_hands) if grids[k] else self.max_hands]
            found = [_Palm(palm.hand_roi(palm.remove_letterbox(p, pad), w, h),
                           bool(grids[k]) and not (palm.iou_one_to_many(p[1:5], whole[:, 1:5]) > palm.NMS_IOU).any())
                     for p in palms]
            found = [p for p in found if p.roi.is_valid()]
            out[k] = _best_first(found) if grids[k] else found
        return out

    @staticmethod
    def _tile_candidates(rows: np.ndarray, whole: np.ndarray, tile: tiling.Tile, w: int, h: int) -> np.ndarray:
        """A tile's palm candidates that are the tile's to find (``tiling.tile_rejects``, not
        ``tiling.parts_of_whole`` of the whole-frame candidates ``whole``), in the whole
        frame's letterbox coordinates."""
        rows = tiling.to_letterbox(rows[~tiling.tile_rejects(rows, tile)], tile, w, h)
        return rows[~tiling.parts_of_whole(rows, whole, tile, w, h)]

    def _tiles_to_scan(self, camera: str, grid: Tuple[tiling.Tile, ...]) -> List[tiling.Tile]:
        """The tiles of a frame of ``camera`` with tiles ``grid`` scanned on this palm search:
        all of them in static-image mode or with ``tile_scan: all``, else the camera's
        round-robin share."""
        if not grid or self.static_image_mode or self.tile_scan == "all":
            return list(grid)
        if camera not in self._schedules:
            self._schedules[camera] = tiling.RoundRobin(len(self._schedules))
        return self._schedules[camera].next_tiles(grid)

    def _landmarks(self, images, hands: List[_Hand]) -> List[Tuple[np.ndarray, float, float, np.ndarray]]:
        """Landmark network outputs per hand (all hands of all images in one forward)."""
        if not hands:
            return []
        crops = []
        for k in dict.fromkeys(h.item for h in hands):  # hands are grouped by image, in order
            affines = [crop_affine(h.roi, lmk.INPUT_SIZE, lmk.INPUT_SIZE) for h in hands if h.item == k]
            crops.append(self._crops(images[k], affines, lmk.INPUT_SIZE, "replicate"))
        landmarks, presence, left, world = (o.cpu().numpy() for o in
                                            self._forward(self.landmark_net, torch.cat(crops).permute(0, 3, 1, 2)))
        return [(landmarks[i], float(presence[i, 0]), float(left[i, 0]), world[i]) for i in range(len(hands))]

    def _image(self, image: np.ndarray):
        """The image as the crop backend reads it: on the device (torch) or in host memory."""
        image = np.ascontiguousarray(image)
        return image if self.crop_backend == "opencv" else self._to_device(image)

    def _to_device(self, image: np.ndarray) -> torch.Tensor:
        # images from ROS messages are read-only views of the message buffer; they are
        # only read here, so torch's warning about non-writable arrays does not apply
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(image).to(self.device)

    def _crops(self, image, affines: List[np.ndarray], size: int, border: str) -> torch.Tensor:
        """(N, size, size, 3) float crops on the device."""
        if isinstance(image, np.ndarray):
            if max(image.shape[:2]) < OPENCV_MAX_SIDE:
                return warp_crops_opencv(image, affines, (size, size), border).to(self.device)
            image = self._to_device(image)  # beyond OpenCV's remap limit
        maps = torch.from_numpy(np.stack(affines)).to(self.device)
        return sample_crops(image, maps, (size, size), border)
