#!/usr/bin/env python3
"""Driver of scripts/browser-shaders.sh: checks every WGSL shader with Tint (Chromium's WGSL
compiler, through Dawn) in headless Chromium's WebGPU on SwiftShader.

Python stdlib only. Builds the list of shader modules the program really compiles (the files in
shaders/ plus the host-side rewrites of src/: mm.wgsl per tile, gemm_f16.wgsl[native],
coop.wgsl[emulated] (the hardware coop.wgsl is a wgpu extension Tint does not know),
sgd/adam.wgsl[vec4]), measures each entry point statically (storage bindings, workgroup memory,
invocations), serves them with page.html / page.js on 127.0.0.1, starts Chromium on that page and
prints the result lines the page POSTs back. Exit status 0 only if every check passed.
"""

import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import queue

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# WebGPU's default limits (what a device gets without requiredLimits).
DEFAULT_MAX_STORAGE = 8
DEFAULT_MAX_WG_BYTES = 16384
DEFAULT_MAX_INVOCATIONS = 256


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# Host-side rewrites, mirrored from src/ (keep in step with the Rust code).


def rust_lines(src):
    """Rust's str::lines(): split at \\n, drop one trailing \\r per line and a final empty line."""
    parts = src.split("\n")
    if parts and parts[-1] == "":
        parts.pop()
    return [p[:-1] if p.endswith("\r") else p for p in parts]


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def rust_sources():
    for d, _, fs in sorted(os.walk(os.path.join(ROOT, "src"))):
        for f in sorted(fs):
            if f.endswith(".rs"):
                yield os.path.relpath(os.path.join(d, f), ROOT)


def mm_tiles():
    """`const TILES: &[Tile]` of src/ (src/kernels/mm.rs re-exports it), as (bm, bn, bk)."""
    found = []
    for rel in rust_sources():
        m = re.search(r"\bconst TILES: &\[Tile\] = &\[(.*?)\];", read(rel), re.S)
        if m:
            found.append((rel, m.group(1)))
    if len(found) != 1:
        raise RuntimeError("src/: %d definitions of `const TILES: &[Tile] = &[...]` (expected one: "
                           "the tiles mm.rs builds)" % len(found))
    rel, body = found[0]
    tiles = [tuple(int(v) for v in t)
             for t in re.findall(r"Tile::new\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\)", body)]
    if not tiles:
        raise RuntimeError("%s: TILES lists no Tile::new(bm, bn, bk)" % rel)
    return tiles


def mm_variant(src, bm, bn, bk):
    """mm.rs `Tile::source`: the three const lines rewritten (replacen, once each)."""
    out = src
    for name, default, value in (("BM", 64, bm), ("BN", 64, bn), ("BK", 16, bk)):
        old = "const %s: u32 = %du;" % (name, default)
        if old not in out:
            raise RuntimeError("mm.wgsl no longer contains %r (mm.rs Tile::source rewrites it)" % old)
        out = out.replace(old, "const %s: u32 = %du;" % (name, value), 1)
    return out


