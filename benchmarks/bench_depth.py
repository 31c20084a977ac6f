"""Benchmark: the cost of depth fusion in the pipeline, against the same pipeline without depth.

Usage::

    python benchmarks/bench_depth.py [--input VIDEO] [--max-frames N] [--factor F]

1. A first pass without depth places the hands (intrinsics only) on every frame.
2. A depth image per frame is rendered from those hands, scaled by ``--factor`` about the
   camera centre (the same image, a hand ``factor`` times the model's size), over a wall at
   1.5 m (``core.render.render_depth``; its accuracy is tested in test/test_depth.py).
3. Two timed passes over the same frames, each with a fresh pipeline (tracking mode):
   without depth, then with depth. Per pass: mean ms per frame of the whole
   ``process`` call and of its "place" stage (where depth fusion runs), and the share of
   hands placed from depth; the last line gives the ratio with / without depth.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DEFAULT_INPUT = REPO.parent / "shared/data/hands/mediapipe_samples/hand_landmarker_test_video.mp4"


def main() -> None:
    from hand_mesh_ros.core.pipeline import HandMeshPipeline, PipelineConfig
    from hand_mesh_ros.core.render import render_depth
    from hand_mesh_ros.core.types import TRANSLATION_DEPTH, CameraIntrinsics
    from hand_mesh_ros.frames import FrameSource

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", default=str(DEFAULT_INPUT))
    ap.add_argument("--max-frames", type=int, default=100)
    ap.add_argument("--factor", type=float, default=1.15)
    ap.add_argument("--mano-model-dir", default="", help="MANO_RIGHT.pkl folder (default: the built-in hand)")
    args = ap.parse_args()
    config = dict(mano_model_dir=args.mano_model_dir)
    frames = [f.image for f in FrameSource(args.input, args.max_frames)]
    h, w = frames[0].shape[:2]
    K = CameraIntrinsics(520.0, 540.0, 318.0 * w / 640, 182.0 * h / 360, w, h)

    pipe = HandMeshPipeline(PipelineConfig(**config))
    depths = []
    for i, rgb in enumerate(frames):
        d = np.full((h, w), 1.5, np.float32)
        for hand in pipe.process(rgb, K, stamp=i / 25.0).hands:
            patch, (u0, v0) = render_depth(args.factor * hand.vertices.astype(np.float64),
                                           pipe.hand_model.faces_for(hand.side), K)
            win = d[v0:v0 + patch.shape[0], u0:u0 + patch.shape[1]]
            np.copyto(win, np.minimum(win, np.where(patch > 0, patch, np.inf)))
        depths.append(d)
    pipe.close()

    stats = {}
    for name, with_depth in (("without depth", False), ("with depth", True)):
        pipe = HandMeshPipeline(PipelineConfig(**config))
        total, place, hands, from_depth = [], [], 0, 0
        for i, (rgb, d) in enumerate(zip(frames, depths)):
            t0 = time.perf_counter()
            res = pipe.process(rgb, K, stamp=i / 25.0, depth=d if with_depth else None)
            total.append((time.perf_counter() - t0) * 1e3)
            place.append(res.timings_ms["place"])
            hands += len(res.hands)
            from_depth += sum(hd.translation_source == TRANSLATION_DEPTH for hd in res.hands)
        pipe.close()
        warm = slice(5, None)
        stats[name] = np.mean(total[warm])
        print(f"{name:>13}: {np.mean(total[warm]):6.2f} ms/frame, place stage {np.mean(place[warm]):5.2f} ms/frame, "
              f"{hands} hands, {from_depth} placed from depth; fallbacks {dict(pipe.fallbacks)}")
    print(f"with / without depth: {stats['with depth'] / stats['without depth']:.3f}x "
          f"({len(frames)} frames {w}x{h}, first 5 not counted; hand model {pipe.hand_model.name}, "
          f"{len(pipe.hand_model.faces_for(1))} faces)")


if __name__ == "__main__":
    main()
