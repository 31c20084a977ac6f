"""Tiled palm search: the frame regions the palm network looks at besides the whole frame.

MediaPipe finds new hands by letterboxing the whole frame to the palm network's 192 x 192
input, so a hand's chance of being found depends on its size relative to the frame's long
side ``L``: a hand whose crop is ``c`` px appears ``c * 192 / L`` px large in the input.

Scale rule, measured (``make bench-range BENCH_ARGS=--response``: the real hands of
``benchmarks/hand_scenes.py``, the hand spanning ~0.7 of its crop, pasted straight into the
192 x 192 input on hand-free photographs, 40 per size): the palm network scores >= 0.5 on
0.20-0.28 of the hands whose crop is 20-24 px of its input, 0.62 at 32 px, 0.82 at 40 px,
0.88-0.90 at 48-64 px, 0.97-1.00 from 80 px on. A hand is found reliably once its crop is
~48 px of the input, a quarter of it; in a whole 1920x1080 frame that is a 480 px hand.
(Issue 13 was written from a kinder hand set: 0.92 at ``c = L / 8``, 24 px in the input; on
ours that is 0.2-0.3.)

Pyramid. A tile of side ``T`` is cut from the frame and letterboxed to the same input, so it
magnifies by ``L / T``. The finest level has tiles of ``T0`` (``AUTO_TILE_SIDE`` = 192 px for
``auto``, the palm input itself: a 56 px hand is 56 px of the input there, an 80 px hand
80 px); a hand larger than a tile's overlap may be cut by every tile of a level, so coarser
levels follow, each of tiles ``LEVEL_STEP`` = 2 times the side of the one before, as long as
the side is at most ``L / WHOLE_FRAME_RATIO`` (= L / 1.5); the whole frame is the coarsest
level. Every level's tiles go into the same batched forward. Levels (``level_sides``) and
tile counts: 1280x720 -> 192 + 384 + 768 px, 50 + 15 + 2 = 67 tiles; 1920x1080 -> the same
sides, 112 + 28 + 8 = 148 tiles. The finest side was chosen by recall (README, ``make
bench-range``; 56 / 80 px hands in 1280x720 and 1920x1080): a single level of 457 px (8 / 18
tiles; a 40 px hand as large as a 56 px hand in 640x480, the issue's own rule) found
0.33-0.40 / 0.70, a pyramid from 288 px 0.70-0.73 / 0.77, from 240 px 0.70-0.73 /
0.83-0.87, from 192 px 0.80-0.93 / 0.87-0.93. The cost: ``all`` (static images) pays a palm
forward per tile, and ``round_robin`` needs more frames to visit every tile.

``detection_tiling`` values (``parse_tiling``):

* ``"auto"``: a pyramid from ``AUTO_TILE_SIDE`` when the frame's long side exceeds
  ``AUTO_MIN_LONG_SIDE`` = 640 (larger than 640x480, as issue 13 asks); none otherwise.
* ``"off"``: whole frame only (MediaPipe's own behaviour, bit for bit).
* an integer ``T`` [px] (>= ``MIN_TILE_SIDE``): a pyramid from tiles of ``T`` when the
  frame's long side exceeds ``T``.

Overlap. Neighbouring tiles of a level overlap by at least ``O = ceil(0.3 T)`` (58 px for
T = 192). Along an axis of length ``len`` > T there are ``n = ceil((len - T) / (T - O)) + 1``
tiles, spread evenly from 0 to ``len - T`` (so the real overlap is >= O); along an axis of
length <= T there is one tile centred on it (the part outside the frame is black, as the
letterbox border). In 1-D, anything no longer than the overlap lies wholly inside some tile
of the level. The palm box's long side is 0.39 of the hand's crop (median; 0.51 at most, 44
palms of the pasted real hands at 200 px in 640x480).

Cut palms. A tile that shows only part of a palm can return a palm box displaced from the
real one, and a cut view of an elbow or a forearm can look like a palm (seen: an elbow at a
tile edge of a 1200x799 frame, handedness score 1.0, while no tile that shows it whole
answers). A tile's palm candidate is therefore dropped (``tile_rejects``) when its box,
grown by ``EDGE_CLEARANCE`` = 0.25 of its long side on every side, comes within
``EDGE_MARGIN`` of a tile edge that lies inside the frame; a palm of long side ``p`` is kept
by some tile of its level when ``1.5 p <= O - 2 EDGE_MARGIN T`` (p <= 0.17 T: crops up to
0.44 T for the median palm, where the next coarser level sees them at 0.22 x its input, 42
px); larger palms are kept where they lie clear of the edges, or found by a coarser level,
where they are smaller; palms larger than ``MAX_PALM_SHARE`` of the tile (1 / 2.6:
MediaPipe's hand region around them would not fit in it) are always left to coarser levels,
and so are the parts of such a palm that a tile sees (``parts_of_whole``: a tile palm mostly
inside a whole-frame palm too large for the tile). The remaining tile candidates are mapped
into the whole frame's letterbox coordinates (``to_letterbox``) and merged with the
whole-frame candidates by MediaPipe's weighted NMS. The clearance was half a palm until the
detector verified new hands (below): an elbow cut by a tile edge then came through as a hand
under a quarter palm. With the verification, a quarter palm (and no clearance at all) gives
no detection on the elbow frames, and finds more of the hands that a coarser level sees too
small (80 / 160 px hands in 1280x720: 0.93 / 0.93 against 0.87 / 0.83 with half a palm).

One hand, one answer, and only hands. The fingers beyond a tile's edge do not matter: the
landmark network reads every hand from the full-resolution frame. What the NMS does not
merge (the same hand seen by the whole frame and by a tile, or by two tiles, with palm
boxes apart) the detector merges after the landmarks (``detector.MediaPipeTorchHandDetector``):
in an image with tiles, up to ``detector.TILED_PALMS`` palms go to the landmark network,
each hand found from a palm is read ``detector.REFINE_PASSES`` more times on the ROI of its
own landmarks (as tracking mode reads it on the next frames, so the answer does not depend
on which view found it), is kept, when only tiles found it, only if the last of those reads
has a presence of at least ``detector.NEW_HAND_PRESENCE`` (the many views of a pyramid show
the palm network many more false palms), and only when its ROI is not nested in another hand's (a fine tile can
read part of a large hand, the ring of an OK sign, as a small hand), and a hand whose
landmark ROI overlaps one already kept (IoU > 0.5, MediaPipe's association rule) is the
same hand. An earlier rule kept only palms with a
clearance of one palm (``3 p <= O``) and dropped the rest to avoid such duplicates; it lost
most hands of 160-240 px crops at 1920x1080 (recall 0.70 / 0.57 against 0.93 / 0.93 with
it gone, single level of 457 px, ``make bench-range``).

``tile_scan`` values: ``"all"`` (every tile on every frame where a palm search runs; what
static images always do) or ``"round_robin"`` (streams: besides the whole-frame pass, a
rotating subset of the tiles, ``RoundRobin``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import List, Optional, Tuple, Union

import numpy as np

from ....config import BY_NAME, check_value
from .palm import ROI_SCALE
from .roi import Roi, crop_affine

#: Tile side [px] of the finest level of ``detection_tiling: auto``: the palm input's own size,
#: so a 56 px hand crop is 56 px of the input (palm score >= 0.5 for ~0.89 of hands), an 80 px
#: one 80 px (0.97).
AUTO_TILE_SIDE = 192
#: ``auto`` tiles frames whose long side exceeds this [px] (larger than 640x480, issue 13).
AUTO_MIN_LONG_SIDE = 640
#: Each coarser level's tiles have this times the side of the level before ...
LEVEL_STEP = 2
#: ... while that side is at most the frame's long side / this (the whole frame serves beyond).
WHOLE_FRAME_RATIO = 1.5
#: Smallest tile side accepted [px]: half the palm input, i.e. at most 2x upsampling (the
#: lower bound of ``detection_tiling`` in the parameter table).
MIN_TILE_SIDE = int(BY_NAME["detection_tiling"].low)
#: Minimum overlap of neighbouring tiles as a fraction of the tile side.
OVERLAP_FRACTION = 0.3
#: A tile palm whose box comes this close (fraction of the tile) to an inner tile edge is dropped ...
EDGE_MARGIN = 0.02
#: ... its box grown first by this share of its long side on every side (a cut palm's box can
#: lie inside the visible part; module docstring, "Cut palms").
EDGE_CLEARANCE = 0.25
#: A palm whose box's long side exceeds this share of a tile is left to coarser levels: the
#: hand region MediaPipe cuts around it (``palm.ROI_SCALE`` palms) would not fit in the tile.
#: Both when the tile sees that palm (its own box too large) and when the tile sees only a
#: part of it (its box mostly inside a whole-frame palm too large for the tile,
#: ``parts_of_whole``). Seen: a 768 px tile that cut the thumb off a 500 px thumbs-up in
#: 1920x1280 read its fist as a 240 px palm (score 0.86) inside the whole frame's 337 px one
#: (0.65); merged by the NMS, it shrank the hand's region, which lost the thumb depending on
#: +-1 grey level of noise. (A share of 0.25 also stopped that, but cost the hands of 160 px
#: crops in 1280x720, whose palms fill 0.28-0.40 of a 192 px tile, where they score 0.9:
#: recall 0.93 -> 0.83.)
MAX_PALM_SHARE = 1.0 / ROI_SCALE
#: ``round_robin``: tiles scanned per palm search of a camera, on average (see ``RoundRobin``).
ROUND_ROBIN_RATE = Fraction(1, 2)
#: Phase step between the round-robin schedules of successive cameras (golden-ratio
#: sequence), so that the cameras of a batch do not all scan a tile on the same frame.
_CAMERA_PHASE_STEP = (math.sqrt(5.0) - 1.0) / 2.0

Tiling = Union[str, int]


def parse_tiling(value) -> Tiling:
    """A ``detection_tiling`` value as ``"auto"``, ``"off"`` or a tile side (int, px): the
    two words, an integer, or a string of decimal digits (a launch argument).

    Raises:
        ValueError: anything else (bool, float, below ``MIN_TILE_SIDE``), naming the
            parameter and the allowed values (``config.check_value``).
    """
    return check_value(BY_NAME["detection_tiling"], value)


def check_tile_scan(value) -> str:
    """``value`` if it is one of ``config.TILE_SCANS``; else ``ValueError`` naming the parameter."""
    return check_value(BY_NAME["tile_scan"], value)


def tile_side_for(tiling: Tiling, width: int, height: int) -> Optional[int]:
    """The finest tile side [px] used for a ``width`` x ``height`` frame, or None (no tiles).

    Args:
        tiling: a ``parse_tiling`` result.
    """
    long_side = max(int(width), int(height))
    if tiling == "off":
        return None
    if tiling == "auto":
        return AUTO_TILE_SIDE if long_side > AUTO_MIN_LONG_SIDE else None
    return int(tiling) if long_side > int(tiling) else None


@dataclass(frozen=True)
class Tile:
    """A square frame region ``[x0, x0 + side) x [y0, y0 + side)`` [px, frame pixel edges]
    that the palm network sees letterbox-free as 192 x 192 (the part outside the frame is
    black). ``inner`` tells, for the left, top, right and bottom edges, whether that edge
    lies inside the frame (then a palm cut by it is found whole by a neighbouring tile);
    ``overlap`` [px] is the least overlap of the grid's neighbouring tiles."""

    x0: float
    y0: float
    side: float
    inner: Tuple[bool, bool, bool, bool]
    overlap: float

    def roi(self) -> Roi:
        """The tile as a ``Roi`` in frame pixels."""
        return Roi(self.x0 + self.side / 2.0, self.y0 + self.side / 2.0, self.side, self.side, 0.0)

    def affine(self, size: int) -> np.ndarray:
        """(2, 3) crop map of the tile onto a ``size`` x ``size`` input (``roi.crop_affine``)."""
        return crop_affine(self.roi(), size, size)


