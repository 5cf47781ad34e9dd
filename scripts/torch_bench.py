#!/usr/bin/env python3
"""PyTorch peer for `alexnet bench`: torchvision's AlexNet forward, images/s per batch size.

Three rows per batch size, each the faster of NCHW and channels_last (both times recorded):
- `default`: PyTorch exactly as installed (cuDNN convolutions in TF32 on Ampere and later,
  matmuls in IEEE fp32), the flags read back and recorded;
- `ieee`: IEEE fp32 everywhere: TF32 off through the old flags (`allow_tf32`) and, where this
  PyTorch has it, the new API (`torch.backends.cudnn.conv.fp32_precision`,
  `torch.backends.cuda.matmul.fp32_precision` = "ieee"), the values read back and recorded;
- `f16`: fp16 autocast (CUDA only: CPU autocast is bf16, not this comparison; null there).
`cudnn.benchmark` is on for every row (PyTorch's autotuner, the counterpart of `bench --tune`).
CUDA-synchronised timing, median of `--iters` passes after `--warmup`, the input already on
the device. With CUDA, the kernels each row ran are listed once (torch.profiler, at the
largest batch). Random weights (no download): speed does not depend on the values. On a
machine without CUDA it runs on the CPU (`default` and `ieee` are then the same math).

    python3 scripts/torch_bench.py --batch 1,8,64,256 --out torch.json
    python3 scripts/torch_bench.py --device cpu --batch 1,2 --iters 3 --warmup 1
"""

import argparse
import json
import os
import statistics
import time

import torch
import torchvision

# Multiply-adds x 2 of torchvision's AlexNet at 224x224 (the figure `alexnet bench` prints).
GFLOP_PER_IMAGE = 1.428


def timed_passes(run, x, iters, warmup, sync):
    with torch.inference_mode():
        for _ in range(warmup):
            run(x)
        sync()
        times = []
        for _ in range(iters):
            t0 = time.perf_counter()
            run(x)
            sync()
            times.append(time.perf_counter() - t0)
    return times


def _get(path):
    """The value of a dotted torch attribute, or None where this PyTorch lacks it."""
    obj = torch
    try:
        for part in path.split(".")[1:]:
            obj = getattr(obj, part)
        return obj if isinstance(obj, (bool, str, int, float)) else str(obj)
    except Exception:  # noqa: BLE001 - an absent or refusing flag is recorded as None
        return None


FLAGS = [
    "torch.backends.cuda.matmul.allow_tf32",
    "torch.backends.cudnn.allow_tf32",
    "torch.backends.cudnn.benchmark",
    "torch.backends.fp32_precision",
    "torch.backends.cuda.matmul.fp32_precision",
    "torch.backends.cudnn.fp32_precision",
    "torch.backends.cudnn.conv.fp32_precision",
]


def flags():
    return {f: _get(f) for f in FLAGS}


