#!/usr/bin/env python3
"""Helper of scripts/lpips-bench.sh: inputs, the `lpips` package side, and the checks.

    lpips_bench.py gen DIR            images (100 at 64x64, 40 at 256x256), pair lists and a
                                      full-size torchvision-layout AlexNet .npz (random values)
    lpips_bench.py torch DIR MODE OUT.json [--max-seconds S]
                                      time the lpips 0.1.4 package (net='alex', v0.1) on PyTorch
                                      CPU with torch.set_num_threads(THREADS, default 2); MODE:
                                        pairs64 / pairs256  one forward per pair, batch 1
                                        allpairs            lpips_1dir_allpairs.py's loop (one
                                                            forward per pair, all N(N-1)/2)
                                        batched64 / batched256 / batched-allpairs
                                                            the same pairs in batches of BATCH (32)
    lpips_bench.py check DIR          our matrix/pair outputs vs the package's distances
    lpips_bench.py table DIR          the results table from DIR/results.jsonl

Everything is deterministic (numpy default_rng, fixed seeds) and offline: the trunk is not the
ImageNet AlexNet (no download), the lin layers are the package's own v0.1 weights (the same
bytes as assets/lpips/v0.1/alex.pth, which the binary has built in), so both sides compute the
same function of the same inputs.
"""
import json
import os
import sys
import time

T0 = time.perf_counter()  # process start, as close as Python allows

THREADS = int(os.environ.get("THREADS", "2"))
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, str(THREADS))

import numpy as np  # noqa: E402

N64, N256 = 100, 40
PAIRS256 = 20


