"""Seed corpus for the fuzz targets (fuzz/corpus/<target>/) and the hostile files of
tests/it/fuzz_regressions.rs (tests/fixtures/fuzz/). numpy, Pillow and h5py only; a second.

    python -m venv /tmp/fzenv && /tmp/fzenv/bin/pip install numpy pillow h5py
    /tmp/fzenv/bin/python scripts/make_fuzz_fixtures.py
"""
import io
import os
import shutil
import struct
import zipfile

import h5py
import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
FX = os.path.join(ROOT, "tests", "fixtures")
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
HOSTILE = os.path.join(FX, "fuzz")


def out(*parts):
    p = os.path.join(*parts)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def seeds():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    np.savez(out(CORPUS, "npz", "tiny.npz"), w=a, b=b)
    np.savez_compressed(out(CORPUS, "npz", "tiny_compressed.npz"), w=a)
    np.savez(out(CORPUS, "npz", "strings.npz"), names=np.array(["cat", "dog"]), x=np.arange(3))
    np.save(out(CORPUS, "npz", "tiny.npy"), a)
    np.save(out(CORPUS, "npz", "tiny_f16.npy"), a.astype(np.float16))
    with open(out(CORPUS, "npz", "tiny_v2.npy"), "wb") as f:
        np.lib.format.write_array(f, a.T, version=(2, 0))
    for name in ["pth_cases.pth", "pth_cases_legacy.pth", "evil_os_system.pth"]:
        shutil.copy(os.path.join(FX, name), out(CORPUS, "pth", name))
    for name in ["keras_tiny.weights.h5", "keras_tiny_k2.h5", "keras_tiny_k2_model.h5", "keras_tiny.keras"]:
        shutil.copy(os.path.join(FX, name), out(CORPUS, "h5", name))
    img = Image.fromarray((rng.random((8, 6, 3)) * 255).astype(np.uint8))
    for ext, fmt in [("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP"), ("gif", "GIF"), ("tif", "TIFF"), ("webp", "WEBP")]:
        img.save(out(CORPUS, "image", "tiny." + ext), fmt)
    img.convert("L").save(out(CORPUS, "image", "gray.png"))
    img.convert("RGBA").save(out(CORPUS, "image", "rgba.png"))


def duplicate_central_entries(data, copies, rename):
    """A zip whose central directory lists its first member `copies` more times, under the
    names rename(i), all pointing at the same local data (overlapping members)."""
    eocd = data.rindex(b"PK\x05\x06")
    n, cd_size, cd_off = struct.unpack("<HII", data[eocd + 10 : eocd + 20])
    cd = data[cd_off : cd_off + cd_size]
    first_len = 46 + sum(struct.unpack("<HHH", cd[28:34]))
    first = cd[:first_len]
    name_len = struct.unpack("<H", first[28:30])[0]
    extra = first[46 + name_len :]
    extra_cd = b""
    for i in range(copies):
        name = rename(i).encode()
        extra_cd += first[:28] + struct.pack("<H", len(name)) + first[30:46] + name + extra
    new_cd = cd + extra_cd
    total = n + copies
    eocd_new = data[eocd : eocd + 8] + struct.pack("<HHII", total, total, len(new_cd), cd_off) + b"\x00\x00"
    return data[:cd_off] + new_cd + eocd_new


def tensor_pickle(entries, numel):
    """A protocol-2 state_dict pickle: entries = [(key, storage key)], each a 1-D float tensor
    of `numel` elements; the same storage key is memoized once and fetched again."""
    def s(x):
        x = x.encode()
        return b"X" + struct.pack("<I", len(x)) + x

    def k(v):
        return b"M" + struct.pack("<H", v) if v > 255 else b"K" + bytes([v])

    p = b"\x80\x02}("
    memo = {}
    for key, skey in entries:
        p += s(key)
        if skey in memo:
            p += b"j" + struct.pack("<I", memo[skey])
        else:
            p += b"ctorch._utils\n_rebuild_tensor_v2\n("
            p += b"(" + s("storage") + b"ctorch\nFloatStorage\n" + s(skey) + s("cpu") + k(numel) + b"tQ"
            p += b"K\x00" + k(numel) + b"\x85" + b"K\x01\x85" + b"tR"
            memo[skey] = len(memo)
            p += b"r" + struct.pack("<I", memo[skey])
    return p + b"u."


