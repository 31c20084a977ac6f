"""Frame-to-frame hand tracking for one camera: one hand = one output = one id.

Per image, in this order (``association.Association`` calls them for the pipeline):

1. **Duplicates** (:func:`suppress_duplicates`, before ``max_hands``): greedy non-maximum
   suppression by descending score, side-agnostic (a detector may report one hand twice,
   even with both labels). Two detections are the same hand when their boxes overlap with
   IoU >= ``nms_iou`` (default 0.5, MediaPipe's own hand-rectangle association threshold)
   **or** their 21 keypoints nearly coincide: mean 2D keypoint distance <= ``nms_keypoint_distance``
   (default 0.2) times the mean of the two box diagonals. (Measured on
   hand_landmarker_test_video.mp4: MediaPipe's duplicates lie at 0.08, IoU 0.67-0.75; the
   same hand moves 0.009 per frame on average, 0.067 at most; two distinct hands are
   apart by more than 1.) The highest-score detection is kept.
2. **Association** (:meth:`HandTracker.update`): each live track predicts its keypoints and
   box (constant 2D velocity, the velocity halved for every missed frame, so a lost hand
   coasts to a stop); the cost of detection ``i`` for track ``j`` is
   ``(1 - IoU) + d_kp + SIDE_MISMATCH_COST * [sides differ]`` (``d_kp`` the relative mean
   keypoint distance as above), a pair is allowed only when ``IoU >= GATE_IOU`` or
   ``d_kp <= GATE_KEYPOINT_DISTANCE``, and the assignment minimising the total cost is
   found by ``scipy.optimize.linear_sum_assignment``, tracks seen most recently first (a
   matching cascade as in DeepSORT, Wojke et al. 2017: tracks seen in the last frame, then
   tracks missed for 1 frame, 2, ...). A track not seen for more than ``max_missed`` frames
   is dropped; until then a detection that matches it (a hand back after a short miss, or
   what would otherwise start a new track where a hand was just lost) takes over its id,
   side and state. Other detections start new tracks (ids count up from 1, never reused).
3. **Side hysteresis** (new and old tracks alike): a new track takes the side of its first
   detection; a track's side changes only after ``side_hysteresis`` consecutive matched
   frames all report the other side (a frame agreeing with the track's side restarts the
   count; missed frames do not count). A side change ends the track's per-track state in
   the later stages (the fit's warm start, the smoother: another hand model), as does the
   end of the track (:meth:`HandTracker.take_ended`).
4. **Primary track per side** (TF ``<tf_prefix><side>``): a side's primary track stays
   primary until it is dropped or changes side, even through missed frames (then
   ``hand_<side>`` is simply not published in those frames — it never jumps to another
   hand); a side without a primary gives it to its oldest track seen in this frame (the
   lowest id). ``Track.primary`` says which.

The tracker keeps no regression or smoothing state: the stages keep theirs keyed by
``(camera, track id)`` (``records.TrackKey``) and drop it for the ids that
:meth:`HandTracker.take_ended` reports.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .types import Detection


#: Association gate: a detection may join a track when the (predicted) boxes overlap by at
#: least this IoU ...
GATE_IOU = 0.1
#: ... or when their mean keypoint distance is at most this many box diagonals.
GATE_KEYPOINT_DISTANCE = 0.5
#: Added to the association cost of a detection whose side label differs from the track's.
SIDE_MISMATCH_COST = 0.3
#: Weight of the newest displacement in the track's velocity estimate (exponential average).
VELOCITY_GAIN = 0.5
#: Factor applied to the predicted displacement for every further missed frame.
VELOCITY_DAMPING = 0.5
_NO_MATCH = 1e6


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (N, 4) x (M, 4) ``x_min, y_min, x_max, y_max`` [px] -> (N, M) float64."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    iw = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    ih = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]).clip(0) * (x[..., 3] - x[..., 1]).clip(0)  # noqa: E731
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


def keypoint_distance(kp_a: np.ndarray, box_a: np.ndarray, kp_b: np.ndarray, box_b: np.ndarray) -> np.ndarray:
    """Mean 2D keypoint distance relative to hand size, (N, 21, 2) x (M, 21, 2) -> (N, M).

    ``d[i, j] = mean_k |kp_a[i, k] - kp_b[j, k]| / ((diag(box_a[i]) + diag(box_b[j])) / 2)``,
    boxes (N, 4) / (M, 4) ``x_min, y_min, x_max, y_max`` [px] (diagonal at least 1 px):
    0 for the same skeleton, about 1 for hands one hand-size apart. float64.
    """
    a = np.asarray(kp_a, np.float64).reshape(-1, 1, 21, 2)
    b = np.asarray(kp_b, np.float64).reshape(1, -1, 21, 2)
    size = np.maximum(0.5 * (_diagonal(box_a)[:, None] + _diagonal(box_b)[None]), 1.0)
    return np.linalg.norm(a - b, axis=-1).mean(-1) / size


def _diagonal(boxes) -> np.ndarray:
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.hypot(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])


def suppress_duplicates(detections: Sequence[Detection], nms_iou: float = 0.5,
                        nms_keypoint_distance: float = 0.2) -> List[Detection]:
    """Hand-level non-maximum suppression (see the module docstring, step 1).

    Args:
        detections: one image's detections (any order).
        nms_iou: two detections with box IoU >= this are the same hand, in (0, 1].
        nms_keypoint_distance: ... as are two whose :func:`keypoint_distance` <= this (>= 0).

    Returns:
        The detections kept, by descending score (ties keep the input order).
    """
    order = sorted(range(len(detections)), key=lambda i: -float(detections[i].score))
    dets = [detections[i] for i in order]
    if len(dets) < 2:
        return dets
    boxes = np.stack([d.bbox for d in dets])
    kps = np.stack([d.keypoints_2d for d in dets])
    same = (box_iou(boxes, boxes) >= nms_iou) | (keypoint_distance(kps, boxes, kps, boxes) <= nms_keypoint_distance)
    keep: List[int] = []
    for i in range(len(dets)):
        if not any(same[i, k] for k in keep):
            keep.append(i)
    return [dets[i] for i in keep]


@dataclass
class Track:
    """State of one tracked hand (``HandTracker``).

    Attributes:
        track_id: stable id (>= 1).
        side: LEFT / RIGHT after hysteresis.
        bbox: (4,) last matched box [px]; keypoints_2d: (21, 2) last matched keypoints [px].
        velocity: (2,) image velocity of the hand [px / frame] (exponential average).
        missed: frames since it was last matched (0 = seen in the latest frame).
        hits: frames it was matched in.
        side_votes: consecutive matched frames whose detection reported the other side.
        primary: the side's primary track (TF ``<prefix><side>``; module docstring).
    """

    track_id: int
    side: int
    bbox: np.ndarray
    keypoints_2d: np.ndarray
    velocity: np.ndarray
    missed: int = 0
    hits: int = 1
    side_votes: int = 0
    primary: bool = False

    def predicted(self):
        """(keypoints (21, 2), box (4,)) expected in the next frame [px]."""
        gain = sum(VELOCITY_DAMPING ** k for k in range(self.missed + 1))
        shift = gain * self.velocity
        return self.keypoints_2d + shift, self.bbox + np.tile(shift, 2)


class HandTracker:
    """Tracks the hands of one camera stream (see the module docstring).

    Args:
        max_missed: frames a track survives unseen (``track_max_missed``, >= 0).
        side_hysteresis: consecutive frames of the other side needed to change a track's
            side (>= 1; 1 = follow the detector at once).

    Raises:
        ValueError: an argument out of range.
    """

    def __init__(self, max_missed: int = 5, side_hysteresis: int = 10):
        if int(max_missed) < 0:
            raise ValueError(f"max_missed must be >= 0, got {max_missed}")
        if int(side_hysteresis) < 1:
            raise ValueError(f"side_hysteresis must be >= 1, got {side_hysteresis}")
        self.max_missed, self.side_hysteresis = int(max_missed), int(side_hysteresis)
        self.tracks: List[Track] = []
        self._primary: Dict[int, Track] = {}
        self._next_id = 1
        self._ended: List[int] = []

    def update(self, detections: Sequence[Detection]) -> List[Track]:
        """Associate one frame's detections (already de-duplicated); returns the track of
        each detection, in order. Tracks not matched age by one frame and are dropped after
        ``max_missed``; ``side`` and ``primary`` of the returned tracks are up to date."""
        assigned = self._associate(detections)
        for t in self.tracks:
            if all(t is not a for a in assigned):
                t.missed += 1
        self._ended += [t.track_id for t in self.tracks if t.missed > self.max_missed]
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for k, det in enumerate(detections):
            track = assigned[k]
            if track is None:
                track = Track(self._next_id, int(det.side), np.array(det.bbox, np.float64),
                              np.array(det.keypoints_2d, np.float64), np.zeros(2))
                self._next_id += 1
                self.tracks.append(track)
                assigned[k] = track
            else:
                self._observe(track, det)
        self._elect_primaries()
        return assigned

    def _associate(self, detections: Sequence[Detection]) -> List[Optional[Track]]:
        assigned: List[Optional[Track]] = [None] * len(detections)
        if not detections or not self.tracks:
            return assigned
        boxes = np.stack([d.bbox for d in detections])
        kps = np.stack([d.keypoints_2d for d in detections])
        sides = np.array([int(d.side) for d in detections])
        for missed in sorted({t.missed for t in self.tracks}):    # matching cascade
            free = [i for i, a in enumerate(assigned) if a is None]
            level = [t for t in self.tracks if t.missed == missed]
            if not free:
                break
            pred = [t.predicted() for t in level]
            tkp = np.stack([p[0] for p in pred])
            tbox = np.stack([p[1] for p in pred])
            iou = box_iou(boxes[free], tbox)
            dkp = keypoint_distance(kps[free], boxes[free], tkp, tbox)
            cost = (1.0 - iou) + dkp + SIDE_MISMATCH_COST * (sides[free][:, None] != [t.side for t in level])
            allowed = (iou >= GATE_IOU) | (dkp <= GATE_KEYPOINT_DISTANCE)
            rows, cols = linear_sum_assignment(np.where(allowed, cost, _NO_MATCH))
            for r, c in zip(rows, cols):
                if allowed[r, c]:
                    assigned[free[r]] = level[c]
        return assigned

    def _observe(self, track: Track, det: Detection) -> None:
        kp = np.asarray(det.keypoints_2d, np.float64)
        shift = (kp - track.keypoints_2d).mean(0) / (track.missed + 1)
        track.velocity = (1 - VELOCITY_GAIN) * track.velocity + VELOCITY_GAIN * shift
        track.keypoints_2d, track.bbox = kp, np.array(det.bbox, np.float64)
        track.missed = 0
        track.hits += 1
        if int(det.side) == track.side:
            track.side_votes = 0
            return
        track.side_votes += 1
        if track.side_votes >= self.side_hysteresis:
            track.side, track.side_votes = int(det.side), 0
            self._ended.append(track.track_id)        # the other hand model: no warm start

    def _elect_primaries(self) -> None:
        alive = {id(t) for t in self.tracks}
        for side in {t.side for t in self.tracks} | set(self._primary):
            cur = self._primary.get(side)
            if cur is None or id(cur) not in alive or cur.side != side:
                seen = [t for t in self.tracks if t.side == side and t.missed == 0]
                cur = min(seen, key=lambda t: t.track_id) if seen else None
            if cur is None:
                self._primary.pop(side, None)
            else:
                self._primary[side] = cur
        primaries = {id(t) for t in self._primary.values()}
        for t in self.tracks:
            t.primary = id(t) in primaries

    def take_ended(self) -> List[int]:
        """The ids whose per-track state (warm start, smoother) ended since the last call:
        tracks dropped (unseen for more than ``max_missed`` frames, or forgotten by
        :meth:`reset`) and tracks that changed side (they keep their id, their state starts
        again). Each id is reported once per such event, in the order they happened; the
        pipeline (``association.Association``) takes them after every update."""
        ended, self._ended = self._ended, []
        return ended

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up; their ids go to :meth:`take_ended`)."""
        self._ended += [t.track_id for t in self.tracks]
        self.tracks = []
        self._primary = {}
