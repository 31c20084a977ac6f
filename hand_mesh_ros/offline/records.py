"""The JSON of ``hand-mesh run --output DIR``: ``frames/NNNNNN.json`` records and the
names of the mesh files they point to. Floats of hands are rounded to 6 decimals (µm, µrad);
a value that is not known (NaN) is null."""
from __future__ import annotations

from typing import Optional

import numpy as np

from hand_mesh_ros.core.joint_frames import rotations_to_quaternions
from hand_mesh_ros.core.types import (SIDE_NAMES, TRANSLATION_ASSUMED, TRANSLATION_DEPTH, TRANSLATION_INTRINSICS,
                                      FrameResult, Hand)
from hand_mesh_ros.frames import Frame
from hand_mesh_ros.offline.stamps import Stamp
from hand_mesh_ros.ros.messages import primary_flags

TRANSLATION_SOURCE_NAMES = {TRANSLATION_ASSUMED: "assumed", TRANSLATION_INTRINSICS: "intrinsics",
                            TRANSLATION_DEPTH: "depth"}


def _list(a) -> list:
    return np.asarray(a, np.float64).round(6).tolist()


def _float_or_none(v: float):
    """JSON has no NaN: None for a value that is not known."""
    return None if not np.isfinite(v) else round(float(v), 6)


def side_name(side: int) -> str:
    """"left" / "right" (``types.SIDE_NAMES``), else the number as text."""
    return SIDE_NAMES.get(int(side), str(side))


def mesh_file(frame_index: int, hand: Hand, mesh_format: str) -> str:
    """Path of a hand's mesh file in the output folder: ``meshes/NNNNNN_<side>_<track_id>.<format>``."""
    return f"meshes/{frame_index:06d}_{side_name(hand.side)}_{int(hand.track_id)}.{mesh_format}"


def hand_record(hand: Hand, primary: Optional[bool] = None) -> dict:
    """JSON-ready dict of one ``types.Hand`` (lists of floats; units as in ``Hand``);
    ``primary`` as ``HandMesh.primary`` (default ``hand.primary``)."""
    return {
        "side": side_name(hand.side),
        "track_id": int(hand.track_id),
        "primary": bool(hand.primary if primary is None else primary),
        "score": float(hand.score),
        "bbox": _list(hand.bbox),
        "keypoints_2d": _list(hand.keypoints_2d),
        "joints": _list(hand.joints),
        "global_orient": _list(hand.global_orient),
        "hand_pose": _list(hand.hand_pose),
        "betas": _list(hand.betas),
        "transl": _list(hand.transl),
        "translation_source": TRANSLATION_SOURCE_NAMES.get(int(hand.translation_source), str(hand.translation_source)),
        "hand_model": str(hand.hand_model),
        "num_vertices": int(len(hand.vertices)),
        "joint_orientations": _list(rotations_to_quaternions(hand.joint_rotations)),
        "fit_error": _float_or_none(hand.fit_error),
        "reprojection_error": _float_or_none(hand.reprojection_error),
    }


def frame_record(frame: Frame, result: FrameResult, stamp: Optional[Stamp], mesh_format: str) -> dict:
    """The record of one frame: its index, image file or video time, image size, the
    intrinsics used (whether assumed, lens distortion), the pipeline's stage timings [ms],
    each hand (:func:`hand_record` with its ``primary`` flag as in ``/hands/mesh`` and its
    ``mesh_file``), and ``stamp_ns`` / ``frame_id`` when the frame has a stamp."""
    h, w = frame.image.shape[:2]
    k = result.intrinsics
    record = {
        "frame": frame.index,
        "image_file": frame.file,
        "time_s": frame.time_s,
        "image_size": {"width": w, "height": h},
        "intrinsics": {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "assumed": bool(k.assumed),
                       "distortion_model": k.distortion_model, "distortion": list(k.distortion)},
        "timings_ms": {name: round(float(ms), 3) for name, ms in result.timings_ms.items()},
        "hands": [],
    }
    if stamp is not None:  # the stamp of the messages
        record["stamp_ns"], record["frame_id"] = stamp.ns, stamp.frame_id
    for hand, primary in zip(result.hands, primary_flags(result.hands)):
        record["hands"].append({**hand_record(hand, primary), "mesh_file": mesh_file(frame.index, hand, mesh_format)})
    return record
