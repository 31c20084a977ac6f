"""HaMeR hand crops: the reference's ``ViTDetDataset`` / ``generate_image_patch_cv2`` numerics.

Source: HaMeR (Pavlakos et al., CVPR 2024; github.com/geopavlakos/hamer, MIT),
``hamer/datasets/vitdet_dataset.py`` and ``hamer/datasets/utils.py``. Re-written here; the
numerics follow the reference as it runs under numpy 1.26 (checked bit for bit against
../shared/golden/hamer/golden_preprocess.npz by test/test_hamer_preprocess.py).

Per hand, in pixels of the original image (u right, v down):

1. Box -> square crop. Centre ``(p0 + p1)/2`` and ``rescale * (p1 - p0)``, both float32 (the
   latter divided by 200 and multiplied back, as the reference's "scale" round trip does).
   The side grows to the 192:256 (w:h) aspect and the crop side is the larger of the two. The
   reference evaluates the aspect growth with numpy *scalars*, which numpy 1.x promotes to
   float64, so the crop side is a float64 value (e.g. 307.3333333333333, not representable in
   float32); ``crop_box`` returns it that way. ``HamerCrops.box_size`` holds it as float32,
   which is what the reference's camera code sees after ``.float()``.
2. Anti-aliasing. With ``d = side / 256 / 2`` (float64), when ``d > 1.1`` the image is blurred
   with ``skimage.filters.gaussian(sigma=(d - 1)/2, mode='nearest', truncate=4)`` per channel,
   in float64; the warp then works on floats and the patch is not rounded. Otherwise the uint8
   image is warped (cv2's fixed-point bilinear, rounded to integers).
3. Left hands (``is_right`` false): the image is mirrored (``x -> W - 1 - x``) and the centre
   becomes ``W - cx - 1`` (float64), so the network always sees a right hand.
4. ``cv2.getAffineTransform`` on float32 points (centre, centre + side/2 down, centre + side/2
   right) -> (128,128), (128,256), (256,128); ``cv2.warpAffine`` INTER_LINEAR, constant border 0.
5. HWC -> CHW float32, then ``(p - float32(255 mean)) / float32(255 std)`` per channel.

The reference reads BGR and reverses the channels at the end; the blur and the warp never mix
channels, so starting from RGB gives the same patch (the golden test checks this).

Non-square pixels (``pixel_aspect = fx / fy != 1``, not in the reference, which assumes
``fx = fy``). The network must see the hand with its true proportions, so the crop is taken
in a virtual image with square pixels of focal ``fy``: x distances are divided by
``pixel_aspect`` before step 1 (box width), and the crop spans ``side * pixel_aspect`` image
pixels horizontally and ``side`` vertically (step 4: the right-hand point is
``centre + side/2 * pixel_aspect``). ``box_size`` is then in the virtual image's pixels (= the
image's vertical pixels), which is what ``camera.cam_crop_to_full_intrinsics`` expects. The
anti-aliasing sigma uses the larger of the two downsampling factors. With
``pixel_aspect == 1`` every step is the reference's, bit for bit.

Speed (``roi=True``, the default). The reference copies, blurs and mirrors the whole image
for every hand. Here only the window the 256x256 warp can read is produced: the inverse-mapped
patch corners + 2 px (bilinear neighbour, cv2's 1/32-px coordinate rounding), plus the gaussian
radius ``int(4 sigma + 0.5)`` + 1 of filter context, clipped at the real image edges so the
'nearest' padding is the reference's. scipy writes the blurred window straight into a
full-size float64 image (through a column-reversed view for left hands; one buffer per call,
reused by its hands; pixels outside the window are never read), so ``cv2.warpAffine`` gets the
reference's matrix unchanged. A window-sized image with a shifted matrix would be cheaper but
is not provably exact: cv2 rounds ``(M01 y + M02) * 1024`` to an integer, and shifting M02 can
change the last bit. A radius-0 gaussian (sigma < 0.125, crop sides 563..640 px) is scipy's
``[1.0]`` kernel, i.e. the float64 cast, so the filter call is skipped.
Measured (2-CPU x86_64 sandbox, shared, medians): patches, affines and sigmas bit-identical to
the whole-image path and to the golden (max abs diff 0), also on a 1920x1080 frame with 65
boxes (tiny, huge, off-image, border-crossing, both sides, all blur regimes). test2.jpg with its
two golden hands (both blurred, windows nearly the whole 600x450 image): 11-19 ms -> ~5 ms;
1920x1080 with two blurred 933-px crops: ~180 ms -> ~55 ms, of which ~45 ms is scipy's filter.
Keeping the full-size buffers between calls (no page faults) measured ~20 % more on 1080p; not
done, to keep this function stateless.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import cv2
import numpy as np
import scipy.ndimage as ndi
from skimage.filters import gaussian

from ..types import check_rgb_image

IMAGE_SIZE = 256  # crop side fed to the network [px]
RESCALE_FACTOR = 2.0  # box -> crop enlargement of the HaMeR demo
BBOX_SHAPE = (192, 256)  # (width, height) aspect of the ViT input
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB, in [0, 1] units
IMAGENET_STD = (0.229, 0.224, 0.225)

_BLUR_THRESHOLD = 1.1  # blur when (crop side / image_size / 2) exceeds this
_TRUNCATE = 4.0  # skimage/scipy gaussian support in sigmas
_WARP_PAD = 2  # px around the inverse-mapped patch: bilinear neighbour + coordinate rounding


@dataclass
class HamerCrops:
    """Network inputs and crop geometry for N hands of one image.

    Attributes:
        patches: (N, 3, S, S) float32, RGB, ImageNet-normalised, S = image_size (256).
        box_center: (N, 2) float32 crop centre [px] in the original (unmirrored) image.
        box_size: (N,) float32 square crop side [px] (square pixels of focal fy: the crop
            is ``box_size * pixel_aspect`` image pixels wide, ``box_size`` high).
        img_size: (N, 2) float32 image [W, H] [px].
        is_right: (N,) bool; False rows were cut from the mirrored image.
        affine: (N, 2, 3) float64 matrix given to ``cv2.warpAffine``: warp source (the mirrored
            image for left hands, i.e. ``x_src = W - 1 - x``) -> patch pixels.
        blur_sigma: (N,) float64 anti-alias gaussian sigma [px]; 0 where no blur was applied.
        pixel_aspect: the ``fx / fy`` the crops were taken with (1.0 = the reference).
    """

    patches: np.ndarray
    box_center: np.ndarray
    box_size: np.ndarray
    img_size: np.ndarray
    is_right: np.ndarray
    affine: np.ndarray
    blur_sigma: np.ndarray
    pixel_aspect: float = 1.0

    def __len__(self) -> int:
        return int(self.patches.shape[0])


def valid_boxes(boxes_xyxy) -> np.ndarray:
    """(N,) bool: which rows of (N, 4) ``[x0, y0, x1, y1]`` boxes are finite with x1 > x0 and
    y1 > y0 (the boxes ``make_crops`` accepts)."""
    b = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
    with np.errstate(invalid="ignore"):
        return np.isfinite(b).all(axis=1) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])


def _check_boxes(boxes_xyxy) -> np.ndarray:
    b = np.asarray(boxes_xyxy, dtype=np.float64)
    if b.size == 0:
        return b.reshape(0, 4)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes_xyxy must have shape (N, 4) [x0, y0, x1, y1] px, got {b.shape}")
    if not np.all(np.isfinite(b)):
        raise ValueError("boxes_xyxy contains non-finite values")
    if not valid_boxes(b).all():
        raise ValueError("boxes_xyxy needs x1 > x0 and y1 > y0 in every row")
    return b


def _check_image(image_rgb) -> np.ndarray:
    """``image_rgb`` as a C-contiguous array, after ``types.check_rgb_image``."""
    check_rgb_image(image_rgb)
    return np.ascontiguousarray(image_rgb)


def crop_box(boxes_xyxy, rescale_factor: float = RESCALE_FACTOR,
             bbox_shape: Sequence[int] = BBOX_SHAPE, pixel_aspect: float = 1.0) -> Tuple[np.ndarray, np.ndarray]:
    """Square crops of HaMeR's demo from detector boxes.

    Args:
        boxes_xyxy: (N, 4) [x0, y0, x1, y1] [px], finite, x1 > x0 and y1 > y0.
        rescale_factor: enlargement of the box side (2.0 in the demo).
        bbox_shape: (width, height) aspect the box is grown to before squaring.
        pixel_aspect: ``fx / fy`` of the camera (> 0); the box width counts as
            ``width / pixel_aspect`` square pixels (module notes).

    Returns:
        center: (N, 2) float32 [px]; box_size: (N,) float64 crop side [px, square pixels of
        focal fy], numerically the reference's value when ``pixel_aspect == 1`` (float32
        inputs, aspect growth in float64 -- see the module notes).

    Raises:
        ValueError: malformed boxes.
    """
    b = _check_boxes(boxes_xyxy).astype(np.float32)
    if not np.all(np.isfinite(b)) or np.any(b[:, 2:4] <= b[:, 0:2]):
        raise ValueError("boxes_xyxy must stay finite with x1 > x0, y1 > y0 in float32")
    center = (b[:, 2:4] + b[:, 0:2]) / np.float32(2.0)
    scale = np.float32(rescale_factor) * (b[:, 2:4] - b[:, 0:2]) / np.float32(200.0)
    wh = scale * np.float32(200.0)
    w, h = wh[:, 0], wh[:, 1]
    if pixel_aspect != 1.0:
        w = (w / np.float32(pixel_aspect)).astype(np.float32)
    wt, ht = bbox_shape
    w64, h64 = w.astype(np.float64), h.astype(np.float64)
    too_wide = (h / w).astype(np.float64) < ht / wt  # float32 ratio, as the reference
    side = np.where(too_wide, np.maximum(w64, np.maximum(w64 * ht / wt, h64)),
                    np.maximum(h64, np.maximum(h64 * wt / ht, w64)))
    return center, side


def _affine(cx, cy, side: float, image_size: int, pixel_aspect: float = 1.0) -> np.ndarray:
    """cv2 affine (2x3 float64) taking the square ``side`` (``side * pixel_aspect`` image
    pixels wide) around (cx, cy) to the patch."""
    half = float(np.float32(side * 0.5))
    cx, cy = float(cx), float(cy)
    half_x = half if pixel_aspect == 1.0 else half * float(pixel_aspect)
    src = np.array([[cx, cy], [cx, cy + half], [cx + half_x, cy]], np.float64).astype(np.float32)
    c = image_size * 0.5
    dst = np.array([[c, c], [c, c + c], [c + c, c]], np.float32)
    return cv2.getAffineTransform(src, dst)


def _read_window(trans: np.ndarray, image_size: int, w: int, h: int, pad: int):
    """Half-open pixel window [x0, x1) x [y0, y1) of the warp source that the patch can read."""
    inv = cv2.invertAffineTransform(trans)
    s = image_size - 1
    pts = inv @ np.array([[0, s, 0, s], [0, 0, s, s], [1, 1, 1, 1]], np.float64)
    x0, y0 = np.floor(pts.min(axis=1)).astype(np.int64) - pad
    x1, y1 = np.floor(pts.max(axis=1)).astype(np.int64) + 2 + pad
    return max(x0, 0), min(x1, w), max(y0, 0), min(y1, h)


def _warp_source_roi(img: np.ndarray, trans: np.ndarray, flip: bool, sigma: float,
                     image_size: int, bufs: dict) -> np.ndarray:
    """The reference's (blurred, mirrored) image, valid only where the warp can read it.

    ``bufs`` holds one full-size float64 and one uint8 image per call, reused between hands:
    every pixel the warp reads is rewritten for the current hand, the rest is never read.
    """
    h, w = img.shape[:2]
    if sigma == 0 and not flip:
        return img
    dtype = np.float64 if sigma > 0 else np.uint8
    if dtype not in bufs:
        bufs[dtype] = np.zeros(img.shape, dtype)
    out = bufs[dtype]
    x0, x1, y0, y1 = _read_window(trans, image_size, w, h, _WARP_PAD)
    if x0 >= x1 or y0 >= y1:  # the crop misses the image: the warp reads border only
        return out
    if flip:  # window in unmirrored columns
        x0, x1 = w - x1, w - x0
    if sigma > 0:
        r = int(_TRUNCATE * sigma + 0.5) + 1  # context the filter needs (+1 spare)
        x0, x1, y0, y1 = max(x0 - r, 0), min(x1 + r, w), max(y0 - r, 0), min(y1 + r, h)
    win = img[y0:y1, x0:x1]
    dst = out[y0:y1, w - x1:w - x0, :][:, ::-1] if flip else out[y0:y1, x0:x1]
    if sigma > 0 and int(_TRUNCATE * sigma + 0.5) > 0:
        # skimage.filters.gaussian(preserve_range=True) is this call on the float64 cast;
        # scipy filters uint8 lines in float64 buffers, so writing straight into dst is the same
        ndi.gaussian_filter(win, [sigma, sigma, 0.0], output=dst, mode="nearest",
                            truncate=_TRUNCATE)
    else:  # no blur, or a radius-0 gaussian whose kernel is exactly [1.0]
        dst[...] = win
    return out


def _warp_source_full(img: np.ndarray, flip: bool, sigma: float) -> np.ndarray:
    """The reference's warp source: whole-image blur, then mirror."""
    src = gaussian(img, sigma=sigma, mode="nearest", truncate=_TRUNCATE, channel_axis=2,
                   preserve_range=True) if sigma > 0 else img
    return np.ascontiguousarray(src[:, ::-1]) if flip else src


