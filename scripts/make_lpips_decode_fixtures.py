#!/usr/bin/env python3
"""Regenerate tests/fixtures/lpips/decode/: small JPEGs and 16-bit PNGs and the pixels the
`lpips` package reads from them (`lpips.load_image` is `cv2.imread(path)[:, :, ::-1]`), for
testing that `alexnet lpips` decodes files as cv2 does (tests/it/lpips_decode.rs).

Usage (CI never runs this; the outputs are committed):
    python -m venv /tmp/cv2venv && /tmp/cv2venv/bin/pip install opencv-python-headless numpy pillow
    /tmp/cv2venv/bin/python scripts/make_lpips_decode_fixtures.py

Made with opencv-python-headless 5.1.0 (its bundled libjpeg-turbo and libpng), numpy 2.4.6,
Pillow 13.0.0 (the JPEG encoder). Deterministic: the images come from numpy's default_rng with
a fixed seed.

Every side is at least 31 px, the smallest the LPIPS trunk takes. Outputs, each image beside `NAME.npy` (uint8 [H, W, 3], RGB: what cv2.imread gives, reversed
from BGR):
    q420.jpg       4:2:0 chroma subsampling (PIL's default), quality 85, 37x33 (odd sides:
                   the fancy upsampler's edge rows and columns)
    q444.jpg       4:4:4, quality 90, 40x32
    q422.jpg       4:2:2, quality 75, 33x31
    grey.jpg       grayscale (one component), 35x33
    prog.jpg       progressive 4:2:0, quality 80, 41x34
    rgb16.png      16-bit RGB PNG, 32x31 (cv2 keeps the high byte: v >> 8)
    grey16.png     16-bit grayscale PNG, 32x31
"""
import os

import cv2
import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "lpips", "decode")


def scene(rng, w, h):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.stack(
        [
            128 + 100 * np.sin(x / 3.0 + c) * np.cos(y / 4.0 - c) + rng.normal(0, 25, (h, w))
            for c in range(3)
        ],
        axis=-1,
    )
    # Sharp coloured edges: the chroma upsampling shows there.
    img[h // 3 : h // 2, w // 4 : w // 2] = [250, 10, 40]
    img[h // 2 :, 2 * w // 3 :, 2] = 5
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def save_npy(name, path):
    bgr = cv2.imread(path)  # lpips.load_image: cv2.imread(path)[:, :, ::-1]
    assert bgr is not None and bgr.dtype == np.uint8 and bgr.ndim == 3, path
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    np.save(os.path.join(OUT, name + ".npy"), rgb)
    return rgb


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(2028)
    jpegs = [
        ("q420", 37, 33, dict(quality=85, subsampling=2)),
        ("q444", 40, 32, dict(quality=90, subsampling=0)),
        ("q422", 33, 31, dict(quality=75, subsampling=1)),
        ("prog", 41, 34, dict(quality=80, subsampling=2, progressive=True)),
    ]
    for name, w, h, kw in jpegs:
        path = os.path.join(OUT, name + ".jpg")
        Image.fromarray(scene(rng, w, h)).save(path, "JPEG", **kw)
        save_npy(name, path)
    path = os.path.join(OUT, "grey.jpg")
    Image.fromarray(scene(rng, 35, 33)[:, :, 1]).save(path, "JPEG", quality=85)
    rgb = save_npy("grey", path)
    assert (rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all()

    # 16-bit PNGs, written by cv2 (BGR order on disk becomes RGB in the file).
    rgb16 = rng.integers(0, 65536, (31, 32, 3), dtype=np.uint16)
    path = os.path.join(OUT, "rgb16.png")
    assert cv2.imwrite(path, rgb16[:, :, ::-1])
    got = save_npy("rgb16", path)
    assert (got == (rgb16 >> 8)).all(), "cv2 no longer reduces 16-bit PNGs by >> 8"
    grey16 = rng.integers(0, 65536, (31, 32), dtype=np.uint16)
    path = os.path.join(OUT, "grey16.png")
    assert cv2.imwrite(path, grey16)
    got = save_npy("grey16", path)
    assert (got == (grey16 >> 8)[:, :, None]).all()
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


if __name__ == "__main__":
    main()
