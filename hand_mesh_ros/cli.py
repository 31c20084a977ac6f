"""``hand-mesh``: offline runs of the hand-mesh pipeline, no ROS graph needed.

Usage::

    hand-mesh run --input VIDEO|IMAGE|FOLDER|BAG [--output DIR] [--fx FX --fy FY --cx CX --cy CY]
                  [--camera-info CALIBRATION.yaml] [--depth VIDEO|FOLDER|FILE]
                  [--image-topic T --camera-info-topic T] [--output-bag OUT.mcap [--bag-images]
                  [--overwrite]] [--mesh-format ply|obj] [--no-overlay] [--max-frames N]
                  [--<parameter> VALUE ...]

``--<parameter>``: every pipeline parameter of the node (``config.PARAMETERS``: ``--detector``,
``--max-hands``, ``--smoothing-min-cutoff``, ``--mirrored`` / ``--no-mirrored``, ...), and
``--tf-prefix`` and ``--image-rectified`` (``--rectified``), with the node's defaults and
checks. Videos and bags are tracked on the frames' own times (``Frame.time_s``), so
tracking and smoothing give the same result on any machine.

Images and image folders run MediaPipe in static-image mode (every image independent);
videos and bags run in tracking mode (landmarks and track ids carried from frame to frame).

A run reads one source of frames (``frames.FrameStream``), gives each frame its intrinsics
and depth (``offline.inputs``), processes it and hands the result to every output sink
(``offline.sinks``); this module maps the flags onto those parts.

Sources: a video, an image or a folder of images (``frames.FrameSource``), or a rosbag2 (a
folder with ``metadata.yaml``, or a ``.mcap`` / ``.db3`` file; read with ``rosbags``, no ROS
install needed, ``bag.BagFrameSource``): the frames of one ``sensor_msgs/Image`` or
``CompressedImage`` topic (``--image-topic``; default the bag's only one, else an error
listing them) and their ``CameraInfo`` (``--camera-info-topic``; default ``camera_info``
beside the image topic), used for placement unless ``--fx`` is given. Messages that cannot
be used (unknown encoding, corrupt compressed frame, CameraInfo of another size) are
skipped, counted and named once each; a bag with no usable frame, no image topic, or that
cannot be read (e.g. truncated) is an error.

``--camera-info`` reads the intrinsics and lens distortion from a camera_calibration YAML
(``~/.ros/camera_info/<camera>.yaml``); the input is then the raw (distorted) image, or
with ``--rectified`` a rectified one (``image_rect``: the CameraInfo's ``P``, no distortion,
also for a bag's CameraInfo).
``--depth`` gives a depth frame registered to each colour frame, paired by index
(``depth_frames.DepthSource``: a folder of 16-bit PNG / TIFF in millimetres or ``.npy`` in
metres, sorted by name, or a 16-bit lossless video in millimetres); hands are then placed
from depth (``translation_source`` "depth", or "intrinsics" on a counted fallback, see
``summary.json`` ``fallbacks``). Depth needs intrinsics (``--camera-info`` or ``--fx``).

Sinks: ``--output DIR`` writes ``frames/NNNNNN.json`` (frame index, image file or video
time, image size, intrinsics used, stamp, and per hand: side, track id, score, bbox, 2D
keypoints [px], 21 joints [m, camera optical frame], MANO parameters, translation and its
source, hand model), ``meshes/NNNNNN_<side>_<track_id>.<ply|obj>``, ``overlay/NNNNNN.png``
(unless ``--no-overlay``; for a video also ``overlay.mp4``) and ``summary.json``: counts and
speed (skipped bag messages by reason; the pipeline's skipped hands in ``hands_skipped``),
also printed as one line
``frames=N hands=M (per frame: K:count ...) fps=X``. ``--output-bag OUT.mcap`` writes
``/hands/mesh`` (HandMeshArray), ``/tf`` and ``/hands/markers``, stamped with the source
image's stamp in its optical frame (and, with ``--bag-images``, the input images and
CameraInfo) as an MCAP rosbag2 for ``ros2 bag play`` or Foxglove; an existing path is an
error unless ``--overwrite``.

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
from typing import Callable, List, Optional

from hand_mesh_ros.bag import BagFrameSource, is_bag
from hand_mesh_ros.config import PipelineConfig, add_cli_arguments, cli_values
from hand_mesh_ros.core.types import FrameResult
from hand_mesh_ros.frames import FrameSource, FrameStream, InputError
from hand_mesh_ros.offline.inputs import DepthPairing, FrameIntrinsics
from hand_mesh_ros.offline.records import side_name
from hand_mesh_ros.offline.sinks import BagSink, FacesFor, FrameJsonSink, MeshSink, OverlaySink, Sinks
from hand_mesh_ros.offline.stamps import DEFAULT_FRAME_ID, StampClock


def pipeline_config(args, static_image_mode: bool) -> PipelineConfig:
    """The ``PipelineConfig`` of the parameter flags (``config.add_cli_arguments``: the node's
    parameters of the same names, same defaults; checked by ``PipelineConfig.validate``)."""
    return PipelineConfig.from_values(cli_values(args), static_image_mode=static_image_mode)


def _open_source(args, warn: Callable[[str], None]) -> FrameStream:
    """The frames of ``--input``: a rosbag2's (each kind of unusable message named once by
    ``warn``), else a video's, an image folder's or an image's."""
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


