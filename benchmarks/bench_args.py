"""Command-line values shared by the benchmarks."""
from __future__ import annotations

from typing import List, Tuple


def frame_size(text: str) -> Tuple[int, int]:
    """``"1280x720"`` -> ``(1280, 720)`` (width, height) [px].

    Raises:
        ValueError: not ``WxH`` with two positive integers.
    """
    parts = text.strip().lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"frame size {text!r}: expected WxH with positive integers, e.g. 1280x720")
    return int(parts[0]), int(parts[1])


def frame_sizes(text: str) -> List[Tuple[int, int]]:
    """``"640x480,1280x720"`` -> ``[(640, 480), (1280, 720)]`` (``frame_size`` of each)."""
    return [frame_size(t) for t in text.split(",")]
