#!/usr/bin/env python3
"""The hostile catalogue of issue 28 (run it through run.sh; standard library only).

Each try runs the binary once (a few run it twice: kill -9 and rerun) in a scratch folder of
tiny fixtures, under a memory limit (RLIMIT_AS, as `ulimit -v`) and a timeout, and is judged:

  DEFECT  an input changed (its bytes, or a device/FIFO/link replaced), a signal (abort,
          segfault), a hang past the timeout, a peak RSS over the bound, an exit status other
          than 0/1/2, a panic, a message that is not a clear error (no `error:` line, a line
          over 4 KiB, Rust's Debug output or a library path like `gpu::list_adapters`), or an
          exit status the try does not accept (exit 0 where the input must be refused);
  OK      otherwise.

The last line is `tries N, DEFECT k`; the exit status is 1 when k > 0.
"""

import argparse
import hashlib
import http.server
import json
import os
import re
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures")

# Bounds: the fixtures need well under 1 GiB; lavapipe maps a few GiB of address space.
AS_LIMIT = 16 << 30  # RLIMIT_AS (ulimit -v)
RSS_BOUND = 3 << 30  # peak RSS
HUGE_U = ["18446744073709551615", "18446744073709551616", "1000000000000", "-1", "0", "abc"]
HUGE_F = ["1e309", "-1e309", "nan", "inf", "-1", "0", "1e30"]


class Try:
    def __init__(self, name, argv, expect="refuse", inputs=(), absent=(), check=None,
                 env=None, timeout=None, stdin=None, raw=False, long_ok=False, setup=None,
                 cleanup=None):
        self.name = name
        self.argv = argv
        # refuse: exit 2; fail: exit 1 or 2; ok: exit 0; done: 0 or 1; any: any of 0/1/2.
        self.expect = expect
        self.inputs = list(inputs)
        self.absent = list(absent)
        self.check = check
        self.env = env or {}
        self.timeout = timeout
        self.stdin = stdin
        # raw: argv is the whole command (a bash wrapper setting ulimit), not the binary's.
        self.raw = raw
        # Run just before (after) the try: fixtures a try needs that others must not see.
        self.setup = setup
        self.cleanup = cleanup
        # A try that may run as long as it is asked (huge epoch counts): killed at the
        # timeout, counted OK when nothing else is wrong.
        self.long_ok = long_ok


# ---------------------------------------------------------------------------------------------
# Fixtures written with the standard library: .npy/.npz, PNG, ONNX protobuf.

