"""Draw hand meshes over a camera image, and z-buffer a mesh's depth (ROS-free, numpy + OpenCV).

The overlay uses the image's real intrinsics, lens distortion included (``camera.project``:
vertices go to the raw, distorted pixels of the input image), so what is drawn is exactly
where the 3D mesh projects: a check of both the fit and the placement in the camera.

Rendering is a vectorised painter's algorithm:

1. all hands' triangles are gathered in the camera optical frame (x right, y down,
   z forward, metres);
2. triangles with a vertex at ``z <= NEAR_Z_M`` (behind or at the camera) are skipped;
3. back faces are culled: a triangle is kept when its outward normal (from the side's
   winding, ``faces_for(side)``) points towards the camera at the origin;
4. each kept triangle gets Lambert shading from a point light at the camera centre;
5. triangles of all hands together are sorted far to near by mean depth and filled in
   that order with ``cv2.fillConvexPoly`` (sub-pixel coordinates, corners projected with
   the lens distortion; a triangle with a corner outside the lens model's valid field,
   ``camera.valid_radius``, is skipped), so nearer triangles win, also across hands;
6. the mesh layer is alpha-blended over the image; a 2D skeleton of the projected joints
   and a text label (side, track id, score) are drawn on top, opaque.

``render_depth`` fills the same front-facing triangles, far to near, with their depth into a
float image of the mesh's bounding box: the model's own surface for depth fusion
(``core.depth``).

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
    keep, shade = _front_facing(tri)
    return tri[keep], shade[keep], np.concatenate(colors)[keep]


def _front_facing(tri: np.ndarray):
    """Which (T, 3, 3) camera-frame triangles are drawn: every corner finite and in front of
    the camera, outward normal (right-hand rule) towards the camera at the origin.

    Returns:
        keep: (T,) bool; shade: (T,) float64 Lambert factor in [0, 1] (point light at the camera).
    """
    keep = np.all(tri[:, :, 2] > NEAR_Z_M, axis=1) & np.all(np.isfinite(tri), axis=(1, 2))
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    centre = tri.mean(axis=1)
    facing = -np.einsum("ij,ij->i", normal, centre)
    keep &= facing > 0
    norm = np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1)
    shade = np.divide(facing, norm, out=np.zeros_like(facing), where=keep & (norm > 0))
    return keep, np.clip(shade, 0.0, 1.0)


def _fill_far_to_near(canvas: np.ndarray, tri: np.ndarray, values: np.ndarray, intrinsics: CameraIntrinsics,
                      offset=(0, 0)) -> None:
    """Painter's algorithm: fill (T, 3, 3) camera-frame triangles into ``canvas``, far to near
    by mean depth, each with its row of ``values`` (T, C); corners projected with the lens
    distortion; triangles with a corner that does not project (``camera.project`` NaN) are
    skipped. ``offset``: pixel (u, v) of the canvas's top-left pixel in the image."""
    order = np.argsort(-tri[:, :, 2].mean(axis=1), kind="stable")
    uv = project(tri[order], intrinsics) - np.asarray(offset, np.float64) - 0.5  # integer = pixel centre
    drawn = np.isfinite(uv).all(axis=(1, 2))
    pts = np.round(np.clip(uv[drawn], -_COORD_LIMIT, _COORD_LIMIT) * (1 << _SHIFT)).astype(np.int32)
    for p, c in zip(pts, values[order[drawn]].tolist()):
        cv2.fillConvexPoly(canvas, p, c, cv2.LINE_8, _SHIFT)


def render_depth(vertices: np.ndarray, faces: np.ndarray, intrinsics: CameraIntrinsics):
    """Z-buffer of one mesh in the image: the optical-frame depth of the nearest surface.

    Front-facing triangles (outward winding) are filled far to near (painter's algorithm, as
    ``render_overlay``) with their mean corner depth, in the raw pixel grid of ``intrinsics``
    (lens distortion included), over the mesh's bounding box clipped to the image. Flat
    per-triangle depth: for MANO's ~3-5 mm triangles the error is a fraction of a millimetre.

    Args:
        vertices: (V, 3) camera-frame vertices [m]; faces: (F, 3) outward-winding indices
            (``HandModel.faces_for(side)``); intrinsics: the image's camera.

    Returns:
        ``(depth, (u0, v0))``: (h, w) float32 depth [m] (z of the optical frame, 0 = no
        surface) of the image window whose top-left pixel is (u0, v0); (0, 0)-sized when
        the mesh does not reach the image.
    """
    tri = np.asarray(vertices, np.float64)[np.asarray(faces, np.int64)]
    keep, _ = _front_facing(tri)
    tri = tri[keep]
    uv = project(tri.reshape(-1, 3), intrinsics)
    uv = uv[np.isfinite(uv).all(axis=1)]
    if len(uv) == 0:
        return np.zeros((0, 0), np.float32), (0, 0)
    u0, v0 = np.clip(np.floor(uv.min(axis=0)).astype(np.int64) - 1, 0, [intrinsics.width, intrinsics.height])
    u1, v1 = np.clip(np.ceil(uv.max(axis=0)).astype(np.int64) + 2, 0, [intrinsics.width, intrinsics.height])
    canvas = np.zeros((max(v1 - v0, 0), max(u1 - u0, 0)), np.float32)
    if canvas.size:
        _fill_far_to_near(canvas, tri, tri[:, :, 2].mean(axis=1, keepdims=True), intrinsics, (u0, v0))
    return canvas, (int(u0), int(v0))


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
        color = rgb * (AMBIENT + (1.0 - AMBIENT) * shade)[:, None]
        color = np.clip(np.round(color), 0, 255).astype(np.int32)
        # RGBA layer: the alpha channel doubles as the coverage mask.
        layer = np.zeros(image.shape[:2] + (4,), np.uint8)
        _fill_far_to_near(layer, tri, np.concatenate([color, np.full((len(color), 1), 255)], 1), intrinsics)
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
    front &= np.isfinite(uv).all(axis=1)
    uv = np.where(front[:, None], uv, 0.0)
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