def axis_starts(length: int, side: int, overlap: int) -> np.ndarray:
    """Start coordinates [px] of the tiles along one frame axis of ``length`` px.

    ``length <= side``: one tile, centred (start ``(length - side) / 2`` <= 0). Otherwise
    ``n = ceil((length - side) / (side - overlap)) + 1`` tiles from 0 to ``length - side``
    evenly: neighbours overlap by ``side - (length - side) / (n - 1) >= overlap`` px.
    Returns (n,) float64.
    """
    if length <= side:
        return np.array([(length - side) / 2.0])
    n = math.ceil((length - side) / (side - overlap)) + 1
    return np.linspace(0.0, float(length - side), n)


@lru_cache(maxsize=32)
def tile_grid(width: int, height: int, side: int) -> Tuple[Tile, ...]:
    """The tiles of a ``width`` x ``height`` frame, row-major (top row first, left to right).

    Args:
        side: tile side [px] (from ``tile_side_for``); overlap ``ceil(OVERLAP_FRACTION * side)``.
    """
    overlap = math.ceil(OVERLAP_FRACTION * side)
    xs, ys = axis_starts(width, side, overlap), axis_starts(height, side, overlap)
    tiles = []
    for y0 in ys:
        for x0 in xs:
            inner = (x0 > 0, y0 > 0, x0 + side < width, y0 + side < height)
            tiles.append(Tile(float(x0), float(y0), float(side), inner, float(overlap)))
    return tuple(tiles)


