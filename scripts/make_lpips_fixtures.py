#!/usr/bin/env python3
"""Regenerate tests/fixtures/lpips/: reference LPIPS (net='alex') values from the real
`lpips` package, for testing the Rust `alexnet lpips` implementation.

Usage:
    pip install lpips==0.1.4 torch torchvision numpy pillow opencv-python-headless
    python scripts/make_lpips_fixtures.py

Made with: lpips 0.1.4, torch 2.15.0 (CPU), torchvision 0.29.2, numpy 2.4.6, Pillow 13.0.0,
opencv-python-headless 5.1.0.95 (cv2 is what lpips.load_image uses to read .png files), on
Python 3.11.7. Runs offline in about 20 s on one core, and is deterministic: the images come
from numpy's default_rng with fixed seeds, the AlexNet trunk weights from the integer hash
below (no pretrained download: the model is built with pnet_rand=True and the trunk is then
overwritten), and the linear layers from the lpips wheel's own weights/v0.{0,1}/alex.pth
(the same bytes as assets/lpips/, checked by sha256).

Outputs (see tests/fixtures/lpips/README.md for the details and the formulas):
    *.png                      input images (generated here)
    expected.json              distances (v0.1, v0.0, baseline lpips=False), per-layer
                               terms, the 6x6 matrix of the 64x64 images, trunk check values
    spatial_sq.npy             v0.1 spatial map [64, 64] for (sq_a.png, sq_c.png)
    spatial_rect.npy           v0.1 spatial map [80, 48] for (rect_a.png, rect_b.png)
    sq_layers.npz              v0.1 native-resolution per-layer maps for (sq_a, sq_c),
                               plus the raw trunk outputs relu1..relu5 of both images
Writes /tmp/lpips_trunk.npz (the generated trunk, for inspection; not part of the repo).
"""
import hashlib
import importlib.metadata
import json
import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import warnings

import numpy as np
import torch
from PIL import Image

warnings.filterwarnings("ignore", category=UserWarning)  # torchvision 'pretrained' deprecation
import lpips  # noqa: E402

torch.set_num_threads(1)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures", "lpips")
ASSETS = os.path.join(ROOT, "assets", "lpips")
LIN_SHA256 = {
    "0.1": "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    "0.0": "18720f55913d0af89042f13faa7e536a6ce1444a0914e6db9461355ece1e8cd5",
}

# ---------------------------------------------------------------------------------------
# Trunk weights by formula (splitmix64-style hash of the flat index; see README.md)
# ---------------------------------------------------------------------------------------
M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
LAYER_MUL = 0xD1B54A32D192ED03
MIX = 0xBF58476D1CE4E5B9
# (features index, out_ch, in_ch, k, stride, pad)
CONVS = [(0, 64, 3, 11, 4, 2), (3, 192, 64, 5, 1, 2), (6, 384, 192, 3, 1, 1),
         (8, 256, 384, 3, 1, 1), (10, 256, 256, 3, 1, 1)]


def hash_u(n, salt):
    """u in [0,1) for flat indices i = 0..n-1, salt = l+1 (weights) or l+101 (biases)."""
    i = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = (i + np.uint64(1)) * np.uint64(GOLDEN) + np.uint64((salt * LAYER_MUL) & M64)
        x ^= x >> np.uint64(31)
        x = x * np.uint64(MIX)
        x ^= x >> np.uint64(29)
    return (x >> np.uint64(11)).astype(np.float64) / float(2 ** 53)


def hash_u_scalar(i, salt):
    """Pure-integer reference of hash_u for one index (used as a cross-check)."""
    x = ((i + 1) * GOLDEN + salt * LAYER_MUL) & M64
    x ^= x >> 31
    x = (x * MIX) & M64
    x ^= x >> 29
    return float(x >> 11) / float(2 ** 53)


def make_trunk():
    sd = {}
    for l, (fi, oc, ic, k, _s, _p) in enumerate(CONVS):
        fan_in = ic * k * k
        u = hash_u(oc * fan_in, l + 1)
        w = ((u - 0.5) * 2.0 * np.sqrt(3.0 / fan_in)).astype(np.float32)
        ub = hash_u(oc, l + 101)
        b = ((ub - 0.5) * 0.1).astype(np.float32)
        # cross-check a few elements against the pure-integer version
        for j in (0, 1, 2, 3, oc * fan_in - 1):
            assert np.float32((hash_u_scalar(j, l + 1) - 0.5) * 2.0 * np.sqrt(3.0 / fan_in)) == w[j]
        for j in (0, oc - 1):
            assert np.float32((hash_u_scalar(j, l + 101) - 0.5) * 0.1) == b[j]
        sd["features.%d.weight" % fi] = w.reshape(oc, ic, k, k)
        sd["features.%d.bias" % fi] = b
    return sd