def make_crops(image_rgb: np.ndarray, boxes_xyxy, is_right,
               rescale_factor: float = RESCALE_FACTOR, image_size: int = IMAGE_SIZE,
               bbox_shape: Sequence[int] = BBOX_SHAPE, mean: Sequence[float] = IMAGENET_MEAN,
               std: Sequence[float] = IMAGENET_STD, roi: bool = True, pixel_aspect: float = 1.0) -> HamerCrops:
    """HaMeR network inputs for the hands of one image (the demo's ``ViTDetDataset`` items).

    Args:
        image_rgb: (H, W, 3) uint8 RGB image.
        boxes_xyxy: (N, 4) hand boxes [x0, y0, x1, y1] [px], finite, x1 > x0, y1 > y0; boxes
            may extend past the image (outside pixels are 0 before normalisation).
        is_right: (N,) right-hand flags (bool or 0/1); left hands are cut from the mirror image.
        rescale_factor, image_size, bbox_shape: crop geometry (HaMeR demo defaults).
        mean, std: per-channel RGB normalisation in [0, 1] units (scaled by 255 here).
        roi: True blurs/mirrors only the window the warp reads (bit-identical, faster); False
            runs the reference's whole-image path.
        pixel_aspect: the camera's ``fx / fy``: crops in square pixels (module notes); 1.0 is
            the reference.

    Returns:
        HamerCrops (N = 0 gives empty arrays with the documented trailing shapes).

    Raises:
        ValueError: image not (H, W, 3) uint8 or empty, malformed boxes, ``is_right`` not
            of length N, or ``pixel_aspect`` not finite and > 0.
    """
    if not (np.isfinite(pixel_aspect) and pixel_aspect > 0):
        raise ValueError(f"pixel_aspect (fx / fy) must be finite and > 0, got {pixel_aspect}")
    img = _check_image(image_rgb)
    boxes = _check_boxes(boxes_xyxy)
    n = boxes.shape[0]
    right = np.asarray(is_right)
    if right.ndim > 1 or right.size != n:
        raise ValueError(f"is_right must have one flag per box ({n}), got shape {right.shape}")
    right = right.reshape(n).astype(bool)
    h, w = img.shape[:2]
    center, side = crop_box(boxes, rescale_factor, bbox_shape, pixel_aspect)
    m32 = (255.0 * np.asarray(mean, np.float64)).astype(np.float32)[:, None, None]
    s32 = (255.0 * np.asarray(std, np.float64)).astype(np.float32)[:, None, None]
    patches = np.empty((n, 3, image_size, image_size), np.float32)
    affine = np.empty((n, 2, 3), np.float64)
    sigma = np.zeros(n, np.float64)
    bufs: dict = {}
    for i in range(n):
        d = side[i] * max(1.0, pixel_aspect) / image_size / 2.0
        if d > _BLUR_THRESHOLD:
            sigma[i] = (d - 1.0) / 2.0
        flip = not right[i]
        cx = (w - np.float64(center[i, 0]) - 1.0) if flip else center[i, 0]
        affine[i] = _affine(cx, center[i, 1], side[i], image_size, pixel_aspect)
        src = (_warp_source_roi(img, affine[i], flip, sigma[i], image_size, bufs) if roi
               else _warp_source_full(img, flip, sigma[i]))
        patch = cv2.warpAffine(src, affine[i], (image_size, image_size), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        p = patches[i]
        p[...] = patch.transpose(2, 0, 1)  # float64 patches round to float32 here, as the ref
        p -= m32
        p /= s32
    return HamerCrops(
        patches=patches, box_center=center, box_size=side.astype(np.float32),
        img_size=np.tile(np.array([w, h], np.float32), (n, 1)), is_right=right,
        affine=affine, blur_sigma=sigma, pixel_aspect=float(pixel_aspect))
