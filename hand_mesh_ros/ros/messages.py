"""Build the node's output messages from pipeline results (``core.types.Hand``).

Everything is expressed in the source image's optical frame (``header.frame_id``) and
stamped with the source image's stamp -- never "now".

* :func:`hand_mesh_array` -> ``hand_mesh_msgs/HandMeshArray`` (flat float32 arrays).
* :func:`marker_array` -> ``visualization_msgs/MarkerArray``: a ``DELETEALL`` marker first
  (so markers of hands that vanished disappear), then per hand ``i`` (ids = ``i``):
  ns ``hand_mesh`` TRIANGLE_LIST, ns ``hand_joints`` SPHERE_LIST, ns ``hand_skeleton``
  LINE_LIST (``types.JOINT_PARENTS``), ns ``hand_label`` TEXT_VIEW_FACING
  (``"right #3 0.97"`` = side, track id, score). Colours: right hands
  :data:`RIGHT_COLOR` (blue), left hands :data:`LEFT_COLOR` (orange).
* :func:`joint_transforms` -> ``geometry_msgs/TransformStamped`` list for ``/tf``.

TF frame names (21 per hand, each parented directly to the image's optical frame, pose
= joint position + its bone-aligned joint frame, ``Hand.joint_rotations`` (``core.joint_frames``)):

* the hand of each side's primary track (``Hand.primary``, decided by the tracker: the
  side's oldest track, kept until that track is lost, so the name never jumps to another
  hand): ``{tf_prefix}{side}/{joint_name}``, e.g. ``hand_right/index_tip``, ``hand_left/wrist``;
* every other hand: ``{tf_prefix}{side}_{track_id}/{joint_name}``, e.g. ``hand_right_7/index_tip``.

``side`` is ``left`` / ``right``, ``joint_name`` one of ``types.JOINT_NAMES``.
"""
from __future__ import annotations

import array
from typing import Callable, List, Optional, Sequence

import numpy as np

from hand_mesh_ros.core.joint_frames import rotations_to_quaternions
from hand_mesh_ros.core.types import JOINT_NAMES, JOINT_PARENTS, SIDE_NAMES, Hand

#: RGBA of right-hand markers (mesh, joints, skeleton, label): blue.
RIGHT_COLOR = (0.15, 0.55, 1.0, 0.85)
#: RGBA of left-hand markers: orange.
LEFT_COLOR = (1.0, 0.55, 0.1, 0.85)

JOINT_SPHERE_DIAMETER_M = 0.008
SKELETON_LINE_WIDTH_M = 0.003
LABEL_HEIGHT_M = 0.02

_SKELETON_PAIRS = np.array([(p, c) for c, p in enumerate(JOINT_PARENTS) if p >= 0], np.int64).reshape(-1)


def _f32(values, n: Optional[int] = None) -> np.ndarray:
    """Flat float32 numpy array (fixed-size message fields), checked length."""
    a = np.ascontiguousarray(np.asarray(values, dtype=np.float32).reshape(-1))
    if n is not None and a.size != n:
        raise ValueError(f"expected {n} values, got {a.size}")
    return a


def _f32_seq(values) -> array.array:
    """float32 ``array.array`` for unbounded ``float32[]`` fields (fast: from bytes)."""
    return array.array("f", np.ascontiguousarray(np.asarray(values, np.float32).reshape(-1)).tobytes())


def _u32_seq(values) -> array.array:
    a = np.asarray(values)
    if a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF):
        raise ValueError("face indices out of uint32 range")
    return array.array("I", np.ascontiguousarray(a.astype(np.uint32).reshape(-1)).tobytes())


