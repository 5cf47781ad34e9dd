#!/usr/bin/env python3
"""PyTorch training peer for `alexnet bench --train-from`: images/s of torchvision AlexNet steps.

The same step as ours (src/cli/bench_train.rs): torchvision AlexNet with a new last layer of
10 classes, everything below `--train-from`'s layer frozen (`requires_grad = False`) and run
once, before timing, as ours caches it; the timed step is the trained part's forward, the mean
cross-entropy, backward and `torch.optim.SGD(lr=1e-4, momentum=0.9, weight_decay=0)` over the
trained parameters, dropout off (ours benches with `--dropout 0`). Per `--train-from` and batch
three rows, each the faster of NCHW and channels_last (both times recorded):
- `default`: PyTorch as installed (cuDNN convolutions in TF32 on Ampere and later);
- `ieee`: IEEE fp32 everywhere (TF32 off through the old flags and, where present, the new
  `fp32_precision` API; torch_bench.py's `set_ieee`), the flags read back and recorded;
- `f16`: fp16 autocast with a GradScaler, as a mixed-precision fine-tune runs (CUDA only: CPU
  autocast is bf16, not this comparison; recorded as skipped there).
`cudnn.benchmark` is on. CUDA-synchronised timing, median of `--iters` steps after `--warmup`,
the input already on the device. Random weights (no download). The JSON is rewritten after
every row, so a run cut short keeps what it measured.

    python3 scripts/torch_train_bench.py --train-from fc8,conv4,conv1 --batch 32,128 --out t.json
    python3 scripts/torch_train_bench.py --device cpu --train-from fc8 --batch 1,2 --iters 3
"""

import argparse
import copy
import json
import os
import statistics
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_bench import flags, set_ieee  # noqa: E402 - the same precision switches

CLASSES = 10
LR, MOMENTUM = 1e-4, 0.9
# The first trained module of each `--train-from`, as (part, index) in torchvision's AlexNet:
# features = conv1 relu pool conv2 relu pool conv3 relu conv4 relu conv5 relu pool;
# classifier = dropout fc6 relu dropout fc7 relu fc8.
FIRST = {
    "conv1": ("features", 0),
    "conv2": ("features", 3),
    "conv3": ("features", 6),
    "conv4": ("features", 8),
    "conv5": ("features", 10),
    "fc6": ("classifier", 0),
    "fc7": ("classifier", 4),
    "fc8": ("classifier", 6),
}


def split(model, first):
    """(frozen, trained) halves of `model` at the first trained layer `first`."""
    part, index = FIRST[first]
    nn = torch.nn
    flat = nn.Sequential(model.avgpool, nn.Flatten(1))
    if part == "features":
        frozen = nn.Sequential(*list(model.features)[:index])
        trained = nn.Sequential(*list(model.features)[index:], flat, *list(model.classifier))
    else:
        frozen = nn.Sequential(model.features, flat, *list(model.classifier)[:index])
        trained = nn.Sequential(*list(model.classifier)[index:])
    for p in frozen.parameters():
        p.requires_grad = False
    return frozen, trained


def base_model(device):
    """torchvision AlexNet, 10 classes, dropout off, on `device` (made once, copied per row)."""
    torch.manual_seed(0)
    model = torchvision.models.alexnet(weights=None)
    model.classifier[6] = torch.nn.Linear(4096, CLASSES)
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model.to(device)


def build(base, first):
    frozen, trained = split(copy.deepcopy(base), first)
    return frozen.eval(), trained.train()


def timed_steps(step, iters, warmup, sync):
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return times


