"""The ``Regressor`` interface and factory, beside ``detectors.HandDetector`` / ``create_detector``.

A regressor turns tracked hands (``records.TrackedHand``: the detection, its image and
intrinsics, its track) into MANO parameters and the posed hand model
(``records.RegressedHand``), all hands of a batch in one call. State it keeps per hand track
(the fit's warm start) is keyed by ``records.TrackKey`` and dropped by ``forget``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Optional, Protocol, Sequence, Tuple

from ...config import BY_NAME, REGRESSORS, check_value
from ..counters import StageCounters
from ..records import RegressedHand, TrackedHand, TrackKey

if TYPE_CHECKING:
    import torch

    from ..hand_model import HandModel
    from ..kinematics import JointKinematics

class Regressor(Protocol):
    """MANO hands for tracked hands.

    Attributes:
        hand_model: the ``HandModel`` the parameters belong to (MANO or the built-in hand).
        kinematics: numpy ``JointKinematics`` of ``hand_model`` (rest poses, re-posing).
    """

    hand_model: "HandModel"
    kinematics: "JointKinematics"

    def regress(self, hands: Sequence[TrackedHand]) -> List[Optional[RegressedHand]]:
        """One result per hand, in order; None for a hand it cannot regress (counted in
        ``StageCounters.skipped`` with the reason)."""
        ...

    def forget(self, keys: Iterable[TrackKey]) -> None:
        """Drop the state kept for these tracks (ended, or changed side)."""
        ...

    def warm_up(self, size: Tuple[int, int]) -> None:
        """Pay first-call costs before the first image of (height, width) [px]."""
        ...


def create_regressor(name: str, *, mano_model_dir: str = "", checkpoint: str = "", device: "torch.device",
                     precision: str = "auto", batch_size: int = 8,
                     counters: StageCounters) -> Regressor:
    """Build the regressor called ``name`` (one of ``REGRESSORS``).

    Args:
        mano_model_dir: folder with the user's MANO files; "" = the built-in hand ("fit"),
            or the HaMeR config's MANO path ("hamer").
        checkpoint: HaMeR checkpoint ("hamer" only).
        device: torch device of the hand model and of HaMeR.
        precision: HaMeR's compute precision (``config.PRECISIONS``).
        batch_size: hands per regressor batch (>= 1).
        counters: where the regressor counts the hands it skips.

    Raises:
        ValueError: unknown name; from the regressor: a bad checkpoint or MANO file.
        FileNotFoundError: a missing checkpoint, config or MANO file (named).
    """
    check_value(BY_NAME["regressor"], name)
    if name == "hamer":
        from .hamer import HamerAdapter

        return HamerAdapter(checkpoint, mano_model_dir, device, precision, batch_size, counters)
    from ..hand_model import load_hand_model
    from .fit import FitRegressor

    return FitRegressor(load_hand_model(mano_model_dir or None, device=device), batch_size, counters)
