"""Cut rotated, resampled crops out of uint8 images: the networks' inputs.

MediaPipe's CPU ImageToTensorCalculator warps the uint8 image with OpenCV
(``cv::warpPerspective``, bilinear; the rectangle's corners onto the crop's corners) and
scales the uint8 result to [0, 1]. Two implementations of exactly that:

* ``sample_crops`` — tensor ops on whatever device the image is on (CUDA): for every crop
  pixel the source point comes from a (2, 3) affine map (``roi.crop_affine``), the four
  neighbouring pixels are gathered straight from the uint8 image (no float copy of a large
  image is made) and blended. As OpenCV does for 8-bit images, the source point is rounded
  to 1/32 pixel (``INTER_BITS = 5``) and the blend is rounded back to an integer.
* ``warp_crops_opencv`` — ``cv2.warpPerspective`` itself, for images on the CPU, where it
  is several times faster than tensor gathers.

The two agree to within one grey level on a few pixels (fixed-point weights). Borders:
``"zero"`` (palm letterbox, BORDER_CONSTANT 0) or ``"replicate"`` (hand crops,
BORDER_REPLICATE).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np
import torch

BORDERS = ("zero", "replicate")
#: Most crops cut at once by ``sample_crops`` (its temporaries take ~3 MB per 192 x 192
#: crop): a larger batch is cut in chunks of this many.
CHUNK = 16
#: OpenCV's sub-pixel resolution of remapping coordinates: 2**INTER_BITS steps per pixel.
_SUBPIXEL_STEPS = 32.0

_grids: Dict[Tuple[int, int, torch.device], torch.Tensor] = {}


def _pixel_grid(height: int, width: int, device: torch.device) -> torch.Tensor:
    """(3, height * width) float32 homogeneous crop pixel coordinates (i, j, 1), row-major."""
    key = (height, width, device)
    if key not in _grids:
        j, i = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=device),
                              torch.arange(width, dtype=torch.float32, device=device), indexing="ij")
        _grids[key] = torch.stack([i.reshape(-1), j.reshape(-1), torch.ones_like(i).reshape(-1)])
    return _grids[key]


def sample_crops(image: torch.Tensor, affines: torch.Tensor, size: Tuple[int, int],
                 border: str = "replicate") -> torch.Tensor:
    """Crops of one image.

    Args:
        image: (H, W, 3) uint8 RGB on the device.
        affines: (N, 2, 3) float maps from crop pixel (i, j, 1) to image point (x, y) in
            OpenCV's pixel-centre convention, on the same device.
        size: (height, width) of the crops.
        border: "zero" or "replicate".

    Returns:
        (N, height, width, 3) float32 in [0, 1] (NHWC, contiguous: ``.permute(0, 3, 1, 2)``
        is an NCHW channels-last view). Cut ``CHUNK`` crops at a time.

    Raises:
        ValueError: an unknown ``border``.
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    if affines.shape[0] == 0:
        return torch.empty((0, size[0], size[1], 3), dtype=torch.float32, device=image.device)
    return torch.cat([_sample(image, affines[s:s + CHUNK], size, border) for s in range(0, affines.shape[0], CHUNK)])


def _sample(image: torch.Tensor, affines: torch.Tensor, size: Tuple[int, int], border: str) -> torch.Tensor:
    """``sample_crops`` for (N >= 1, 2, 3) ``affines`` in one go."""
    n = affines.shape[0]
    out_h, out_w = size
    h, w = image.shape[:2]
    pts = affines.to(torch.float64) @ _pixel_grid(out_h, out_w, image.device).to(torch.float64)  # (N, 2, P)
    pts = torch.round(pts * _SUBPIXEL_STEPS)  # in 1/32 px, as cvRound(x * 32) (half to even)
    # far-away points clamped first so int64 indices cannot overflow; neither border mode
    # cares (a point more than a pixel outside samples border pixels / zeros only)
    lo = torch.tensor([-2.0, -2.0], dtype=torch.float64, device=image.device).view(1, 2, 1)
    hi = torch.tensor([w + 1.0, h + 1.0], dtype=torch.float64, device=image.device).view(1, 2, 1)
    pts = torch.minimum(torch.maximum(pts, lo * _SUBPIXEL_STEPS), hi * _SUBPIXEL_STEPS).to(torch.int64)
    base = torch.div(pts, int(_SUBPIXEL_STEPS), rounding_mode="floor")  # (N, 2, P) integer pixel
    frac = (pts - base * int(_SUBPIXEL_STEPS)).to(torch.float32) / _SUBPIXEL_STEPS
    # the two taps along x and along y: (N, 2 [x | y], 2 [tap], P)
    taps = base.unsqueeze(2) + torch.tensor([0, 1], device=image.device).view(1, 1, 2, 1)
    wts = torch.stack([1.0 - frac, frac], dim=2)
    limit = torch.tensor([w - 1, h - 1], device=image.device).view(1, 2, 1, 1)
    if border == "zero":
        wts = wts * ((taps >= 0) & (taps <= limit))
    taps = torch.minimum(taps.clamp(min=0), limit)
    # four corners (y tap, x tap) as the slow axis: one gather, then a sum of 4 planes
    index = (taps[:, 1].unsqueeze(2) * w + taps[:, 0].unsqueeze(1)).reshape(-1)
    weight = (wts[:, 1].unsqueeze(2) * wts[:, 0].unsqueeze(1)).reshape(n, 4, -1, 1)
    pixels = image.reshape(-1, 3).index_select(0, index).reshape(n, 4, -1, 3)
    value = (pixels.to(torch.float32) * weight).sum(dim=1)
    value = torch.floor(value + 0.5).clamp_(0.0, 255.0) / 255.0  # uint8 result, as OpenCV's
    return value.reshape(n, out_h, out_w, 3)


def warp_crops_opencv(image: np.ndarray, affines: Sequence[np.ndarray], size: Tuple[int, int],
                      border: str = "replicate") -> torch.Tensor:
    """``sample_crops`` for an image in host memory, with ``cv2.warpPerspective``.

    Args:
        image: (H, W, 3) uint8 RGB.
        affines, size, border: as ``sample_crops`` (affines as (2, 3) numpy arrays).

    Returns:
        (N, height, width, 3) float32 CPU tensor in [0, 1].
    """
    import cv2

    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    out_h, out_w = size
    mode = cv2.BORDER_CONSTANT if border == "zero" else cv2.BORDER_REPLICATE
    out = np.empty((len(affines), out_h, out_w, 3), np.uint8)
    for k, a in enumerate(affines):
        m = np.vstack([np.asarray(a, np.float64), [0.0, 0.0, 1.0]])  # crop pixel -> image point
        cv2.warpPerspective(image, m, (out_w, out_h), dst=out[k],
                            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=mode, borderValue=0)
    return torch.from_numpy(out).to(torch.float32).div_(255.0)
