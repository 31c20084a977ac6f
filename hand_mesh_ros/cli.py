"""``hand-mesh``: offline runs of the hand-mesh pipeline, no ROS graph needed.

Usage::

    hand-mesh run --input VIDEO|IMAGE|FOLDER --output DIR [--fx FX --fy FY --cx CX --cy CY]
                  [--mano-model-dir DIR] [--max-hands N] [--min-score S] [--mirrored]
                  [--mesh-format ply|obj] [--no-overlay] [--max-frames N]

Images and image folders run MediaPipe in static-image mode (every image independent);
videos run in tracking mode (landmarks and track ids carried from frame to frame).

Output folder ``DIR``:

* ``frames/NNNNNN.json``: one per frame: frame index, source image file or video time,
  image size, intrinsics used (and whether assumed), and per hand: side, track id, score,
  bbox, 2D keypoints [px], 21 joints [m, camera optical frame], MANO parameters,
  translation, translation source, hand model;
* ``meshes/NNNNNN_<side>_<track_id>.<ply|obj>``: each hand's mesh [m, camera optical frame]
  with that side's outward face winding;
* ``overlay/NNNNNN.png`` (unless ``--no-overlay``): the meshes drawn over the frame
  (``core.render``); for a video also ``overlay.mp4`` (mp4v);
* ``summary.json``: counts and speed, also printed as one line
  ``frames=N hands=M (per frame: K:count ...) fps=X``.

Exit status: 0 on success, 2 for a missing / unreadable input or an empty folder (the
message names the path), 1 for other errors.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from hand_mesh_ros.core.types import (SIDE_NAMES, TRANSLATION_ASSUMED, TRANSLATION_DEPTH, TRANSLATION_INTRINSICS,
                                      CameraIntrinsics)
from hand_mesh_ros.frames import FrameSource, InputError

TRANSLATION_SOURCE_NAMES = {TRANSLATION_ASSUMED: "assumed", TRANSLATION_INTRINSICS: "intrinsics",
                            TRANSLATION_DEPTH: "depth"}


def _list(a) -> list:
    return np.asarray(a, np.float64).round(6).tolist()


def hand_record(hand) -> dict:
    """JSON-ready dict of one ``types.Hand`` (lists of floats; units as in ``Hand``)."""
    return {
        "side": SIDE_NAMES.get(int(hand.side), str(hand.side)),
        "track_id": int(hand.track_id),
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
    }


def _intrinsics_from_args(args, width: int, height: int):
    """``CameraIntrinsics`` from --fx/--fy/--cx/--cy, or None (the pipeline assumes them)."""
    if args.fx is None and args.fy is None:
        if args.cx is not None or args.cy is not None:
            raise InputError("--cx/--cy given without --fx/--fy")
        return None
    fx = args.fx if args.fx is not None else args.fy
    fy = args.fy if args.fy is not None else args.fx
    cx = args.cx if args.cx is not None else width / 2.0
    cy = args.cy if args.cy is not None else height / 2.0
    k = CameraIntrinsics(fx, fy, cx, cy, width, height, assumed=False)
    k.validate()
    return k


def run(args) -> dict:
    """The ``run`` subcommand; returns the summary dict (also written to summary.json)."""
    import cv2
    import trimesh
    from tqdm import tqdm

    from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
    from hand_mesh_ros.core.render import render_overlay

    source = FrameSource(args.input, args.max_frames)
    out = Path(args.output)
    for sub in ("frames", "meshes") + (() if args.no_overlay else ("overlay",)):
        (out / sub).mkdir(parents=True, exist_ok=True)

    cfg = PipelineConfig(
        detector=args.detector, detector_model=args.detector_model, regressor=args.regressor, device=args.device,
        max_hands=args.max_hands,
        min_score=args.min_score, mano_model_dir=args.mano_model_dir or "", checkpoint=args.checkpoint or "",
        smoothing=args.smoothing, mirrored=args.mirrored, static_image_mode=not source.is_video,
        precision=args.precision, batch_size=args.batch_size,
    )
    pipe = HandMeshPipeline(cfg)
    writer = None
    hands_per_frame: collections.Counter = collections.Counter()
    sides: collections.Counter = collections.Counter()
    n_frames = n_hands = 0
    process_s = 0.0
    t_start = time.perf_counter()
    try:
        for frame in tqdm(source, total=len(source), unit="frame", desc="hand-mesh", file=sys.stderr):
            h, w = frame.image.shape[:2]
            k = _intrinsics_from_args(args, w, h)
            t0 = time.perf_counter()
            res = pipe.process(frame.image, k, camera="cam0")
            process_s += time.perf_counter() - t0
            name = f"{frame.index:06d}"
            record = {
                "frame": frame.index,
                "image_file": frame.file,
                "time_s": frame.time_s,
                "image_size": {"width": w, "height": h},
                "intrinsics": {"fx": res.intrinsics.fx, "fy": res.intrinsics.fy, "cx": res.intrinsics.cx,
                               "cy": res.intrinsics.cy, "assumed": bool(res.intrinsics.assumed)},
                "timings_ms": {k_: round(float(v), 3) for k_, v in res.timings_ms.items()},
                "hands": [],
            }
            for hand in res.hands:
                rec = hand_record(hand)
                side = SIDE_NAMES.get(int(hand.side), str(hand.side))
                mesh_name = f"{name}_{side}_{int(hand.track_id)}.{args.mesh_format}"
                faces = np.asarray(pipe.hand_model.faces_for(hand.side), np.int64)
                trimesh.Trimesh(np.asarray(hand.vertices, np.float64), faces, process=False).export(
                    out / "meshes" / mesh_name)
                rec["mesh_file"] = f"meshes/{mesh_name}"
                record["hands"].append(rec)
                sides[side] += 1
            (out / "frames" / f"{name}.json").write_text(json.dumps(record, indent=1))
            n_frames += 1
            n_hands += len(res.hands)
            hands_per_frame[len(res.hands)] += 1
            if not args.no_overlay:
                over = render_overlay(frame.image, res.hands, res.intrinsics, pipe.hand_model.faces_for)
                bgr = cv2.cvtColor(over, cv2.COLOR_RGB2BGR)
                cv2.imwrite(str(out / "overlay" / f"{name}.png"), bgr)
                if source.is_video:
                    if writer is None:
                        writer = cv2.VideoWriter(str(out / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"),
                                                 source.fps or 30.0, (w, h))
                        if not writer.isOpened():
                            raise RuntimeError(f"cannot write video: {out / 'overlay.mp4'}")
                    writer.write(bgr)
    finally:
        if writer is not None:
            writer.release()
        pipe.close()
    wall_s = time.perf_counter() - t_start
    summary = {
        "input": str(args.input),
        "output": str(out),
        "frames": n_frames,
        "hands": n_hands,
        "hands_per_frame": {str(k_): v for k_, v in sorted(hands_per_frame.items())},
        "sides": dict(sides),
        "fps": n_frames / wall_s if wall_s > 0 else 0.0,
        "pipeline_fps": n_frames / process_s if process_s > 0 else 0.0,
        "wall_s": wall_s,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    per_frame = " ".join(f"{k_}:{v}" for k_, v in summary["hands_per_frame"].items())
    print(f"frames={n_frames} hands={n_hands} (per frame: {per_frame}) fps={summary['fps']:.1f}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The ``hand-mesh`` argument parser."""
    parser = argparse.ArgumentParser(prog="hand-mesh", description="Hand meshes from images and videos, offline.")
    subs = parser.add_subparsers(dest="command", required=True)
    p = subs.add_parser("run", help="run the pipeline on a video, an image or a folder of images")
    p.add_argument("--input", required=True, help="video file, image file, or folder of images")
    p.add_argument("--output", required=True, help="output folder (created)")
    g = p.add_argument_group("intrinsics [px] (default: assumed, 60 deg horizontal FOV)")
    g.add_argument("--fx", type=float)
    g.add_argument("--fy", type=float, help="default: --fx")
    g.add_argument("--cx", type=float, help="default: image centre")
    g.add_argument("--cy", type=float, help="default: image centre")
    p.add_argument("--mano-model-dir", default="", help="folder with MANO_RIGHT.pkl / MANO_LEFT.pkl "
                                                       "(default: the built-in hand model)")
    p.add_argument("--max-hands", type=int, default=2)
    p.add_argument("--min-score", type=float, default=0.5)
    p.add_argument("--mirrored", action="store_true", help="the input is mirrored (selfie view)")
    p.add_argument("--mesh-format", choices=("ply", "obj"), default="ply")
    p.add_argument("--no-overlay", action="store_true", help="write no overlay images / video")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--detector", default="auto",
                   help="auto (mediapipe_torch on CUDA, mediapipe on CPU) | mediapipe | mediapipe_torch")
    p.add_argument("--detector-model", default="full", help="full | lite MediaPipe hand networks")
    p.add_argument("--regressor", default="fit")
    p.add_argument("--checkpoint", default="", help="HaMeR checkpoint (--regressor hamer)")
    p.add_argument("--precision", default="auto", help="hamer, mediapipe_torch: auto | fp32 | bf16 | fp16")
    p.add_argument("--batch-size", type=int, default=8, help="hand crops per forward")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--smoothing", default="none")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Console-script entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        print("hand-mesh: error: --max-frames must be >= 1", file=sys.stderr)
        return 2
    try:
        run(args)
    except InputError as e:
        print(f"hand-mesh: error: {e}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"hand-mesh: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