# ---------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------
def scene(size, rng):
    """Smooth per-channel gradients + a wave + a few shapes + Gaussian noise, u8 [s, s, 3]."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / (size - 1)
    img = np.empty((size, size, 3))
    for c in range(3):
        a, bx, by, amp = rng.uniform(40, 200), rng.uniform(-60, 60), rng.uniform(-60, 60), rng.uniform(10, 40)
        fx, fy, ph = rng.uniform(0.5, 3), rng.uniform(0.5, 3), rng.uniform(0, 2 * np.pi)
        img[..., c] = a + bx * xx + by * yy + amp * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    for _ in range(4):
        col = rng.uniform(0, 255, 3)
        cx, cy, r = rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85), rng.uniform(0.08, 0.25)
        if rng.uniform() < 0.5:
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        else:
            mask = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= 0.6 * r)
        img[mask] = col
    img += rng.normal(0, rng.uniform(3, 15), img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# torchvision AlexNet state_dict: (key, shape, fan_in)
TV = [("features.0", (64, 3, 11, 11)), ("features.3", (192, 64, 5, 5)),
      ("features.6", (384, 192, 3, 3)), ("features.8", (256, 384, 3, 3)),
      ("features.10", (256, 256, 3, 3)), ("classifier.1", (4096, 9216)),
      ("classifier.4", (4096, 4096)), ("classifier.6", (1000, 4096))]


def gen(d):
    from PIL import Image
    for sub in ("img64", "img256"):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    rng = np.random.default_rng(20240)
    for i in range(N64):
        Image.fromarray(scene(64, rng)).save(os.path.join(d, "img64", "im%03d.png" % i))
    for i in range(N256):
        Image.fromarray(scene(256, rng)).save(os.path.join(d, "img256", "im%03d.png" % i))
    p64 = [(os.path.join(d, "img64", "im%03d.png" % i), os.path.join(d, "img64", "im%03d.png" % ((i + 1) % N64)))
           for i in range(N64)]
    p256 = [(os.path.join(d, "img256", "im%03d.png" % i), os.path.join(d, "img256", "im%03d.png" % (i + PAIRS256)))
            for i in range(PAIRS256)]
    for name, pairs in (("pairs64.txt", p64), ("pairs256.txt", p256), ("pair1.txt", p64[:1])):
        with open(os.path.join(d, name), "w") as f:
            f.writelines("%s\t%s\n" % p for p in pairs)
    # Full-size torchvision-layout weights (61.1M float32, ~233 MiB), uniform +-sqrt(3/fan_in)
    # (unit-variance-preserving), biases +-0.05. np.savez: stored, not deflated.
    wrng = np.random.default_rng(7)
    sd = {}
    for key, shape in TV:
        fan_in = int(np.prod(shape[1:]))
        sd[key + ".weight"] = ((wrng.random(shape, dtype=np.float32) - 0.5) * 2 * np.sqrt(3.0 / fan_in)).astype(np.float32)
        sd[key + ".bias"] = ((wrng.random(shape[0], dtype=np.float32) - 0.5) * 0.1).astype(np.float32)
    np.savez(os.path.join(d, "alexnet-random.npz"), **sd)
    print("generated %d + %d images, %d + %d pairs, weights %.0f MiB" % (
        N64, N256, len(p64), len(p256), os.path.getsize(os.path.join(d, "alexnet-random.npz")) / 2 ** 20))


# ---------------------------------------------------------------------------------------
# the lpips package
# ---------------------------------------------------------------------------------------
SLICE_OF = {0: 1, 3: 2, 6: 3, 8: 4, 10: 5}  # features.N lives in lpips' alexnet as sliceK.N


def build_model(d):
    import warnings
    warnings.filterwarnings("ignore")  # torchvision's 'pretrained' deprecation
    import torch
    import lpips
    torch.set_num_threads(THREADS)
    m = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
    npz = np.load(os.path.join(d, "alexnet-random.npz"))
    sd = {}
    for fi, k in SLICE_OF.items():
        for leaf in ("weight", "bias"):
            sd["slice%d.%d.%s" % (k, fi, leaf)] = torch.from_numpy(npz["features.%d.%s" % (fi, leaf)])
    r = m.net.load_state_dict(sd, strict=True)
    assert not r.missing_keys and not r.unexpected_keys
    m.eval()
    return torch, lpips, m


def torch_side(d, mode, out, max_seconds):
    torch, lpips, m = build_model(d)
    t_loaded = time.perf_counter()
    load = lambda p: lpips.im2tensor(lpips.load_image(p))  # noqa: E731  (as lpips' scripts do)
    batch = int(os.environ.get("BATCH", "32"))
    res = {"mode": mode, "threads": torch.get_num_threads(), "torch": torch.__version__,
           "lpips": "0.1.4", "start_to_loaded_s": t_loaded - T0}
    dists = {}
    extrapolated = False
    with torch.no_grad():
        if mode in ("pairs64", "pairs256"):
            with open(os.path.join(d, mode + ".txt")) as f:
                pairs = [l.rstrip("\n").split("\t") for l in f if l.strip()]
            # lpips_2imgs.py per pair: load both, one forward (batch 1)
            t = time.perf_counter()
            for a, b in pairs:
                dists[(a, b)] = float(m(load(a), load(b)))
            res["compute_s"] = time.perf_counter() - t
            res["pairs"] = len(pairs)
        elif mode == "allpairs":
            # lpips_1dir_allpairs.py --all-pairs: img0 loaded per row, img1 per pair, one
            # forward per pair; stops after max_seconds and extrapolates (said in the output)
            dr = os.path.join(d, "img64")
            files = sorted(os.listdir(dr))
            n = len(files)
            total = n * (n - 1) // 2
            done = 0
            t = time.perf_counter()
            for ff, f0 in enumerate(files[:-1]):
                img0 = load(os.path.join(dr, f0))
                for f1 in files[ff + 1:]:
                    img1 = load(os.path.join(dr, f1))
                    dists[(f0, f1)] = float(m.forward(img0, img1))
                    done += 1
                if time.perf_counter() - t > max_seconds:
                    break
            el = time.perf_counter() - t
            res["pairs_timed"] = done
            res["pairs"] = total
            extrapolated = done < total
            res["extrapolated"] = extrapolated
            res["compute_s"] = el * total / done
        elif mode in ("batched64", "batched256", "batched-allpairs"):
            if mode == "batched-allpairs":
                dr = os.path.join(d, "img64")
                files = [os.path.join(dr, f) for f in sorted(os.listdir(dr))]
                n = len(files)
                pairs = [(files[i], files[j]) for i in range(n) for j in range(i + 1, n)]
            else:
                with open(os.path.join(d, mode.replace("batched", "pairs") + ".txt")) as f:
                    pairs = [l.rstrip("\n").split("\t") for l in f if l.strip()]
            t = time.perf_counter()
            # each image decoded once; pairs stacked into batches of BATCH
            cache = {p: load(p) for p in sorted({x for pr in pairs for x in pr})}
            for s in range(0, len(pairs), batch):
                ch = pairs[s:s + batch]
                a = torch.cat([cache[x] for x, _ in ch])
                b = torch.cat([cache[y] for _, y in ch])
                v = m(a, b).flatten().tolist()
                for (x, y), dv in zip(ch, v):
                    dists[(x, y)] = dv
            res["compute_s"] = time.perf_counter() - t
            res["pairs"] = len(pairs)
            res["batch"] = batch
        else:
            sys.exit("unknown mode " + mode)
    res["process_s_in_python"] = time.perf_counter() - T0
    res["distances"] = [[os.path.basename(a), os.path.basename(b), v] for (a, b), v in dists.items()]
    with open(out, "w") as f:
        json.dump(res, f)


# ---------------------------------------------------------------------------------------
# checks and table
# ---------------------------------------------------------------------------------------
def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def check(d):
    """Our outputs vs the package's distances: max relative difference per comparison."""
    worst = {}
    names = sorted(os.listdir(os.path.join(d, "img64")))
    idx = {n: i for i, n in enumerate(names)}
    M = np.load(os.path.join(d, "matrix64.npy"))
    assert M.shape == (len(names), len(names)), M.shape
    assert np.all(np.diag(M) == 0) and np.array_equal(M, M.T)
    for src in ("torch-allpairs.json", "torch-allpairs-1t.json", "torch-batched-allpairs.json"):
        p = os.path.join(d, src)
        if not os.path.exists(p):
            continue
        r = [rel(float(M[idx[a], idx[b]]), v) for a, b, v in json.load(open(p))["distances"]]
        worst["matrix64 vs " + src] = (max(r), len(r))

    def ours_pairs(fn):
        out = {}
        with open(os.path.join(d, fn)) as f:
            for row in json.load(f):
                out[(os.path.basename(row["a"]), os.path.basename(row["b"]))] = row["distance"]
        return out

    for size in ("64", "256"):
        ours = ours_pairs("ours-pairs%s.json" % size)
        for src in ("torch-pairs%s.json" % size, "torch-batched%s.json" % size):
            p = os.path.join(d, src)
            if os.path.exists(p):
                r = [rel(ours[(a, b)], v) for a, b, v in json.load(open(p))["distances"]]
                worst["pairs%s vs %s" % (size, src)] = (max(r), len(r))
        # the matrix and --pairs agree too
        if size == "64":
            r = [rel(float(M[idx[a], idx[b]]), v) for (a, b), v in ours.items()]
            worst["matrix64 vs ours-pairs64"] = (max(r), len(r))
    ok = True
    for k, (w, n) in worst.items():
        flag = "ok" if w <= 1e-4 else "FAIL"
        ok &= w <= 1e-4
        print("check %-45s %5d pairs  max rel diff %.2e  %s" % (k, n, w, flag))
    vals = M[np.triu_indices(len(names), 1)]
    print("matrix64: %d pairs, distances min %.4f median %.4f max %.4f" % (
        len(vals), vals.min(), np.median(vals), vals.max()))
    sys.exit(0 if ok else 1)