def npy_bytes(dtype, shape, raw):
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        dtype, "".join("%d," % s for s in shape) if len(shape) != 1 else "%d," % shape[0])
    pad = 64 - (10 + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + raw


def write_npz(path, entries, compress=False):
    mode = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", mode) as z:
        for name, (dtype, shape, raw) in entries.items():
            z.writestr(name + ".npy", npy_bytes(dtype, shape, raw))


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def png(path, w, h, seed=0):
    rows = bytearray()
    for y in range(h):
        rows.append(0)
        for x in range(w):
            rows += bytes(((x * 7 + seed * 40) & 255, (y * 5 + seed) & 255, ((x ^ y) * 3) & 255))
    def chunk(t, d):
        c = struct.pack(">I", len(d)) + t + d
        return c + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(data)


def pb_varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(num, payload):
    if isinstance(payload, int):
        return pb_varint(num << 3) + pb_varint(payload)
    return pb_varint((num << 3) | 2) + pb_varint(len(payload)) + payload


def onnx_external(path, location, dims, offset=None, length=None):
    """A model whose one initializer (`features.0.bias`) lives in `location`."""
    ext = pb_field(1, b"location") + pb_field(2, location.encode())
    entries = [pb_field(13, ext)]
    if offset is not None:
        entries.append(pb_field(13, pb_field(1, b"offset") + pb_field(2, str(offset).encode())))
    if length is not None:
        entries.append(pb_field(13, pb_field(1, b"length") + pb_field(2, str(length).encode())))
    tensor = b"".join(pb_field(1, d) for d in dims) + pb_field(2, 1)
    tensor += pb_field(8, b"features.0.bias") + b"".join(entries) + pb_field(14, 1)
    graph = pb_field(5, tensor) + pb_field(2, b"g")
    model = pb_field(1, 7) + pb_field(7, graph) + pb_field(8, pb_field(2, 13))
    with open(path, "wb") as f:
        f.write(model)


def lpips_trunk(path):
    """A full-width torchvision trunk (what lpips needs), small deterministic values."""
    shapes = [("features.0", (64, 3, 11, 11)), ("features.3", (192, 64, 5, 5)),
              ("features.6", (384, 192, 3, 3)), ("features.8", (256, 384, 3, 3)),
              ("features.10", (256, 256, 3, 3))]
    entries = {}
    for l, (key, shape) in enumerate(shapes):
        n = 1
        for s in shape:
            n *= s
        fan = n // shape[0]
        a = (3.0 / fan) ** 0.5
        vals = [((i * 2654435761 + l * 97) % 1000 / 1000.0 - 0.5) * 2 * a for i in range(n)]
        entries[key + ".weight"] = ("<f4", shape, f32(vals))
        entries[key + ".bias"] = ("<f4", (shape[0],), f32([0.01 * (o % 7) for o in range(shape[0])]))
    write_npz(path, entries)


# ---------------------------------------------------------------------------------------------
# Running and judging one try.

def snapshot(path):
    """What must not change: a regular file's bytes, a folder's files, a special file's kind."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return ("missing",)
    if stat.S_ISLNK(st.st_mode):
        return ("link", os.readlink(path), snapshot_target(path))
    if stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return ("file", st.st_size, h.hexdigest())
    if stat.S_ISDIR(st.st_mode):
        return ("dir", tuple((n, snapshot(os.path.join(path, n))) for n in sorted(os.listdir(path))))
    return ("special", stat.S_IFMT(st.st_mode), st.st_rdev)


def snapshot_target(path):
    try:
        st = os.stat(path)
    except OSError:
        return ("dangling",)
    if stat.S_ISREG(st.st_mode):
        return snapshot(os.path.realpath(path))
    return ("special", stat.S_IFMT(st.st_mode))


LIBRARY_PATH = re.compile(r"\b(gpu|fetch|cli|model|train|data|weights|lpips|fsutil|fine_tune)::[a-z_]+")
DEBUG_OUTPUT = re.compile(r"Os \{ code|Custom \{ kind|kind: [A-Z][a-z]+|Error \{ ")


class Runner:
    def __init__(self, binary, work, timeout, log):
        self.binary = binary
        self.work = work
        self.timeout = timeout
        self.log = log
        self.results = []

    def exec(self, t, timeout):
        """Runs a try's command; returns (rc or -signal, timed_out, maxrss_bytes, out, err, s)."""
        env = dict(os.environ)
        env.setdefault("WGPU_BACKEND", "vulkan")
        env["ALEXNET_CACHE_DIR"] = os.path.join(self.work, "cache")
        env.update(t.env)
        for k, v in t.env.items():
            if v is None:
                env.pop(k, None)
        argv = t.argv if t.raw else [self.binary] + t.argv
        out_path = os.path.join(self.work, ".stdout")
        err_path = os.path.join(self.work, ".stderr")

        def limits():
            resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            stdin = subprocess.PIPE if t.stdin is not None else subprocess.DEVNULL
            start = time.monotonic()
            p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=stdin, env=env,
                                 cwd=self.work, preexec_fn=limits, start_new_session=True)
            if t.stdin is not None:
                try:
                    p.stdin.write(t.stdin.encode())
                    p.stdin.close()
                except BrokenPipeError:
                    pass
            timed_out = []

            def kill():
                timed_out.append(True)
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            timer = threading.Timer(timeout, kill)
            timer.start()
            _, status, ru = os.wait4(p.pid, 0)
            timer.cancel()
            p.returncode = 0
            seconds = time.monotonic() - start
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        with open(out_path, "rb") as f:
            stdout = f.read(1 << 20).decode("utf-8", "replace")
        with open(err_path, "rb") as f:
            stderr = f.read(1 << 22).decode("utf-8", "replace")
        return rc, bool(timed_out), ru.ru_maxrss * 1024, stdout, stderr, seconds

    def run(self, t):
        if t.setup:
            t.setup()
        try:
            return self.judge(t)
        finally:
            if t.cleanup:
                t.cleanup()

    def judge(self, t):
        before = {p: snapshot(p) for p in t.inputs}
        timeout = t.timeout or self.timeout
        rc, timed_out, rss, stdout, stderr, seconds = self.exec(t, timeout)
        why = []
        if timed_out and not t.long_ok:
            why.append("hang: killed after %ds" % timeout)
        elif rc < 0 and not timed_out:
            why.append("signal %d" % -rc)
        if rss > RSS_BOUND:
            why.append("peak RSS %d MiB over %d MiB" % (rss >> 20, RSS_BOUND >> 20))
        for p, snap in before.items():
            if snapshot(p) != snap:
                why.append("input changed: %s" % os.path.relpath(p, self.work))
        for p in t.absent:
            if os.path.lexists(p):
                why.append("left behind: %s" % os.path.relpath(p, self.work))
        if not timed_out and rc >= 0:
            if rc not in (0, 1, 2):
                why.append("exit %d" % rc)
            if "panicked" in stderr:
                why.append("panic")
            if rc != 0 and "error" not in stderr.lower():
                why.append("exit %d without an error message" % rc)
            if any(len(l) > 4096 for l in stderr.splitlines()):
                why.append("a message line over 4 KiB")
            m = LIBRARY_PATH.search(stderr)
            if m:
                why.append("message names %s" % m.group(0))
            if DEBUG_OUTPUT.search(stderr):
                why.append("Debug output in the message")
            want = {"refuse": (2,), "fail": (1, 2), "ok": (0,), "done": (0, 1),
                    "any": (0, 1, 2)}[t.expect]
            if rc not in want:
                why.append("exit %d, expected %s" % (rc, "/".join(map(str, want))))
        if t.check and not why:
            extra = t.check(rc, stdout, stderr)
            if extra:
                why.append(extra)
        first = next((l for l in stderr.splitlines() if l.strip()), "")
        verdict = "DEFECT" if why else "OK"
        line = "%-6s %-64s rc=%-3s %5.1fs %5d MiB" % (
            verdict, t.name, "T" if timed_out else rc, seconds, rss >> 20)
        if why:
            line += "  <- " + "; ".join(why)
        if first:
            line += "\n         " + first[:200]
        self.log(line)
        self.results.append((t.name, verdict))
        return rc, stdout, stderr


# ---------------------------------------------------------------------------------------------
# The catalogue.

