"""Frames with hands of known size and place: real hand photographs pasted onto real
hand-free photographs (the range benchmark and the tiling tests).

* Hands: the hands that MediaPipe's networks (detector ``mediapipe_torch``, static mode,
  whole frame) find in ../shared/data/hands, i.e. the 7 hands of the five still images and
  the right hand of ``hand_landmarker_test_video.mp4`` in 7 frames (every 25th from frame
  50): each cut out as the square around its keypoints' box, of side = the box's long side
  / ``HAND_SPAN`` (so the hand spans ~0.7 of the square), with its 21 keypoints.
* Backgrounds: scikit-image's sample photographs that show no hand (``BACKGROUNDS``;
  ``astronaut`` without its bottom rows, where a glove shows), grey ones as RGB.
  A frame's background is a mosaic of them at about their own scale (cells of ~512 px,
  each a random photo resized to cover it, randomly cropped and flipped), so a large frame
  has natural detail everywhere rather than one photograph blown up.
* People without hands (``people_frames``): test5.jpg below its hands, as it is and through
  three wide lenses, mirrored too: forearms, elbows and skin, where a palm search can err.
* Pasting: the hand square resized to ``crop`` x ``crop`` with ``cv2.INTER_AREA`` (shrinking;
  ``INTER_LINEAR`` for the few sources smaller than the crop) and written into the frame.

Everything is drawn from a ``numpy.random.Generator`` the caller seeds: the same seed gives
the same frames.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

#: Fraction of the pasted square that the hand's keypoint box spans (its long side).
HAND_SPAN = 0.7
#: scikit-image sample photographs with no hand in them (checked by eye), and the rows kept.
BACKGROUNDS = {"astronaut": slice(0, 440), "coffee": None, "chelsea": None, "rocket": None,
               "hubble_deep_field": None, "immunohistochemistry": None, "brick": None, "grass": None,
               "gravel": None, "coins": None, "moon": None, "clock": None, "page": None, "text": None,
               "cell": None, "motorcycle_left": None, "motorcycle_right": None}
STILLS = ("hamer_example_data/test1.jpg", "hamer_example_data/test3.jpg", "hamer_example_data/test5.jpg",
          "mediapipe_samples/hand_landmarker_test_image.jpg", "mediapipe_samples/thumbs-up.png")
VIDEO = "mediapipe_samples/hand_landmarker_test_video.mp4"
VIDEO_FRAMES = tuple(range(50, 201, 25))
#: Mosaic cell size [px] of the backgrounds.
CELL = 512
#: Hand-free frames with people: test5.jpg below its hands (forearms, elbows, belly, jeans) ...
PEOPLE = "hamer_example_data/test5.jpg"
PEOPLE_ROWS = slice(1000, None)
#: ... as it is and as wide lenses would show it (``CameraInfo`` models and coefficients;
#: f = 0.55 x the width, principal point near the centre).
PEOPLE_LENSES = {"plumb_bob": (-0.32, 0.13, 0.0012, -0.0009, -0.025),
                 "rational_polynomial": (2.1, 0.9, 0.0008, -0.0004, 0.02, 2.45, 1.4, 0.12),
                 "equidistant": (-0.004, 0.037, -0.035, 0.0056)}


@dataclass
class SourceHand:
    """A real hand cut out of a photograph: ``patch`` (S, S, 3) uint8 RGB, ``keypoints``
    (21, 2) [px in the patch], ``name`` where it comes from; ``others``: the keypoints
    (21, 2) [px in the patch] of the photograph's other found hands whose keypoints' mean
    lies in the patch (test5.jpg's two hands over a face share their patches)."""

    patch: np.ndarray
    keypoints: np.ndarray
    name: str
    others: Tuple[np.ndarray, ...] = ()

    def flipped(self) -> "SourceHand":
        """The same hand mirrored left-right."""
        s = self.patch.shape[1]

        def flip(kp: np.ndarray) -> np.ndarray:
            return np.c_[s - kp[:, 0], kp[:, 1]]

        return SourceHand(np.ascontiguousarray(self.patch[:, ::-1]), flip(self.keypoints), self.name + "~flip",
                          tuple(flip(kp) for kp in self.others))


@dataclass
class PastedHand:
    """Where a hand went: the square ``box`` (x0, y0, x1, y1) [px], ``keypoints`` (21, 2) [px];
    ``others``: keypoints (21, 2) [px] of other real hands the pasted patch shows."""

    box: np.ndarray
    keypoints: np.ndarray
    source: str
    others: Tuple[np.ndarray, ...] = ()


def read_rgb(path: Path) -> np.ndarray:
    """One image file as (H, W, 3) uint8 RGB (``frames.FrameSource``)."""
    from hand_mesh_ros.frames import FrameSource

    return next(iter(FrameSource(path))).image


def cut_hand(image: np.ndarray, keypoints: np.ndarray, name: str,
             others: Sequence[np.ndarray] = ()) -> SourceHand:
    """The square around ``keypoints`` (21, 2) [px] of side long side / ``HAND_SPAN``;
    beyond the image the border is reflected. ``others``: keypoints (21, 2) [px] of the
    image's other hands; those whose mean lies in the square are kept with the patch."""
    import cv2

    lo, hi = keypoints.min(0), keypoints.max(0)
    side = int(math.ceil(float((hi - lo).max()) / HAND_SPAN))
    x0, y0 = (int(round(v)) for v in (lo + hi) / 2 - side / 2)
    pad = max(0, -x0, -y0, x0 + side - image.shape[1], y0 + side - image.shape[0])
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REFLECT_101) if pad else image
    patch = np.ascontiguousarray(padded[y0 + pad:y0 + pad + side, x0 + pad:x0 + pad + side])
    moved = [np.asarray(kp, np.float64) - [x0, y0] for kp in others]
    inside = tuple(kp for kp in moved if ((kp.mean(0) >= 0) & (kp.mean(0) < side)).all())
    return SourceHand(patch, (keypoints - [x0, y0]).astype(np.float64), name, inside)


