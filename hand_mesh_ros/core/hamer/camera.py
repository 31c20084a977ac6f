"""HaMeR's crop camera -> placement of the hand in the full image's camera frame.

HaMeR (Pavlakos et al., CVPR 2024; github.com/geopavlakos/hamer, MIT) predicts, per crop, a
weak-perspective camera ``pred_cam = [s, tx, ty]`` for a 256-px patch (focal 5000 px). Its demo
turns that into a full-image translation with ``cam_crop_to_full`` (``hamer/utils/renderer.py``),
assuming a focal of ``5000/256 * max(W, H)`` and the principal point at the image centre. This
module re-implements that (``cam_crop_to_full_reference``, checked against
../shared/golden/hamer/golden_cam_full.npz) and the same mapping with a real camera's
intrinsics (``cam_crop_to_full_intrinsics``, fx != fy included), which is what the ROS
pipeline uses; the rotation that turns a crop's orientation into the camera's is
``core.camera.viewing_ray_rotation`` (the fit uses it for MediaPipe's world landmarks too).

The crop is a view along the viewing ray of its centre, not along the optical axis. A network
that sees only the crop predicts the hand's orientation as a camera looking along that ray
would see it (the demo keeps it as if the crop were on the optical axis: off by the ray's
angle, ~30 deg at the edge of a 60 deg field of view). With ``R_ray`` the smallest rotation
taking the optical axis onto the ray, the hand in the camera frame is
``X_cam = R_ray X_crop + T``: the root orientation ``R_ray R``, every joint rotation
``R_ray R_j``, vertices and joints rotated by ``R_ray`` about the model origin, and the
translation ``T`` that puts the origin where the crop camera put it. On the optical axis
``R_ray = I`` exactly: the reference.

Frames: camera optical frame (x right, y down, z forward) [m]; pixels (u right, v down) [px].
Left hands: the network sees the mirrored crop, so ``tx`` is negated (``flip_cam_for_side``) and
the model-frame points' x must be negated too before adding the translation.
"""
from __future__ import annotations

import numpy as np

try:  # torch is optional here: the reference helpers also accept / return tensors
    import torch
except ImportError:  # pragma: no cover
    torch = None

REFERENCE_FOCAL_LENGTH = 5000.0  # crop-camera focal [px] for a 256-px crop (EXTRA.FOCAL_LENGTH)