def level_sides(finest: int, width: int, height: int) -> Tuple[int, ...]:
    """The tile sides [px] of the pyramid of a ``width`` x ``height`` frame whose finest tiles
    are ``finest`` px: ``finest * LEVEL_STEP ** k`` while at most the long side /
    ``WHOLE_FRAME_RATIO``, the finest always (module docstring)."""
    sides, side = [int(finest)], int(finest) * LEVEL_STEP
    while side * WHOLE_FRAME_RATIO <= max(int(width), int(height)):
        sides.append(side)
        side *= LEVEL_STEP
    return tuple(sides)


@lru_cache(maxsize=32)
def frame_tiles(tiling: Tiling, width: int, height: int) -> Tuple[Tile, ...]:
    """All tiles of a frame under ``tiling``, finest level first, each level row-major
    (empty when the frame gets none)."""
    side = tile_side_for(tiling, width, height)
    if side is None:
        return ()
    return tuple(t for s in level_sides(side, width, height) for t in tile_grid(int(width), int(height), s))


def tile_rejects(rows: np.ndarray, tile: Tile, margin: float = EDGE_MARGIN) -> np.ndarray:
    """(K,) bool: which palm candidates of ``tile`` are left to other tiles, coarser levels
    or the whole frame: those whose box, grown by ``EDGE_CLEARANCE`` of its long side on
    every side, reaches within ``margin`` (fraction of the tile) of one of the tile's inner
    edges (a palm that the tile may show cut), and those whose box's long side exceeds
    ``MAX_PALM_SHARE`` of the tile (a hand the tile cannot show whole).

    Args:
        rows: (K, 19) candidates from ``palm.decode``, normalized to the tile's input.
    """
    left, top, right, bottom = tile.inner
    box = rows[:, 1:5]
    size = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])
    out = size > MAX_PALM_SHARE
    grow = EDGE_CLEARANCE * size
    if left:
        out |= box[:, 0] - grow < margin
    if top:
        out |= box[:, 1] - grow < margin
    if right:
        out |= box[:, 2] + grow > 1.0 - margin
    if bottom:
        out |= box[:, 3] + grow > 1.0 - margin
    return out


