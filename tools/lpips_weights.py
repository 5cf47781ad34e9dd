#!/usr/bin/env python3
"""Re-extract the LPIPS (net='alex') linear-layer weights into assets/lpips/ and check them.

Origin: the `lpips` 0.1.4 wheel on PyPI (lpips-0.1.4-py3-none-any.whl), files
`lpips/weights/v0.1/alex.pth` and `lpips/weights/v0.0/alex.pth`, copied unchanged, plus the
wheel's `lpips-0.1.4.dist-info/LICENSE` (BSD-2-Clause). See assets/lpips/README.md.

Usage (either source works; torch is NOT needed):
    pip install lpips==0.1.4           # then:
    python tools/lpips_weights.py                      # copy from the installed package
    python tools/lpips_weights.py --wheel lpips-0.1.4-py3-none-any.whl   # or from the wheel
    python tools/lpips_weights.py --check              # only verify assets/lpips/ in place

The script fails (exit 1) if any sha256 differs from the values recorded below (the same
values are in assets/lpips/README.md). It also parses each .pth (legacy, non-zip torch
serialization) with the standard library's pickle and prints the tensor names and shapes.
"""
import argparse
import collections
import hashlib
import io
import os
import pickle
import struct
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEST = os.path.join(ROOT, "assets", "lpips")

# path inside the wheel / installed site-packages -> (path under assets/lpips, sha256)
FILES = {
    "lpips/weights/v0.1/alex.pth": (
        "v0.1/alex.pth",
        "df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    ),
    "lpips/weights/v0.0/alex.pth": (
        "v0.0/alex.pth",
        "18720f55913d0af89042f13faa7e536a6ce1444a0914e6db9461355ece1e8cd5",
    ),
    "lpips-0.1.4.dist-info/LICENSE": (
        "LICENSE",
        "59d091d66b48f09a8a5107216f2007d9e775ffb4cc467a25733ec25f7c5c8fa1",
    ),
}
EXPECTED_SHAPES = {
    "lin0.model.1.weight": (1, 64, 1, 1),
    "lin1.model.1.weight": (1, 192, 1, 1),
    "lin2.model.1.weight": (1, 384, 1, 1),
    "lin3.model.1.weight": (1, 256, 1, 1),
    "lin4.model.1.weight": (1, 256, 1, 1),
}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def parse_legacy_pth(data):
    """Parse a legacy (pre-1.6, non-zip) torch.save file holding an OrderedDict of float
    tensors. Layout: pickle(magic) pickle(protocol 1001) pickle(sys_info) pickle(state_dict,
    tensors as persistent ids) pickle(list of storage keys); then for each key in that list:
    int64 LE element count + that many float32 LE values. Returns {name: (shape, [floats])}."""
    b = io.BytesIO(data)
    magic = pickle.load(b)
    proto = pickle.load(b)
    pickle.load(b)  # sys_info
    assert magic == 0x1950A86A20F9469CFC6C and proto == 1001, (magic, proto)

    class Unpickler(pickle.Unpickler):
        def find_class(self, mod, name):
            if (mod, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            if (mod, name) == ("torch._utils", "_rebuild_tensor_v2"):  # v0.1 file
                return lambda st, off, size, stride, *rest: (st, off, size, stride)
            if (mod, name) == ("torch._utils", "_rebuild_tensor"):  # v0.0 file
                return lambda st, off, size, stride: (st, off, size, stride)
            if (mod, name) == ("torch", "FloatStorage"):
                return "FloatStorage"
            raise pickle.UnpicklingError("unexpected global %s.%s" % (mod, name))

        def persistent_load(self, pid):
            return pid  # ('storage', FloatStorage, key, location, numel, view_metadata)

    state = Unpickler(b).load()
    keys = pickle.load(b)
    pos = b.tell()
    storages = {}
    for k in keys:
        (n,) = struct.unpack_from("<q", data, pos)
        storages[k] = struct.unpack_from("<%df" % n, data, pos + 8)
        pos += 8 + 4 * n
    assert pos == len(data), "trailing bytes"
    out = collections.OrderedDict()
    for name, (st, off, size, stride) in state.items():
        numel = 1
        for s in size:
            numel *= s
        assert st[1] == "FloatStorage" and off == 0
        out[name] = (tuple(size), storages[st[2]][:numel])
    return out


def read_sources(args):
    blobs = {}
    if args.wheel:
        with zipfile.ZipFile(args.wheel) as z:
            for src in FILES:
                blobs[src] = z.read(src)
    else:
        import importlib.metadata as md
        import lpips  # noqa: F401  (only to locate the installed package)

        dist = md.distribution("lpips")
        if dist.version != "0.1.4":
            sys.exit("installed lpips is %s, need 0.1.4" % dist.version)
        for src in FILES:
            with open(dist.locate_file(src), "rb") as f:
                blobs[src] = f.read()
    return blobs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wheel", help="read from this lpips-0.1.4 wheel instead of the installed package")
    ap.add_argument("--check", action="store_true", help="only verify the files under assets/lpips/")
    args = ap.parse_args()

    blobs = None if args.check else read_sources(args)
    ok = True
    for src, (dst, want) in FILES.items():
        path = os.path.join(DEST, dst)
        if args.check:
            with open(path, "rb") as f:
                data = f.read()
        else:
            data = blobs[src]
        got = sha256(data)
        status = "ok" if got == want else "MISMATCH (want %s)" % want
        ok &= got == want
        print("%-32s -> assets/lpips/%-14s %6d bytes sha256 %s %s" % (src, dst, len(data), got, status))
        if not args.check and got == want:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(data)
        if dst.endswith(".pth") and got == want:
            for name, (shape, vals) in parse_legacy_pth(data).items():
                assert EXPECTED_SHAPES[name] == shape, (name, shape)
                print("    %-22s %-16s min %.6g max %.6g" % (name, list(shape), min(vals), max(vals)))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