def set_ieee():
    """TF32 off through the new API (where present) and the old flags; returns the errors."""
    errors = []
    for owner, attr in (
        ("torch.backends.cudnn.conv", "fp32_precision"),
        ("torch.backends.cuda.matmul", "fp32_precision"),
    ):
        obj = torch
        try:
            for part in owner.split(".")[1:]:
                obj = getattr(obj, part)
            if hasattr(obj, attr):
                setattr(obj, attr, "ieee")
        except Exception as e:  # noqa: BLE001
            errors.append(f"{owner}.{attr}: {e}")
    for name, setter in (
        ("torch.backends.cuda.matmul.allow_tf32", lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", False)),
        ("torch.backends.cudnn.allow_tf32", lambda: setattr(torch.backends.cudnn, "allow_tf32", False)),
    ):
        try:
            setter()
        except Exception as e:  # noqa: BLE001
            errors.append(f"{name}: {e}")
    return errors


def kernel_names(run, x, sync, limit=25):
    """CUDA kernels one pass runs, by total device time (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        run(x)
        sync()
    rows = []
    for e in prof.key_averages():
        t = getattr(e, "device_time_total", None)
        if t is None:
            t = getattr(e, "cuda_time_total", 0)
        if t and t > 0:
            rows.append((t, e.key, e.count))
    rows.sort(reverse=True)
    return [{"kernel": k, "us": round(t, 1), "calls": c} for t, k, c in rows[:limit]]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", default="1,8,64,256")
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--modes", default="default,ieee,f16", help="rows: default, ieee, f16")
    ap.add_argument("--no-kernels", action="store_true", help="skip the profiler's kernel list")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        sync = torch.cuda.synchronize
        name = torch.cuda.get_device_name(device)
    else:
        sync = lambda: None  # noqa: E731
        name = f"CPU ({torch.get_num_threads()} threads)"
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    nchw = torchvision.models.alexnet(weights=None).eval().to(device)
    cl = torchvision.models.alexnet(weights=None).eval().to(device)
    cl.load_state_dict(nchw.state_dict())
    cl = cl.to(memory_format=torch.channels_last)
    batches = [int(b) for b in args.batch.split(",")]

    # The default row first: nothing changed yet but cudnn.benchmark.
    modes = [m for m in ("default", "ieee", "f16") if m in args.modes.split(",")]
    settings, rows, kernels = {}, [], {}

    def save():
        """Writes what is measured so far (after every row: a run cut short keeps its rows)."""
        if not args.out:
            return
        result = {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "cudnn": torch.backends.cudnn.version() if cuda else None,
            "device": name,
            "cudnn_benchmark": True,
            "settings": settings,
            "results": rows,
            "kernels": kernels if cuda else None,
        }
        with open(args.out + ".part", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(args.out + ".part", args.out)
    for mode in modes:
        if mode == "f16" and not cuda:
            settings[mode] = {"skipped": "CPU autocast is bf16, not this comparison"}
            continue
        errors = set_ieee() if mode == "ieee" else []
        settings[mode] = {"flags": flags(), "errors": errors}

        def make_run(model, mode=mode):
            if mode == "f16":
                def run(inp):
                    with torch.autocast("cuda", dtype=torch.float16):
                        return model(inp)
                return run
            return model

        for batch in batches:
            x = torch.randn(batch, 3, 224, 224, device=device)
            t_nchw = timed_passes(make_run(nchw), x, args.iters, args.warmup, sync)
            xcl = x.contiguous(memory_format=torch.channels_last)
            t_cl = timed_passes(make_run(cl), xcl, args.iters, args.warmup, sync)
            m_nchw, m_cl = statistics.median(t_nchw), statistics.median(t_cl)
            best, times, fmt = (m_cl, t_cl, "channels_last") if m_cl < m_nchw else (m_nchw, t_nchw, "nchw")
            row = {
                "peer": "pytorch",
                "device": name,
                "mode": mode,
                "precision": {"default": "f32-default", "ieee": "f32", "f16": "f16"}[mode],
                "batch": batch,
                "memory_format": fmt,
                "median_ms": best * 1e3,
                "min_ms": min(times) * 1e3,
                "max_ms": max(times) * 1e3,
                "nchw_ms": m_nchw * 1e3,
                "channels_last_ms": m_cl * 1e3,
                "images_per_s": batch / best,
                "gflops": GFLOP_PER_IMAGE * batch / best,
            }
            rows.append(row)
            save()
            print(
                f"pytorch {mode:>7} batch {batch:4d}: {row['median_ms']:9.3f} ms "
                f"{row['images_per_s']:10.1f} img/s {row['gflops']:9.1f} GFLOP/s ({fmt}; "
                f"nchw {m_nchw * 1e3:.3f} ms, channels_last {m_cl * 1e3:.3f} ms)",
                flush=True,
            )
        if cuda and not args.no_kernels:
            x = torch.randn(batches[-1], 3, 224, 224, device=device)
            try:
                kernels[mode] = kernel_names(make_run(nchw), x, sync)
            except Exception as e:  # noqa: BLE001 - the profiler is a bonus, never fatal
                kernels[mode] = [{"error": str(e)}]
    save()


if __name__ == "__main__":
    main()