def native_f16_variant(src):
    """gemm.rs `native_from_portable`: gemm_f16.wgsl with `enable f16;` and vec4<f16> loads."""
    out = ("// Generated from gemm_f16.wgsl by kernels::gemm::native_f16_source (native f16 loads).\n"
           "enable f16;\n")
    skipping = False
    saw_start = saw_end = False
    for line in rust_lines(src):
        t = line.strip()
        if t.startswith("const HALF_TO_FLOAT"):
            saw_start = True
            skipping = True
            out += ("fn lo_a(i: u32) -> vec4<f32> {\n    return vec4<f32>(a[2u * i]);\n}\n\n"
                    "fn hi_a(i: u32) -> vec4<f32> {\n    return vec4<f32>(a[2u * i + 1u]);\n}\n\n"
                    "fn lo_b(i: u32) -> vec4<f32> {\n    return vec4<f32>(b[2u * i]);\n}\n\n"
                    "fn hi_b(i: u32) -> vec4<f32> {\n    return vec4<f32>(b[2u * i + 1u]);\n}\n\n")
        if skipping:
            if t.startswith("fn dot8"):
                saw_end = True
                skipping = False
            else:
                continue
        l = (line.replace("array<vec4<u32>>", "array<vec4<f16>>")
             .replace("lo(x", "lo_b(x").replace("hi(x", "hi_b(x")
             .replace("lo(w", "lo_a(w").replace("hi(w", "hi_a(w"))
        if (t.startswith("let x") and "= b[" in t) or (t.startswith("let w") and "= a[" in t):
            l = l.replace("= b[", "= ", 1).replace("= a[", "= ", 1).replace("];", ";", 1)
        out += l + "\n"
    if not (saw_start and saw_end):
        raise RuntimeError("gemm_f16.wgsl: `const HALF_TO_FLOAT` ... `fn dot8` not found "
                           "(gemm.rs native_from_portable relies on them)")
    return out


def vec4_variant(file, src):
    """kernels/vec4_optimizer.rs `vec4_optimizer`: every array<f32> as vec4, bounds check 4u * i."""
    out = (src.replace("array<f32>", "array<vec4<f32>>")
           .replace("if (i >= p.len) {", "if (4u * i >= p.len) {"))
    if "4u * i >= p.len" not in out or "array<f32>" in out:
        raise RuntimeError("%s: the vec4 rewrite no longer matches the shader" % file)
    return "// Generated from %s by kernels::vec4_optimizer::vec4_optimizer.\n" % file + out


def coop_emulated_variant(src, mma):
    """kernels/coop.rs `EMULATED`: coop.wgsl with its MMA section replaced by coop_emulated.wgsl
    and without the cooperative-matrix `enable` (WebGPU has no cooperative matrices; the
    hardware module is a wgpu extension, validated by naga and spirv-val in tests/it/shaders.rs)."""
    begin, end = src.find("// MMA BEGIN"), src.find("// MMA END")
    if begin < 0 or end < 0:
        raise RuntimeError("coop.wgsl no longer has its MMA markers (coop.rs splices between them)")
    out = ("// Generated from coop.wgsl by kernels::coop (the MMA section emulated).\n"
           + src[:begin] + mma + src[end:])
    return out.replace("enable wgpu_cooperative_matrix;\n", "", 1)


# Literal pieces of the Rust rewrites mirrored above: if one disappears from src/, the host
# rewrite changed and this script must follow (its checks would test stale sources otherwise).
REWRITE_MARKERS = [
    ("src/kernels/mm.rs", ['"const BM: u32 = 64u;"', '"const BN: u32 = 64u;"',
                           '"const BK: u32 = 16u;"']),
    ("src/kernels/gemm.rs", ['enable f16;', 'starts_with("const HALF_TO_FLOAT")',
                             'starts_with("fn dot8")',
                             '.replace("array<vec4<u32>>", "array<vec4<f16>>")',
                             '.replace("lo(x", "lo_b(x")', '.replace("hi(w", "hi_a(w")',
                             '.replacen("= b[", "= ", 1)']),
    ("src/kernels/coop.rs", ['"// MMA BEGIN"', '"// MMA END"',
                             '.replacen("enable wgpu_cooperative_matrix;\\n", "", 1)']),
    ("src/kernels/vec4_optimizer.rs", ['.replace("array<f32>", "array<vec4<f32>>")',
                                  '.replace("if (i >= p.len) {", "if (4u * i >= p.len) {")']),
]


def check_markers():
    problems = []
    for rel, marks in REWRITE_MARKERS:
        try:
            text = read(rel)
        except OSError as e:
            problems.append("%s: %s" % (rel, e))
            continue
        for mark in marks:
            if mark not in text:
                problems.append("%s no longer contains %s" % (rel, mark))
    return problems


# ---------------------------------------------------------------------------------------------
# Static measures of one entry point (for the WebGPU-default-limits report).