def parts_of_whole(rows: np.ndarray, whole: np.ndarray, tile: Tile, width: int, height: int) -> np.ndarray:
    """(K,) bool: which palm candidates of ``tile`` are parts of a palm too large for it:
    more than half of their box's area lies inside the box of a whole-frame candidate whose
    long side exceeds ``MAX_PALM_SHARE`` of the tile's side.

    Args:
        rows: (K, 19) candidates of ``tile`` and ``whole``: (M, 19) candidates of the whole
            ``width`` x ``height`` frame, both in its letterbox coordinates (``to_letterbox``).
    """
    b = whole[:, 1:5]
    b = b[np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) > MAX_PALM_SHARE * tile.side / max(width, height)]
    if not len(rows) or not len(b):
        return np.zeros(len(rows), bool)
    a, b = rows[:, None, 1:5], b[None]
    iw = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    ih = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    area = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    return (np.clip(iw, 0, None) * np.clip(ih, 0, None) > 0.5 * area).any(axis=1)


def to_letterbox(rows: np.ndarray, tile: Tile, width: int, height: int) -> np.ndarray:
    """Palm candidates of ``tile`` in the coordinates of the whole frame's letterboxed input.

    The whole-frame pass sees the square ``S = max(width, height)`` centred on the frame, so
    a frame point ``X`` [px] is at ``(X - width / 2) / S + 1/2`` of that input (likewise y);
    a tile point at ``u`` of the tile's input is ``X = x0 + u * side``. Both maps are affine
    and isotropic, so IoU and the score-weighted means of the weighted NMS are the same in
    either system: tile and whole-frame candidates are merged in the whole frame's.

    Args:
        rows: (K, 19) float32 candidates ``score, box (4), keypoints (7 x 2)`` normalized to
            the tile's input.

    Returns:
        (K, 19) float32, same layout, normalized to the whole frame's letterboxed input.
    """
    s = float(max(width, height))
    scale = tile.side / s
    off_x = (tile.x0 - width / 2.0) / s + 0.5
    off_y = (tile.y0 - height / 2.0) / s + 0.5
    out = rows.astype(np.float64, copy=True)
    out[:, 1::2] = out[:, 1::2] * scale + off_x  # box x_min, x_max and keypoint x
    out[:, 2::2] = out[:, 2::2] * scale + off_y  # box y_min, y_max and keypoint y
    return out.astype(np.float32)


