#!/usr/bin/env python3
"""Regenerate the files under assets/ (test photos and the ImageNet class list).

Usage:
    pip install numpy pillow scikit-image
    python scripts/make_assets.py                      # photos only
    pip download --no-deps torchvision -d /tmp/tv      # (optional) for the class list
    python scripts/make_assets.py --torchvision-wheel /tmp/tv/torchvision-*.whl

Photos come from scikit-image's bundled sample data (skimage.data); their origin and
licence are listed in assets/README.md. The class list is `_IMAGENET_CATEGORIES` from
`torchvision/models/_meta.py` inside the torchvision wheel (BSD-3-Clause); it is read
from the wheel with zipfile + ast, torch is not needed.

Output is deterministic for a given Pillow / libjpeg build.
"""
import argparse
import ast
import os
import sys
import zipfile

import numpy as np
from PIL import Image
import skimage.data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ASSETS = os.path.join(ROOT, "assets")

# name in skimage.data -> (output file, longest side after downscale or None)
PHOTOS = [
    ("chelsea", "chelsea.jpg", None),      # 451x300, cat; photo #1 for preprocessing refs
    ("coffee", "coffee.jpg", 480),         # 600x400 -> 480x320, coffee cup
    ("astronaut", "astronaut.jpg", 384),   # 512x512 -> 384x384
    ("rocket", "rocket.jpg", 480),         # 640x427 -> 480x320
    ("camera", "camera.png", 320),         # 512x512 gray -> 320x320 gray PNG
]
JPEG_QUALITY = 90


def save_photos():
    os.makedirs(os.path.join(ASSETS, "images"), exist_ok=True)
    for name, fname, longest in PHOTOS:
        arr = getattr(skimage.data, name)()
        img = Image.fromarray(np.ascontiguousarray(arr))
        if longest is not None and max(img.size) > longest:
            w, h = img.size
            s = longest / max(w, h)
            img = img.resize((round(w * s), round(h * s)), Image.LANCZOS)
        path = os.path.join(ASSETS, "images", fname)
        if fname.endswith(".jpg"):
            # 4:4:4 (no chroma subsampling) so decoders do not differ by their
            # chroma upsampling; remaining decoder differences are IDCT rounding.
            img.save(path, "JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=True)
        else:
            img.save(path, "PNG", optimize=True)
        print(f"{path}: {img.mode} {img.size[0]}x{img.size[1]}, {os.path.getsize(path)} bytes")


def save_classes(wheel):
    with zipfile.ZipFile(wheel) as z:
        src = z.read("torchvision/models/_meta.py").decode("utf-8")
    cats = None
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", None) == "_IMAGENET_CATEGORIES" for t in node.targets
        ):
            cats = ast.literal_eval(node.value)
    if cats is None or len(cats) != 1000:
        sys.exit("could not find 1000 entries of _IMAGENET_CATEGORIES in the wheel")
    path = os.path.join(ASSETS, "imagenet_classes.txt")
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\n".join(cats) + "\n")
    print(f"{path}: {len(cats)} classes from {os.path.basename(wheel)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torchvision-wheel", help="path to a torchvision .whl to take the class list from")
    args = ap.parse_args()
    save_photos()
    if args.torchvision_wheel:
        save_classes(args.torchvision_wheel)


if __name__ == "__main__":
    main()
