"""What the pipeline's stages count: hands skipped and inputs used in a reduced way.

Bad input is never a crash and never a silent wrong answer: a stage that drops a hand
counts it in ``skipped[reason]``; one that uses an input in a reduced way (lens distortion
ignored, depth ignored, a hand placed from the intrinsics only) counts it in
``fallbacks[reason]`` and logs a warning, at most once per reason per
``throttle.WARN_THROTTLE_S`` (``throttle.ReasonThrottle``).
"""
from __future__ import annotations

import logging
from typing import Dict

from .throttle import WARN_THROTTLE_S, ReasonThrottle


class StageCounters:
    """Counters shared by the stages of one ``HandMeshPipeline``.

    Args:
        logger: where fallback warnings go (the pipeline's).
        period_s: a warning of the same reason is logged at most once per this time [s].

    Attributes:
        skipped: hands skipped, by reason (e.g. "depth_out_of_range", "fit_poor").
        fallbacks: inputs used in a reduced way, by reason (e.g. "distortion_model_unsupported").
    """

    def __init__(self, logger: logging.Logger, period_s: float = WARN_THROTTLE_S):
        self.skipped: Dict[str, int] = {}
        self.fallbacks: Dict[str, int] = {}
        self._log = logger
        self._throttle = ReasonThrottle(period_s)

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` hands skipped (or flagged) for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def fallback(self, reason: str, message: str) -> None:
        """Count a fallback in ``fallbacks[reason]``; log ``message`` as a warning, with the
        reason and the count so far, unless one of the same reason was logged less than
        ``period_s`` ago."""
        n = self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1
        if self._throttle(reason) is not None:
            self._log.warning("%s [%s, %d so far]", message, reason, n)
