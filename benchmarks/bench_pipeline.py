"""Benchmark: MediaPipe detection alone vs the whole hand-mesh pipeline, on the same frames.

Usage::

    python benchmarks/bench_pipeline.py --input VIDEO [--max-frames N] [--warmup K] [--device cpu]
                                        [--size WxH] [--detection-tiling auto] [--tile-scan round_robin]
    make bench
    make bench BENCH_ARGS="--size 1280x720"     # what tiling costs a 1280x720 stream

Over the same decoded frames (RGB, in memory), two MediaPipe graphs in tracking (video)
mode, each frame given to both in turn (so both see the same load of a shared machine):

1. detection alone: ``MediaPipeHandDetector.detect`` (the pipeline's own detector class,
   same settings) timed per frame;
2. whole pipeline: ``HandMeshPipeline.process`` (detect + track + fit + place, per-stage
   times from ``FrameResult.timings_ms``) plus building the ``hand_mesh_msgs/HandMeshArray``
   with ``hand_mesh_ros.ros.messages`` (and serializing it, as rclpy does before sending),
   timed per frame. The overlay render (``core.render``, off by default in the node) is
   timed too but not counted in "whole".

Statistics are ms per frame (mean, p50, p90) over all frames after the first ``--warmup``
(graph start-up, first allocations); then the fit's cost per hand (regress / hands) and
whole / detection alone.

``--size`` resizes the frames (``cv2.INTER_AREA``) first; the pipeline's detector follows
the node's defaults (``detector: auto``, ``detection_tiling``, ``tile_scan``), so frames
larger than 640x480 get the tiled palm search of ``mediapipe_torch``, while "detection
alone" stays MediaPipe's graph on the whole frame — what ``detection_tiling: off`` runs on
the CPU: pipeline detect / detection alone is then what the tiles cost a stream.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

# DDS traffic (if any) stays on loopback, always.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_args import frame_size  # noqa: E402
from hand_mesh_ros.config import BY_NAME  # noqa: E402


def read_frames(path: str, max_frames: int, size=None) -> List[np.ndarray]:
    """Decode up to ``max_frames`` frames (0 = all) as (H, W, 3) uint8 RGB, resized to
    ``size`` (w, h) when given."""
    import cv2

    from hand_mesh_ros.frames import FrameSource, InputError

    try:
        frames = [f.image for f in FrameSource(path, max_frames or None)]
    except InputError as e:
        raise SystemExit(f"bench_pipeline: {e}")
    if size is not None:
        frames = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in frames]
    if not frames:
        raise SystemExit(f"bench_pipeline: no frames in {path}")
    return frames


def stats(ms: List[float]) -> Dict[str, float]:
    a = np.asarray(ms, np.float64)
    return {"mean": float(a.mean()), "p50": float(np.percentile(a, 50)), "p90": float(np.percentile(a, 90))}


def detection_timer(args):
    """(time one frame [ms], close) of a MediaPipe graph on its own."""
    from hand_mesh_ros.core.detectors.mediapipe_hands import MediaPipeHandDetector

    det = MediaPipeHandDetector(max_hands=args.max_hands, min_score=args.min_score, static_image_mode=False)

    def timed(img) -> float:
        t0 = time.perf_counter()
        det.detect(img)
        return (time.perf_counter() - t0) * 1e3

    return timed, det.close


def _message_builder():
    """(build, serialize) callables, or None with the reason when ROS messages are missing."""
    try:
        from rclpy.serialization import serialize_message
        from std_msgs.msg import Header

        from hand_mesh_ros.ros import messages
    except ImportError as e:  # no rclpy / hand_mesh_msgs in this environment
        return None, f"message building not measured ({e})"

    def build(hands):
        h = Header(frame_id="camera_color_optical_frame")
        h.stamp.sec, h.stamp.nanosec = 1, 0
        return messages.hand_mesh_array(hands, h)

    return (build, serialize_message), ""


def bench(frames, args):
    from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
    from hand_mesh_ros.core.render import render_overlay

    # the default detector: on the CPU, MediaPipe's graph for frames without tiles (640x480
    # and smaller), mediapipe_torch with tiles for larger ones
    pipe = HandMeshPipeline(PipelineConfig(regressor="fit", device=args.device,
                                           max_hands=args.max_hands, min_score=args.min_score,
                                           static_image_mode=False, detection_tiling=args.detection_tiling,
                                           tile_scan=args.tile_scan))
    builder, note = _message_builder()
    rows: Dict[str, List[float]] = {}
    hands_count = []
    det_ms = []
    detect_alone, close_alone = detection_timer(args)
    try:
        for img in frames:
            det_ms.append(detect_alone(img))
            t0 = time.perf_counter()
            res = pipe.process(img, None, camera="cam0")
            t1 = time.perf_counter()
            row = dict(res.timings_ms)
            row["process (wall)"] = (t1 - t0) * 1e3
            whole = row["process (wall)"]
            if builder is not None:
                build, serialize = builder
                msg = build(res.hands)
                t2 = time.perf_counter()
                serialize(msg)
                t3 = time.perf_counter()
                row["message build"] = (t2 - t1) * 1e3
                row["message serialize"] = (t3 - t2) * 1e3
                whole = (t3 - t0) * 1e3
            row["whole"] = whole
            t4 = time.perf_counter()
            render_overlay(img, res.hands, res.intrinsics, pipe.hand_model.faces_for)
            row["overlay render (not in whole)"] = (time.perf_counter() - t4) * 1e3
            for k, v in row.items():
                rows.setdefault(k, []).append(v)
            hands_count.append(len(res.hands))
    finally:
        pipe.close()
        close_alone()
    return det_ms, rows, hands_count, note, pipe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="video file")
    ap.add_argument("--max-frames", type=int, default=0, help="0 = all frames")
    ap.add_argument("--warmup", type=int, default=5, help="first frames left out of the statistics")
    ap.add_argument("--device", default="cpu", help="torch device of the fit: auto | cpu | cuda")
    ap.add_argument("--max-hands", type=int, default=2)
    ap.add_argument("--min-score", type=float, default=0.5)
    ap.add_argument("--size", type=frame_size, help="resize the frames to WxH first (e.g. 1280x720)")
    ap.add_argument("--detection-tiling", default=BY_NAME["detection_tiling"].default)
    ap.add_argument("--tile-scan", default=BY_NAME["tile_scan"].default)
    args = ap.parse_args(argv)
    if not Path(args.input).exists():
        print(f"bench_pipeline: input not found: {args.input}", file=sys.stderr)
        return 2

    import torch

    frames = read_frames(args.input, args.max_frames, args.size)
    if len(frames) <= args.warmup:
        print(f"bench_pipeline: need more than --warmup={args.warmup} frames, got {len(frames)}", file=sys.stderr)
        return 2
    w = args.warmup
    det_ms, rows, hands_count, note, pipe = bench(frames, args)

    h, wd = frames[0].shape[:2]
    print(f"input: {args.input} ({len(frames)} frames {wd}x{h}; stats over frames {w}..{len(frames) - 1})")
    print(f"hand model: {pipe.hand_model.name}, fit device: {pipe.device}, torch threads: {torch.get_num_threads()}, "
          f"hands per frame (mean): {np.mean(hands_count[w:]):.2f}")
    print(f"detector: {pipe.detector_name} (detection_tiling {args.detection_tiling}, tile_scan {args.tile_scan}); "
          f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if note:
        print(f"NOTE: {note}")
    order = ["detect", "track", "regress", "place", "process (wall)", "message build", "message serialize",
             "whole", "overlay render (not in whole)"]
    table = [("detection alone (own graph, same frames)", stats(det_ms[w:]))]
    table += [(f"pipeline: {k}", stats(rows[k][w:])) for k in order if k in rows]
    table += [(f"pipeline: {k}", stats(v[w:])) for k, v in rows.items() if k not in order]
    name_w = max(len(n) for n, _ in table)
    print(f"{'stage (ms/frame)':<{name_w}}  {'mean':>8} {'p50':>8} {'p90':>8}")
    for name, s in table:
        print(f"{name:<{name_w}}  {s['mean']:8.2f} {s['p50']:8.2f} {s['p90']:8.2f}")
    n_hands = int(np.sum(hands_count[w:]))
    if n_hands:
        print(f"fit per hand: {np.sum(rows['regress'][w:]) / n_hands:.2f} ms mean ({n_hands} hands)")
    d, whole, detect = stats(det_ms[w:]), stats(rows["whole"][w:]), stats(rows["detect"][w:])
    print(f"pipeline detect / detection alone: mean {detect['mean'] / d['mean']:.2f}x, p50 {detect['p50'] / d['p50']:.2f}x")
    print(f"whole / detection alone: mean {whole['mean'] / d['mean']:.2f}x, p50 {whole['p50'] / d['p50']:.2f}x "
          f"(whole = {'process + message build + serialize' if not note else 'process only'}; "
          f"{1e3 / whole['mean']:.1f} FPS vs {1e3 / d['mean']:.1f} FPS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