TRUNK = make_trunk()
# features.N lives in lpips' pretrained_networks.alexnet as sliceK.N
SLICE_OF = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}


def build(version="0.1", lpips_on=True, spatial=False, dtype=torch.float32):
    m = lpips.LPIPS(net="alex", version=version, lpips=lpips_on, spatial=spatial,
                    pretrained=True, pnet_rand=True, verbose=False)
    net_sd = {}
    for key, arr in TRUNK.items():
        _, fi, kind = key.split(".")
        net_sd["slice%d.%s.%s" % (SLICE_OF[int(fi)], fi, kind)] = torch.from_numpy(arr)
    missing = m.net.load_state_dict(net_sd, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    if lpips_on:
        # lpips loads lin weights with strict=False: make sure they really were loaded
        path = os.path.join(os.path.dirname(lpips.__file__), "weights", "v%s" % version, "alex.pth")
        with open(path, "rb") as f:
            assert hashlib.sha256(f.read()).hexdigest() == LIN_SHA256[version]
        ref = torch.load(path, map_location="cpu")
        for k in range(5):
            assert torch.equal(m.lins[k].model[1].weight.data, ref["lin%d.model.1.weight" % k])
            with open(os.path.join(ASSETS, "v%s" % version, "alex.pth"), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() == LIN_SHA256[version]
    m.eval()
    return m.to(dtype)


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------
def scene(w, h, seed, shift=(0, 0), noise=6.0, noise_seed=None):
    """Smooth gradients + a wave + a few shapes + Gaussian noise; float64 [h, w, 3] 0..255."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    xn, yn = xx / max(w - 1, 1), yy / max(h - 1, 1)
    img = np.empty((h, w, 3))
    for c in range(3):
        a, bx, by, amp = rng.uniform(40, 200), rng.uniform(-60, 60), rng.uniform(-60, 60), rng.uniform(10, 40)
        fx, fy, ph = rng.uniform(0.5, 3), rng.uniform(0.5, 3), rng.uniform(0, 2 * np.pi)
        img[..., c] = a + bx * xn + by * yn + amp * np.sin(2 * np.pi * (fx * xn + fy * yn) + ph)
    dx, dy = shift
    for _ in range(4):
        col = rng.uniform(0, 255, 3)
        cx, cy = rng.uniform(0.15, 0.85) * w + dx, rng.uniform(0.15, 0.85) * h + dy
        r = rng.uniform(0.08, 0.25) * min(w, h)
        if rng.uniform() < 0.5:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        else:
            mask = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= 0.6 * r)
        img[mask] = col
    nrng = np.random.default_rng(seed + 1000 if noise_seed is None else noise_seed)
    img += nrng.normal(0, noise, img.shape)
    return img


def box_blur(img, r=1):
    p = np.pad(img, ((r, r), (r, r), (0, 0)), mode="edge")
    out = np.zeros_like(img)
    k = 2 * r + 1
    for dy in range(k):
        for dx in range(k):
            out += p[dy:dy + img.shape[0], dx:dx + img.shape[1]]
    return out / (k * k)


def u8(img):
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def make_images():
    """name -> (PIL mode, uint8 array as saved)"""
    ims = {}
    base = scene(64, 64, 1)
    ims["sq_a.png"] = u8(base)
    ims["sq_b.png"] = u8(scene(64, 64, 1, noise_seed=77, noise=14.0))   # same scene, more noise
    ims["sq_c.png"] = u8(scene(64, 64, 1, shift=(3, -2)))               # shapes moved
    ims["sq_d.png"] = u8(box_blur(base, 1))                              # blurred
    ims["sq_e.png"] = u8(scene(64, 64, 2))                               # other scene
    ims["sq_f.png"] = u8(scene(64, 64, 3))                               # other scene
    ims["rect_a.png"] = u8(scene(48, 80, 11))                            # W=48, H=80
    ims["rect_b.png"] = u8(scene(48, 80, 11, shift=(-2, 4), noise_seed=78))
    ims["odd_a.png"] = u8(scene(37, 53, 21))                             # W=37, H=53
    ims["odd_b.png"] = u8(box_blur(scene(37, 53, 21, noise_seed=79), 1))
    ims["min_a.png"] = u8(scene(31, 31, 31))                             # smallest valid size
    ims["min_b.png"] = u8(scene(31, 31, 32))
    ims["big_a.png"] = u8(scene(96, 96, 41))
    ims["big_b.png"] = u8(scene(96, 96, 41, shift=(5, 5), noise_seed=80, noise=10.0))
    g = base @ np.array([0.299, 0.587, 0.114])                          # gray of sq_a's scene
    ims["gray.png"] = u8(g)                                              # 2-D -> mode L
    rgb = u8(scene(64, 64, 3, noise_seed=81))
    yy, xx = np.mgrid[0:64, 0:64]
    alpha = ((xx * 4 + yy * 2) % 256).astype(np.uint8)                   # alpha varies 0..255
    alpha[:8, :8] = 0                                                    # fully transparent corner
    ims["rgba.png"] = np.dstack([rgb, alpha])                            # 4 channels -> RGBA
    return ims


PAIRS = [
    ("sq_a.png", "sq_a.png"),     # identical: exactly 0
    ("sq_a.png", "sq_b.png"),
    ("sq_a.png", "sq_c.png"),     # also the square spatial-map pair
    ("sq_a.png", "sq_d.png"),
    ("sq_a.png", "sq_e.png"),
    ("rect_a.png", "rect_b.png"),  # also the non-square spatial-map pair
    ("rect_b.png", "rect_b.png"),  # identical, non-square
    ("odd_a.png", "odd_b.png"),
    ("min_a.png", "min_b.png"),
    ("big_a.png", "big_b.png"),
    ("gray.png", "sq_a.png"),      # gray replicated to RGB
    ("rgba.png", "sq_f.png"),      # alpha dropped
    ("gray.png", "rgba.png"),
    ("gray.png", "gray.png"),      # identical
]
MATRIX = ["sq_a.png", "sq_b.png", "sq_c.png", "sq_d.png", "sq_e.png", "sq_f.png"]


def load(name, dtype=torch.float32):
    """Exactly what lpips' own scripts do: cv2.imread -> BGR->RGB uint8, then /127.5 - 1."""
    img = lpips.load_image(os.path.join(FIX, name))
    return lpips.im2tensor(img).to(dtype)


def f(x):
    return float(x)  # float32 -> exact float64 -> shortest repr in JSON


def main():
    os.makedirs(FIX, exist_ok=True)
    np.savez("/tmp/lpips_trunk.npz", **TRUNK)

    ims = make_images()
    for name, arr in ims.items():
        Image.fromarray(arr).save(os.path.join(FIX, name))
    # the loader must agree with "gray -> replicate, RGBA -> drop alpha"
    for name, arr in ims.items():
        got = np.ascontiguousarray(lpips.load_image(os.path.join(FIX, name)))
        want = np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr[..., :3]
        assert got.dtype == np.uint8 and np.array_equal(got, want), name

    m01 = build("0.1")
    m00 = build("0.0")
    mbase = build("0.1", lpips_on=False)
    m01_64 = build("0.1", dtype=torch.float64)
    m00_64 = build("0.0", dtype=torch.float64)
    mbase_64 = build("0.1", lpips_on=False, dtype=torch.float64)

    out = {
        "versions": {k: importlib.metadata.version(k) for k in
                     ("lpips", "torch", "torchvision", "numpy", "pillow", "opencv-python-headless")},
        "images": {n: {"width": int(a.shape[1]), "height": int(a.shape[0]),
                       "png_mode": {2: "L", 3: "RGB", 4: "RGBA"}[a.ndim if a.ndim == 2 else a.shape[2]]}
                   for n, a in sorted(ims.items())},
        "trunk_check": {
            "features.0.weight[:4]": [f(v) for v in TRUNK["features.0.weight"].ravel()[:4]],
            "features.10.bias[:4]": [f(v) for v in TRUNK["features.10.bias"][:4]],
            "features.0.weight[:4]_bits": ["0x%08x" % v for v in TRUNK["features.0.weight"].ravel()[:4].view(np.uint32)],
            "features.10.bias[:4]_bits": ["0x%08x" % v for v in TRUNK["features.10.bias"][:4].view(np.uint32)],
            "last_elements": {k: f(v.ravel()[-1]) for k, v in TRUNK.items()},
            "sum_f64": {k: float(v.astype(np.float64).sum()) for k, v in TRUNK.items()},
        },
        "pairs": [],
    }

    max_rel = {"v0.1": 0.0, "v0.0": 0.0, "baseline": 0.0}
    with torch.no_grad():
        for a, b in PAIRS:
            x0, x1 = load(a), load(b)
            rec = {"a": a, "b": b}
            for key, m, m64 in (("v0.1", m01, m01_64), ("v0.0", m00, m00_64), ("baseline", mbase, mbase_64)):
                d, layers = m(x0, x1, retPerLayer=True)
                d64, layers64 = m64(load(a, torch.float64), load(b, torch.float64), retPerLayer=True)
                assert d.shape == (1, 1, 1, 1)
                rec[key] = f(d.item())
                rec[key + "_layers"] = [f(t.item()) for t in layers]
                rec[key + "_f64"] = float(d64.item())
                if a == b:
                    assert d.item() == 0.0 and d64.item() == 0.0, (a, key)
                else:
                    max_rel[key] = max(max_rel[key], abs(d.item() - d64.item()) / abs(d64.item()))
                # the total is the f32 sum of the layer terms in order 0..4
                s = torch.zeros(1, 1, 1, 1)
                for t in layers:
                    s = s + t
                assert s.item() == d.item()
            out["pairs"].append(rec)

        mat = [[f(m01(load(a), load(b)).item()) for b in MATRIX] for a in MATRIX]
        for i in range(6):
            assert mat[i][i] == 0.0
            for j in range(6):
                assert mat[i][j] == mat[j][i]
        out["matrix_v0.1"] = {"images": MATRIX, "values": mat}
        out["f32_vs_f64_max_rel_diff"] = max_rel

        # spatial maps (v0.1)
        msp = build("0.1", spatial=True)
        spatial = {}
        for tag, (a, b) in (("sq", ("sq_a.png", "sq_c.png")), ("rect", ("rect_a.png", "rect_b.png"))):
            x0, x1 = load(a), load(b)
            smap, sl = msp(x0, x1, retPerLayer=True)
            H, W = x0.shape[2:]
            assert smap.shape == (1, 1, H, W)
            arr = smap[0, 0].numpy().astype(np.float32)
            np.save(os.path.join(FIX, "spatial_%s.npy" % tag), arr)
            spatial[tag] = {"a": a, "b": b, "file": "spatial_%s.npy" % tag, "shape": [int(H), int(W)],
                            "max": f(arr.max()), "mean": float(arr.astype(np.float64).mean()),
                            "layer_means_upsampled": [float(t.double().mean()) for t in sl]}
        out["spatial_v0.1"] = spatial

        # native-resolution per-layer maps and raw trunk outputs for (sq_a, sq_c), v0.1
        x0, x1 = load("sq_a.png"), load("sq_c.png")
        o0 = m01.net(m01.scaling_layer(x0))
        o1 = m01.net(m01.scaling_layer(x1))
        npz = {}
        layer_info = []
        d_ref, layers_ref = m01(x0, x1, retPerLayer=True)
        for k in range(5):
            n0, n1 = lpips.normalize_tensor(o0[k]), lpips.normalize_tensor(o1[k])
            lm = m01.lins[k]((n0 - n1) ** 2)                       # [1, 1, h, w]
            assert torch.equal(lpips.spatial_average(lm), layers_ref[k])
            npz["layer%d" % k] = lm[0, 0].numpy().astype(np.float32)
            npz["a_relu%d" % (k + 1)] = o0[k][0].numpy().astype(np.float32)
            npz["b_relu%d" % (k + 1)] = o1[k][0].numpy().astype(np.float32)
            layer_info.append({"layer%d" % k: list(lm.shape[2:]), "relu%d" % (k + 1): list(o0[k].shape[1:])})
        np.savez(os.path.join(FIX, "sq_layers.npz"), **npz)  # stored, not deflated: the crate's zip has no deflate
        out["sq_layers_v0.1"] = {"a": "sq_a.png", "b": "sq_c.png", "file": "sq_layers.npz",
                                 "shapes": layer_info, "distance": f(d_ref.item())}

    with open(os.path.join(FIX, "expected.json"), "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    for p in out["pairs"]:
        print("%-10s %-10s v0.1 %.6f  v0.0 %.6f  baseline %.6f" % (p["a"], p["b"], p["v0.1"], p["v0.0"], p["baseline"]))
    print("f32 vs f64 max rel diff:", max_rel)


if __name__ == "__main__":
    main()
