#!/usr/bin/env python3
"""Photo-sized JPEGs for the input-pipeline tests and for `alexnet bench --input`.

Usage:
    pip install numpy pillow
    python scripts/make_input_images.py              # tests/fixtures/input/ (small, committed)
    python scripts/make_input_images.py --bench DIR  # DIR/phone_*.jpg (4032x3024) and
                                                     # DIR/small_*.jpg (500x375), not committed

A "photo" is a mosaic of the committed photos in assets/images, upscaled and given a little
sensor-like grain so the JPEG carries as much detail as a phone photo does (a plain upscale
would be unrealistically smooth and fast to decode). Deterministic (fixed seeds).
"""
import argparse
import os

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMG = os.path.join(ROOT, "assets", "images")
OUT = os.path.join(ROOT, "tests", "fixtures", "input")
PHOTOS = ["chelsea.jpg", "coffee.jpg", "rocket.jpg", "astronaut.jpg"]


def photo(w, h, seed, grain=4.0):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(PHOTOS))
    canvas = Image.new("RGB", (w, h))
    # 2x2 mosaic, the first photo large (3/5 of the width), as a subject.
    cw = w * 3 // 5
    boxes = [(0, 0, cw, h), (cw, 0, w, h // 3), (cw, h // 3, w, 2 * h // 3), (cw, 2 * h // 3, w, h)]
    for i, (x0, y0, x1, y1) in zip(order, boxes):
        src = Image.open(os.path.join(IMG, PHOTOS[i])).convert("RGB")
        canvas.paste(src.resize((x1 - x0, y1 - y0), Image.BICUBIC), (x0, y0))
    a = np.asarray(canvas).astype(np.float32)
    a += rng.normal(0.0, grain, a.shape).astype(np.float32)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8))


def exif_orientation(value):
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def fixtures():
    os.makedirs(OUT, exist_ok=True)
    # The fast-path test image: 2000x1500 is >= 2x the 341x256 target, so it decodes at 1/4.
    photo(2000, 1500, 1, grain=2.0).save(os.path.join(OUT, "large_2000x1500.jpg"), quality=80)
    # An upright view, and the same view stored sideways with EXIF orientation 6 ("rotate
    # 90 degrees clockwise to view"), as a phone held upright stores it.
    view = Image.open(os.path.join(IMG, "chelsea.jpg")).convert("RGB")
    view.save(os.path.join(OUT, "upright.jpg"), quality=95)
    stored = view.transpose(Image.ROTATE_90)  # counter-clockwise; the tag undoes it
    stored.save(os.path.join(OUT, "exif_rotate90.jpg"), quality=95, exif=exif_orientation(6))
    # A CMYK JPEG (Adobe, as Photoshop writes them).
    view.convert("CMYK").save(os.path.join(OUT, "cmyk.jpg"), quality=95)


def bench(d):
    os.makedirs(d, exist_ok=True)
    for i in range(8):
        photo(4032, 3024, 100 + i).save(os.path.join(d, f"phone_{i}.jpg"), quality=90)
        photo(500, 375, 200 + i, grain=2.0).save(os.path.join(d, f"small_{i}.jpg"), quality=90)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", metavar="DIR")
    a = ap.parse_args()
    bench(a.bench) if a.bench else fixtures()