def hand_mesh(hand: Hand, header, faces: Optional[np.ndarray] = None, primary: Optional[bool] = None):
    """One ``hand_mesh_msgs/HandMesh``.

    Args:
        hand: pipeline output, camera optical frame [m].
        header: ``std_msgs/Header`` of the source image (copied as is).
        faces: (F, 3) int vertex indices to publish, or None to leave ``faces`` empty.
        primary: ``HandMesh.primary`` (default ``hand.primary``; ``hand_mesh_array``
            passes ``primary_flags`` of the image's hands, so that it matches the TF names).

    ``wrist_pose.position`` = ``joints[0]``; ``joint_orientations`` = the 21 joint frames
    ``joint_rotations`` as quaternions ``x, y, z, w``; ``wrist_pose.orientation`` = the
    first of them; ``fit_error`` / ``reprojection_error`` from the hand (NaN where unknown).
    """
    from hand_mesh_msgs.msg import HandMesh

    m = HandMesh()
    m.header = header
    m.side = int(hand.side)
    m.track_id = int(hand.track_id)
    m.primary = bool(hand.primary if primary is None else primary)
    m.score = float(hand.score)
    m.bbox = _f32(hand.bbox, 4)
    m.keypoints_2d = _f32(hand.keypoints_2d, 42)
    joints = np.asarray(hand.joints, np.float64).reshape(21, 3)
    m.joints = _f32(joints, 63)
    m.global_orient = _f32(hand.global_orient, 3)
    m.hand_pose = _f32(hand.hand_pose, 45)
    m.betas = _f32(hand.betas, 10)
    m.vertices = _f32_seq(hand.vertices)
    if faces is not None:
        m.faces = _u32_seq(faces)
    quats = rotations_to_quaternions(np.asarray(hand.joint_rotations).reshape(21, 3, 3))
    m.joint_orientations = _f32(quats, 84)
    p = m.wrist_pose
    p.position.x, p.position.y, p.position.z = (float(v) for v in joints[0])
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = (float(v) for v in quats[0])
    m.translation_source = int(hand.translation_source)
    m.hand_model = str(hand.hand_model)
    m.fit_error = float(hand.fit_error)
    m.reprojection_error = float(hand.reprojection_error)
    return m


def hand_mesh_array(hands: Sequence[Hand], header, faces_for: Optional[Callable[[int], np.ndarray]] = None):
    """``hand_mesh_msgs/HandMeshArray`` for one processed image.

    Args:
        hands: the hands of that image (may be empty: an empty array is still published).
        header: the source image's header (stamp + optical frame).
        faces_for: ``side -> (F, 3)`` faces when ``publish_faces`` is on, else None
            (``faces`` left empty).
    """
    from hand_mesh_msgs.msg import HandMeshArray

    msg = HandMeshArray()
    msg.header = header
    msg.hands = [hand_mesh(h, header, faces_for(h.side) if faces_for is not None else None, primary)
                 for h, primary in zip(hands, primary_flags(hands))]
    return msg


def _color(side: int):
    from std_msgs.msg import ColorRGBA

    r, g, b, a = RIGHT_COLOR if side == 1 else LEFT_COLOR
    return ColorRGBA(r=r, g=g, b=b, a=a)


def _points(xyz: np.ndarray):
    from geometry_msgs.msg import Point

    return [Point(x=x, y=y, z=z) for x, y, z in np.asarray(xyz, np.float64).reshape(-1, 3).tolist()]


def hand_label(hand: Hand) -> str:
    """Marker text, e.g. ``"right #3 0.97"`` (side, track id, score)."""
    return f"{SIDE_NAMES.get(int(hand.side), '?')} #{int(hand.track_id)} {float(hand.score):.2f}"