def _is_torch(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _f32(x, like):
    """float32 array of ``x``: a tensor on ``like``'s device when ``like`` is a tensor."""
    if _is_torch(like):
        return torch.as_tensor(x, dtype=torch.float32, device=like.device)
    return np.asarray(x.detach().cpu() if _is_torch(x) else x, dtype=np.float32)


def reference_full_focal(img_size, focal_length: float = REFERENCE_FOCAL_LENGTH,
                         image_size: int = 256):
    """HaMeR demo's full-image focal ``focal_length / image_size * max(W, H)`` [px], per row.

    Args:
        img_size: (N, 2) [W, H] [px] (numpy or torch).
        focal_length, image_size: crop focal [px] and crop side [px].

    Returns:
        (N,) float32, same kind as ``img_size``.

    The demo takes ``img_size.max()`` over its whole batch tensor (all images of the batch,
    W and H together). The goldens had one image per batch, where this per-row value is the
    same. To reproduce a mixed batch: ``f = reference_full_focal(img_size); f[:] = f.max()``.
    """
    s = _f32(img_size, img_size)
    return (focal_length / image_size) * s.max(1)[0] if _is_torch(s) else \
        (focal_length / image_size) * s.max(axis=1)


def flip_cam_for_side(pred_cam, is_right):
    """Copy of ``pred_cam`` (N, 3) [s, tx, ty] with ``tx`` negated where ``is_right`` is false.

    The demo does ``pred_cam[:, 1] *= 2*right - 1`` in place; this returns a new array/tensor
    (same kind and dtype as ``pred_cam``) and leaves the input alone.
    """
    if _is_torch(pred_cam):
        right = torch.as_tensor(is_right, device=pred_cam.device).reshape(-1).bool()
        out = pred_cam.clone()
        out[:, 1] = torch.where(right, out[:, 1], -out[:, 1])
        return out
    out = np.array(pred_cam, copy=True)
    right = np.asarray(is_right).reshape(-1).astype(bool)
    out[:, 1] = np.where(right, out[:, 1], -out[:, 1])
    return out


def cam_crop_to_full_reference(pred_cam, box_center, box_size, img_size, focal):
    """HaMeR's ``cam_crop_to_full``: crop camera -> full-image translation, in float32.

    Args:
        pred_cam: (N, 3) [s, tx, ty], already side-corrected (``flip_cam_for_side``).
        box_center: (N, 2) crop centre [px] in the original image.
        box_size: (N,) crop side [px].
        img_size: (N, 2) [W, H] [px].
        focal: (N,) or scalar full-image focal [px] (``reference_full_focal``).

    Returns:
        (N, 3) float32 [Tx, Ty, Tz] [m], camera optical frame with the principal point at the
        image centre; a torch tensor when ``pred_cam`` is one, else numpy. With
        ``bs = box_size*s + 1e-9``: ``Tz = 2 f / bs``, ``Tx = 2 (cx - W/2) / bs + tx``,
        ``Ty = 2 (cy - H/2) / bs + ty`` (same operation order as the reference). Rows with
        s <= 0 give non-positive or huge depths, returned as computed.
    """
    cam = _f32(pred_cam, pred_cam)
    c, b, wh, f = (_f32(v, pred_cam) for v in (box_center, box_size, img_size, focal))
    bs = b * cam[:, 0] + 1e-9
    tz = 2 * f / bs
    tx = 2 * (c[:, 0] - wh[:, 0] / 2.0) / bs + cam[:, 1]
    ty = 2 * (c[:, 1] - wh[:, 1] / 2.0) / bs + cam[:, 2]
    return (torch.stack if _is_torch(cam) else np.stack)([tx, ty, tz], -1)


def cam_crop_to_full_intrinsics(pred_cam, box_center, box_size, fx, fy, cx, cy) -> np.ndarray:
    """Crop camera -> translation in a real pinhole camera (fx, fy, cx, cy), float64.

    Derivation. The crop is taken in square pixels of focal ``fy`` (``preprocess.make_crops``
    with ``pixel_aspect = fx/fy``): it is ``box_size * fx/fy`` image pixels wide and
    ``box_size`` high, so the network sees the hand's true proportions. The crop camera places
    a model-frame point (X, Y, Z) at ``u = cx_box + (fx/fy) a (X + tx)``,
    ``v = cy_box + a (Y + ty)`` with ``a = box_size * s / 2`` (square pixels per metre at the
    hand: HaMeR's crop focal 5000/256 at depth 2*5000/(256 s) gives s/2 crop units per metre,
    one crop unit being ``box_size`` px). A pinhole camera with the hand at depth Tz puts it at
    ``u = cx + fx (X + Tx)/Tz``, ``v = cy + fy (Y + Ty)/Tz``; for X, Y small against Tz both
    axes agree on ``Tz = fy / a``, and matching the constant terms gives
    ``Tx = (cx_box - cx)/fx * Tz + tx``, ``Ty = (cy_box - cy)/fy * Tz + ty``: the model
    origin lands exactly where the crop camera put it, and the hand's scale is right on both
    axes. (The previous form, an isotropic crop with ``Tz = (fx+fy)/2 / a``, scaled x by
    ``fx / ((fx+fy)/2)`` and y by ``fy / ((fx+fy)/2)``.) With ``fx = fy = f`` and
    ``(cx, cy) = (W/2, H/2)`` this is ``cam_crop_to_full_reference`` exactly, apart from its
    ``+1e-9`` in the denominator (tested).

    Args:
        pred_cam: (N, 3) [s, tx, ty], side-corrected (``flip_cam_for_side``).
        box_center: (N, 2) crop centre [px] in the original (unmirrored) image, ideal pinhole
            pixels (undistorted if the lens distorts).
        box_size: (N,) crop side [px, square pixels of focal fy] (``HamerCrops.box_size``).
        fx, fy, cx, cy: intrinsics [px], scalars or (N,) per row.

    Returns:
        (N, 3) float64 [Tx, Ty, Tz] [m] in the camera optical frame (x right, y down,
        z forward): add to the (left-hand x-negated) model-frame vertices.

    Raises:
        ValueError: non-finite or non-positive fx / fy, non-finite cx / cy, or bad shapes.

    Rows with s <= 0 (or a zero box) give negative / infinite depths and are returned as
    computed; the pipeline rejects them with its depth-range check.
    """
    cam = np.asarray(pred_cam, np.float64)
    ctr = np.asarray(box_center, np.float64)
    if cam.ndim != 2 or cam.shape[1] != 3 or ctr.shape != (cam.shape[0], 2):
        raise ValueError(f"pred_cam must be (N, 3) and box_center (N, 2), got {cam.shape}, "
                         f"{ctr.shape}")
    size = np.broadcast_to(np.asarray(box_size, np.float64), (cam.shape[0],))
    fx, fy, cx, cy = (np.asarray(v, np.float64) for v in (fx, fy, cx, cy))
    if not (np.all(np.isfinite(fx)) and np.all(np.isfinite(fy)) and np.all(fx > 0)
            and np.all(fy > 0)):
        raise ValueError("fx and fy must be finite and > 0")
    if not (np.all(np.isfinite(cx)) and np.all(np.isfinite(cy))):
        raise ValueError("cx and cy must be finite")
    with np.errstate(divide="ignore", invalid="ignore"):
        tz = fy / (size * cam[:, 0] / 2.0)
    tx = (ctr[:, 0] - cx) / fx * tz + cam[:, 1]
    ty = (ctr[:, 1] - cy) / fy * tz + cam[:, 2]
    return np.stack([tx, ty, tz], axis=-1)