def _open_sinks(args, source: FrameStream, faces_for: FacesFor) -> Sinks:
    """The sinks the output flags ask for (the output bag first: it refuses an existing path)."""
    makers = []
    if args.output_bag:
        makers.append(lambda: BagSink(args.output_bag, args.overwrite, args.tf_prefix, faces_for,
                                      images_of=source if args.bag_images else None))
    if args.output:
        out, fmt = Path(args.output), args.mesh_format
        makers += [lambda: MeshSink(out, fmt, faces_for), lambda: FrameJsonSink(out, fmt)]
        if not args.no_overlay:
            video_fps = (source.fps or 30.0) if source.is_video else None
            makers.append(lambda: OverlaySink(out, faces_for, video_fps))
    return Sinks.open(makers)


class _Tally:
    """Frames, hands and processing time of a run, for summary.json."""

    def __init__(self):
        self.frames = self.hands = 0
        self.process_s = 0.0
        self.hands_per_frame: collections.Counter = collections.Counter()
        self.sides: collections.Counter = collections.Counter()

    def add(self, result: FrameResult, process_s: float) -> None:
        self.frames += 1
        self.hands += len(result.hands)
        self.hands_per_frame[len(result.hands)] += 1
        self.sides.update(side_name(hand.side) for hand in result.hands)
        self.process_s += process_s

    def summary(self, wall_s: float) -> dict:
        return {
            "frames": self.frames,
            "hands": self.hands,
            "hands_per_frame": {str(n): count for n, count in sorted(self.hands_per_frame.items())},
            "sides": dict(self.sides),
            "fps": self.frames / wall_s if wall_s > 0 else 0.0,
            "pipeline_fps": self.frames / self.process_s if self.process_s > 0 else 0.0,
            "wall_s": wall_s,
        }


def run(args) -> dict:
    """The ``run`` subcommand: open the source, build the pipeline, open the sinks, then per
    frame its intrinsics and depth, the pipeline, every sink; returns the summary dict
    (also written to summary.json and printed as one line)."""
    from tqdm import tqdm

    from hand_mesh_ros.core.pipeline import HandMeshPipeline

    if not args.output and not args.output_bag:
        raise InputError("give --output DIR and / or --output-bag OUT.mcap")
    if args.bag_images and not args.output_bag:
        raise InputError("--bag-images needs --output-bag")
    source = _open_source(args, lambda text: tqdm.write(text, file=sys.stderr))
    depth = DepthPairing(args.depth, source) if args.depth else None
    intrinsics = FrameIntrinsics(args.camera_info, args.image_rectified, args.fx, args.fy, args.cx, args.cy)
    pipe = HandMeshPipeline(pipeline_config(args, static_image_mode=not source.is_video))
    tally = _Tally()
    try:
        sinks = _open_sinks(args, source, pipe.hand_model.faces_for)
        stamp_of = StampClock(args.frame_id, synthesize=sinks.needs_stamp)
        t_start = time.perf_counter()
        try:
            for frame in tqdm(source, total=len(source), unit="frame", desc="hand-mesh", file=sys.stderr):
                k = intrinsics(frame)
                frame_depth = depth(frame) if depth is not None else None
                t0 = time.perf_counter()
                # the frame's own time: tracking and smoothing do not depend on the machine's speed
                result = pipe.process(frame.image, k, camera="cam0", stamp=frame.time_s, depth=frame_depth)
                tally.add(result, time.perf_counter() - t0)
                sinks.write(frame, result, stamp_of(frame))
        finally:
            outputs = sinks.close()  # every sink's files complete, also after an error
    finally:
        pipe.close()
    source_entries = source.summary()
    summary = {
        "input": str(args.input),
        "output": str(Path(args.output)) if args.output else None,
        **tally.summary(time.perf_counter() - t_start),
        "fallbacks": dict(pipe.fallbacks),
        "redetections": pipe.redetections,
        "skipped": dict(pipe.skipped),
        "hands_skipped": dict(pipe.skipped),
        **source_entries,  # a bag's "skipped" are its messages (its hands' are in "hands_skipped")
        **outputs,
    }
    if args.output:
        (Path(args.output) / "summary.json").write_text(json.dumps(summary, indent=1))
    per_frame = " ".join(f"{n}:{count}" for n, count in summary["hands_per_frame"].items())
    skipped = source_entries.get("skipped")
    extra = f" skipped={sum(skipped.values())}" if skipped else ""
    print(f"frames={tally.frames} hands={tally.hands} (per frame: {per_frame}) fps={summary['fps']:.1f}{extra}")
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
    g = p.add_argument_group("intrinsics [px] (default: assumed, 60 deg horizontal FOV)")
    g.add_argument("--fx", type=float)
    g.add_argument("--fy", type=float, help="default: --fx")
    g.add_argument("--cx", type=float, help="default: image centre")
    g.add_argument("--cy", type=float, help="default: image centre")
    g.add_argument("--camera-info", default="", help="camera_calibration YAML: intrinsics and lens distortion "
                                                     "(instead of --fx/--fy/--cx/--cy)")
    p.add_argument("--depth", default="", help="registered depth per colour frame: folder of 16-bit PNG/TIFF [mm] "
                                               "or .npy [m], one such file, or a 16-bit lossless video [mm]")
    p.add_argument("--mesh-format", choices=("ply", "obj"), default="ply")
    p.add_argument("--no-overlay", action="store_true", help="write no overlay images / video")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    add_cli_arguments(p.add_argument_group(
        "parameters (the node's parameters of the same names and defaults; config/hands.yaml; tracking and "
        "smoothing apply to videos and bags, images are independent frames)"))
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
    except (ValueError, OSError, ImportError) as e:  # e.g. a bad parameter, an unwritable output
        print(f"hand-mesh: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
