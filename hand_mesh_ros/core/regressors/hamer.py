"""Regressor "hamer": a user's HaMeR checkpoint (``core.hamer.HamerRegressor``) on the
detector's boxes of all hands of a batch, all cameras in one batched call.

A box HaMeR cannot crop (empty or non-finite) skips its hand (``degenerate_box``). HaMeR
regresses every frame afresh: it keeps no per-track state.
"""
from __future__ import annotations

from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from ..counters import StageCounters
from ..hamer.preprocess import valid_boxes
from ..hamer.regressor import HamerItem, HamerRegressor
from ..kinematics import JointKinematics
from ..records import RegressedHand, TrackedHand, TrackKey
from ..types import RIGHT


class HamerAdapter:
    """``regressors.Regressor`` "hamer".

    Args:
        checkpoint, mano_model_dir, device, precision, batch_size: as ``HamerRegressor``
            (which loads the checkpoint and runs one forward to warm up).
        counters: where skipped boxes are counted.
    """

    def __init__(self, checkpoint: str, mano_model_dir: str, device, precision: str, batch_size: int,
                 counters: StageCounters):
        self.hamer = HamerRegressor(checkpoint, mano_model_dir, device, precision, batch_size)
        self.hand_model = self.hamer.hand_model
        self.kinematics = JointKinematics(self.hand_model)
        self._counters = counters

    def regress(self, hands: Sequence[TrackedHand]) -> List[Optional[RegressedHand]]:
        """``HamerHand`` per hand (``params`` float64, ``transl`` [m] in the optical frame);
        None for a hand whose box is empty or non-finite."""
        if not hands:
            return []
        ok = valid_boxes(np.stack([h.detection.bbox for h in hands])).tolist()
        if not all(ok):
            self._counters.skip("degenerate_box", ok.count(False))
        items = [HamerItem(h.frame.image, h.detection.bbox, h.side == RIGHT, h.frame.intrinsics)
                 for h, good in zip(hands, ok) if good]
        fits = iter(self.hamer.regress(items))
        return [next(fits) if good else None for good in ok]

    def forget(self, keys: Iterable[TrackKey]) -> None:
        """Nothing to drop: no per-track state."""

    def warm_up(self, size: Tuple[int, int]) -> None:
        """Nothing more to do: ``HamerRegressor`` ran one forward when it loaded."""