class RoundRobin:
    """The tiles one camera scans on each of its palm searches under ``tile_scan: round_robin``.

    On its ``n``-th palm search (n = 0, 1, ...) a camera scans the next
    ``floor((n + 1) r + p) - floor(n r + p)`` tiles of its frame's grid in cyclic order,
    with ``r = ROUND_ROBIN_RATE`` tiles per search on average and ``p`` a per-camera phase
    in [0, 1) (cameras in order of their first search, golden-ratio steps), so that with
    several cameras the tile forwards spread evenly over the frames.

    Time to acquire: any ``m`` consecutive searches scan at least ``floor(m r)`` tiles, so
    every tile of an ``N``-tile grid is scanned within any ``ceil(N / r)`` consecutive palm
    searches (``acquire_bound``): with r = 1/2, 134 frames for 1280x720 (67 tiles) and 296 for
    1920x1080 (148 tiles) while a palm search runs on every frame (fewer hands tracked than
    ``max_hands``). A frame size change restarts the cycle.
    """

    def __init__(self, ordinal: int, rate: Fraction = ROUND_ROBIN_RATE):
        self.rate = Fraction(rate)
        self.phase = (ordinal * _CAMERA_PHASE_STEP) % 1.0
        self.searches = 0
        self.cursor = 0
        self.grid: Tuple[Tile, ...] = ()

    def next_tiles(self, grid: Tuple[Tile, ...]) -> List[Tile]:
        """The tiles to scan on this palm search (advances the schedule)."""
        if grid != self.grid:
            self.grid, self.cursor = grid, 0
        n, r = self.searches, self.rate
        count = math.floor((n + 1) * r + self.phase) - math.floor(n * r + self.phase)
        self.searches += 1
        if not grid:
            return []
        count = min(count, len(grid))
        out = [grid[(self.cursor + i) % len(grid)] for i in range(count)]
        self.cursor = (self.cursor + count) % len(grid)
        return out


def acquire_bound(tile_count: int, rate: Fraction = ROUND_ROBIN_RATE) -> int:
    """Palm searches within which ``RoundRobin`` scans every one of ``tile_count`` tiles."""
    return math.ceil(Fraction(tile_count) / Fraction(rate)) if tile_count else 0