def prepare(work):
    """Tiny fixtures in `work`; returns a dict of their paths."""
    j = lambda *p: os.path.join(work, *p)
    f = {}
    shutil.copy(os.path.join(FIX, "torchvision_small.npz"), j("w.npz"))
    shutil.copy(os.path.join(FIX, "torchvision_small.pth"), j("w.pth"))
    # The model names its external data file: keep both names.
    shutil.copy(os.path.join(FIX, "torchvision_small_ext.onnx"), j("torchvision_small_ext.onnx"))
    shutil.copy(os.path.join(FIX, "torchvision_small_ext.onnx.data"), j("torchvision_small_ext.onnx.data"))
    f["w"], f["pth"] = j("w.npz"), j("w.pth")
    f["ext_onnx"], f["ext_data"] = j("torchvision_small_ext.onnx"), j("torchvision_small_ext.onnx.data")
    for n in range(3):
        png(j("img%d.png" % n), 48, 40, n)
    f["img"], f["img1"], f["img2"] = j("img0.png"), j("img1.png"), j("img2.png")
    shutil.copy(os.path.join(FIX, "input", "exif_rotate90.jpg"), j("rot.jpg"))
    shutil.copy(os.path.join(FIX, "input", "upright.jpg"), j("upright.jpg"))
    # A data folder: 3 classes of 3 images (train-head, eval, features).
    for c, cls in enumerate(["cat", "coffee", "rocket"]):
        os.makedirs(j("data", cls))
        for i in range(3):
            src = os.path.join(FIX, "train_data", cls, "%s_%02d.jpg" % (cls, i))
            shutil.copy(src, j("data", cls, "%d.jpg" % i))
    f["data"] = j("data")
    for cls in ["cat", "coffee"]:
        os.makedirs(j("data2", cls))
        for i in range(2):
            shutil.copy(j("data", cls, "%d.jpg" % i), j("data2", cls, "%d.jpg" % i))
    # A split dataset: train/ + val/ with the classes.
    for part in ["train", "val"]:
        for cls in ["cat", "coffee"]:
            os.makedirs(j("split", part, cls))
            for i in range(2):
                shutil.copy(os.path.join(FIX, "train_data", cls, "%s_%02d.jpg" % (cls, i + (4 if part == "val" else 0))),
                            j("split", part, cls, "%d.jpg" % i))
    f["split"] = j("split")
    # train/ and val/ holding images directly.
    for part in ["train", "val"]:
        os.makedirs(j("flat", part))
        for i in range(2):
            shutil.copy(f["img"], j("flat", part, "%d.png" % i))
    f["flat"] = j("flat")
    with open(j("list.txt"), "w") as o:
        o.write("%s\n%s\n" % (f["img"], f["img1"]))
    f["list"] = j("list.txt")
    with open(j("pairs.txt"), "w") as o:
        o.write("%s %s\n%s %s\n" % (f["img"], f["img1"], f["img1"], f["img2"]))
    f["pairs"] = j("pairs.txt")
    with open(j("labels.txt"), "w") as o:
        o.write("".join("class %d\n" % i for i in range(7)))
    f["labels"] = j("labels.txt")
    open(j("empty"), "w").close()
    open(j("empty.npz"), "w").close()
    f["empty"], f["empty_npz"] = j("empty"), j("empty.npz")
    os.mkfifo(j("fifo"))
    f["fifo"] = j("fifo")
    for ext in ["onnx", "safetensors", "h5", "npz", "pth", "npy", "png", "txt", "csv"]:
        os.symlink("/dev/zero", j("zero." + ext))
        os.mkfifo(j("fifo." + ext))
    os.makedirs(j("images"))
    for n in range(3):
        shutil.copy(j("img%d.png" % n), j("images", "i%d.png" % n))
    f["images"] = j("images")
    lpips_trunk(j("trunk.npz"))
    f["trunk"] = j("trunk.npz")
    # A features file (what `alexnet features` writes), and hostile ones.
    dim = 1008  # the fixture network's pool5
    def feats(path, labels, classes=None):
        e = {"features": ("<f4", (len(labels), dim), f32([0.1 * (i % 5) for i in range(len(labels) * dim)])),
             "labels": ("<i8", (len(labels),), struct.pack("<%dq" % len(labels), *labels))}
        write_npz(path, e)
    feats(j("feat.npz"), [0, 1, 0, 1, 0, 1])
    feats(j("feat_2p40.npz"), [0, 1 << 40])
    feats(j("feat_1e7.npz"), [0, 10 ** 7])
    feats(j("feat_gap.npz"), [0, 2, 0, 2])
    f["feat"] = j("feat.npz")
    # An npz whose members declare 1 GiB - 1 each (3 of them, deflated zeros).
    big = (1 << 30) - 64
    with zipfile.ZipFile(j("bomb.npz"), "w", zipfile.ZIP_DEFLATED) as z:
        for k in range(3):
            hdr = npy_bytes("<f4", (big // 4,), b"")
            with z.open("m%d.npy" % k, "w", force_zip64=True) as m:
                m.write(hdr)
                zero = bytes(1 << 24)
                left = big
                while left > 0:
                    m.write(zero[:min(left, len(zero))])
                    left -= len(zero)
    f["bomb"] = j("bomb.npz")
    # ONNX external data: inside the folder, and a file longer than declared (no length).
    with open(j("ext_long.bin"), "wb") as o:
        o.write(b"\0" * (4 * 64 + 100))
    onnx_external(j("ext_long.onnx"), "ext_long.bin", [64])
    onnx_external(j("ext_out.onnx"), "../outside.bin", [64])
    with open(j("outside.bin"), "wb") as o:
        o.write(b"\0" * 256)
    # A 3000x3000 PNG for lpips (over the adapter's binding limit on lavapipe).
    png(j("huge.png"), 3000, 3000, 1)
    f["huge"] = j("huge.png")
    # A read-only cache folder (bench --tune) and a cache folder whose tune.json is a FIFO.
    os.makedirs(j("rocache"))
    os.makedirs(j("fifocache"))
    os.mkfifo(j("fifocache", "tune.json"))
    os.makedirs(j("zerocache"))
    os.symlink("/dev/zero", j("zerocache", "tune.json"))
    os.makedirs(j("cache"))
    return f


def catalogue(r, f, work):
    j = lambda *p: os.path.join(work, *p)
    W, IMG, IMG1, IMG2, T = f["w"], f["img"], f["img1"], f["img2"], f["trunk"]
    gpu_fast = ["--batch", "2"]
    tries = []
    add = tries.append

    # The subcommands as they run on the fixtures, each path argument named (role, flag, value,
    # kind): kind "in" (a file read), "dir" (a folder read), "out" (a file written),
    # "outdir" (a folder written into). A `None` flag is a positional argument.
    base = {
        "classify": (["classify", "--format", "csv"],
                     [("in", "--weights", W), ("in", "--labels", f["labels"]),
                      ("in", "--list", f["list"]), ("out", "--logits-out", j("o_logits.npy")),
                      ("out", "--features-out", j("o_feat.npy")), ("in", None, IMG)]),
        "summary": (["summary"], [("in", "--weights", W)]),
        "bench": (["bench", "--batch", "1", "--iters", "1", "--warmup", "0"], [("in", "--weights", W)]),
        "bench-input": (["bench", "--iters", "1"], [("dir", "--input", f["images"])]),
        "train-head": (["train-head", "--epochs", "1", "--batch", "4"],
                       [("in", "--weights", W), ("dir", "--data", f["data"]),
                        ("out", "--out", j("o_model.npz")), ("out", "--log-steps", j("o_steps.csv")),
                        ("outdir", "--plot", j("o_plot"))]),
        "train-head-features": (["train-head", "--epochs", "1", "--head", "last"],
                                [("in", "--weights", W), ("in", "--features", f["feat"]),
                                 ("out", "--out", j("o_model2.npz"))]),
        "eval": (["eval"], [("in", "--weights", j("model.npz")), ("dir", "--data", f["data"])]),
        "features": (["features"], [("in", "--weights", W), ("dir", "--data", f["data"]),
                                     ("out", "--out", j("o_feat.npz"))]),
        "convert": (["convert"], [("in", None, W), ("out", None, j("o_conv.safetensors"))]),
        "export": (["export"], [("in", "--weights", W), ("out", None, j("o_export.onnx"))]),
        "lpips": (["lpips", "--format", "csv"],
                  [("in", "--weights", T), ("in", "--pairs", f["pairs"]),
                   ("out", "--out", j("o_lpips.csv")), ("outdir", "--spatial", j("o_spatial"))]),
        "lpips-all": (["lpips", "--format", "csv"],
                      [("in", "--weights", T), ("dir", "--all-pairs", f["images"]),
                       ("out", "--matrix-out", j("o_matrix.npy")), ("out", "--out", j("o_all.csv"))]),
        "merge": (["merge"], [("dir", None, j("shards")), ("out", None, j("o_merged"))]),
    }

    def argv_of(cmd, override=None, drop=None):
        head, args = base[cmd]
        argv = list(head)
        tail = []
        for i, (kind, flag, value) in enumerate(args):
            if drop == i:
                continue
            v = override[1] if override and override[0] == i else value
            if flag is None:
                tail.append(v)
            else:
                argv += [flag, v]
        return argv + tail

    def inputs_of(cmd):
        return [v for kind, _, v in base[cmd][1] if kind in ("in", "dir")]

    def outputs_of(cmd):
        return [v for kind, _, v in base[cmd][1] if kind in ("out", "outdir")]

    # 0. Each subcommand as it is, on the fixtures: it works (exit 0), its inputs unchanged.
    for cmd in base:
        add(Try("base %s" % cmd, argv_of(cmd), expect="ok", inputs=inputs_of(cmd)))

    # 1. Each output named as each input (the file itself; for a folder, a file inside it) and
    #    as each other output: refused (exit 2), nothing changed.
    for cmd, (head, args) in base.items():
        for oi, (okind, oflag, oval) in enumerate(args):
            if okind not in ("out", "outdir"):
                continue
            for ii, (ikind, iflag, ival) in enumerate(args):
                if ikind == "in" and okind == "out":
                    target = ival
                elif ikind == "dir" and okind == "out":
                    target = first_file(ival)
                elif ikind == "dir" and okind == "outdir":
                    target = ival
                else:
                    continue
                if target is None:
                    continue
                keep = inputs_of(cmd)
                add(Try("%s: %s = input %s" % (cmd, oflag or "OUTPUT", os.path.relpath(target, work)),
                        argv_of(cmd, override=(oi, target)), inputs=keep))
            for pi, (pkind, pflag, pval) in enumerate(args):
                if pi == oi or pkind != "out" or okind != "out":
                    continue
                add(Try("%s: %s = %s" % (cmd, oflag or "OUTPUT", pflag or "OUTPUT"),
                        argv_of(cmd, override=(oi, pval)), inputs=inputs_of(cmd)))

    # 2. /dev/zero, a FIFO, an empty file and a missing file as each path argument: a clear
    #    refusal (or a failed input for an image), in bounded time; devices and FIFOs kept.
    for cmd, (head, args) in base.items():
        for i, (kind, flag, value) in enumerate(args):
            ext = os.path.splitext(value)[1].lstrip(".") or "txt"
            ext = ext if ext in ("onnx", "safetensors", "h5", "npz", "pth", "npy", "png", "txt", "csv") else "txt"
            cases = [("/dev/zero", "/dev/zero"), ("FIFO", j("fifo." + ext)),
                     ("link to /dev/zero", j("zero." + ext))]
            if kind in ("in", "dir"):
                cases += [("empty file", f["empty"] if ext != "npz" else f["empty_npz"]),
                          ("missing", j("no-such-" + os.path.basename(value)))]
            for what, path in cases:
                expect = "fail"
                if cmd == "classify" and flag is None:
                    expect = "fail"
                keep = [p for p in inputs_of(cmd) if p != value] + [j("fifo." + ext), j("zero." + ext)]
                add(Try("%s: %s %s" % (cmd, flag or "ARG", what), argv_of(cmd, override=(i, path)),
                        expect=expect, inputs=keep, timeout=60))

    # 3. Huge and invalid numbers in each numeric flag: a clear error or a bounded run. Flags
    #    that count work (epochs, iterations) may run as long as asked: killed at the timeout.
    numeric = [
        ("classify", ["--batch", "--top"], HUGE_U, False),
        ("bench", ["--batch", "--iters", "--warmup", "--threads"], HUGE_U, True),
        ("train-head", ["--batch", "--extract-batch", "--augment", "--seed", "--cache-budget-mb",
                        "--lr-step-epochs", "--patience"], HUGE_U, True),
        ("train-head", ["--epochs", "--steps"], HUGE_U, True),
        ("train-head", ["--lr", "--momentum", "--weight-decay", "--dropout", "--val-split",
                        "--lr-backbone-mult"], HUGE_F, False),
        ("eval", ["--batch"], HUGE_U, False),
        ("features", ["--batch"], HUGE_U, False),
        ("lpips", ["--memory-mb"], HUGE_U, False),
    ]
    for cmd, flags, values, long_ok in numeric:
        for flag in flags:
            for v in values:
                argv = argv_of(cmd)
                if flag in argv:
                    argv[argv.index(flag) + 1] = v
                else:
                    head_len = len(base[cmd][0])
                    argv = argv[:head_len] + ["%s=%s" % (flag, v)] + argv[head_len:]
                # `--flag=-1`: clap reads a value that starts with '-' only this way.
                if v.startswith("-") and flag in argv:
                    i = argv.index(flag)
                    argv[i:i + 2] = ["%s=%s" % (flag, v)]
                add(Try("%s %s %s" % (cmd, flag, v), argv, expect="any", inputs=inputs_of(cmd),
                        long_ok=long_ok, timeout=45 if long_ok else None))
    for v in ["100000x100000", "0x0", "-5x5", "4294967296x1", "x", "1e9x1"]:
        add(Try("lpips --resize %s" % v, ["lpips", "--weights", T, "--resize", v, IMG, IMG1],
                expect="any", inputs=[T, IMG, IMG1]))

    # 4. The 16 defects of the second round, each as it was found.
    # Defect 1: lpips outputs over its inputs or each other; a --matrix-out link to an input.
    os.symlink(j("images", "i0.png"), j("link-to-img.npy"))
    for name, argv in [
        ("--out = image A", ["lpips", "--weights", T, "--out", IMG, IMG, IMG1]),
        ("--out = image B", ["lpips", "--weights", T, "--out", IMG1, IMG, IMG1]),
        ("--out = --weights", ["lpips", "--weights", T, "--out", T, IMG, IMG1]),
        ("--out = --pairs", ["lpips", "--weights", T, "--pairs", f["pairs"], "--out", f["pairs"]]),
        ("--matrix-out = an image of --all-pairs", ["lpips", "--weights", T, "--all-pairs", f["images"],
                                                    "--matrix-out", j("images", "i0.png")]),
        ("--matrix-out = --out", ["lpips", "--weights", T, "--all-pairs", f["images"],
                                  "--matrix-out", j("mo.npy"), "--out", j("mo.npy")]),
        ("--matrix-out = --weights", ["lpips", "--weights", T, "--all-pairs", f["images"],
                                      "--matrix-out", T]),
        ("--spatial pair-00000.npy = an input", ["lpips", "--weights", T, "--spatial", j("sp"),
                                                 j("sp", "pair-00000.npy"), IMG]),
        ("--matrix-out link to an input", ["lpips", "--weights", T, "--all-pairs", f["images"],
                                           "--matrix-out", j("link-to-img.npy")]),
    ]:
        if "sp" in name or "spatial" in name:
            os.makedirs(j("sp"), exist_ok=True)
            shutil.copy(IMG, j("sp", "pair-00000.npy"))
        add(Try("defect 1: lpips %s" % name, argv,
                inputs=[T, IMG, IMG1, f["pairs"], f["images"], j("link-to-img.npy")] +
                ([j("sp", "pair-00000.npy")] if "spatial" in name else [])))
    # Defect 2: train-head --log-steps / --plot over images inside --data / --val.
    add(Try("defect 2: train-head --log-steps = an image in --data",
            ["train-head", "--weights", W, "--data", f["data"], "--epochs", "1", "--out", j("m2.npz"),
             "--log-steps", j("data", "cat", "0.jpg")], inputs=[f["data"]]))
    add(Try("defect 2: train-head --plot = a class folder holding curves.png",
            ["train-head", "--weights", W, "--data", f["data"], "--epochs", "1", "--out", j("m2.npz"),
             "--plot", j("data", "cat")], inputs=[f["data"]],
            setup=lambda: shutil.copy(IMG, j("data", "cat", "curves.png")),
            cleanup=lambda: os.remove(j("data", "cat", "curves.png"))))
    add(Try("defect 2 (re-run): train-head --plot = a class folder (adds its plots there)",
            ["train-head", "--weights", W, "--data", f["data"], "--epochs", "1", "--out", j("m2.npz"),
             "--plot", j("data", "cat")], inputs=[f["data"]]))
    add(Try("defect 2 (re-run): train-head --log-steps data/cat/steps.png (adds an image)",
            ["train-head", "--weights", W, "--data", f["data"], "--epochs", "1", "--out", j("m2.npz"),
             "--log-steps", j("data", "cat", "steps.png")], inputs=[f["data"]]))
    add(Try("defect 2: train-head --log-steps = an image in --val",
            ["train-head", "--weights", W, "--data", j("split", "train"), "--val", j("split", "val"),
             "--epochs", "1", "--out", j("m2.npz"), "--log-steps", j("split", "val", "cat", "0.jpg")],
            inputs=[f["split"]]))
    # Defect 3: an ONNX model's external data is an input; a longer external file is refused.
    add(Try("defect 3: convert ext.onnx over its external data",
            ["convert", f["ext_onnx"], f["ext_data"]], inputs=[f["ext_onnx"], f["ext_data"]]))
    os.symlink(f["ext_data"], j("ext-link.onnx"))
    add(Try("defect 3: convert over a link to its external data (as .onnx)",
            ["convert", f["ext_onnx"], j("ext-link.onnx")], inputs=[f["ext_onnx"], f["ext_data"]]))
    add(Try("defect 3: external tensor file longer than declared, no length",
            ["convert", j("ext_long.onnx"), j("o3.npz")], expect="fail", inputs=[j("ext_long.bin")],
            absent=[j("o3.npz")]))
    add(Try("defect 3: external data outside the model's folder",
            ["convert", j("ext_out.onnx"), j("o3.npz")], expect="fail", absent=[j("o3.npz")]))
    add(Try("defect 3: a model with external data converts", ["convert", f["ext_onnx"], j("o3b.npz")],
            expect="ok", inputs=[f["ext_onnx"], f["ext_data"]]))
    # Defect 4: members just under the member cap, together over the file's budget.
    add(Try("defect 4: npz of 3 members of 1 GiB - 64 (deflated)", ["summary", "--weights", f["bomb"]],
            expect="fail"))
    add(Try("defect 4: convert the same", ["convert", f["bomb"], j("o4.safetensors")], expect="fail",
            absent=[j("o4.safetensors")]))
    # Defect 5: weights on /dev/zero under each extension; a FIFO for summary.
    for ext in ["onnx", "safetensors", "h5", "npz", "pth"]:
        add(Try("defect 5: summary --weights zero.%s (link to /dev/zero)" % ext,
                ["summary", "--weights", j("zero." + ext)], expect="fail", timeout=30))
        add(Try("defect 5: summary --weights fifo.%s" % ext, ["summary", "--weights", j("fifo." + ext)],
                expect="fail", timeout=30))
    # Defect 6: feature labels beyond the classes.
    for name in ["feat_2p40", "feat_1e7"]:
        add(Try("defect 6: train-head --features %s" % name,
                ["train-head", "--weights", W, "--features", j(name + ".npz"), "--out", j("m6.npz")],
                expect="refuse", absent=[j("m6.npz")],
                check=lambda rc, o, e: None if len(e) < 10000 else "stderr of %d bytes" % len(e)))
    add(Try("defect 6: train-head --features with a class of no rows",
            ["train-head", "--weights", W, "--features", j("feat_gap.npz"), "--out", j("m6.npz")],
            expect="refuse", absent=[j("m6.npz")]))
    # Defect 7: host buffers sized by flags.
    add(Try("defect 7: train-head --augment 100000000 (rows over memory)",
            ["train-head", "--weights", W, "--data", f["data"], "--augment", "100000000", "--out", j("m7.npz")],
            expect="refuse", absent=[j("m7.npz")]))
    add(Try("defect 7: train-head --augment 4096 --train-from conv4 --steps 1 (runs)",
            ["train-head", "--weights", W, "--data", f["data"], "--augment", "4096", "--train-from", "conv4",
             "--steps", "1", "--batch", "2", "--out", j("m7.npz")], expect="ok", timeout=120))
    # Two training images (and two validating): 3600 rows in items of 900 views.
    add(Try("defect 7: train-head --augment 1800 (views in items of 900) under ulimit -v 8 GiB",
            ["bash", "-c", "ulimit -v 8388608; exec \"$0\" \"$@\"", r.binary, "train-head", "--weights", W,
             "--data", j("data2"), "--val-split", "0.5", "--augment", "1800", "--epochs", "1",
             "--out", j("m7b.npz")],
            expect="ok", timeout=600, raw=True))
    add(Try("defect 7: bench --batch 100000", ["bench", "--weights", W, "--batch", "100000", "--iters", "1"],
            expect="refuse"))
    add(Try("defect 7: classify --batch 20000 (one image: takes the inputs)",
            ["classify", "--weights", W, "--batch", "20000", IMG], expect="ok"))
    # Defect 8: lpips --resize over the decoder limit.
    add(Try("defect 8: lpips --resize 100000x100000",
            ["lpips", "--weights", T, "--resize", "100000x100000", IMG, IMG1], expect="refuse"))
    # Defect 9: one large pair is that pair's error; the others are written.
    with open(j("pairs_huge.txt"), "w") as o:
        o.write("%s %s\n%s %s\n" % (IMG, IMG1, f["huge"], f["huge"]))
    add(Try("defect 9: lpips a 3000x3000 pair among good pairs",
            ["lpips", "--weights", T, "--format", "csv", "--pairs", j("pairs_huge.txt")], expect="fail",
            check=lambda rc, o, e: None if rc == 1 and "img0.png" in o else "good pair not written (rc %d)" % rc))
    add(Try("defect 9: lpips a 3000x3000 pair under --memory-mb 1024",
            ["lpips", "--weights", T, "--memory-mb", "1024", f["huge"], f["huge"]], expect="fail"))
    # Defect 10: a JPEG against itself is 0 (the cv2 comparison is tests/it/lpips_decode.rs).
    add(Try("defect 10: lpips of a JPEG with itself is 0",
            ["lpips", "--weights", T, "--format", "csv", j("upright.jpg"), j("upright.jpg")], expect="ok",
            check=lambda rc, o, e: None if distances(o) == [0.0] else "distance %s" % distances(o)))
    # Defect 11: EXIF orientation applied: a rotated photo against its upright copy.
    add(Try("defect 11: lpips of an EXIF-rotated JPEG and its upright copy",
            ["lpips", "--weights", T, "--format", "csv", j("rot.jpg"), j("upright.jpg")], expect="ok",
            check=lambda rc, o, e: None if distances(o) and distances(o)[0] < 0.05 else "distance %s" % distances(o)))
    # Defect 12: tune.json a FIFO or /dev/zero: a warning and the heuristics, never a hang.
    for name in ["fifocache", "zerocache"]:
        add(Try("defect 12: classify with %s/tune.json" % name,
                ["classify", "--weights", W, IMG], expect="ok", env={"ALEXNET_CACHE_DIR": j(name)}, timeout=60,
                inputs=[j(name, "tune.json")]))
    # Defect 13: features --data of a split dataset.
    add(Try("defect 13: features --data train/+val/", ["features", "--weights", W, "--data", f["split"],
                                                        "--out", j("f13.npz")], expect="refuse",
            absent=[j("f13.npz")]))
    add(Try("defect 13: eval --data train/+val/ evaluates val/",
            ["eval", "--weights", j("model2.npz"), "--data", f["split"]], expect="ok",
            check=lambda rc, o, e: None if "val" in e + o else "does not say it evaluates val/"))
    # Defect 14: a download killed by SIGKILL is cleaned up by the rerun (see kill_tries).
    # Defect 15: lpips --all-pairs spill file after SIGKILL (see kill_tries).
    # Defect 16: selftest under every forced matmul path.
    for path in matmul_paths(r):
        add(Try("defect 16: selftest --matmul %s" % path, ["selftest", "--matmul", path], expect="ok",
                timeout=600))

    # 5. The rough edges.
    open(j("pairs_empty.txt"), "w").close()
    with open(j("pairs_comments.txt"), "w") as o:
        o.write("# nothing\n\n")
    rough = [
        ("lpips --pairs empty", ["lpips", "--weights", T, "--pairs", j("pairs_empty.txt")], "refuse"),
        ("lpips --pairs comments only", ["lpips", "--weights", T, "--pairs", j("pairs_comments.txt")], "refuse"),
        ("lpips --all-pairs FILE.png", ["lpips", "--weights", T, "--all-pairs", IMG], "refuse"),
        ("lpips --all-pairs missing", ["lpips", "--weights", T, "--all-pairs", j("nope")], "refuse"),
        ("lpips --matrix-out DIR", ["lpips", "--weights", T, "--all-pairs", f["images"], "--matrix-out", j("cache")], "refuse"),
        ("lpips --matrix-out without --all-pairs", ["lpips", "--weights", T, "--matrix-out", j("m.npy"), IMG, IMG1], "refuse"),
        ("lpips --out in a missing folder", ["lpips", "--weights", T, "--out", j("nope", "o.csv"), IMG, IMG1], "refuse"),
        ("lpips --matrix-out in a missing folder", ["lpips", "--weights", T, "--all-pairs", f["images"],
                                                    "--matrix-out", j("nope", "m.npy")], "refuse"),
        ("train-head --out MISSING/m.npz", ["train-head", "--weights", W, "--data", f["data"], "--out",
                                            j("nope", "m.npz")], "refuse"),
        ("train-head --momentum with adam", ["train-head", "--weights", W, "--data", f["data"], "--optimizer",
                                             "adam", "--momentum", "0.5", "--out", j("mr.npz")], "refuse"),
        ("train-head --val-split with a split dataset", ["train-head", "--weights", W, "--data", f["split"],
                                                         "--val-split", "0.3", "--out", j("mr.npz")], "refuse"),
        ("train-head --data train/ val/ of images", ["train-head", "--weights", W, "--data", f["flat"],
                                                     "--out", j("mr.npz")], "refuse"),
        ("train-head --lr 1e30", ["train-head", "--weights", W, "--data", f["data"], "--lr", "1e30",
                                  "--out", j("mr.npz")], "refuse"),
        ("bench --iters 0", ["bench", "--weights", W, "--iters", "0"], "refuse"),
        ("adapters --json --backend metal", ["adapters", "--json", "--backend", "metal"], "refuse"),
        ("adapters --backend metal", ["adapters", "--backend", "metal"], "refuse"),
        ("--cache-dir FILE", ["--cache-dir", IMG, "summary"], "refuse"),
        ("fetch-weights --cache-dir FILE", ["--cache-dir", IMG, "fetch-weights", "--quiet"], "refuse"),
        ("convert: ONNX shape error names the file's initializer",
         ["convert", j("ext_long.onnx"), j("o_shape.npz")], "fail"),
    ]
    for name, argv, expect in rough:
        add(Try("rough: " + name, argv, expect=expect, inputs=[W, T, IMG, IMG1, f["data"]]))
    add(Try("rough: --cache-dir FILE says not a folder", ["--cache-dir", IMG, "summary"], expect="refuse",
            check=lambda rc, o, e: None if "not a folder" in e else "message: %s" % e.strip()[:100]))
    # (A read-only folder is writable by root; a cache folder that cannot be made stands in.)
    add(Try("rough: bench --tune with a cache folder that cannot be made, refused before work",
            ["bench", "--weights", W, "--tune", "--batch", "1", "--iters", "1"], expect="refuse",
            env={"ALEXNET_CACHE_DIR": "/proc/alexnet-hostile-cache"}, timeout=60,
            check=lambda rc, o, e: None if "tuning" not in e.lower() or "error" in e.split("\n")[0].lower()
            else "refused after tuning"))
    add(Try("rough: WGPU_BACKEND= (empty) counts as unset", ["classify", "--weights", W, IMG], expect="ok",
            env={"WGPU_BACKEND": ""}))
    add(Try("rough: ALEXNET_CACHE_DIR= (empty) counts as unset", ["summary", "--weights", W], expect="ok",
            env={"ALEXNET_CACHE_DIR": ""}))
    add(Try("rough: classify --validate good.png classifies good.png",
            ["classify", "--weights", W, "--validate", IMG], expect="ok",
            check=lambda rc, o, e: None if "img0.png" in o else "the image was not classified"))
    add(Try("rough: eval --data SPLIT says it evaluates val/",
            ["eval", "--weights", j("model2.npz"), "--data", f["split"]], expect="ok"))
    add(Try("rough: train-head --batch 1000000 takes the rows",
            ["train-head", "--weights", W, "--data", f["data"], "--batch", "1000000", "--epochs", "1",
             "--out", j("mb.npz")], expect="ok",
            check=lambda rc, o, e: None if "rows" in e else "does not say it takes the rows"))
    add(Try("rough: train-head --resume with no checkpoint says so",
            ["train-head", "--weights", W, "--data", f["data"], "--epochs", "1", "--resume",
             "--out", j("mres.npz")], expect="ok",
            check=lambda rc, o, e: None if "first epoch" in e else "silent"))
    add(Try("rough: train-head --resume with another --epochs is refused before work",
            ["train-head", "--weights", W, "--data", f["data"], "--epochs", "3", "--resume",
             "--out", j("mres.npz")], expect="any"))
    add(Try("rough: lpips: an error after the CSV header (none printed)",
            ["lpips", "--weights", T, "--format", "csv", "--spatial", IMG, IMG, IMG1], expect="refuse",
            check=lambda rc, o, e: None if o == "" else "printed before the refusal"))
    add(Try("rough: a full disk (ulimit -f): one error, no ZipWriter noise, no file",
            ["bash", "-c", "trap '' XFSZ; ulimit -f 200; exec \"$0\" convert \"$1\" \"$2\"", r.binary, W,
             j("full.npz")], expect="refuse", absent=[j("full.npz")], raw=True,
            check=lambda rc, o, e: "ZipWriter noise" if "ZipWriter" in e else None))
    return tries


def distances(stdout):
    out = []
    for line in stdout.splitlines()[1:]:
        for cell in line.split(","):
            try:
                v = float(cell)
                out.append(v)
                break
            except ValueError:
                continue
    return out


def first_file(folder):
    for dirpath, _, files in sorted(os.walk(folder)):
        for n in sorted(files):
            return os.path.join(dirpath, n)
    return None


def matmul_paths(r):
    """The values `--matmul` accepts, from the binary's own help ("Matmul kernels: tiled, gemm,
    blocked, blocked-TILE (e.g. blocked-64x64x16), blocked-splitN (...)"): a placeholder
    becomes its example (TILE) or 4 (N)."""
    out = subprocess.run([r.binary, "classify", "--help"], capture_output=True, text=True).stdout
    m = re.search(r"Matmul kernels: (.*?)\(default", out, re.S)
    if not m:
        return ["gemm"]
    paths = []
    for item in re.split(r",\s*(?![^()]*\))", " ".join(m.group(1).split())):
        example = re.search(r"e\.g\. ([a-z0-9x-]+)", item)
        name = re.sub(r"\s*\(.*\)", "", item).strip()
        if "TILE" in name:
            name = example.group(1) if example else name.replace("TILE", "64x64x16")
        name = re.sub(r"N$", "4", name)
        if name:
            paths.append(name)
    return paths


class SlowServer:
    """A local HTTP server for fetch-weights: half the body then a held connection (`hold`),
    or the whole body."""

    def __init__(self, body, hold):
        self.body, self.hold = body, hold
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.one, args=(c,), daemon=True).start()

    def one(self, c):
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    return
                data += chunk
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(self.body))
            if self.hold:
                c.sendall(self.body[: len(self.body) // 2])
                time.sleep(60)
            else:
                c.sendall(self.body)
        except OSError:
            pass
        finally:
            c.close()


def kill_tries(r, f, work):
    """Defects 14 and 15: a run killed by SIGKILL, then a rerun that must clean up."""
    j = lambda *p: os.path.join(work, *p)
    # Defect 14: fetch-weights.
    body = open(f["pth"], "rb").read()
    sha = hashlib.sha256(body).hexdigest()
    dest = j("fetched")
    os.makedirs(dest, exist_ok=True)
    held = SlowServer(body, hold=True)
    env = dict(os.environ, ALEXNET_CACHE_DIR=j("fetchcache"))
    p = subprocess.Popen([r.binary, "fetch-weights", "--quiet", "--sha256-prefix", sha[:8], "--url",
                          "http://127.0.0.1:%d/w.pth" % held.port, "--out", os.path.join(dest, "w.npz")],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while time.monotonic() - start < 20 and not any(
            n.startswith(".alexnet-") and os.path.getsize(os.path.join(dest, n)) >= len(body) // 4
            for n in os.listdir(dest)):
        time.sleep(0.02)
    left = [n for n in os.listdir(dest) if n.startswith(".alexnet-")]
    p.kill()
    p.wait()
    full = SlowServer(body, hold=False)
    t = Try("defect 14: fetch-weights killed by SIGKILL, the rerun removes its download",
            ["fetch-weights", "--quiet", "--sha256-prefix", sha[:8], "--url",
             "http://127.0.0.1:%d/w.pth" % full.port, "--out", os.path.join(dest, "w.npz")],
            expect="ok", env={"ALEXNET_CACHE_DIR": j("fetchcache")},
            check=lambda rc, o, e: ("no download started to kill" if not left else
                                    None if not [n for n in os.listdir(dest) if n.startswith(".alexnet-")]
                                    else "left: %s" % os.listdir(dest)))
    r.run(t)
    # Defect 15: lpips --all-pairs spilling under a tiny --memory-mb, killed, then any lpips run.
    tmp = j("spilltmp")
    os.makedirs(tmp, exist_ok=True)
    many = j("many")
    os.makedirs(many, exist_ok=True)
    for n in range(12):
        png(os.path.join(many, "m%02d.png" % n), 64, 64, n)
    env = dict(os.environ, TMPDIR=tmp, WGPU_BACKEND=os.environ.get("WGPU_BACKEND", "vulkan"))
    p = subprocess.Popen([r.binary, "lpips", "--weights", f["trunk"], "--all-pairs", many, "--memory-mb", "1",
                          "--matrix-out", j("spill_m.npy")], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    start = time.monotonic()
    while time.monotonic() - start < 60 and not os.listdir(tmp) and p.poll() is None:
        time.sleep(0.02)
    spilled = list(os.listdir(tmp))
    p.kill()
    p.wait()
    t = Try("defect 15: lpips spill file after SIGKILL removed by the next lpips run",
            ["lpips", "--weights", f["trunk"], f["img"], f["img1"]], expect="ok", env={"TMPDIR": tmp},
            check=lambda rc, o, e: ("no spill file seen to kill (the run ended first)" if not spilled else
                                    None if not os.listdir(tmp) else "left: %s" % os.listdir(tmp)))
    r.run(t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "alexnet"))
    ap.add_argument("--only", help="run only the tries whose name contains this")
    ap.add_argument("--timeout", type=int, default=120, help="seconds per try (default 120)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = ap.parse_args()
    binary = os.path.abspath(args.bin)
    work = tempfile.mkdtemp(prefix="alexnet-hostile-")
    lines = []

    def log(s):
        print(s, flush=True)
        lines.append(s)

    r = Runner(binary, work, args.timeout, log)
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout.strip()
    adapters = subprocess.run([binary, "adapters"], capture_output=True, text=True,
                              env=dict(os.environ, WGPU_BACKEND=os.environ.get("WGPU_BACKEND", "vulkan")))
    log("# hostile catalogue (issue 28): %s" % version)
    log("# binary %s, RLIMIT_AS %d GiB, RSS bound %d GiB, timeout %ds" % (
        os.path.relpath(binary, ROOT), AS_LIMIT >> 30, RSS_BOUND >> 30, args.timeout))
    first_adapter = next((l.strip() for l in adapters.stdout.splitlines() if l.startswith("*")), "?")
    log("# adapter: %s" % first_adapter)
    try:
        f = prepare(work)
        # Models the tries read: one trained on the data folder, one on the split dataset.
        for out, data in [("model.npz", f["data"]), ("model2.npz", os.path.join(f["split"]))]:
            subprocess.run([binary, "train-head", "--weights", f["w"], "--data", data, "--epochs", "1",
                            "--out", os.path.join(work, out)], check=True, capture_output=True,
                           env=dict(os.environ, WGPU_BACKEND=os.environ.get("WGPU_BACKEND", "vulkan")))
        subprocess.run([binary, "classify", "--weights", f["w"], "--shard", "0/2", "--out-dir",
                        os.path.join(work, "shards"), f["img"], f["img1"], f["img2"]],
                       check=True, capture_output=True)
        subprocess.run([binary, "classify", "--weights", f["w"], "--shard", "1/2", "--out-dir",
                        os.path.join(work, "shards"), f["img"], f["img1"], f["img2"]],
                       check=True, capture_output=True)
        tries = catalogue(r, f, work)
        for t in tries:
            if args.only and args.only not in t.name:
                continue
            r.run(t)
        if not args.only or "defect 1" in args.only:
            kill_tries(r, f, work)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("# scratch folder kept: %s" % work)
    defects = sum(1 for _, v in r.results if v == "DEFECT")
    log("tries %d, DEFECT %d" % (len(r.results), defects))
    sys.exit(1 if defects else 0)


if __name__ == "__main__":
    main()
