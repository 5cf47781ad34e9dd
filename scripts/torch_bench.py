#!/usr/bin/env python3
"""PyTorch peer for `alexnet bench`: torchvision's AlexNet forward, images/s per batch size.

The comparison `scripts/gpu-bench.sh` makes on a machine with an NVIDIA GPU:
- fp32 with TF32 **off** for both matmuls and cuDNN (cuDNN's default is on, which would compare
  our fp32 against PyTorch's 10-bit-mantissa math), `cudnn.benchmark` on (PyTorch's autotuner,
  the fair counterpart of ours);
- fp16 autocast (what a PyTorch user would run for speed);
- CUDA-synchronised timing, median of `--iters` passes after `--warmup` passes.
Random weights (no download): speed does not depend on the values.

    python3 scripts/torch_bench.py --device cuda --batch 1,8,32,128,256 --out torch.json
    python3 scripts/torch_bench.py --device cpu --batch 1,8
"""

import argparse
import json
import statistics
import time

import torch
import torchvision

# Multiply-adds x 2 of torchvision's AlexNet at 224x224 (the figure `alexnet bench` prints).
GFLOP_PER_IMAGE = 1.428


def timed_passes(model, x, iters, warmup, sync):
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", default="1,8,32,128,256")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--precision", default="f32,f16", help="f32 (TF32 off) and/or f16 (autocast)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cudnn.benchmark = True
        sync = torch.cuda.synchronize
        name = torch.cuda.get_device_name(device)
    else:
        sync = lambda: None  # noqa: E731
        name = f"CPU ({torch.get_num_threads()} threads)"
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None).eval().to(device)

    rows = []
    for precision in args.precision.split(","):
        if precision == "f16" and not cuda:
            continue  # CPU autocast is bf16 and not what this peer compares against
        for batch in [int(b) for b in args.batch.split(",")]:
            x = torch.randn(batch, 3, 224, 224, device=device)
            if precision == "f16":
                def run(inp, m=model):
                    with torch.autocast("cuda", dtype=torch.float16):
                        return m(inp)
            else:
                run = model
            times = timed_passes(run, x, args.iters, args.warmup, sync)
            median = statistics.median(times)
            row = {
                "peer": "pytorch",
                "device": name,
                "precision": precision,
                "batch": batch,
                "median_ms": median * 1e3,
                "min_ms": min(times) * 1e3,
                "max_ms": max(times) * 1e3,
                "images_per_s": batch / median,
                "gflops": GFLOP_PER_IMAGE * batch / median,
            }
            rows.append(row)
            print(
                f"pytorch {precision} batch {batch:4d}: {row['median_ms']:9.2f} ms "
                f"{row['images_per_s']:10.1f} img/s {row['gflops']:9.1f} GFLOP/s",
                flush=True,
            )
    result = {
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": name,
        "tf32": False,
        "cudnn_benchmark": bool(cuda),
        "results": rows,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
