"""Cut rotated, resampled crops out of uint8 images on the device (the networks' inputs).

What MediaPipe's CPU ImageToTensorCalculator does with OpenCV (``cv::warpPerspective``,
bilinear, on the uint8 image), done with tensor ops on whatever device the images are on:
for every crop pixel the source point comes from a (2, 3) affine map (``roi.crop_affine``),
the four neighbouring pixels are gathered straight from the uint8 image (no float copy of
a large image is made) and blended. As OpenCV does for 8-bit images, the source point is
rounded to 1/32 pixel (``INTER_BITS = 5``) and the blended value is rounded back to an
integer before scaling to [0, 1], so the crops match MediaPipe's to within rounding.
Borders: ``"zero"`` (palm letterbox, BORDER_CONSTANT 0) or ``"replicate"`` (hand crops,
BORDER_REPLICATE).
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

import torch

BORDERS = ("zero", "replicate")
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
        is an NCHW channels-last view).
    """
    if border not in BORDERS:
        raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
    n = affines.shape[0]
    out_h, out_w = size
    h, w = image.shape[:2]
    if n == 0:
        return torch.empty((0, out_h, out_w, 3), dtype=torch.float32, device=image.device)
    pts = affines.to(torch.float64) @ _pixel_grid(out_h, out_w, image.device).to(torch.float64)  # (N, 2, P)
    pts = torch.round(pts * _SUBPIXEL_STEPS) / _SUBPIXEL_STEPS
    x, y = pts[:, 0], pts[:, 1]
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = (x - x0).to(torch.float32), (y - y0).to(torch.float32)
    # clamp far-away points first so int64 indices cannot overflow; both borders are
    # unaffected (a point further than one pixel outside samples border pixels only)
    x0 = x0.clamp(-2, w + 1).to(torch.int64)
    y0 = y0.clamp(-2, h + 1).to(torch.int64)
    flat = image.reshape(-1, 3)
    acc = torch.zeros((n, out_h * out_w, 3), dtype=torch.float32, device=image.device)
    for dy, wy in ((0, 1.0 - fy), (1, fy)):
        for dx, wx in ((0, 1.0 - fx), (1, fx)):
            xx, yy = x0 + dx, y0 + dy
            weight = wx * wy
            if border == "zero":
                inside = (xx >= 0) & (xx < w) & (yy >= 0) & (yy < h)
                weight = weight * inside
            idx = yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)
            acc += flat[idx.reshape(-1)].reshape(n, -1, 3).to(torch.float32) * weight.unsqueeze(-1)
    acc = torch.floor(acc + 0.5).clamp_(0.0, 255.0) / 255.0
    return acc.reshape(n, out_h, out_w, 3)
