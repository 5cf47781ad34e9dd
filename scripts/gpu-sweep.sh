#!/usr/bin/env bash
# The prepared device sweep (issue 26): everything one short visit to a GPU machine should
# measure, ours against PyTorch on the same card in one run. For a bare Linux machine with a
# GPU, its driver and Python with torch + torchvision; no Rust, no network: carry the binary
# (`cargo build --release`: target/release/alexnet), this scripts/ folder and, where the
# machine has no Vulkan loader (`ldconfig -p | grep libvulkan` prints nothing), Debian's
# libvulkan1_*.deb. Then:
#
#     scripts/gpu-sweep.sh [OUTDIR]
#
# Environment (all optional):
#   BIN          the binary (default: target/release/alexnet beside this folder)
#   DEBS         a folder of .deb files (the Vulkan loader) unpacked into a temporary folder
#                that LD_LIBRARY_PATH points at (removed on exit)
#   WEIGHTS      weights to time (default: random full-size torchvision weights)
#   PACK         the archive rewritten after every stage (default: OUTDIR.tgz)
#   SWEEP_SMALL  1: the whole sweep in small mode, for lavapipe and CI: batches 1 and 2, few
#                iterations, PyTorch on the CPU (its columns null where it is not importable);
#                under 3 minutes on 2 cores with reduced-width WEIGHTS
#   TRAIN_FROM   the training stages' first trained layers (default fc8,conv4,conv1)
# OUTDIR defaults to docs/gpu-runs/DATE-CARD (e.g. 2026-12-09-h200).
#
# Stages (each capped with `timeout`; full mode at most ~7.5 minutes in all):
#   0 probe     machine.txt, adapters.txt, adapters.json (limits, features, subgroup sizes,
#               cooperative-matrix configurations)
#   1 selftest  selftest.json: every kernel against its f64 CPU reference on this adapter
#   2 untuned   untuned.json: `bench` before any tuning (what a first `classify` gets), f32/f16
#   3 kernels   tune.json: `bench --tune`, every candidate kernel of every conv/fc shape at
#               each batch (today's variants among them: the baseline), GPU timestamps
#   4 bench     ours.json: `bench` with the tuned winners, f32 and f16 at each batch (wall,
#               GPU and upload ms per pass; per layer)
#   4b coop-off coop_off.json: `bench` f16 with ALEXNET_COOP=off (today's im2col_f16 +
#               gemm_f16 instead of the tensor-core kernels: their A/B on the same card)
#   5 gemm      gemm.json: `bench --gemm`, the GEMM ceiling with timestamps (4096^3 and each
#               conv's GEMM at each batch)
#   6 torch     torch.json: scripts/torch_bench.py (IEEE fp32, default TF32, f16 autocast)
#   7 train     train.json: `bench --train-from` per first trained layer and batch (the real
#               step, one submission; SGD with momentum, f32)
#   8 torch-train  torch_train.json: scripts/torch_train_bench.py, the same steps in PyTorch
#               (same freezing, IEEE fp32, default TF32, f16 autocast)
#   9 tables    sweep.json (machine-readable) and summary.txt, printed last
# A stage that fails or times out is noted in stages.txt and the sweep goes on.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
small=${SWEEP_SMALL:-0}
bin=${BIN:-$root/target/release/alexnet}
weights=${WEIGHTS:-}
date=$(date -u +%F)
start=$(date +%s)

if [ ! -x "$bin" ]; then
  echo "gpu-sweep: no executable binary at $bin (set BIN)" >&2
  exit 2