def source_hands(data: Path, detector) -> List[SourceHand]:
    """The real hands of ../shared/data/hands (module docstring), found by ``detector``
    (static mode, no tiling) on the full photographs, in a fixed order."""
    from hand_mesh_ros.frames import FrameSource

    out = []
    for name in STILLS:
        img = read_rgb(data / name)
        dets = sorted(detector.detect(img), key=lambda d: d.bbox[0])
        for k, det in enumerate(dets):
            out.append(cut_hand(img, det.keypoints_2d, f"{name}#{k}", [d.keypoints_2d for d in dets if d is not det]))
    frames = {f.index: f.image for f in FrameSource(data / VIDEO, max(VIDEO_FRAMES) + 1) if f.index in VIDEO_FRAMES}
    for t in VIDEO_FRAMES:
        dets = detector.detect(frames[t])
        if dets:
            out.append(cut_hand(frames[t], dets[0].keypoints_2d, f"{VIDEO}@{t}"))
    return out


def backgrounds() -> List[np.ndarray]:
    """The hand-free photographs (``BACKGROUNDS``) as (H, W, 3) uint8 RGB."""
    import skimage.data

    out = []
    for name, rows in BACKGROUNDS.items():
        if name.startswith("motorcycle"):
            left, right, _ = skimage.data.stereo_motorcycle()
            img = left if name.endswith("left") else right
        else:
            img = getattr(skimage.data, name)()
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        img = img[..., :3].astype(np.uint8)
        out.append(np.ascontiguousarray(img[rows] if rows is not None else img))
    return out