def table(d):
    rows = [json.loads(l) for l in open(os.path.join(d, "results.jsonl"))]

    def med(xs):
        xs = sorted(xs)
        return xs[len(xs) // 2] if len(xs) % 2 else (xs[len(xs) // 2 - 1] + xs[len(xs) // 2]) / 2

    def get(who, task, key="wall_s"):
        xs = [r[key] for r in rows if r["who"] == who and r["task"] == task and r.get(key) is not None]
        return med(xs) if xs else None

    fmt = lambda v, p=2: "-" if v is None else "%.*f" % (p, v)  # noqa: E731
    ratio = lambda a, b: "%.1fx" % (a / b) if a and b else "-"  # noqa: E731
    npairs = {"pair1": 1, "pairs64": 100, "pairs256": 20, "allpairs64": 4950}
    labels = {"pair1": "1 pair, 64x64", "pairs64": "(a) 100 pairs, 64x64",
              "pairs256": "(b) 20 pairs, 256x256", "allpairs64": "(c) all 4950 pairs of 100 images, 64x64"}
    ex = [r for r in rows if r.get("extrapolated")]
    print("Raw wall seconds (every round, in run order):")
    for r in rows:
        print("  round %d %-12s %-15s %8.2f%s" % (r["round"], r["who"], r["task"], r["wall_s"],
              "  (extrapolated from %d pairs)" % r["pairs_timed"] if r.get("extrapolated") else ""))
    print()
    print("Wall seconds per process (start, imports, weights, images, compute, output), median of")
    print("%d rounds (ours and the package alternating). pairs/s = pairs / wall." % len({r["round"] for r in rows}))
    print()
    print("| task | ours: wall s (pairs/s) | package per pair: wall s (pairs/s) | package batched (%s/forward): wall s (pairs/s) | per-pair / ours | batched / ours |"
          % os.environ.get("BATCH", "32"))
    print("| --- | --- | --- | --- | --- | --- |")
    for task in ("pair1", "pairs64", "pairs256", "allpairs64"):
        n = npairs[task]
        ow, pw, bw = get("ours", task), get("pkg", task), get("pkg-batched", task)
        cell = lambda v: "-" if v is None else "%.2f (%.1f)" % (v, n / v)  # noqa: E731
        pe = " (extrapolated)" if task == "allpairs64" and ex else ""
        if task == "pair1":
            pw = None
        print("| %s | %s | %s%s | %s | %s | %s |" % (labels[task], cell(ow), cell(pw), pe, cell(bw),
                                                     ratio(pw, ow), ratio(bw, ow)))
    p1w = get("pkg-1thread", "allpairs64")
    if p1w:
        ow = get("ours", "allpairs64")
        print("| (c) package per pair with torch.set_num_threads(1) | | %.2f (%.1f) (extrapolated) | | %s | |" % (p1w, 4950 / p1w, ratio(p1w, ow)))
    ex = [r for r in rows if r.get("extrapolated") and r["who"] == "pkg"]
    if ex:
        print()
        print("(c) package per pair: EXTRAPOLATED. lpips_1dir_allpairs.py's loop ran for %s of the 4950"
              " pairs (rounds: %s); wall = measured wall - sampled loop + loop time x 4950 / pairs timed."
              % ("/".join(str(r["pairs_timed"]) for r in ex), "/".join("%.1f s" % r["wall_measured_s"] for r in ex)))
    print()
    print("Where the time goes (medians, seconds):")
    lo, lt, p1t, p1 = get("ours", "loadonly"), get("ours", "loadonly-trunk"), get("ours", "pair1-trunk"), get("ours", "pair1")
    p64, p256, ap = get("ours", "pairs64"), get("ours", "pairs256"), get("ours", "allpairs64")
    print("  ours, process + adapter + weights + pipelines, no GPU work: %s (full 233 MiB file), %s (trunk-only 9 MiB file)" % (fmt(lo), fmt(lt)))
    print("    -> reading the full torchvision file costs %s s more than the trunk-only copy (Lpips::load reads only the trunk's tensors where the format allows: the rest is opening the file and its zip directory)" % fmt(lo - lt if lo and lt else None))
    print("  ours, 1 pair: %s (full file), %s (trunk-only file)" % (fmt(p1), fmt(p1t)))
    if p64 and p1:
        print("  ours, marginal per pair at 64x64: %.1f ms ((100 pairs - 1 pair) / 99; each pair runs both trunks)" % ((p64 - p1) / 99 * 1e3))
    if p256 and p1:
        print("  ours, marginal per pair at 256x256: %.0f ms ((20 pairs - 1 pair at 64x64) / 20)" % ((p256 - p1) / 20 * 1e3))
    if ap and p1:
        print("  ours, all pairs: %.1f ms per pair beyond the 1-pair run (100 trunks + 4950 reductions)" % ((ap - p1) / 4950 * 1e3))
    sl = [r["start_to_loaded_s"] for r in rows if r["who"].startswith("pkg")]
    if sl:
        print("  package, process start to model ready (import torch + lpips, build, load trunk from the npz): %.2f" % med(sl))
    for who, task in (("pkg", "pairs64"), ("pkg", "pairs256"), ("pkg", "allpairs64"), ("pkg-1thread", "allpairs64"), ("pkg-batched", "pairs64"),
                      ("pkg-batched", "pairs256"), ("pkg-batched", "allpairs64")):
        c = get(who, task, "compute_s")
        if c:
            print("  package %-11s %-10s loop only: %7.2f s = %6.1f ms per pair" % (who, task, c, c / npairs[task] * 1e3))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "gen":
        gen(sys.argv[2])
    elif cmd == "torch":
        ms = float(sys.argv[sys.argv.index("--max-seconds") + 1]) if "--max-seconds" in sys.argv else 1e9
        torch_side(sys.argv[2], sys.argv[3], sys.argv[4], ms)
    elif cmd == "check":
        check(sys.argv[2])
    elif cmd == "table":
        table(sys.argv[2])
    else:
        sys.exit(__doc__)
