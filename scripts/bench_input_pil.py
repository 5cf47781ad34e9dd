#!/usr/bin/env python3
"""PIL's side of `alexnet bench --input`: the same decode + resize 256 + centre crop 224 +
normalise on the same files, one thread, plain (torchvision's ImageFolder + transforms on a
PIL image) and with `Image.draft()` (JPEG DCT-domain downscaling to at least the resize
target). Prints images/s per pipeline.

    pip install numpy pillow
    python scripts/bench_input_pil.py DIR [--passes 3]
    python scripts/bench_input_pil.py DIR --save-npy OUT_PREFIX   # tensors for comparisons

--save-npy writes OUT_PREFIX_exact.npy and OUT_PREFIX_draft.npy ([N, 3, 224, 224], files in
sorted order, EXIF orientation not applied, as torchvision) for comparing preprocessed inputs.
"""
import argparse
import glob
import os
import time

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def target(w, h, size=256):
    # torchvision Resize(256): shorter side to 256, the longer truncated.
    return (size, int(size * h / w)) if w <= h else (int(size * w / h), size)


def pipeline(path, draft):
    im = Image.open(path)
    if draft:
        im.draft("RGB", target(*im.size))
    im = im.convert("RGB")
    im = im.resize(target(*im.size), Image.BILINEAR)
    w, h = im.size
    left, top = int(round((w - 224) / 2.0)), int(round((h - 224) / 2.0))
    im = im.crop((left, top, left + 224, top + 224))
    a = np.asarray(im, np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--save-npy")
    a = ap.parse_args()
    files = sorted(f for f in glob.glob(os.path.join(a.dir, "*")) if f.lower().endswith((".jpg", ".jpeg", ".png")))
    if a.save_npy:
        for draft, name in ((False, "exact"), (True, "draft")):
            np.save(f"{a.save_npy}_{name}.npy", np.stack([pipeline(f, draft) for f in files]))
        return
    for draft, name in ((False, "PIL plain"), (True, "PIL draft()")):
        for f in files:
            pipeline(f, draft)  # warm-up: page cache
        t = time.perf_counter()
        for _ in range(a.passes):
            for f in files:
                pipeline(f, draft)
        s = time.perf_counter() - t
        n = len(files) * a.passes
        print(f"{name:<12} {n / s:8.1f} images/s  {1e3 * s / n:8.2f} ms/image  (1 thread, {n} images)")


if __name__ == "__main__":
    main()