def lens_view(rgb: np.ndarray, model: str, coefficients: Sequence[float]) -> np.ndarray:
    """The raw image a lens would deliver of the scene whose ideal pinhole image is ``rgb``
    (H, W, 3) uint8 (fx = 0.55 W, fy = 1.02 fx, principal point (0.49 W, 0.51 H)): every raw
    pixel samples the ideal image where ``camera.undistort_points`` sends it, bilinear."""
    import cv2

    from hand_mesh_ros.core.camera import undistort_points
    from hand_mesh_ros.core.types import CameraIntrinsics

    h, w = rgb.shape[:2]
    f = 0.55 * w
    k = CameraIntrinsics(f, 1.02 * f, 0.49 * w, 0.51 * h, w, h, distortion_model=model, distortion=tuple(coefficients))
    u, v = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))
    ideal = undistort_points(np.stack([u, v], -1), k).astype(np.float32)
    return cv2.remap(rgb, ideal[..., 0], ideal[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def people_frames(data: Path) -> List[np.ndarray]:
    """Hand-free frames with a person's skin: ``PEOPLE`` below its hands (``PEOPLE_ROWS`` of
    the image, and of its ``PEOPLE_LENSES`` views), each also mirrored: 8 frames of
    1200x799, (H, W, 3) uint8 RGB."""
    img = read_rgb(data / PEOPLE)
    views = [img] + [lens_view(img, m, c) for m, c in PEOPLE_LENSES.items()]
    out = [np.ascontiguousarray(v[PEOPLE_ROWS]) for v in views]
    return out + [np.ascontiguousarray(v[:, ::-1]) for v in out]


def _resize(img: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    shrink = w <= img.shape[1] and h <= img.shape[0]
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def mosaic(rng: np.random.Generator, photos: Sequence[np.ndarray], width: int, height: int) -> np.ndarray:
    """A ``width`` x ``height`` hand-free frame (H, W, 3) uint8: a grid of cells of ~``CELL``
    px, each a random photograph resized (x1-1.5 of what covers the cell), cropped, flipped."""
    out = np.empty((height, width, 3), np.uint8)
    nx, ny = max(1, round(width / CELL)), max(1, round(height / CELL))
    xs = np.linspace(0, width, nx + 1).round().astype(int)
    ys = np.linspace(0, height, ny + 1).round().astype(int)
    for j in range(ny):
        for i in range(nx):
            cw, ch = xs[i + 1] - xs[i], ys[j + 1] - ys[j]
            photo = photos[int(rng.integers(len(photos)))]
            scale = max(cw / photo.shape[1], ch / photo.shape[0]) * float(rng.uniform(1.0, 1.5))
            big = _resize(photo, max(cw, math.ceil(photo.shape[1] * scale)), max(ch, math.ceil(photo.shape[0] * scale)))
            x0 = int(rng.integers(big.shape[1] - cw + 1))
            y0 = int(rng.integers(big.shape[0] - ch + 1))
            cell = big[y0:y0 + ch, x0:x0 + cw]
            if rng.random() < 0.5:
                cell = cell[:, ::-1]
            out[ys[j]:ys[j + 1], xs[i]:xs[i + 1]] = cell
    return out


def paste(frame: np.ndarray, hand: SourceHand, crop: int, x0: int, y0: int) -> PastedHand:
    """Write ``hand`` resized to ``crop`` x ``crop`` at (x0, y0) into ``frame`` (in place).

    The square must lie inside the frame. Keypoints are scaled with the patch's pixel
    edges: a patch point ``p`` lands at ``(x0, y0) + p * crop / S``.
    """
    frame[y0:y0 + crop, x0:x0 + crop] = _resize(hand.patch, crop, crop)
    scale = crop / hand.patch.shape[0]
    return PastedHand(np.array([x0, y0, x0 + crop, y0 + crop], np.float64), hand.keypoints * scale + [x0, y0],
                      hand.name, tuple(kp * scale + [x0, y0] for kp in hand.others))


def scene(rng: np.random.Generator, photos, hands: Sequence[SourceHand], size: Tuple[int, int],
          crop: int) -> Tuple[np.ndarray, PastedHand]:
    """A hand-free mosaic of ``size`` (w, h) with one random hand pasted at ``crop`` px,
    anywhere it fits whole (flipped left-right half of the time)."""
    w, h = size
    frame = mosaic(rng, photos, w, h)
    hand = hands[int(rng.integers(len(hands)))]
    if rng.random() < 0.5:
        hand = hand.flipped()
    x0 = int(rng.integers(0, w - crop + 1))
    y0 = int(rng.integers(0, h - crop + 1))
    return frame, paste(frame, hand, crop, x0, y0)


def _near(detection, keypoints: np.ndarray, crop: float, tolerance: float) -> bool:
    return bool(np.median(np.linalg.norm(detection.keypoints_2d - keypoints, axis=1)) <= tolerance * crop)


def found(detections, pasted: PastedHand, tolerance: float = 0.2) -> bool:
    """A detection whose keypoints are, median, within ``tolerance`` x the crop side of the
    pasted hand's keypoints."""
    crop = pasted.box[2] - pasted.box[0]
    return any(_near(d, pasted.keypoints, crop, tolerance) for d in detections)


def extra(detections, pasted: PastedHand, tolerance: float = 0.2) -> int:
    """How many detections are none of the real hands of the pasted patch (the pasted hand
    or its ``others``, by ``found``'s rule): a misplaced second answer, or a false positive."""
    crop = pasted.box[2] - pasted.box[0]
    hands = (pasted.keypoints,) + tuple(pasted.others)
    return sum(not any(_near(d, kp, crop, tolerance) for kp in hands) for d in detections)
