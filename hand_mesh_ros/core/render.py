"""Draw hand meshes over a camera image (ROS-free, numpy + OpenCV).

The overlay uses the image's real intrinsics, so what is drawn is exactly where the 3D mesh
projects: a check of both the fit and the placement in the camera.

Rendering is a vectorised painter's algorithm:

1. all hands' triangles are gathered in the camera optical frame (x right, y down,
   z forward, metres);
2. triangles with a vertex at ``z <= NEAR_Z_M`` (behind or at the camera) are skipped;
3. back faces are culled: a triangle is kept when its outward normal (from the side's
   winding, ``faces_for(side)``) points towards the camera at the origin;
4. each kept triangle gets Lambert shading from a point light at the camera centre;
5. triangles of all hands together are sorted far to near by mean depth and filled in
   that order with ``cv2.fillConvexPoly`` (sub-pixel coordinates), so nearer triangles win,
   also across hands;
6. the mesh layer is alpha-blended over the image; a 2D skeleton of the projected joints
   and a text label (side, track id, score) are drawn on top, opaque.

Colours (RGB), also used for the documented RViz marker colours:
right hand = blue ``RIGHT_RGB``, left hand = orange ``LEFT_RGB``.
"""
from __future__ import annotations

from typing import Callable, Sequence, Tuple

import cv2
import numpy as np

from hand_mesh_ros.core.camera import project
from hand_mesh_ros.core.types import JOINT_PARENTS, RIGHT, SIDE_NAMES, CameraIntrinsics, Hand

#: Mesh colour of a right hand, RGB uint8 (blue); = ros.messages.RIGHT_COLOR in 0-255.
RIGHT_RGB: Tuple[int, int, int] = (38, 140, 255)
#: Mesh colour of a left hand, RGB uint8 (orange); = ros.messages.LEFT_COLOR in 0-255.
LEFT_RGB: Tuple[int, int, int] = (255, 140, 26)
#: Triangles with any vertex at z <= NEAR_Z_M [m] are not drawn (behind / at the camera).
NEAR_Z_M = 1e-3
#: Fraction of the colour kept for a surface seen edge-on (ambient term of the shading).
AMBIENT = 0.3

_SHIFT = 4  # fractional bits of the sub-pixel coordinates passed to OpenCV
_COORD_LIMIT = 1e5  # [px] projected coordinates are clamped to +-this (int32 safety)


def side_color(side: int) -> Tuple[int, int, int]:
    """RGB uint8 colour of a hand side (``RIGHT`` -> blue, ``LEFT`` -> orange)."""
    return RIGHT_RGB if side == RIGHT else LEFT_RGB


def _visible_triangles(hands: Sequence[Hand], faces_for: Callable[[int], np.ndarray]):
    """Gather all hands' front-facing triangles in front of the camera.

    Returns:
        tri: (T, 3, 3) float64 camera-frame triangle corners [m];
        shade: (T,) float64 Lambert factor in [0, 1];
        rgb: (T, 3) float64 base colour per triangle.
    """
    tris, colors = [], []
    for hand in hands:
        verts = np.asarray(hand.vertices, np.float64).reshape(-1, 3)
        faces = np.asarray(faces_for(hand.side), np.int64).reshape(-1, 3)
        if len(verts) == 0 or len(faces) == 0:
            continue
        t = verts[faces]
        tris.append(t)
        colors.append(np.broadcast_to(np.asarray(side_color(hand.side), np.float64), (len(t), 3)))
    if not tris:
        empty = np.zeros((0, 3))
        return np.zeros((0, 3, 3)), np.zeros(0), empty
    tri = np.concatenate(tris)
    rgb = np.concatenate(colors)
    # In front of the camera (every corner), finite.
    keep = np.all(tri[:, :, 2] > NEAR_Z_M, axis=1) & np.all(np.isfinite(tri), axis=(1, 2))
    # Outward normal by the right-hand rule; facing the camera when it points to the origin.
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(axis=1)
    facing = -np.einsum("ij,ij->i", normal, centre)
    keep &= facing > 0
    tri, rgb, normal, centre, facing = tri[keep], rgb[keep], normal[keep], centre[keep], facing[keep]
    norm = np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1)
    shade = np.divide(facing, norm, out=np.zeros_like(facing), where=norm > 0)
    return tri, np.clip(shade, 0.0, 1.0), rgb


