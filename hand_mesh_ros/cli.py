"""``hand-mesh``: offline runs of the hand-mesh pipeline, no ROS graph needed.

Usage::

    hand-mesh run --input VIDEO|IMAGE|FOLDER|BAG [--output DIR] [--fx FX --fy FY --cx CX --cy CY]
                  [--camera-info CALIBRATION.yaml] [--depth VIDEO|FOLDER|FILE]
                  [--image-topic T --camera-info-topic T] [--output-bag OUT.mcap [--bag-images]
                  [--overwrite]] [--mano-model-dir DIR] [--max-hands N] [--min-score S]
                  [--mirrored] [--mesh-format ply|obj] [--no-overlay] [--max-frames N]

Images and image folders run MediaPipe in static-image mode (every image independent);
videos and bags run in tracking mode (landmarks and track ids carried from frame to frame).

A rosbag2 input (a folder with ``metadata.yaml``, or a ``.mcap`` / ``.db3`` file; read with
``rosbags``, no ROS install needed, see ``hand_mesh_ros.bag``) gives the frames of one
``sensor_msgs/Image`` or ``CompressedImage`` topic (``--image-topic``; default the bag's
only one, else an error listing them) and their ``CameraInfo`` (``--camera-info-topic``;
default ``camera_info`` beside the image topic), used for placement unless ``--fx`` is
given. Messages that cannot be used (unknown encoding, corrupt compressed frame, CameraInfo
of another size) are skipped, counted and named once each; a bag with no usable frame, no
image topic, or that cannot be read (e.g. truncated) is an error.

``--output-bag OUT.mcap`` writes ``/hands/mesh`` (HandMeshArray), ``/tf`` and
``/hands/markers``, stamped with the source image's stamp in its optical frame (and, with
``--bag-images``, the input images and CameraInfo) as an MCAP rosbag2 for ``ros2 bag play``
or Foxglove; an existing path is an error unless ``--overwrite``.

``--camera-info`` reads the intrinsics and lens distortion from a camera_calibration YAML
(``~/.ros/camera_info/<camera>.yaml``); the input is then the raw (distorted) image, or
with ``--rectified`` a rectified one (``image_rect``: the CameraInfo's ``P``, no distortion,
also for a bag's CameraInfo).
``--depth`` gives a depth frame registered to each colour frame, paired by index
(``depth_frames.DepthSource``: a folder of 16-bit PNG / TIFF in millimetres or ``.npy`` in
metres, sorted by name, or a 16-bit lossless video in millimetres); hands are then placed
from depth (``translation_source`` "depth", or "intrinsics" on a counted fallback, see
``summary.json`` ``fallbacks``). Depth needs intrinsics (``--camera-info`` or ``--fx``).

Output folder ``DIR``:

* ``frames/NNNNNN.json``: one per frame: frame index, source image file or video time,
  image size, intrinsics used (and whether assumed), and per hand: side, track id, score,
  bbox, 2D keypoints [px], 21 joints [m, camera optical frame], MANO parameters,
  translation, translation source, hand model;
* ``meshes/NNNNNN_<side>_<track_id>.<ply|obj>``: each hand's mesh [m, camera optical frame]
  with that side's outward face winding;
* ``overlay/NNNNNN.png`` (unless ``--no-overlay``): the meshes drawn over the frame
  (``core.render``); for a video also ``overlay.mp4`` (mp4v);
* ``summary.json``: counts and speed (and skipped bag messages by reason), also printed as
  one line ``frames=N hands=M (per frame: K:count ...) fps=X``.

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

from hand_mesh_ros.bag import BagFrameSource, is_bag
from hand_mesh_ros.core.joint_frames import rotations_to_quaternions
from hand_mesh_ros.core.types import (SIDE_NAMES, TRANSLATION_ASSUMED, TRANSLATION_DEPTH, TRANSLATION_INTRINSICS,
                                      CameraIntrinsics)
from hand_mesh_ros.frames import FrameSource, InputError
from hand_mesh_ros.ros.camera_info import intrinsics_from_camera_info
from hand_mesh_ros.ros.messages import primary_flags

DEFAULT_FRAME_ID = "camera_color_optical_frame"

TRANSLATION_SOURCE_NAMES = {TRANSLATION_ASSUMED: "assumed", TRANSLATION_INTRINSICS: "intrinsics",
                            TRANSLATION_DEPTH: "depth"}


def _list(a) -> list:
    return np.asarray(a, np.float64).round(6).tolist()


def hand_record(hand, primary: Optional[bool] = None) -> dict:
    """JSON-ready dict of one ``types.Hand`` (lists of floats; units as in ``Hand``);
    ``primary`` as ``HandMesh.primary`` (default ``hand.primary``)."""
    return {
        "side": SIDE_NAMES.get(int(hand.side), str(hand.side)),
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


def _float_or_none(v: float):
    """JSON has no NaN: None for a value that is not known."""
    return None if not np.isfinite(v) else round(float(v), 6)


def _intrinsics_from_args(args, width: int, height: int):
    """``CameraIntrinsics`` from --camera-info or --fx/--fy/--cx/--cy, or None (the pipeline
    assumes them)."""
    if args.camera_info:
        from hand_mesh_ros.ros.camera_info import load_camera_info_yaml

        if args.fx is not None or args.fy is not None:
            raise InputError("give either --camera-info or --fx/--fy, not both")
        try:
            k = load_camera_info_yaml(args.camera_info, rectified=args.rectified)
        except (FileNotFoundError, ValueError) as e:
            raise InputError(str(e)) from e
        if k is not None and (k.width, k.height) != (width, height):
            raise InputError(f"{args.camera_info} is for {k.width}x{k.height} images, the input is {width}x{height}")
        return k
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


def _open_source(args, warn):
    if is_bag(args.input):
        first = set()

        def on_skip(reason: str, message: str):
            if reason not in first:  # each kind once; all are counted in the summary
                first.add(reason)
                warn(f"hand-mesh: skipping bag messages ({reason}), e.g. {message}")
        return BagFrameSource(args.input, args.image_topic, args.camera_info_topic, args.max_frames, on_skip)
    if args.image_topic or args.camera_info_topic:
        raise InputError(f"--image-topic / --camera-info-topic need a rosbag2 input; {args.input} is not one "
                         "(a folder with metadata.yaml, or a .mcap / .db3 file)")
    return FrameSource(args.input, args.max_frames)


class _BagOutput:
    """``--output-bag``: /hands/mesh, /tf, /hands/markers (+ the inputs with --bag-images),
    built by ``ros.messages`` as the node publishes them."""

    def __init__(self, args, source, faces_for):
        from hand_mesh_ros.bag import BagWriter

        self.writer = BagWriter(args.output_bag, args.overwrite)
        self.args, self.source, self.faces_for = args, source, faces_for
        self.start_ns = time.time_ns()

    def header(self, frame):
        """The source image's header: its stamp and optical frame (video / images: the run's
        start time + the frame time; a stamp of 0 would mean "latest" to tf2)."""
        from std_msgs.msg import Header

        if getattr(frame, "stamp_ns", None):
            stamp, frame_id = frame.stamp_ns, frame.frame_id or self.args.frame_id
        else:
            t = frame.time_s if frame.time_s is not None else 0.1 * frame.index
            stamp, frame_id = self.start_ns + int(round(t * 1e9)), self.args.frame_id
        h = Header(frame_id=frame_id)
        h.stamp.sec, h.stamp.nanosec = divmod(stamp, 1_000_000_000)
        return h, stamp

    def write(self, frame, res, header, stamp) -> None:
        from tf2_msgs.msg import TFMessage

        from hand_mesh_ros.ros import messages

        w, log_time = self.writer, getattr(frame, "log_time_ns", 0) or stamp
        w.write("/hands/mesh", messages.hand_mesh_array(res.hands, header), log_time)
        w.write("/tf", TFMessage(transforms=messages.joint_transforms(res.hands, header, self.args.tf_prefix)),
                log_time)
        w.write("/hands/markers", messages.marker_array(res.hands, header, self.faces_for), log_time)
        if not self.args.bag_images:
            return
        if getattr(frame, "raw", None) is not None:  # the bag's own messages, as recorded
            s = self.source
            w.write_raw(s.image_topic, s.image_type, frame.raw, log_time, s.image_msgdef)
            if frame.info_raw is not None:
                w.write_raw(s.camera_info_topic, "sensor_msgs/msg/CameraInfo", frame.info_raw, log_time, s.info_msgdef)
            return
        from hand_mesh_ros.ros.camera_publisher import camera_info_msg
        from hand_mesh_ros.ros.image_conversion import rgb_to_image

        k = res.intrinsics
        h, wd = frame.image.shape[:2]
        w.write("/image", rgb_to_image(frame.image, header), log_time)
        w.write("/camera_info", camera_info_msg(wd, h, header, k.fx, k.fy, k.cx, k.cy), log_time)


def run(args) -> dict:
    """The ``run`` subcommand; returns the summary dict (also written to summary.json)."""
    import cv2
    import trimesh
    from tqdm import tqdm

    from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
    from hand_mesh_ros.core.render import render_overlay

    if not args.output and not args.output_bag:
        raise InputError("give --output DIR and / or --output-bag OUT.mcap")
    if args.bag_images and not args.output_bag:
        raise InputError("--bag-images needs --output-bag")
    source = _open_source(args, lambda text: tqdm.write(text, file=sys.stderr))
    depth_source = None
    if args.depth:
        from hand_mesh_ros.depth_frames import DepthSource

        depth_source = DepthSource(args.depth)
        if not depth_source.is_video and not source.is_video and len(depth_source) < len(source):
            raise InputError(f"{args.depth} holds {len(depth_source)} depth frames for {len(source)} colour frames")
    depth_frames = iter(depth_source) if depth_source is not None else None
    out = Path(args.output) if args.output else None
    if out is not None:
        for sub in ("frames", "meshes") + (() if args.no_overlay else ("overlay",)):
            (out / sub).mkdir(parents=True, exist_ok=True)

    cfg = PipelineConfig(
        detector=args.detector, detector_model=args.detector_model, regressor=args.regressor, device=args.device,
        max_hands=args.max_hands,
        min_score=args.min_score, mano_model_dir=args.mano_model_dir or "", checkpoint=args.checkpoint or "",
        smoothing=args.smoothing, mirrored=args.mirrored, static_image_mode=not source.is_video,
        precision=args.precision, batch_size=args.batch_size,
        # given ones only: the defaults are PipelineConfig's (the node's)
        **{k: v for k, v in (("smoothing_min_cutoff", args.smoothing_min_cutoff),
                             ("smoothing_beta", args.smoothing_beta), ("track_max_missed", args.track_max_missed),
                             ("side_hysteresis", args.side_hysteresis)) if v is not None},
    )
    pipe = HandMeshPipeline(cfg)
    bag_out = _BagOutput(args, source, pipe.hand_model.faces_for) if args.output_bag else None
    writer = None
    hands_per_frame: collections.Counter = collections.Counter()
    sides: collections.Counter = collections.Counter()
    n_frames = n_hands = 0
    process_s = 0.0
    t_start = time.perf_counter()
    k = None
    try:
        for frame in tqdm(source, total=len(source), unit="frame", desc="hand-mesh", file=sys.stderr):
            h, w = frame.image.shape[:2]
            if frame.index == 0 or not source.is_video:
                k_args = _intrinsics_from_args(args, w, h)
            k = k_args
            if k is None and getattr(frame, "camera_info", None) is not None:
                # the bag's, lens distortion included (P, none, for rectified images)
                k = intrinsics_from_camera_info(frame.camera_info, rectified=args.rectified)
            depth = None
            if depth_frames is not None:
                depth = next(depth_frames, None)
                if depth is None:
                    raise InputError(f"{args.depth} ends before colour frame {frame.index}")
            t0 = time.perf_counter()
            res = pipe.process(frame.image, k, camera="cam0", depth=depth)
            process_s += time.perf_counter() - t0
            n_frames += 1
            n_hands += len(res.hands)
            hands_per_frame[len(res.hands)] += 1
            sides.update(SIDE_NAMES.get(int(hand.side), str(hand.side)) for hand in res.hands)
            header, stamp = bag_out.header(frame) if bag_out is not None else (None, None)
            if bag_out is not None:
                bag_out.write(frame, res, header, stamp)
            if out is None:
                continue
            name = f"{frame.index:06d}"
            record = {
                "frame": frame.index,
                "image_file": frame.file,
                "time_s": frame.time_s,
                "image_size": {"width": w, "height": h},
                "intrinsics": {"fx": res.intrinsics.fx, "fy": res.intrinsics.fy, "cx": res.intrinsics.cx,
                               "cy": res.intrinsics.cy, "assumed": bool(res.intrinsics.assumed),
                               "distortion_model": res.intrinsics.distortion_model,
                               "distortion": list(res.intrinsics.distortion)},
                "timings_ms": {k_: round(float(v), 3) for k_, v in res.timings_ms.items()},
                "hands": [],
            }
            if getattr(frame, "stamp_ns", None) or stamp is not None:  # the stamp of the messages
                record["stamp_ns"] = int(stamp if stamp is not None else frame.stamp_ns)
                record["frame_id"] = header.frame_id if header is not None else frame.frame_id
            for hand, primary in zip(res.hands, primary_flags(res.hands)):
                rec = hand_record(hand, primary)
                mesh_name = f"{name}_{rec['side']}_{int(hand.track_id)}.{args.mesh_format}"
                faces = np.asarray(pipe.hand_model.faces_for(hand.side), np.int64)
                trimesh.Trimesh(np.asarray(hand.vertices, np.float64), faces, process=False).export(
                    out / "meshes" / mesh_name)
                rec["mesh_file"] = f"meshes/{mesh_name}"
                record["hands"].append(rec)
            (out / "frames" / f"{name}.json").write_text(json.dumps(record, indent=1))
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
        if bag_out is not None:
            bag_out.writer.close()  # a valid bag of what was processed, also after an error
        pipe.close()
    skipped = dict(getattr(source, "skipped", {}))
    if n_frames == 0 and skipped:
        raise InputError(f"no usable frame on {source.image_topic} of {args.input}: skipped "
                         + ", ".join(f"{n} x {r}" for r, n in sorted(skipped.items())))
    wall_s = time.perf_counter() - t_start
    summary = {
        "input": str(args.input),
        "output": str(out) if out is not None else None,
        "frames": n_frames,
        "hands": n_hands,
        "hands_per_frame": {str(k_): v for k_, v in sorted(hands_per_frame.items())},
        "sides": dict(sides),
        "fps": n_frames / wall_s if wall_s > 0 else 0.0,
        "pipeline_fps": n_frames / process_s if process_s > 0 else 0.0,
        "wall_s": wall_s,
        "fallbacks": dict(pipe.fallbacks),
        "redetections": pipe.redetections,
        "skipped": dict(pipe.skipped),
    }
    if isinstance(source, BagFrameSource):
        summary.update(image_topic=source.image_topic, camera_info_topic=source.camera_info_topic,
                       skipped=skipped)
    if bag_out is not None:
        summary.update(output_bag=str(args.output_bag), output_bag_messages=dict(bag_out.writer.counts))
    if out is not None:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    per_frame = " ".join(f"{k_}:{v}" for k_, v in summary["hands_per_frame"].items())
    extra = f" skipped={sum(skipped.values())}" if skipped else ""
    print(f"frames={n_frames} hands={n_hands} (per frame: {per_frame}) fps={summary['fps']:.1f}{extra}")
    return summary


def build_parser() -> argparse.ArgumentParser:
    """The ``hand-mesh`` argument parser."""
    parser = argparse.ArgumentParser(prog="hand-mesh", description="Hand meshes from images and videos, offline.")
    subs = parser.add_subparsers(dest="command", required=True)
    p = subs.add_parser("run", help="run the pipeline on a video, an image or a folder of images")
    p.add_argument("--input", required=True, help="video file, image file, folder of images, or rosbag2 "
                                                  "(folder with metadata.yaml, .mcap or .db3)")
    p.add_argument("--output", default=None, help="output folder (created): JSON, meshes, overlays")
    b = p.add_argument_group("rosbag2")
    b.add_argument("--image-topic", default=None, help="bag input: Image or CompressedImage topic "
                                                       "(default: the bag's only one)")
    b.add_argument("--camera-info-topic", default=None, help="bag input: CameraInfo topic "
                                                             "(default: camera_info beside the image topic)")
    b.add_argument("--output-bag", default=None, help="write /hands/mesh, /tf, /hands/markers as an MCAP rosbag2 "
                                                      "(OUT.mcap: one file; another name: a rosbag2 folder)")
    b.add_argument("--bag-images", action="store_true", help="also write the input images and CameraInfo")
    b.add_argument("--overwrite", action="store_true", help="replace an existing --output-bag")
    b.add_argument("--frame-id", default=DEFAULT_FRAME_ID, help="optical frame of video / image inputs "
                                                               "in the output bag")
    b.add_argument("--tf-prefix", default="hand_", help="TF frame prefix in the output bag")
    g = p.add_argument_group("intrinsics [px] (default: assumed, 60 deg horizontal FOV)")
    g.add_argument("--fx", type=float)
    g.add_argument("--fy", type=float, help="default: --fx")
    g.add_argument("--cx", type=float, help="default: image centre")
    g.add_argument("--cy", type=float, help="default: image centre")
    g.add_argument("--camera-info", default="", help="camera_calibration YAML: intrinsics and lens distortion "
                                                     "(instead of --fx/--fy/--cx/--cy)")
    g.add_argument("--rectified", action="store_true", help="the images are rectified (image_rect): intrinsics "
                                                            "from the CameraInfo's P (--camera-info or the bag's), "
                                                            "no lens distortion")
    p.add_argument("--depth", default="", help="registered depth per colour frame: folder of 16-bit PNG/TIFF [mm] "
                                               "or .npy [m], one such file, or a 16-bit lossless video [mm]")
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
    t = p.add_argument_group("tracking and smoothing (videos and bags; the node's parameters of the same names)")
    t.add_argument("--smoothing", default="none", help="none | one_euro")
    t.add_argument("--smoothing-min-cutoff", type=float, help="One Euro cutoff at rest [Hz] (default 2; lower = "
                                                              "less jitter, more lag)")
    t.add_argument("--smoothing-beta", type=float, help="One Euro speed coefficient (default 0.5)")
    t.add_argument("--track-max-missed", type=int, help="frames a track keeps its id while its hand is not seen "
                                                        "(default 5)")
    t.add_argument("--side-hysteresis", type=int, help="consecutive frames of the other side label to change a "
                                                       "track's side (default 10)")
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
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"hand-mesh: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
