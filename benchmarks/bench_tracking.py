"""Tracking and smoothing figures on a video: duplicates, ids, side flips, TF names, jitter.

Usage::

    python benchmarks/bench_tracking.py --input VIDEO [--stack-mirror] [--smoothing 2,0.5 1,0.5 ...]
    make bench-tracking

The frames go, one by one in tracking (video) mode, through one pipeline with smoothing
off and one per ``--smoothing MIN_CUTOFF,BETA`` pair, in the same run (same frames, same
machine load). Printed per run:

* hands per frame, frames with a duplicate (two published hands whose boxes overlap by
  IoU >= 0.3 or whose keypoints lie within 0.2 box diagonals), track ids, side changes
  within a track, TF prefixes used (``ros.messages.hand_frame_prefixes``);
* jitter: mean frame-to-frame joint acceleration ``|p[t+1] - 2 p[t] + p[t-1]|`` of the
  published 21 joints [mm/frame^2] over the frames each track was seen in a row
  (``core.smoothing.joint_accelerations``), and the mean distance of the smoothed joints
  from the unsmoothed ones [mm] (noise removed + lag);
* the pipeline's "smooth" stage (the filters and one hand-model forward for the smoothed
  hands) [ms/frame] — an upper bound: the pipelines of one run share the process and their
  MediaPipe graphs' threads contend with torch's (``make bench`` measures stage costs).

``--stack-mirror`` stacks each frame over its mirror image (a right hand above a left hand)
to measure two hands.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DUPLICATE_IOU = 0.3
DUPLICATE_KEYPOINT_DISTANCE = 0.2


def _pair(text: str):
    try:
        cutoff, beta = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MIN_CUTOFF,BETA, got {text!r}") from None
    return cutoff, beta


def track_jitter(per_track):
    """Mean joint acceleration [mm/frame^2] over runs of consecutive frames of each track;
    ``per_track``: {track id: [(frame index, (21, 3) joints), ...]} in frame order."""
    from hand_mesh_ros.core.smoothing import joint_accelerations

    acc = []
    for seq in per_track.values():
        run = [seq[0]]
        for item in seq[1:] + [(None, None)]:
            if item[0] is not None and item[0] == run[-1][0] + 1:
                run.append(item)
                continue
            if len(run) >= 3:
                acc.append(joint_accelerations(np.stack([j for _, j in run])).ravel())
            run = [item]
    return float(np.concatenate(acc).mean()) if acc else float("nan")


def summarize(results):
    """Tracking statistics of one run: results = [(frame index, [Hand, ...]), ...]."""
    from hand_mesh_ros.core.tracking import box_iou, keypoint_distance
    from hand_mesh_ros.ros.messages import hand_frame_prefixes

    counts, names, dup_frames = Counter(), Counter(), 0
    sides = defaultdict(list)
    per_track = defaultdict(list)
    for i, hands in results:
        counts[len(hands)] += 1
        names.update(hand_frame_prefixes(hands))
        if len(hands) > 1:
            b = np.stack([h.bbox for h in hands])
            k = np.stack([h.keypoints_2d for h in hands])
            same = (box_iou(b, b) >= DUPLICATE_IOU) | (keypoint_distance(k, b, k, b) <= DUPLICATE_KEYPOINT_DISTANCE)
            dup_frames += int(np.triu(same, 1).any())
        for h in hands:
            sides[h.track_id].append(int(h.side))
            per_track[h.track_id].append((i, np.asarray(h.joints, np.float64)))
    flips = sum(int(np.count_nonzero(np.diff(s))) for s in sides.values())
    return dict(counts=dict(sorted(counts.items())), ids=sorted(sides), flips=flips, duplicates=dup_frames,
                names=dict(names), jitter=track_jitter(per_track), per_track=per_track)


def offset_mm(a, b):
    """Mean distance [mm] between the joints of the same track in the same frame of two runs."""
    d = []
    for tid, seq in a.items():
        other = dict(b.get(tid, []))
        d += [np.linalg.norm(j - other[i], axis=-1).mean() for i, j in seq if i in other]
    return 1e3 * float(np.mean(d)) if d else float("nan")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="video file")
    ap.add_argument("--max-frames", type=int, default=0, help="0 = all frames")
    ap.add_argument("--max-hands", type=int, default=2)
    ap.add_argument("--stack-mirror", action="store_true", help="each frame over its mirror image (two hands)")
    ap.add_argument("--intrinsics", type=float, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                    help="camera intrinsics of the video (not with --stack-mirror); default: assumed 60 deg FOV")
    ap.add_argument("--smoothing", type=_pair, nargs="*", default=None, metavar="MIN_CUTOFF,BETA",
                    help="One Euro settings to compare with smoothing off (default: the PipelineConfig defaults)")
    args = ap.parse_args(argv)
    if not Path(args.input).exists():
        print(f"bench_tracking: input not found: {args.input}", file=sys.stderr)
        return 2

    from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
    from hand_mesh_ros.core.types import CameraIntrinsics
    from hand_mesh_ros.frames import FrameSource

    defaults = PipelineConfig()
    pairs = args.smoothing if args.smoothing else [(defaults.smoothing_min_cutoff, defaults.smoothing_beta)]
    configs = {"off": PipelineConfig(max_hands=args.max_hands)}
    for cutoff, beta in pairs:
        configs[f"one_euro min_cutoff={cutoff:g} beta={beta:g}"] = PipelineConfig(
            max_hands=args.max_hands, smoothing="one_euro", smoothing_min_cutoff=cutoff, smoothing_beta=beta)
    pipes = {name: HandMeshPipeline(c) for name, c in configs.items()}
    results = {name: [] for name in pipes}
    smooth_ms = {name: [] for name in pipes}
    n = 0
    try:
        for i, frame in enumerate(FrameSource(args.input, args.max_frames or None)):
            img, intr = frame.image, None
            if args.stack_mirror:      # (assumed intrinsics: the stack is no real camera)
                img = np.ascontiguousarray(np.concatenate([img, img[:, ::-1]], axis=0))
            elif args.intrinsics:
                intr = CameraIntrinsics(*args.intrinsics, img.shape[1], img.shape[0])
            stamp = frame.time_s if frame.time_s is not None else i / 30.0
            for name, pipe in pipes.items():
                res = pipe.process(img, intr, camera="video", stamp=stamp)
                results[name].append((i, res.hands))
                smooth_ms[name].append(res.timings_ms["smooth"])
            n += 1
    finally:
        for pipe in pipes.values():
            pipe.close()

    import torch

    print(f"input: {args.input}{' stacked over its mirror image' if args.stack_mirror else ''}, {n} frames, "
          f"max_hands={args.max_hands}, tracking mode, {pipes['off'].hand_model.name} hand, "
          f"torch threads {torch.get_num_threads()}")
    stats = {name: summarize(r) for name, r in results.items()}
    off = stats["off"]
    for name, s in stats.items():
        print(f"[{name}]")
        print(f"  hands per frame: {s['counts']}  frames with a duplicate: {s['duplicates']}  "
              f"track ids: {s['ids']}  side changes: {s['flips']}")
        print(f"  TF prefixes (frames): {s['names']}")
        extra = "" if name == "off" else f", mean offset from off: {offset_mm(s['per_track'], off['per_track']):.2f} mm"
        print(f"  jitter: {s['jitter']:.2f} mm/frame^2{extra}; smooth stage {np.mean(smooth_ms[name][5:]):.2f} ms/frame")
    for name, s in stats.items():
        if name != "off":
            print(f"jitter off -> {name}: {off['jitter']:.2f} -> {s['jitter']:.2f} mm/frame^2 "
                  f"({100 * (1 - s['jitter'] / off['jitter']):.0f} % less)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