def strip_comments(src):
    out, i, n, depth = [], 0, len(src), 0
    while i < n:
        if depth == 0 and src.startswith("//", i):
            j = src.find("\n", i)
            i = n if j < 0 else j
        elif src.startswith("/*", i):
            depth += 1
            i += 2
        elif depth and src.startswith("*/", i):
            depth -= 1
            i += 2
        else:
            if depth == 0:
                out.append(src[i])
            i += 1
    return "".join(out)


def eval_const(expr, consts):
    e = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[ui]\b", r"\1", expr.strip())
    e = re.sub(r"\b[A-Za-z_]\w*\b", lambda m: str(consts[m.group(0)]), e)  # KeyError: unknown
    if not re.fullmatch(r"[0-9xXa-fA-F+\-*/%()<> ]*", e):
        raise ValueError(expr)
    return int(eval(e.replace("/", "//"), {"__builtins__": {}}))


def type_size(ty, consts):
    """(size, align) of a host-shareable WGSL type, or None when unknown (structs etc.)."""
    ty = ty.strip()
    scalars = {"f32": 4, "u32": 4, "i32": 4, "bool": 4, "f16": 2}
    if ty in scalars:
        return scalars[ty], scalars[ty]
    m = re.fullmatch(r"atomic<\s*(\w+)\s*>", ty)
    if m:
        return 4, 4
    m = re.fullmatch(r"vec([234])<\s*(\w+)\s*>", ty) or re.fullmatch(r"vec([234])([fiuh])", ty)
    if m:
        n = int(m.group(1))
        s = {"f": 4, "i": 4, "u": 4, "h": 2}.get(m.group(2), scalars.get(m.group(2), 4))
        return (n * s, (4 if n == 3 else n) * s)
    m = re.fullmatch(r"array<(.*)>", ty, re.S)
    if m:
        inner, depth, cut = m.group(1), 0, -1
        for i, ch in enumerate(inner):
            if ch == "<":
                depth += 1
            elif ch == ">":
                depth -= 1
            elif ch == "," and depth == 0:
                cut = i
        if cut < 0:
            return None
        el = type_size(inner[:cut], consts)
        if el is None:
            return None
        count = eval_const(inner[cut + 1:], consts)
        stride = -(-el[0] // el[1]) * el[1]
        return count * stride, el[1]
    return None


def analyse(src):
    """Entry points of a module with the storage bindings, workgroup bytes and invocations
    each statically uses (functions reached through calls included)."""
    code = strip_comments(src)
    consts = {}
    for m in re.finditer(r"\bconst\s+(\w+)\s*(?::\s*[\w<>]+\s*)?=\s*([^;]+);", code):
        try:
            consts[m.group(1)] = eval_const(m.group(2), consts)
        except Exception:
            pass
    globals_ = {}
    for m in re.finditer(r"\bvar\s*<\s*([\w\s,]+)>\s*(\w+)\s*:\s*([^;]+);", code):
        space = m.group(1).split(",")[0].strip()
        globals_[m.group(2)] = (space, m.group(3).strip())
    funcs, entries = {}, []
    for m in re.finditer(r"\bfn\s+(\w+)\s*\(", code):
        start = code.find("{", m.end())
        depth, i = 0, start
        while i < len(code):
            if code[i] == "{":
                depth += 1
            elif code[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        funcs[m.group(1)] = code[m.end():i]
        attrs = code[max(0, m.start() - 400):m.start()]
        last = attrs.rfind(";")
        last = max(last, attrs.rfind("}"))
        attrs = attrs[last + 1:]
        if "@compute" in attrs:
            wg = re.search(r"@workgroup_size\s*\(([^)]*)\)", attrs)
            entries.append((m.group(1), wg.group(1) if wg else None))
    result = []
    for name, wg in entries:
        seen, todo, idents = set(), [name], set()
        while todo:
            f = todo.pop()
            if f in seen:
                continue
            seen.add(f)
            ids = set(re.findall(r"\b[A-Za-z_]\w*\b", funcs[f]))
            idents |= ids
            todo.extend(i for i in ids if i in funcs)
        used = [v for v in globals_ if v in idents]
        storage = sorted(v for v in used if globals_[v][0] == "storage")
        uniform = sorted(v for v in used if globals_[v][0] == "uniform")
        wg_bytes = 0
        for v in used:
            if globals_[v][0] == "workgroup":
                try:
                    sz = type_size(globals_[v][1], consts)
                except Exception:
                    sz = None
                if sz is None:
                    wg_bytes = None
                    break
                wg_bytes += -(-sz[0] // 16) * 16
        invocations = None
        if wg:
            try:
                invocations = 1
                for d in [d for d in wg.split(",") if d.strip()]:
                    invocations *= eval_const(d, consts)
            except Exception:
                invocations = None
        result.append({"name": name, "storage": storage, "uniform": uniform,
                       "wgBytes": wg_bytes, "invocations": invocations})
    return result


# ---------------------------------------------------------------------------------------------


def modules(problems):
    """Every module the program compiles: (name, source, extra) in a stable order. A rewrite
    that no longer applies goes to `problems` (the other modules are still checked)."""
    out = []
    files = sorted(f for f in os.listdir(os.path.join(ROOT, "shaders")) if f.endswith(".wgsl"))

    def add(make):
        try:
            out.extend(make())
        except (RuntimeError, OSError) as e:
            problems.append(str(e))

    for f in files:
        src = read(os.path.join("shaders", f))
        if f == "mm.wgsl":
            add(lambda: [("mm.wgsl[%dx%dx%d]" % (bm, bn, bk), mm_variant(src, bm, bn, bk),
                          {"tileWgBytes": 2 * bk * (bm + bn) * 4}) for bm, bn, bk in mm_tiles()])
            continue
        if f == "coop_emulated.wgsl":
            continue  # a fragment of coop.wgsl's emulated variant, below
        if f == "coop.wgsl":
            # The hardware module needs wgpu's cooperative-matrix extension, which WebGPU
            # (Tint) does not have; the emulated variant is what a browser could run.
            mma = read(os.path.join("shaders", "coop_emulated.wgsl"))
            add(lambda: [("coop.wgsl[emulated]", coop_emulated_variant(src, mma),
                          {"needsF16": True})])
            continue
        out.append((f, src, {}))
        if f == "gemm_f16.wgsl":
            add(lambda: [("gemm_f16.wgsl[native]", native_f16_variant(src), {"needsF16": True})])
        if f in ("sgd.wgsl", "adam.wgsl"):
            add(lambda: [("%s[vec4]" % f, vec4_variant(f, src), {})])
    return out


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True


def make_handler(job_json, events):
    files = {"/": "page.html", "/page.html": "page.html", "/page.js": "page.js"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, code, body, ctype):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            path = self.path.split("?")[0]
            if path == "/job.json":
                events.put({"kind": "loaded"})
                return self.send(200, job_json, "application/json")
            if path in files:
                with open(os.path.join(HERE, files[path]), "rb") as f:
                    body = f.read()
                ctype = "text/html" if path != "/page.js" else "text/javascript"
                return self.send(200, body, ctype + "; charset=utf-8")
            self.send(404, b"not found", "text/plain")

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            try:
                msg = json.loads(self.rfile.read(n).decode("utf-8"))
            except Exception as e:
                msg = {"kind": "fail", "text": "bad POST from the page: %s" % e}
            events.put(msg)
            self.send(200, b"{}", "application/json")

    return Handler


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    timeout = float(os.environ.get("BROWSER_SHADERS_TIMEOUT", "600"))
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which(
        "chromium-browser")
    if not chromium:
        log("FAIL chromium not found. Install it with: apt-get update && apt-get install -y chromium")
        log("(or set CHROMIUM=/path/to/chromium)")
        log("0 passed, 1 failed")
        return 1

    passed = failed = 0
    problems = check_markers()
    mods = modules(problems)
    for p in problems:
        log("FAIL host rewrite: %s (update scripts/browser-shaders/run.py)" % p)
        failed += 1
    job = {"modules": [], "defaults": {"storage": DEFAULT_MAX_STORAGE,
                                       "wgBytes": DEFAULT_MAX_WG_BYTES,
                                       "invocations": DEFAULT_MAX_INVOCATIONS}}
    for name, src, extra in mods:
        m = {"name": name, "source": src, "entries": analyse(src)}
        m.update(extra)
        job["modules"].append(m)
    job["gemm"] = read("shaders/gemm.wgsl")
    job_json = json.dumps(job).encode("utf-8")

    events = queue.Queue()
    server = Server(("127.0.0.1", free_port()), make_handler(job_json, events))
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()

    profile = tempfile.mkdtemp(prefix="browser-shaders-")
    stderr_path = os.path.join(profile, "chromium.log")
    # WebGPU on SwiftShader without a GPU; nothing that reaches for the network (there may be
    # none: Chromium then retries connections endlessly); developer features for the full
    # adapter info (description) and unbucketed limits.
    args = [chromium, "--headless=new", "--enable-unsafe-webgpu", "--enable-unsafe-swiftshader",
            "--enable-webgpu-developer-features",
            "--use-webgpu-adapter=swiftshader", "--no-sandbox", "--disable-gpu-sandbox",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--no-default-browser-check", "--disable-quic",
            "--disable-default-apps", "--disable-extensions", "--disable-breakpad",
            "--disable-domain-reliability", "--disable-client-side-phishing-detection",
            "--no-proxy-server", "--disable-dev-shm-usage", "--password-store=basic",
            "--use-mock-keychain", "--user-data-dir=" + os.path.join(profile, "profile"),
            "http://127.0.0.1:%d/page.html" % port]
    extra = os.environ.get("CHROMIUM_FLAGS", "").split()
    if extra:
        args[1:1] = extra
    errf = open(stderr_path, "wb")
    proc = None
    done = False
    loaded = False

    def tail():
        try:
            with open(stderr_path, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            lines = []
        for l in lines[-25:]:
            log("    chromium: " + l)

    try:
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=errf, stderr=errf,
                                start_new_session=True)
        while not done:
            left = deadline - time.monotonic()
            if left <= 0:
                log("FAIL timeout: no complete report from Chromium within %.0f s%s" % (
                    timeout, "" if loaded else " (the page never loaded)"))
                failed += 1
                tail()
                break
            try:
                ev = events.get(timeout=min(0.5, left))
            except queue.Empty:
                if proc.poll() is not None:
                    # Give in-flight POSTs a moment.
                    time.sleep(0.5)
                    if events.empty():
                        log("FAIL chromium exited with status %s before reporting%s" % (
                            proc.returncode, "" if loaded else " (it never loaded the page)"))
                        failed += 1
                        tail()
                        break
                continue
            kind = ev.get("kind")
            if kind == "loaded":
                loaded = True
            elif kind == "info":
                log(ev.get("text", ""))
            elif kind == "pass":
                passed += 1
                log(ev.get("text", ""))
            elif kind == "fail":
                failed += 1
                log(ev.get("text", ""))
            elif kind == "done":
                done = True
            else:
                log("? %r" % (ev,))
    finally:
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
            # The rest of Chromium's process group (GPU, renderer, utility processes).
            for _ in range(30):
                try:
                    os.killpg(proc.pid, 0)
                except OSError:
                    break
                time.sleep(0.1)
            else:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
        errf.close()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)
    if done and passed == 0 and failed == 0:
        log("FAIL the page reported no checks")
        failed += 1
    log("(%.1f s)" % (time.monotonic() - started))
    log("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 and done else 1


def on_term(signum, frame):
    raise SystemExit(124)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, on_term)
    sys.exit(main())