def make_step(trained, x, y, mode, device):
    params = [p for p in trained.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=LR, momentum=MOMENTUM, weight_decay=0.0)
    f16 = mode == "f16"
    scaler = None
    if f16:  # torch.amp.GradScaler since PyTorch 2.3, torch.cuda.amp's before
        amp = getattr(torch, "amp", None)
        scaler = amp.GradScaler(device.type) if hasattr(amp, "GradScaler") else torch.cuda.amp.GradScaler()
    loss_fn = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=True)
        if f16:
            with torch.autocast(device.type, dtype=torch.float16):
                loss = loss_fn(trained(x), y)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss = loss_fn(trained(x), y)
            loss.backward()
            opt.step()

    return step


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--train-from", default="fc8,conv4,conv1")
    ap.add_argument("--batch", default="32,128")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--modes", default="default,ieee,f16", help="rows: default, ieee, f16")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()

    firsts = args.train_from.split(",")
    for f in firsts:
        if f not in FIRST:
            ap.error(f"--train-from {f}: expected one of {', '.join(FIRST)}")
    batches = [int(b) for b in args.batch.split(",")]
    modes = [m for m in ("default", "ieee", "f16") if m in args.modes.split(",")]
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        sync = torch.cuda.synchronize
        name = torch.cuda.get_device_name(device)
    else:
        sync = lambda: None  # noqa: E731
        name = f"CPU ({torch.get_num_threads()} threads)"
    torch.backends.cudnn.benchmark = True
    base = base_model(device)
    settings, rows = {}, []

    def save():
        if not args.out:
            return
        result = {
            "torch": torch.__version__,
            "torchvision": torchvision.__version__,
            "cuda": torch.version.cuda if cuda else None,
            "device": name,
            "cudnn_benchmark": True,
            "classes": CLASSES,
            "optimizer": {"sgd": {"lr": LR, "momentum": MOMENTUM, "weight_decay": 0.0}},
            "settings": settings,
            "results": rows,
        }
        with open(args.out + ".part", "w") as f:
            json.dump(result, f, indent=1)
        os.replace(args.out + ".part", args.out)

    # The default row first: nothing changed yet but cudnn.benchmark.
    for mode in modes:
        if mode == "f16" and not cuda:
            settings[mode] = {"skipped": "CPU autocast is bf16, not this comparison"}
            continue
        errors = set_ieee() if mode == "ieee" else []
        settings[mode] = {"flags": flags(), "errors": errors}
        for first in firsts:
            frozen, trained = build(base, first)
            n_trained = sum(p.numel() for p in trained.parameters() if p.requires_grad)
            for batch in batches:
                image = torch.randn(batch, 3, 224, 224, device=device)
                y = torch.arange(batch, device=device) % CLASSES
                with torch.no_grad():
                    x = frozen(image)  # the frozen part's output, cached as ours caches it
                times = {}
                for fmt in ("nchw", "channels_last"):
                    if fmt == "channels_last" and x.dim() != 4:
                        continue  # a dense layer's input has no memory format
                    memory = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
                    trained = trained.to(memory_format=memory)
                    xf = x.contiguous(memory_format=memory)
                    step = make_step(trained, xf, y, mode, device)
                    times[fmt] = timed_steps(step, args.iters, args.warmup, sync)
                medians = {k: statistics.median(v) for k, v in times.items()}
                fmt = min(medians, key=medians.get)
                best = medians[fmt]
                row = {
                    "peer": "pytorch",
                    "device": name,
                    "mode": mode,
                    "precision": {"default": "f32-default", "ieee": "f32", "f16": "f16"}[mode],
                    "train_from": first,
                    "trained_parameters": n_trained,
                    "batch": batch,
                    "memory_format": fmt,
                    "median_ms": best * 1e3,
                    "min_ms": min(times[fmt]) * 1e3,
                    "max_ms": max(times[fmt]) * 1e3,
                    "nchw_ms": medians["nchw"] * 1e3,
                    "channels_last_ms": medians["channels_last"] * 1e3 if "channels_last" in medians else None,
                    "images_per_s": batch / best,
                }
                rows.append(row)
                save()
                print(
                    f"pytorch train {mode:>7} from {first:<5} batch {batch:4d}: "
                    f"{row['median_ms']:9.3f} ms {row['images_per_s']:10.1f} img/s ({fmt})",
                    flush=True,
                )
    save()


if __name__ == "__main__":
    main()