fi
if [ -n "${DEBS:-}" ]; then
  loader=$(mktemp -d "${TMPDIR:-/tmp}/alexnet-sweep-loader.XXXXXX")
  trap 'rm -rf "$loader"' EXIT
  for f in "$DEBS"/*.deb; do dpkg -x "$f" "$loader"; done
  export LD_LIBRARY_PATH="$loader/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
# NVIDIA containers often ship the ICD file outside the loader's default search path.
for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
           /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
done
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}

train_from=${TRAIN_FROM:-fc8,conv4,conv1}
if [ "$small" = 1 ]; then
  batches=1,2; tune_batches=1,2; iters=2; tune_reps=1; t_iters=3; t_warm=1; torch_dev=(--device cpu)
  train_batches=1,2; train_iters=2; tt_iters=2; tt_warm=1
  cap_probe=30; cap_self=120; cap_untuned=40; cap_tune=60; cap_bench=60; cap_gemm=40; cap_torch=60
  cap_train=90; cap_ttrain=60; cap_coop_off=40
else
  batches=1,8,64,256; tune_batches=1,8,256; iters=10; tune_reps=5; t_iters=15; t_warm=3; torch_dev=()
  train_batches=32,128; train_iters=5; tt_iters=10; tt_warm=3
  # Sum 455 s (probe twice; the training stages' 100 s partly from the kernel and PyTorch
  # stages' caps: 90 s each before), so that the device call's 480 s keeps room for packing
  # and the tables.
  # (The f16 A/B without tensor cores, 25 s, from the untuned and kernel stages' caps.)
  cap_probe=20; cap_self=40; cap_untuned=30; cap_tune=60; cap_bench=60; cap_gemm=50; cap_torch=50
  cap_train=50; cap_ttrain=50; cap_coop_off=25
fi
weight_args=()
[ -n "$weights" ] && weight_args=(--weights "$weights")

card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
driver=$(nvidia-smi --query-gpu=driver_version --format=csv,noheader 2>/dev/null | head -n 1)
if [ -z "$card" ]; then
  card=$(timeout 20 "$bin" adapters --json 2>/dev/null | python3 -c \
    'import json,sys; a=json.load(sys.stdin); c=[x for x in a if x.get("chosen")] or a; print(c[0]["name"] if c else "")' 2>/dev/null)
fi
card=${card:-unknown}
slug=$(printf '%s' "$card" | tr 'A-Z' 'a-z' | sed -e 's/^nvidia //' -e 's/[^a-z0-9]\{1,\}/-/g' -e 's/^-//' -e 's/-$//')
out=${1:-$root/docs/gpu-runs/$date-$slug}
mkdir -p "$out"
out=$(cd "$out" && pwd)
pack=${PACK:-$out.tgz}
# The tuner cache goes with the results (and a stale one from elsewhere is not picked up).
export ALEXNET_CACHE_DIR="$out/cache"
rm -rf "$out/cache"
: > "$out/stages.txt"

pack() { tar czf "$pack.part" -C "$(dirname "$out")" "$(basename "$out")" && mv "$pack.part" "$pack"; }
# stage NAME CAP OUTFILE CMD...: runs CMD with stdout to OUTFILE, stderr to NAME.err, noted.
stage() {
  local name=$1 cap=$2 file=$3; shift 3
  local s; s=$(date +%s)
  echo "== stage $name (cap ${cap}s): $*" >&2
  timeout "$cap" "$@" > "$out/$file" 2> "$out/$name.err"
  local rc=$?
  local took=$(( $(date +%s) - s ))
  echo "$name rc=$rc ${took}s" | tee -a "$out/stages.txt" >&2
  [ "$rc" = 0 ] || tail -n 5 "$out/$name.err" >&2
  pack
  return 0
}

{
  echo "date: $(date -u +%FT%TZ)"
  echo "card: $card"; echo "driver: ${driver:-}"
  echo "small: $small"; echo "binary: $bin"; echo "weights: ${weights:-random full-size}"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null
  uname -a; echo "cores: $(nproc)"; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
} > "$out/machine.txt" 2>&1
cat "$out/machine.txt" >&2
stage probe "$cap_probe" adapters.txt "$bin" adapters
stage probe-json "$cap_probe" adapters.json "$bin" adapters --json
stage selftest "$cap_self" selftest.json "$bin" selftest --json
stage untuned "$cap_untuned" untuned.json "$bin" bench "${weight_args[@]}" --batch "$batches" \
  --iters "$iters" --warmup 1 --precision f32,f16 --format json
stage kernels "$cap_tune" tune.json "$bin" bench "${weight_args[@]}" --tune --batch "$tune_batches" \
  --iters "$tune_reps" --warmup 1 --format json
stage bench "$cap_bench" ours.json "$bin" bench "${weight_args[@]}" --batch "$batches" \
  --iters "$iters" --warmup 2 --per-layer --precision f32,f16 --format json
ALEXNET_COOP=off stage coop-off "$cap_coop_off" coop_off.json "$bin" bench "${weight_args[@]}" \
  --batch "$batches" --iters "$iters" --warmup 2 --precision f16 --format json
# The GEMM ceiling apart, so that its large operands cannot cost the rows above (its own
# forward rows are not used).
stage gemm "$cap_gemm" gemm.json "$bin" bench "${weight_args[@]}" --batch "$batches" \
  --iters 3 --warmup 0 --gemm --precision f32,f16 --format json
if python3 -c 'import torch, torchvision' 2>/dev/null; then
  stage torch "$cap_torch" torch.log python3 "$here/torch_bench.py" "${torch_dev[@]}" \
    --batch "$batches" --iters "$t_iters" --warmup "$t_warm" --out "$out/torch.json"
else
  echo "torch skipped: python3 cannot import torch and torchvision" | tee -a "$out/stages.txt" >&2
fi
# Training: ours (the frozen part cached and untimed, as in `train-head`), then PyTorch's same
# steps. The weights are the sweep's (random full-size unless WEIGHTS); PyTorch's are always
# full-size torchvision, so with reduced-width WEIGHTS (small mode) the ratios mean nothing.
stage train "$cap_train" train.json "$bin" bench "${weight_args[@]}" --train-from "$train_from" \
  --batch "$train_batches" --iters "$train_iters" --format json
if python3 -c 'import torch, torchvision' 2>/dev/null; then
  stage torch-train "$cap_ttrain" torch_train.log python3 "$here/torch_train_bench.py" \
    "${torch_dev[@]}" --train-from "$train_from" --batch "$train_batches" --iters "$tt_iters" \
    --warmup "$tt_warm" --out "$out/torch_train.json"
else
  echo "torch-train skipped: python3 cannot import torch and torchvision" | tee -a "$out/stages.txt" >&2
fi

python3 - "$out" "$card" "${driver:-}" "$date" "$small" <<'PY' > "$out/summary.txt"
import json, os, sys

out, card, driver, date, small = sys.argv[1:6]
def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except Exception:
        return None

ours, untuned, torch, tune, selftest, gemm_run, train, torch_train, coop_off = (load(n) for n in
    ("ours.json", "untuned.json", "torch.json", "tune.json", "selftest.json", "gemm.json",
     "train.json", "torch_train.json", "coop_off.json"))
adapters = load("adapters.json") or []
# The adapter the binary opens (marked `chosen`), else the first listed.
adapters = [a for a in adapters if a.get("chosen")] or adapters
if not driver:
    driver = (ours or {}).get("driver") or (adapters[0]["driver_info"] if adapters else "")
peer = {(r.get("mode"), r["batch"]): r for r in (torch or {}).get("results", [])}
first = {(r["precision"], r["batch"]): r for r in (untuned or {}).get("results", [])}
no_coop = {(r["precision"], r["batch"]): r for r in (coop_off or {}).get("results", [])}

def ips(mode, batch):
    r = peer.get((mode, batch))
    return r["images_per_s"] if r else None

rows = []
for r in (ours or {}).get("results", []):
    u = first.get((r["precision"], r["batch"]))
    rows.append({
        "prec": r["precision"],
        "batch": r["batch"],
        "ours_img_s": r["images_per_s"],
        "ours_gpu_img_s": r.get("gpu_images_per_s"),
        "ours_wall_ms": r["median_ms"],
        "ours_gpu_ms": r.get("gpu_ms"),
        "ours_upload_ms": r.get("upload_ms"),
        "ours_untuned_img_s": u["images_per_s"] if u else None,
        # f16 without the tensor-core kernels (ALEXNET_COOP=off), same card, same run.
        "ours_no_coop_img_s": (no_coop.get((r["precision"], r["batch"])) or {}).get("images_per_s"),
        "logit_error_vs_f32": r.get("logit_error_vs_f32"),
        "torch_ieee_img_s": ips("ieee", r["batch"]),
        "torch_default_img_s": ips("default", r["batch"]),
        "torch_f16_img_s": ips("f16", r["batch"]),
    })

# Training steps: ours trains in f32 (its weights, gradients and optimizer state), so one row
# per first trained layer and batch, beside PyTorch's IEEE fp32, default and f16 autocast.
train_peer = {(r["mode"], r["train_from"], r["batch"]): r
              for r in (torch_train or {}).get("results", [])}
def train_ips(mode, first, batch):
    r = train_peer.get((mode, first, batch))
    return r["images_per_s"] if r else None
train_rows = [{
    "from": r["train_from"],
    "batch": r["batch"],
    "prec": "f32",
    "ours_img_s": r["images_per_s"],
    "ours_step_ms": r["step_s"] * 1e3,
    "ours_resident_step_ms": r["resident_step_s"] * 1e3 if r.get("resident_step_s") is not None else None,
    "ours_submissions": r.get("submissions_per_step"),
    "ours_backward_share": r["backward_s"] / r["split_step_s"] if r.get("split_step_s") else None,
    "torch_ieee_img_s": train_ips("ieee", r["train_from"], r["batch"]),
    "torch_default_img_s": train_ips("default", r["train_from"], r["batch"]),
    "torch_f16_img_s": train_ips("f16", r["train_from"], r["batch"]),
} for r in (train if isinstance(train, list) else [])]

gemm = (gemm_run or {}).get("gemm") or (ours or {}).get("gemm") or []
def best(pred):
    v = [g["gflops_per_s"] / 1e3 for g in gemm if pred(g)]
    return max(v) if v else None
checks = (selftest or {}).get("checks", selftest if isinstance(selftest, list) else [])
sweep = {
    "card": card,
    "driver": driver,
    "date": date,
    "small": small == "1",
    "adapter": (ours or {}).get("adapter") or (adapters[0]["name"] if adapters else None),
    "matmul": (ours or {}).get("matmul"),
    "torch": (torch or {}).get("torch"),
    "torch_device": (torch or {}).get("device"),
    "selftest": {"checks": len(checks), "failed": sum(1 for c in checks if not c.get("ok"))}
        if selftest is not None else None,
    "rows": rows,
    "train": train_rows,
    "torch_train": (torch_train or {}).get("torch"),
    "gemm_tflops": {
        # The square product (4096^3; 512^3 on CPU adapters), f32, by GPU timestamps.
        "f32": best(lambda g: g["precision"] == "f32" and g["shape"] == "square"),
        "f32_best_shape": best(lambda g: g["precision"] == "f32"),
        # Kernels on cooperative matrices (tensor cores), where the adapter runs any.
        "coop": best(lambda g: "coop" in g["path"]),
    },
}
with open(os.path.join(out, "sweep.json"), "w") as f:
    json.dump(sweep, f, indent=1)

def fmt(v, p=1):
    return "-" if v is None else f"{v:.{p}f}"
def ratio(a, b):
    return "-" if a is None or not b else f"{a / b:.2f}"

print(f"sweep {date}: {card} ({driver}); ours {sweep['adapter']}, matmul {sweep['matmul']}; "
      f"pytorch {sweep['torch'] or '-'} on {sweep['torch_device'] or '-'}")
if sweep["selftest"]:
    print(f"selftest: {sweep['selftest']['checks']} checks, {sweep['selftest']['failed']} failed")
if tune:
    print("\nkernel sweep (bench --tune, ms per candidate, winner first):")
    for t in tune.get("tuning") or []:
        times = sorted(t["times"], key=lambda x: x[1])
        print(f"  {t['shape'][:44]:<44} " + ", ".join(f"{n} {ms:.3f}" for n, ms in times[:4]))
if gemm:
    print("\nplain GEMM (GFLOP/s, " + gemm[0].get("timing", "?") + "):")
    for g in gemm:
        print(f"  {g['shape']:<10} {g['precision']:>4} {g['m']:>5} x {g['n']:>7} x {g['k']:>5} "
              f"{g['gflops_per_s']:10.1f}  {g['path']}")
for r in (ours or {}).get("results", []):
    if r["precision"] != "f32" or not r.get("layers"):
        continue
    print(f"\nper layer, f32, batch {r['batch']} ({ours.get('layer_timing')}):")
    for l in r["layers"]:
        gf = l["flops"] / 1e6 / l["ms"] if l["ms"] > 0 and l["flops"] > 1e6 else None
        print(f"  {l['label'][:34]:<34} {l['ms']:9.3f} ms {fmt(gf):>9} GFLOP/s  "
              + " + ".join(l.get("variants", [])))
print("\nend to end (img/s; ours wall includes the upload, as classify pays it; "
      "torch times with its input on the device)")
print(f"{'prec':>4} {'batch':>5} {'untuned':>9} {'ours':>9} {'ours GPU':>9} {'upload ms':>9} "
      f"{'t ieee':>9} {'t default':>9} {'t f16':>9} {'x ieee':>6} {'x dflt':>6} {'x f16':>6} {'GPU x ieee':>10}")
for r in rows:
    print(f"{r['prec']:>4} {r['batch']:>5} {fmt(r['ours_untuned_img_s']):>9} {fmt(r['ours_img_s']):>9} "
          f"{fmt(r['ours_gpu_img_s']):>9} {fmt(r['ours_upload_ms'], 2):>9} "
          f"{fmt(r['torch_ieee_img_s']):>9} {fmt(r['torch_default_img_s']):>9} {fmt(r['torch_f16_img_s']):>9} "
          f"{ratio(r['ours_img_s'], r['torch_ieee_img_s']):>6} {ratio(r['ours_img_s'], r['torch_default_img_s']):>6} "
          f"{ratio(r['ours_img_s'], r['torch_f16_img_s']):>6} {ratio(r['ours_gpu_img_s'], r['torch_ieee_img_s']):>10}")
f16 = [r for r in rows if r["prec"] == "f16"]
if f16 and any(r["ours_no_coop_img_s"] for r in f16):
    print("\nf16 with and without the tensor-core kernels (ALEXNET_COOP=off; img/s, wall)")
    for r in f16:
        print(f"  b{r['batch']:<5} coop {fmt(r['ours_img_s']):>9}  off {fmt(r['ours_no_coop_img_s']):>9}  "
              f"x {ratio(r['ours_img_s'], r['ours_no_coop_img_s'])}")
if train_rows:
    print("\ntraining steps (img/s, f32, SGD momentum; frozen part cached, untimed; "
          "ours: upload + one submission per step)")
    print(f"{'from':>5} {'batch':>5} {'ours':>9} {'step ms':>9} {'subm':>4} {'bwd %':>5} "
          f"{'t ieee':>9} {'t default':>9} {'t f16':>9} {'x ieee':>6} {'x dflt':>6}")
    for r in train_rows:
        bwd = r["ours_backward_share"]
        print(f"{r['from']:>5} {r['batch']:>5} {fmt(r['ours_img_s']):>9} {fmt(r['ours_step_ms']):>9} "
              f"{r['ours_submissions'] if r['ours_submissions'] is not None else '-':>4} "
              f"{'-' if bwd is None else f'{100 * bwd:.0f}':>5} "
              f"{fmt(r['torch_ieee_img_s']):>9} {fmt(r['torch_default_img_s']):>9} "
              f"{fmt(r['torch_f16_img_s']):>9} {ratio(r['ours_img_s'], r['torch_ieee_img_s']):>6} "
              f"{ratio(r['ours_img_s'], r['torch_default_img_s']):>6}")
g = sweep["gemm_tflops"]
print(f"\nGEMM TFLOP/s: f32 square {fmt(g['f32'], 3)}, f32 best shape {fmt(g['f32_best_shape'], 3)}, "
      f"cooperative matrices {fmt(g['coop'], 3)}")

# Issue 26's "Done when", read off this run (full mode on an H100/H200 is what counts).
def row(prec, batch):
    return next((r for r in rows if r["prec"] == prec and r["batch"] == batch), None)
def at_least(a, b, x):
    if a is None or not b:
        return "-"
    return f"{'yes' if a >= x * b else 'NO '} ({a / b:.2f}x, want >= {x})"
print("\ndone when (issue 26):")
b1, big = row("f32", 1), row("f32", 256)
h = row("f16", 256)
get = lambda r, k: r[k] if r else None
print(f"  b1 f32 wall vs torch IEEE:        {at_least(get(b1, 'ours_img_s'), get(b1, 'torch_ieee_img_s'), 1.0)}")
print(f"  b1 f32 wall vs torch default:     {at_least(get(b1, 'ours_img_s'), get(b1, 'torch_default_img_s'), 1.0)}")
print(f"  b256 f32 wall vs torch IEEE:      {at_least(get(big, 'ours_img_s'), get(big, 'torch_ieee_img_s'), 0.4)}")
print(f"  b256 f32 GPU vs torch IEEE:       {at_least(get(big, 'ours_gpu_img_s'), get(big, 'torch_ieee_img_s'), 0.4)}")
print(f"  b256 f16 wall vs torch IEEE:      {at_least(get(h, 'ours_img_s'), get(h, 'torch_ieee_img_s'), 1.0)}")
print(f"  b256 f16 wall vs torch f16:       {at_least(get(h, 'ours_img_s'), get(h, 'torch_f16_img_s'), 0.5)}")
err = get(h, "logit_error_vs_f32")
print(f"  b256 f16 logits vs f32 (not f64): {'-' if err is None else f'{err:.2e} (want <= 2e-3 vs the f64 reference)'}")
def tflops(v, want):
    return "-" if v is None else f"{'yes' if v >= want else 'NO '} ({v:.3f} TFLOP/s, want >= {want})"
print(f"  GEMM f32 square (timestamps):     {tflops(g['f32'], 35)}")
print(f"  GEMM cooperative matrices:        {tflops(g['coop'], 150)}")

# Issue 27's "Done when": training at batch 128, f32, against PyTorch IEEE fp32.
def train_row(first, batch):
    return next((r for r in train_rows if r["from"] == first and r["batch"] == batch), None)
print("\ndone when (issue 27):")
c1, c4 = train_row("conv1", 128), train_row("conv4", 128)
print(f"  conv1 b128 f32 vs torch IEEE:     {at_least(get(c1, 'ours_img_s'), get(c1, 'torch_ieee_img_s'), 0.3)}")
print(f"  conv4 b128 f32 vs torch IEEE:     {at_least(get(c4, 'ours_img_s'), get(c4, 'torch_ieee_img_s'), 0.5)}")
subs = {r["ours_submissions"] for r in train_rows}
print(f"  one submission per step:          {'-' if not subs else ('yes' if subs == {1} else f'NO  ({sorted(subs, key=str)})')}")
PY
rc=$?
echo "tables rc=$rc $(( $(date +%s) - start ))s in all" | tee -a "$out/stages.txt" >&2
pack
cat "$out/stages.txt"
cat "$out/summary.txt"
echo "results: $out (packed: $pack)"
[ "$rc" = 0 ] && [ -s "$out/sweep.json" ]
