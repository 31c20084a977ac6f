"""Frame-to-frame hand tracking for one camera: stable ids, side hysteresis, smoothing.

* Association: greedy by box IoU (highest first), a detection joins a track when
  IoU > ``min_iou``; unmatched detections start new tracks (ids count up from 1, never
  reused); a track unseen for more than ``max_missed`` frames is dropped.
* Side hysteresis: a track's side is an exponential average of the detector's votes
  (+score for right, -score for left); it flips only when the average crosses
  ``-side_threshold`` / ``+side_threshold`` the other way, so one mislabelled frame does not
  flip a hand (and its MANO model).
* Smoothing (``smoothing="one_euro"``): the One Euro filter (Casiez, Roussel & Vogel,
  CHI 2012) on each track's MANO parameters and translation — adaptive low-pass: strong
  smoothing when the hand is still, little lag when it moves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np

from .types import LEFT, RIGHT, Detection

SMOOTHING = ("none", "one_euro")


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (N, 4) x (M, 4) ``x_min, y_min, x_max, y_max`` -> (N, M)."""
    a = np.asarray(a, np.float64)[:, None]
    b = np.asarray(b, np.float64)[None]
    iw = (np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])).clip(0)
    ih = (np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])).clip(0)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]).clip(0) * (x[..., 3] - x[..., 1]).clip(0)
    return inter / np.maximum(area(a) + area(b) - inter, 1e-9)


class OneEuroFilter:
    """One Euro filter (Casiez et al. 2012) on a vector signal.

    Args:
        min_cutoff: cutoff frequency at rest [Hz] (lower = smoother when still).
        beta: speed coefficient (higher = less lag when moving).
        d_cutoff: cutoff for the derivative estimate [Hz].
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.5, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: Optional[np.ndarray] = None
        self._dx: Optional[np.ndarray] = None
        self._t: Optional[float] = None

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter sample ``x`` (any shape, float) taken at time ``t`` [s]."""
        x = np.asarray(x, np.float64)
        if self._x is None or t <= self._t:
            self._x, self._dx, self._t = x, np.zeros_like(x), t
            return x
        dt = t - self._t
        dx = (x - self._x) / dt
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + self._alpha(cutoff, dt) * (x - self._x)
        self._t = t
        return self._x


@dataclass
class Track:
    """State of one tracked hand."""

    track_id: int
    side: int
    side_vote: float
    bbox: np.ndarray
    missed: int = 0
    params: Optional[np.ndarray] = None   # (58,) last fitted [global_orient, hand_pose, betas]
    filters: Dict[str, OneEuroFilter] = field(default_factory=dict)


class HandTracker:
    """Tracks the hands of one camera stream (see module docstring).

    Args:
        min_iou: association threshold.
        max_missed: frames a track survives unseen.
        side_memory: weight of the past in the side vote average, in [0, 1).
        side_threshold: |vote| the average must pass to flip a track's side.
    """

    def __init__(self, min_iou: float = 0.1, max_missed: int = 5, side_memory: float = 0.8,
                 side_threshold: float = 0.3):
        self.min_iou, self.max_missed = min_iou, max_missed
        self.side_memory, self.side_threshold = side_memory, side_threshold
        self.tracks: List[Track] = []
        self._next_id = 1

    def update(self, detections: List[Detection]) -> List[Track]:
        """Associate this frame's detections; returns the track of each detection, in order.

        The returned tracks' ``side`` is the hysteresis side; tracks not seen this frame age
        and are dropped after ``max_missed`` frames.
        """
        assigned: List[Optional[Track]] = [None] * len(detections)
        if detections and self.tracks:
            iou = box_iou(np.stack([d.bbox for d in detections]), np.stack([t.bbox for t in self.tracks]))
            while True:
                i, j = np.unravel_index(np.argmax(iou), iou.shape)
                if iou[i, j] <= self.min_iou:
                    break
                assigned[i] = self.tracks[j]
                iou[i, :] = -1
                iou[:, j] = -1
        matched = {id(t) for t in assigned if t is not None}
        for t in self.tracks:
            if id(t) not in matched:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for k, det in enumerate(detections):
            vote = det.score if det.side == RIGHT else -det.score
            track = assigned[k]
            if track is None:
                track = Track(self._next_id, det.side, vote, det.bbox)
                self._next_id += 1
                self.tracks.append(track)
            else:
                track.missed = 0
                track.bbox = det.bbox
                track.side_vote = self.side_memory * track.side_vote + (1 - self.side_memory) * vote
                flip_to = RIGHT if track.side_vote > self.side_threshold else (
                    LEFT if track.side_vote < -self.side_threshold else track.side)
                if flip_to != track.side:
                    track.side = flip_to
                    track.params = None      # the other hand model: no warm start
                    track.filters.clear()
            assigned[k] = track
        return assigned

    def reset(self) -> None:
        """Forget all tracks (ids keep counting up)."""
        self.tracks = []