def marker_array(hands: Sequence[Hand], header, faces_for: Callable[[int], np.ndarray]):
    """``visualization_msgs/MarkerArray`` for RViz (see the module docstring for the layout).

    Args:
        hands: hands of one image, camera optical frame [m].
        header: the source image's header; every marker uses its stamp and frame.
        faces_for: ``side -> (F, 3)`` triangle indices with the winding for that side.
    """
    from visualization_msgs.msg import Marker, MarkerArray

    out = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.action = Marker.DELETEALL
    out.markers.append(clear)
    for i, h in enumerate(hands):
        color = _color(h.side)
        verts = np.asarray(h.vertices, np.float64).reshape(-1, 3)
        joints = np.asarray(h.joints, np.float64).reshape(21, 3)

        def new(ns: str, mtype: int) -> Marker:
            m = Marker()
            m.header = header
            m.ns = ns
            m.id = i
            m.type = mtype
            m.action = Marker.ADD
            m.pose.orientation.w = 1.0
            m.scale.x = m.scale.y = m.scale.z = 1.0
            m.color = color
            out.markers.append(m)
            return m

        mesh = new("hand_mesh", Marker.TRIANGLE_LIST)
        # one Point per vertex, shared by its triangles: ~6x fewer Python objects to build
        vpts = _points(verts)
        mesh.points = [vpts[k] for k in np.asarray(faces_for(h.side)).reshape(-1).tolist()]

        sph = new("hand_joints", Marker.SPHERE_LIST)
        sph.scale.x = sph.scale.y = sph.scale.z = JOINT_SPHERE_DIAMETER_M
        sph.points = _points(joints)

        lines = new("hand_skeleton", Marker.LINE_LIST)
        lines.scale.x = SKELETON_LINE_WIDTH_M
        lines.points = _points(joints[_SKELETON_PAIRS])

        text = new("hand_label", Marker.TEXT_VIEW_FACING)
        text.scale.z = LABEL_HEIGHT_M
        text.text = hand_label(h)
        top = joints[int(np.argmin(joints[:, 1]))]  # highest point in the image (y down)
        text.pose.position.x, text.pose.position.y, text.pose.position.z = (
            float(top[0]), float(top[1]) - 0.03, float(top[2]))
    return out


def primary_flags(hands: Sequence[Hand]) -> List[bool]:
    """Per hand (same order): it is its side's primary hand, i.e. flagged ``primary`` and
    the first so flagged of its side (at most one per side). ``HandMesh.primary``."""
    taken = set()
    flags = []
    for h in hands:
        flags.append(bool(h.primary) and int(h.side) not in taken)
        if flags[-1]:
            taken.add(int(h.side))
    return flags


def hand_frame_prefixes(hands: Sequence[Hand], tf_prefix: str = "hand_") -> List[str]:
    """TF frame prefix of each hand (same order as ``hands``): ``{tf_prefix}{side}`` for the
    side's primary hand (``primary_flags``), else ``{tf_prefix}{side}_{track_id}``."""
    names = []
    for h, primary in zip(hands, primary_flags(hands)):
        side = SIDE_NAMES.get(int(h.side), str(int(h.side)))
        names.append(f"{tf_prefix}{side}" if primary else f"{tf_prefix}{side}_{int(h.track_id)}")
    return names


def joint_transforms(hands: Sequence[Hand], header, tf_prefix: str = "hand_"):
    """21 ``geometry_msgs/TransformStamped`` per hand for ``/tf``.

    Parent = ``header.frame_id`` (the image's optical frame), stamp = ``header.stamp``,
    child = ``{prefix}/{joint_name}`` (see :func:`hand_frame_prefixes`); translation =
    joint position [m], rotation = ``joint_rotations[j]`` as a quaternion. Hands whose
    joints or rotations are not finite are left out.
    """
    from geometry_msgs.msg import TransformStamped

    out = []
    for prefix, h in zip(hand_frame_prefixes(hands, tf_prefix), hands):
        joints = np.asarray(h.joints, np.float64).reshape(21, 3)
        rots = np.asarray(h.joint_rotations, np.float64).reshape(21, 3, 3)
        if not (np.isfinite(joints).all() and np.isfinite(rots).all()):
            continue
        quats = rotations_to_quaternions(rots)
        for j, name in enumerate(JOINT_NAMES):
            t = TransformStamped()
            t.header = header
            t.child_frame_id = f"{prefix}/{name}"
            tr = t.transform.translation
            tr.x, tr.y, tr.z = (float(v) for v in joints[j])
            r = t.transform.rotation
            r.x, r.y, r.z, r.w = (float(v) for v in quats[j])
            out.append(t)
    return out