def render_overlay(
    image: np.ndarray,
    hands: Sequence[Hand],
    intrinsics: CameraIntrinsics,
    faces_for: Callable[[int], np.ndarray],
    alpha: float = 0.7,
    draw_skeleton: bool = True,
    draw_label: bool = True,
) -> np.ndarray:
    """Draw the hands' meshes, skeletons and labels over an image.

    Args:
        image: (H, W, 3) uint8 RGB image the hands were found in (not modified).
        hands: hands with ``vertices`` (V, 3) and ``joints`` (21, 3) in the image's camera
            optical frame [m]; may be empty.
        intrinsics: the intrinsics the hands were placed with (``FrameResult.intrinsics``).
        faces_for: ``side -> (F, 3) int`` triangle indices with outward winding for that
            side's mesh (``HandModel.faces_for``).
        alpha: opacity of the mesh layer in [0, 1].
        draw_skeleton: draw the 21 projected joints and bones (thin lines).
        draw_label: draw "<side> #<track_id> <score>" above the hand's bbox.
    Returns:
        (H, W, 3) uint8 RGB new image; an unchanged copy when ``hands`` is empty.
    Raises:
        ValueError: image not (H, W, 3) uint8, or alpha outside [0, 1].
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"render_overlay: image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"render_overlay: alpha must be in [0, 1], got {alpha}")
    out = image.copy()
    if not hands:
        return out

    tri, shade, rgb = _visible_triangles(hands, faces_for)
    if len(tri):
        order = np.argsort(-tri[:, :, 2].mean(axis=1), kind="stable")  # far to near
        uv = project(tri[order], intrinsics) - 0.5  # OpenCV: integer = pixel centre
        pts = np.round(np.clip(uv, -_COORD_LIMIT, _COORD_LIMIT) * (1 << _SHIFT)).astype(np.int32)
        color = rgb[order] * (AMBIENT + (1.0 - AMBIENT) * shade[order])[:, None]
        color = np.clip(np.round(color), 0, 255).astype(np.int32)
        # RGBA layer: the alpha channel doubles as the coverage mask.
        layer = np.zeros(image.shape[:2] + (4,), np.uint8)
        for p, c in zip(pts, color.tolist()):
            cv2.fillConvexPoly(layer, p, (c[0], c[1], c[2], 255), cv2.LINE_8, _SHIFT)
        mask = layer[:, :, 3] > 0
        blended = alpha * layer[:, :, :3][mask].astype(np.float32) + (1.0 - alpha) * out[mask].astype(np.float32)
        out[mask] = np.clip(np.round(blended), 0, 255).astype(np.uint8)

    for hand in hands:
        if draw_skeleton:
            _draw_skeleton(out, hand, intrinsics)
        if draw_label:
            _draw_label(out, hand, intrinsics)
    return out


def _draw_skeleton(img: np.ndarray, hand: Hand, intrinsics: CameraIntrinsics) -> None:
    """Bones and joint dots of the projected 21 joints (joints behind the camera skipped)."""
    joints = np.asarray(hand.joints, np.float64).reshape(-1, 3)
    if len(joints) != len(JOINT_PARENTS):
        return
    front = joints[:, 2] > NEAR_Z_M
    uv = project(np.where(front[:, None], joints, 1.0), intrinsics) - 0.5
    uv = np.round(np.clip(uv, -_COORD_LIMIT, _COORD_LIMIT) * (1 << _SHIFT)).astype(np.int64)
    line_rgb = (255, 255, 255)
    dot_rgb = tuple(int(0.5 * c) for c in side_color(hand.side))
    for j, parent in enumerate(JOINT_PARENTS):
        if parent >= 0 and front[j] and front[parent]:
            cv2.line(img, tuple(uv[parent].tolist()), tuple(uv[j].tolist()), line_rgb, 1, cv2.LINE_AA, _SHIFT)
    for j in np.flatnonzero(front):
        cv2.circle(img, tuple(uv[j].tolist()), 2 << _SHIFT, dot_rgb, -1, cv2.LINE_AA, _SHIFT)


def _draw_label(img: np.ndarray, hand: Hand, intrinsics: CameraIntrinsics) -> None:
    """"<side> #<id> <score>" at the top-left of the bbox, kept inside the image."""
    text = f"{SIDE_NAMES.get(hand.side, str(hand.side))} #{hand.track_id} {hand.score:.2f}"
    bbox = np.asarray(hand.bbox, np.float64).reshape(-1)
    if bbox.size == 4 and np.all(np.isfinite(bbox)):
        x, y = bbox[0], bbox[1]
    else:
        x, y = 0.0, 0.0
    h, w = img.shape[:2]
    scale = 0.5 * max(1.0, min(h, w) / 480.0)  # readable on large images too
    font, thick = cv2.FONT_HERSHEY_SIMPLEX, max(1, int(round(scale)))
    (tw, th), base = cv2.getTextSize(text, font, scale, thick)
    x = int(np.clip(x, 0, max(w - tw, 0)))
    y = int(np.clip(y - 4, th + 1, max(h - base, th + 1)))
    cv2.rectangle(img, (x, y - th - 2), (x + tw, y + base), (0, 0, 0), -1)
    cv2.putText(img, text, (x, y), font, scale, side_color(hand.side), thick, cv2.LINE_AA)
