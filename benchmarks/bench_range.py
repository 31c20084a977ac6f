"""Benchmark: detection range, recall by hand size and frame size, tiling off vs on.

Usage::

    python benchmarks/bench_range.py [--sizes 640x480,1280x720,1920x1080]
                                     [--crops 40,56,80,112,160,240] [--trials 30]
                                     [--free 300] [--tilings auto] [--seed 13] [--json PATH]
    python benchmarks/bench_range.py --response [--trials 40]
    make bench-range

Frames: ``hand_scenes`` (real hands of ../shared/data/hands cut out with their keypoint box,
pasted with ``cv2.INTER_AREA`` at ``crop`` x ``crop`` px, the hand spanning ~0.7 of it, onto
mosaics of scikit-image's hand-free sample photographs). For every (frame size, crop) cell
the same ``--trials`` frames (seeded by ``--seed``, the size and the crop) go through the
detector ``mediapipe_torch`` in static mode (``max_hands`` 2, min_score 0.5, model full) with
each tiling; a trial counts as found when a detection's keypoints are, median, within 0.2
crop sides of the pasted hand's (``hand_scenes.found``); a detection that is none of the
real hands the pasted patch shows (``hand_scenes.extra``: test5.jpg's patches show both of
its hands) is an extra one (a misplaced second answer, or a false positive). Then
``--free`` hand-free frames per frame size (same mosaics, no hand): false positives per
frame = detections / frames; last, the 8 hand-free frames of a person's arms and elbows of
``hand_scenes.people_frames``.
``--response``: instead, the palm network's response by size (the scale rule of
``tiling``): the hands pasted straight into its 192 x 192 input at crops of 12-96 px, on
hand-free mosaics shrunk as a 457 px tile is (``--trials`` inputs per size): the share whose
best palm candidate centred on the crop scores >= 0.5 (the threshold), >= 0.3, and the median.
Deterministic: fixed seeds, fixed hands, no timing in the table (the last column is the
mean ms per frame of the tiled detector, for orientation only).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_args import frame_sizes  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "hands"


def _seed(*parts) -> int:
    return zlib.crc32(" ".join(str(p) for p in parts).encode())


def _detector(tiling):
    from hand_mesh_ros.core.detectors.mediapipe_torch import MediaPipeTorchHandDetector

    return MediaPipeTorchHandDetector(max_hands=2, min_score=0.5, static_image_mode=True, detection_tiling=tiling)


def palm_response(det, hands, photos, trials: int, seed: int, crops=(12, 16, 20, 24, 28, 32, 40, 48, 64, 80, 96)):
    """Per crop [px of the palm input]: (share >= 0.5, share >= 0.3, median) of the best
    palm score centred on a hand pasted at that size into the input (module docstring)."""
    import cv2
    import torch

    import hand_scenes as hs
    from hand_mesh_ros.core.detectors.mediapipe_torch import palm

    n = palm.INPUT_SIZE
    out = {}
    for crop in crops:
        rng = np.random.default_rng(_seed(seed, "response", crop))
        inputs, boxes = [], []
        for t in range(trials):
            # the background at a tile's scale: a 457 px mosaic shrunk to the input
            background = cv2.resize(hs.mosaic(rng, photos, 457, 457), (n, n), interpolation=cv2.INTER_AREA)
            hand = hands[t % len(hands)]
            x0, y0 = (int(v) for v in rng.integers(0, n - crop + 1, 2))
            boxes.append(hs.paste(background, hand.flipped() if t % 2 else hand, crop, x0, y0).box)
            inputs.append(background)
        x = torch.from_numpy(np.stack(inputs)).float().div(255.0).permute(0, 3, 1, 2)
        index, rows = palm.decode(*det._forward(det.palm_net, x), det.anchors, 0.0)
        index, rows = index.cpu().numpy(), rows.cpu().numpy()
        best = []
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            r = rows[index == i]
            cx, cy = (r[:, 1] + r[:, 3]) / 2 * n, (r[:, 2] + r[:, 4]) / 2 * n
            inside = (cx >= x0) & (cx <= x1) & (cy >= y0) & (cy <= y1)
            best.append(float(r[inside, 0].max()) if inside.any() else 0.0)
        best = np.array(best)
        out[crop] = (float(np.mean(best >= 0.5)), float(np.mean(best >= 0.3)), float(np.median(best)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="640x480,1280x720,1920x1080")
    ap.add_argument("--crops", default="40,56,80,112,160,240", help='hand crops [px]; "" for none')
    ap.add_argument("--trials", type=int, default=30, help="frames per (size, crop) cell")
    ap.add_argument("--free", type=int, default=300, help="hand-free frames per size (a rate of 0.01 shows as ~3)")
    ap.add_argument("--tilings", default="auto", help="tilings compared with off (auto or tile sides)")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--response", action="store_true", help="the palm network's response by size instead")
    args = ap.parse_args(argv)
    import hand_scenes as hs

    if args.response:
        det = _detector("off")
        table = palm_response(det, hs.source_hands(args.data, det), hs.backgrounds(), args.trials, args.seed)
        print(f"palm network response, {args.trials} real hands per crop pasted into its 192 x 192 input")
        print(f"{'crop [px of 192]':>17} {'score>=0.5':>11} {'score>=0.3':>11} {'median':>7}")
        for crop, (half, third, median) in table.items():
            print(f"{crop:17d} {half:11.2f} {third:11.2f} {median:7.2f}")
        if args.json:
            args.json.write_text(json.dumps({"palm_response": {str(c): v for c, v in table.items()}}, indent=1))
        return 0

    sizes = frame_sizes(args.sizes)
    crops = [int(c) for c in args.crops.split(",") if c]  # --crops "": false positives only
    from hand_mesh_ros.core.detectors.mediapipe_torch.tiling import parse_tiling

    tilings = ["off"] + [parse_tiling(t) for t in args.tilings.split(",")]
    dets = {t: _detector(t) for t in tilings}
    hands = hs.source_hands(args.data, dets["off"])
    photos = hs.backgrounds()
    print(f"hands: {len(hands)} real hands from {args.data}; backgrounds: {len(photos)} scikit-image photographs")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    head = " ".join(f"{'recall ' + str(t):>12}" for t in tilings)
    head += " " + " ".join(f"{'extra ' + str(t):>11}" for t in tilings)
    print(f"{'size':>9} {'crop':>5} {head} {'ms/frame ' + str(tilings[-1]):>14}")
    rows = []
    for size in sizes:
        for crop in crops:
            if crop > min(size):
                continue
            rng = np.random.default_rng(_seed(args.seed, size, crop))
            hits = {t: 0 for t in tilings}
            extra = {t: 0 for t in tilings}
            spent = 0.0
            for _ in range(args.trials):
                frame, pasted = hs.scene(rng, photos, hands, size, crop)
                for t, det in dets.items():
                    t0 = time.perf_counter()
                    found = det.detect(frame)
                    spent += (time.perf_counter() - t0) if t == tilings[-1] else 0.0
                    hit = hs.found(found, pasted)
                    hits[t] += hit
                    extra[t] += hs.extra(found, pasted)
            row = dict(size=f"{size[0]}x{size[1]}", crop=crop, trials=args.trials,
                       recall={str(t): hits[t] / args.trials for t in tilings},
                       extra_per_frame={str(t): extra[t] / args.trials for t in tilings},
                       ms_per_frame=spent / args.trials * 1e3)
            rows.append(row)
            cells = " ".join(f"{row['recall'][str(t)]:12.3f}" for t in tilings)
            extras = " ".join(f"{row['extra_per_frame'][str(t)]:11.3f}" for t in tilings)
            print(f"{row['size']:>9} {crop:5d} {cells} {extras} {row['ms_per_frame']:14.0f}", flush=True)
    fp = []
    if args.free > 0:
        print(f"false positives on hand-free frames ({args.free} per size):")
    for size in sizes if args.free > 0 else []:
        rng = np.random.default_rng(_seed(args.seed, size, "free"))
        counts = {t: 0 for t in tilings}
        for _ in range(args.free):
            frame = hs.mosaic(rng, photos, *size)
            for t, det in dets.items():
                counts[t] += len(det.detect(frame))
        fp.append(dict(size=f"{size[0]}x{size[1]}", frames=args.free,
                       per_frame={str(t): counts[t] / args.free for t in tilings}))
        print(f"{fp[-1]['size']:>9} " + " ".join(f"{str(t)}: {counts[t]} ({counts[t] / args.free:.3f}/frame)"
                                                 for t in tilings), flush=True)
    people = hs.people_frames(args.data)
    counts = {t: sum(len(det.detect(frame)) for frame in people) for t, det in dets.items()}
    fp.append(dict(size="people", frames=len(people), per_frame={str(t): counts[t] / len(people) for t in tilings}))
    print(f"false positives on {len(people)} hand-free frames with people (test5.jpg below its hands, lenses): "
          + " ".join(f"{t}: {counts[t]}" for t in tilings), flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        args.json.write_text(json.dumps({"recall": rows, "false_positives": fp}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