def torch_zip(pickle, storages):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle)
        for key, data in storages:
            z.writestr("archive/data/" + key, data)
    return buf.getvalue()


def hostile():
    os.makedirs(HOSTILE, exist_ok=True)
    # An .npy (version 2) whose header length field claims 4 GiB in a 20-byte file.
    with open(os.path.join(HOSTILE, "npy_header_4gib.npy"), "wb") as f:
        f.write(b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFF00) + b"{'descr'")
    # An .npz listing one 1 KiB member 64 more times (b0.npy ...): 65 KiB from a 2 KiB file.
    buf = io.BytesIO()
    np.savez(buf, a=np.zeros(256, np.float32))
    data = duplicate_central_entries(buf.getvalue(), 64, lambda i: f"b{i:02}.npy")
    open(os.path.join(HOSTILE, "npz_overlapping_members.npz"), "wb").write(data)
    # A .pth whose 64 storages are one zip member listed 64 times.
    n = 256
    pkl = tensor_pickle([(f"t{i}", str(i)) for i in range(64)], n)
    # The storage member first, so that it is the one listed again.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data/0", np.zeros(n, np.float32).tobytes())
        z.writestr("archive/data.pkl", pkl)
    data = duplicate_central_entries(buf.getvalue(), 63, lambda i: f"archive/data/{i + 1}")
    open(os.path.join(HOSTILE, "pth_overlapping_storages.pth"), "wb").write(data)
    # A .pth naming one 4096-element storage under 2000 keys: 8M elements from 16 KiB.
    pkl = tensor_pickle([(f"t{i}", "0") for i in range(2000)], 4096)
    data = torch_zip(pkl, [("0", np.zeros(4096, np.float32).tobytes())])
    open(os.path.join(HOSTILE, "pth_repeated_storage.pth"), "wb").write(data)
    # A pickle appending to a memoized list 2000 times (copy on write each time: quadratic).
    p = b"\x80\x02]" + b"q\x00Na" * 2000 + b"."
    open(os.path.join(HOSTILE, "pickle_copy_quadratic.pth"), "wb").write(p)
    # A persistent id that is a 40-deep DAG of 6-tuples (6^40 paths to describe).
    p = b"\x80\x02)"
    for _ in range(40):
        p += b"q\x00(" + b"h\x00" * 6 + b"t"
    p += b"Q."
    open(os.path.join(HOSTILE, "pickle_describe_dag.pth"), "wb").write(torch_zip(p, []))
    # An .npz member compressed with bzip2 (no bound on its expansion; numpy never writes it).
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_BZIP2) as z:
        b = io.BytesIO()
        np.save(b, np.zeros(1 << 16, np.float32))
        z.writestr("w.npy", b.getvalue())
    open(os.path.join(HOSTILE, "npz_bzip2_member.npz"), "wb").write(buf.getvalue())
    # A deflated member whose declared size (local and central headers) is forged to 4 GiB - 1:
    # more than deflate can give from its compressed bytes.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        b = io.BytesIO()
        np.save(b, np.zeros(1 << 12, np.float32))
        z.writestr("w.npy", b.getvalue())
    data = bytearray(buf.getvalue())
    size = len(b.getvalue())
    lh = data.index(b"PK\x03\x04")
    assert struct.unpack("<I", data[lh + 22 : lh + 26])[0] == size
    data[lh + 22 : lh + 26] = struct.pack("<I", 0xFFFFFFFE)
    cd = data.index(b"PK\x01\x02")
    assert struct.unpack("<I", data[cd + 24 : cd + 28])[0] == size
    data[cd + 24 : cd + 28] = struct.pack("<I", 0xFFFFFFFE)
    open(os.path.join(HOSTILE, "npz_deflate_forged_size.npz"), "wb").write(bytes(data))
    # HDF5 datasets declaring 40 GB in a 2 KiB file (space never allocated): contiguous and
    # chunked.
    for layout, chunks in [("contiguous", None), ("chunked", (1, 1000))]:
        with h5py.File(os.path.join(HOSTILE, f"h5_huge_{layout}.h5"), "w") as f:
            f.create_dataset("w", shape=(100_000, 100_000), dtype="f4", chunks=chunks)


seeds()
hostile()
