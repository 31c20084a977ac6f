"""Benchmark: ms per frame of detector ``mediapipe_torch`` against MediaPipe's own graph.

Usage::

    python benchmarks/bench_detector.py [--models full,lite] [--sizes 640x360,1280x720]
                                        [--cameras 1,2,4] [--device cpu|cuda]
                                        [--precisions fp32[,bf16,fp16]] [--threads N]
                                        [--steps 12] [--blocks 5] [--no-memory]
    make bench-detector

Input: real frames of ``mediapipe_samples/hand_landmarker_test_video.mp4`` (one hand)
resized to each size; camera ``c`` starts ``c * 40`` frames later, so the cameras show
different frames. Both detectors run in video (tracking) mode with ``max_hands=2`` (so
the palm detector runs on every frame, as MediaPipe does with one hand in view):

* ``graph``: ``mp.solutions.hands`` (the wheel's CPU graph, XNNPACK), one graph per camera,
  the cameras one after another (what the ``mediapipe`` detector does);
* ``torch``: one ``MediaPipeTorchHandDetector``, all cameras of a time step in one
  ``detect_batch`` call (one palm forward, one landmark forward).

Timing: the same frames go through both, in alternating blocks of ``--steps`` time steps
(``--blocks`` blocks each, after a warm-up block), so a change of machine load hits both;
the figure is the median over blocks of block time / (steps x cameras), and ``ratio`` is
the median of the per-block ratios torch / graph. The machine's load average is printed
before and after: on a shared machine absolute figures move, the ratio much less.

Tiling (unless ``--no-tiling``): the torch detector alone, same frames and timing scheme,
at ``--tiling-sizes`` with ``--tiling-cameras``, three settings: whole frame only
(``detection_tiling: off``), tiles ``all`` and ``round_robin`` (``auto`` tiles); extra =
the setting's ms per camera image / the whole frame's - 1 (the issue's budget for
``round_robin``: +30 % of the detect stage). Also the worst-case time to acquire of
``round_robin`` in frames (``tiling.acquire_bound``).

Memory (unless ``--no-memory``): for each detector and model, a child process runs the
largest configuration and reports its peak resident set and the part of it above the
decoded frames, i.e. what the detector and its work take (Linux ``VmHWM``, reset after
decoding; with CUDA also ``torch.cuda.max_memory_allocated``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

# DDS traffic (if any) stays on loopback, always.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
REPO = Path(__file__).resolve().parents[1]
VIDEO = REPO.parent / "shared" / "data" / "hands" / "mediapipe_samples" / "hand_landmarker_test_video.mp4"
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
from bench_args import frame_sizes  # noqa: E402

CAMERA_OFFSET = 40


def load_frames(path: Path, size, count: int) -> List[np.ndarray]:
    """Up to ``count`` RGB frames of the video, resized to ``size`` (w, h)."""
    import cv2

    from hand_mesh_ros.frames import FrameSource

    frames = [cv2.resize(f.image, size, interpolation=cv2.INTER_AREA) for f in FrameSource(path, count)]
    if not frames:
        raise SystemExit(f"bench_detector: no frames in {path}")
    return frames


def camera_streams(frames, cameras: int):
    n = len(frames)
    return [[frames[(t + c * CAMERA_OFFSET) % n] for t in range(n)] for c in range(cameras)]


def make_detector(kind: str, model: str, args, precision: str = "fp32", tiling: str = "off",
                  tile_scan: str = "round_robin"):
    from hand_mesh_ros.core.detectors import create_detector

    name = "mediapipe" if kind == "graph" else "mediapipe_torch"
    return create_detector(name, max_hands=2, min_score=0.5, static_image_mode=False, model=model,
                           device=args.device, precision=precision, batch_size=args.batch_size,
                           detection_tiling=tiling, tile_scan=tile_scan)


def run_block(det, streams, start: int, steps: int) -> float:
    """Seconds for ``steps`` time steps of all cameras from frame ``start``."""
    n = len(streams[0])
    t0 = time.perf_counter()
    for t in range(start, start + steps):
        det.detect_batch([(f"cam{c}", s[t % n]) for c, s in enumerate(streams)])
    return time.perf_counter() - t0


def sync(device: str) -> None:
    if device == "cuda":
        import torch
        torch.cuda.synchronize()


def interleaved(args, dets, streams, cameras: int) -> Dict[str, List[float]]:
    """ms per camera image of each detector, per block (alternating blocks, after a warm-up)."""
    per = {k: [] for k in dets}
    try:
        t = 0
        for k, d in dets.items():  # warm-up block (graph start-up, first-call allocations)
            run_block(d, streams, t, args.steps)
        t += args.steps
        for _ in range(args.blocks):
            for k, d in dets.items():
                sync(args.device)
                per[k].append(run_block(d, streams, t, args.steps) / (args.steps * cameras) * 1e3)
                sync(args.device)
            t += args.steps
    finally:
        for d in dets.values():
            d.close()
    return per


def bench_config(args, model: str, size, cameras: int, precision: str) -> Dict[str, float]:
    frames = load_frames(args.input, size, args.frames)
    streams = camera_streams(frames, cameras)
    dets = {"graph": make_detector("graph", model, args), "torch": make_detector("torch", model, args, precision)}
    per = interleaved(args, dets, streams, cameras)
    ratios = [a / b for a, b in zip(per["torch"], per["graph"])]
    return {"graph_ms": float(np.median(per["graph"])), "torch_ms": float(np.median(per["torch"])),
            "ratio": float(np.median(ratios))}


def bench_tiling(args, size, cameras: int) -> Dict[str, float]:
    """Whole frame vs tiles all vs round_robin, torch detector, one model (the first)."""
    frames = load_frames(args.input, size, args.frames)
    streams = camera_streams(frames, cameras)
    model, precision = args.models.split(",")[0], args.precisions.split(",")[0]
    dets = {"whole": make_detector("torch", model, args, precision),
            "all": make_detector("torch", model, args, precision, "auto", "all"),
            "round_robin": make_detector("torch", model, args, precision, "auto", "round_robin")}
    per = interleaved(args, dets, streams, cameras)
    out = {f"{k}_ms": float(np.median(v)) for k, v in per.items()}
    for k in ("all", "round_robin"):
        out[f"{k}_extra"] = float(np.median([a / b - 1.0 for a, b in zip(per[k], per["whole"])]))
    return out


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    raise KeyError(field)


def memory_child(args) -> None:
    """One detector on the largest configuration; prints peak memory as JSON: the process's
    peak resident set, and that peak minus the resident set once the frames were decoded
    (what the detector and its work take), measured by resetting the kernel's high-water
    mark (``/proc/self/clear_refs``) after decoding."""
    import torch

    size = max(args.size_list, key=lambda s: s[0] * s[1])
    cameras = max(args.camera_list)
    frames = load_frames(args.input, size, args.steps + CAMERA_OFFSET * (cameras - 1) + 1)
    streams = camera_streams(frames, cameras)
    base = _status_mb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    det = make_detector(args.memory_child, args.models.split(",")[0], args, args.precisions.split(",")[0])
    run_block(det, streams, 0, args.steps)
    peak = _status_mb("VmHWM")
    out = {"peak_rss_mb": peak, "detector_mb": peak - base}
    if args.device == "cuda":
        out["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(out))


def peak_memory(args, kind: str, model: str) -> Dict[str, float]:
    cmd = [sys.executable, __file__, "--memory-child", kind, "--models", model, "--sizes", args.sizes,
           "--cameras", args.cameras, "--device", args.device, "--precisions", args.precisions,
           "--frames", str(args.frames), "--steps", str(args.steps), "--input", str(args.input)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__} ({torch.get_num_threads()} threads)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", type=Path, default=VIDEO)
    p.add_argument("--models", default="full,lite")
    p.add_argument("--sizes", default="640x360,1280x720")
    p.add_argument("--cameras", default="1,2,4")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--precisions", default=None, help="torch precisions (default: fp32 on CPU, bf16,fp16,fp32 on CUDA)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    p.add_argument("--frames", type=int, default=200, help="video frames decoded")
    p.add_argument("--steps", type=int, default=12, help="time steps per timed block")
    p.add_argument("--blocks", type=int, default=5, help="timed blocks per detector")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--tiling-sizes", default="1280x720,1920x1080")
    p.add_argument("--tiling-cameras", default="1,4")
    p.add_argument("--no-tiling", action="store_true")
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--memory-child", choices=("graph", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench_detector: --device cuda but torch.cuda.is_available() is False")
    if args.precisions is None:
        args.precisions = "bf16,fp16,fp32" if args.device == "cuda" else "fp32"
    args.size_list = frame_sizes(args.sizes)
    args.camera_list = [int(c) for c in args.cameras.split(",")]
    if args.memory_child:
        memory_child(args)
        return
    if not args.input.exists():
        raise SystemExit(f"bench_detector: input not found: {args.input}")

    print(f"machine: {machine()}")
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows = []
    print(f"{'model':5} {'size':>9} {'cams':>4} {'precision':>9} {'graph ms/frame':>15} {'torch ms/frame':>15} "
          f"{'torch/graph':>11}")
    for model in args.models.split(","):
        for size in args.size_list:
            for cameras in args.camera_list:
                for precision in args.precisions.split(","):
                    r = bench_config(args, model, size, cameras, precision)
                    rows.append(dict(model=model, size=f"{size[0]}x{size[1]}", cameras=cameras,
                                     precision=precision, **r))
                    print(f"{model:5} {rows[-1]['size']:>9} {cameras:>4} {precision:>9} {r['graph_ms']:15.2f} "
                          f"{r['torch_ms']:15.2f} {r['ratio']:11.2f}", flush=True)
    tiled = []
    if not args.no_tiling:
        from hand_mesh_ros.core.detectors.mediapipe_torch import tiling

        print(f"tiling (torch, model {args.models.split(',')[0]}; ms per camera image; extra vs whole frame):")
        print(f"{'size':>9} {'cams':>4} {'tiles':>5} {'whole':>7} {'all':>7} {'extra':>7} {'round_robin':>11} "
              f"{'extra':>7} {'acquire [frames]':>16}")
        for size in frame_sizes(args.tiling_sizes):
            n = len(tiling.frame_tiles("auto", *size))
            for cameras in [int(c) for c in args.tiling_cameras.split(",")]:
                r = bench_tiling(args, size, cameras)
                tiled.append(dict(size=f"{size[0]}x{size[1]}", cameras=cameras, tiles=n,
                                  acquire_frames=tiling.acquire_bound(n), **r))
                print(f"{tiled[-1]['size']:>9} {cameras:4d} {n:5d} {r['whole_ms']:7.2f} {r['all_ms']:7.2f} "
                      f"{r['all_extra']:+7.0%} {r['round_robin_ms']:11.2f} {r['round_robin_extra']:+7.0%} "
                      f"{tiling.acquire_bound(n):16d}", flush=True)
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    memory = {}
    if not args.no_memory:
        top = max(args.size_list, key=lambda s: s[0] * s[1])
        print(f"peak memory, {max(args.camera_list)} cameras of {top[0]}x{top[1]}:")
        for model in args.models.split(","):
            for kind in ("graph", "torch"):
                memory[f"{kind}/{model}"] = m = peak_memory(args, kind, model)
                print(f"  {kind:5} {model:5} " + ", ".join(f"{k} {v:.0f}" for k, v in m.items()))
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows, "tiling": tiled, "memory": memory},
                                        indent=1))


if __name__ == "__main__":
    main()
