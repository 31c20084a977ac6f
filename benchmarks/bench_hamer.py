"""Benchmark: HaMeR crops per second and peak memory against the batch size.

Usage::

    python benchmarks/bench_hamer.py [--models tiny,vit-h] [--batches 1,2,4,8,16]
                                     [--device cpu|cuda] [--precisions fp32,bf16] [--reps N]
    make bench-hamer

Each (model, device, precision) runs in its own child process so that peak memory is its
own. Models: ``tiny`` (the test configuration, ../shared/golden/hamer/model_config.yaml
sizes) and ``vit-h`` (HaMeR's real shape: ViT-H/16 + the 6-layer decoder, 672 M
parameters), both with random weights (no checkpoint is needed: speed does not depend on
the values). Input: random normalised 256x256 crops. Timed: ``Hamer.forward`` under
``torch.inference_mode`` (+ autocast for bf16 / fp16) including the host -> device copy
and the MANO layer, after one warm-up forward per batch size; ``--reps`` timed forwards
per batch size.

Memory: CUDA ``torch.cuda.max_memory_allocated`` per batch size (reset before each);
CPU: the process's peak resident set (``ru_maxrss``), cumulative because batch sizes run in
increasing order, and the same minus the resident set after the model was built
("activations"). The last lines compare each batch size's crops/s with batch 1's.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

# DDS traffic (if any) stays on loopback, always.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO.parent / "shared" / "golden" / "hamer"
sys.path.insert(0, str(REPO))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_one(model_name: str, device: str, precision: str, batches, reps: int, threads: int) -> dict:
    """In this process: build the model, time every batch size; returns a JSON-able dict."""
    import torch

    from hand_mesh_ros.core.hamer.config import HamerConfig
    from hand_mesh_ros.core.hamer.model import Hamer

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = HamerConfig.from_yaml(GOLDEN / "model_config.yaml") if model_name == "tiny" else HamerConfig()
    mano = None
    if (GOLDEN / "synthetic_MANO_RIGHT.pkl").exists():
        from hand_mesh_ros.core.mano_io import load_mano_file
        mano = load_mano_file(str(GOLDEN / "synthetic_MANO_RIGHT.pkl"))
    model = Hamer(cfg, mano).eval().to(device)
    n_params = sum(p.numel() for p in model.parameters())
    dev = torch.device(device)
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    base_rss = _rss_mb()
    rows = []
    for b in batches:
        x = torch.randn(b, 3, cfg.image_size, cfg.image_size)
        if dev.type == "cuda":
            x = x.pin_memory()

        def fwd():
            with torch.inference_mode(), torch.autocast(dev.type, dtype=dtype or torch.float32,
                                                        enabled=dtype is not None):
                out = model(x.to(dev, non_blocking=True))
                return out["vertices"].float().cpu()

        try:
            fwd()  # warm-up
            if dev.type == "cuda":
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            for _ in range(reps):
                fwd()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            dt = (time.perf_counter() - t0) / reps
        except torch.OutOfMemoryError:
            rows.append({"batch": b, "oom": True})
            torch.cuda.empty_cache()
            continue
        row = {"batch": b, "ms_per_batch": dt * 1e3, "crops_per_s": b / dt}
        if dev.type == "cuda":
            row["peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        else:
            row["peak_rss_mb"] = _peak_rss_mb()
            row["activations_mb"] = _peak_rss_mb() - base_rss
        rows.append(row)
    name = torch.cuda.get_device_name() if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    return {"model": model_name, "params_m": n_params / 1e6, "device": name, "precision": precision,
            "rows": rows}


def print_table(res: dict) -> None:
    print(f"\n{res['model']} ({res['params_m']:.1f} M parameters), {res['device']}, {res['precision']}")
    mem = "peak MB (CUDA)" if any("peak_mb" in r for r in res["rows"]) else "peak RSS MB (activations)"
    print(f"{'batch':>5} {'ms/batch':>10} {'crops/s':>9}  {mem}")
    base = None
    for r in res["rows"]:
        if r.get("oom"):
            print(f"{r['batch']:>5} {'out of memory':>21}")
            continue
        m = f"{r['peak_mb']:.0f}" if "peak_mb" in r else f"{r['peak_rss_mb']:.0f} ({r['activations_mb']:.0f})"
        base = base or r["crops_per_s"]
        print(f"{r['batch']:>5} {r['ms_per_batch']:>10.1f} {r['crops_per_s']:>9.2f}  {m}"
              f"   x{r['crops_per_s'] / base:.2f} vs batch 1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="tiny,vit-h")
    ap.add_argument("--batches", default="1,2,4,8,16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precisions", default=None, help="default: fp32 on CPU, fp32,bf16,fp16 on CUDA")
    ap.add_argument("--reps", type=int, default=20, help="timed forwards per batch size (ViT-H on CPU: 1)")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    ap.add_argument("--json", default=None, help="also write all results to this file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    batches = [int(b) for b in args.batches.split(",")]
    if args.child:  # one configuration, results as JSON on stdout
        model, precision = args.child.split(":")
        print(json.dumps(run_one(model, args.device, precision, batches, args.reps, args.threads)))
        return 0
    precisions = (args.precisions or ("fp32,bf16,fp16" if args.device == "cuda" else "fp32")).split(",")
    results = []
    for model in args.models.split(","):
        for precision in precisions:
            reps = args.reps if model == "tiny" or args.device == "cuda" else 1
            cmd = [sys.executable, __file__, "--child", f"{model}:{precision}", "--device", args.device,
                   "--batches", args.batches, "--reps", str(reps), "--threads", str(args.threads)]
            p = subprocess.run(cmd, capture_output=True, text=True)
            if p.returncode != 0:
                print(f"{model} {precision}: failed:\n{p.stderr[-2000:]}", file=sys.stderr)
                continue
            res = json.loads(p.stdout.strip().splitlines()[-1])
            results.append(res)
            print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0 if results else 1


if __name__ == "__main__":
    sys.exit(main())
