#!/usr/bin/env bash
# GPU benchmark kit: ours vs PyTorch on the same card, in one run, on a bare Linux machine with
# an NVIDIA (or any Vulkan) GPU and its driver, Python with torch + torchvision, no Rust and no
# network. Copy the prebuilt binary (`cargo build --release`: target/release/alexnet) and this
# scripts/ folder over, then:
#
#     scripts/gpu-bench.sh OUTDIR [BINARY] [DEB_DIR]
#
# BINARY defaults to target/release/alexnet. DEB_DIR, if the machine has no Vulkan loader
# (`ldconfig -p | grep libvulkan` prints nothing), holds libvulkan1_*.deb (and whatever else the
# driver needs), unpacked into a private folder that LD_LIBRARY_PATH points at.
# Writes OUTDIR/adapters.txt, OUTDIR/heuristic.json (alexnet bench before tuning: the variants
# a first `classify` gets), OUTDIR/tune.json (`bench --tune`: every variant's time per layer
# and batch, winners written to the tuner cache OUTDIR/cache/tune.json), OUTDIR/ours.json
# (bench with the tuned variants, f32 and f16, per layer with the variant each layer ran, and
# the plain-GEMM ceiling), OUTDIR/torch.json (scripts/torch_bench.py) and OUTDIR/summary.txt
# (the side-by-side table, also printed).
# Budget: under 8 minutes on one GPU (each step is capped with `timeout`: 50 + 110 + 140 + 150 s).
set -euo pipefail
out=${1:?usage: gpu-bench.sh OUTDIR [BINARY] [DEB_DIR]}
bin=${2:-target/release/alexnet}
debs=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
batches=${BATCHES:-1,8,32,128,256}

if [ -n "$debs" ]; then
  root="$out/.vulkan-loader"
  mkdir -p "$root"
  for f in "$debs"/*.deb; do dpkg -x "$f" "$root"; done
  export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu:${LD_LIBRARY_PATH:-}"
fi
# NVIDIA containers often ship the ICD file outside the loader's default search path.
for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
           /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
done
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}

# The tuner cache goes with the results (and a stale one from elsewhere is not picked up).
export ALEXNET_CACHE_DIR="$out/cache"
rm -f "$out/cache/tune.json"

"$bin" adapters | tee "$out/adapters.txt"
echo "== alexnet bench, untuned (heuristic variants; batches $batches, f32)"
timeout 50 "$bin" bench --batch "$batches" --iters 5 --warmup 1 --format json \
  > "$out/heuristic.json" || echo "(untuned run failed or timed out; continuing)"
echo "== alexnet bench --tune (every tile / split-K / gemv variant per layer and batch)"
timeout 110 "$bin" bench --tune --batch "$batches" --iters 3 --warmup 1 --format json \
  > "$out/tune.json"
echo "== alexnet bench, tuned (f32 and f16, per layer with variants, GEMM ceiling)"
timeout 140 "$bin" bench --batch "$batches" --iters 10 --warmup 2 --per-layer --gemm \
  --precision f32,f16 --format json > "$out/ours.json"
echo "== PyTorch (fp32 with TF32 off, cudnn.benchmark on; fp16 autocast)"
timeout 150 python3 "$here/torch_bench.py" --batch "$batches" --out "$out/torch.json"

python3 - "$out" <<'PY' | tee "$out/summary.txt"
import json, sys
out = sys.argv[1]
ours = json.load(open(f"{out}/ours.json"))
torch = json.load(open(f"{out}/torch.json"))
try:
    heur = {(r["precision"], r["batch"]): r for r in json.load(open(f"{out}/heuristic.json"))["results"]}
except Exception:
    heur = {}
peer = {(r["precision"], r["batch"]): r for r in torch["results"]}
print(f"ours: {ours['adapter']} ({ours['backend']}, {ours['driver']}, matmul {ours.get('matmul')}); "
      f"pytorch {torch['torch']} on {torch['device']}")
print(f"{'prec':>4} {'batch':>5} {'untuned':>9} {'ours img/s':>11} {'torch img/s':>12} {'ours/torch':>10}")
nan = float("nan")
for r in ours["results"]:
    p = peer.get((r["precision"], r["batch"]))
    h = heur.get((r["precision"], r["batch"]))
    t = p["images_per_s"] if p else nan
    print(f"{r['precision']:>4} {r['batch']:>5} {h['images_per_s'] if h else nan:>9.1f} "
          f"{r['images_per_s']:>11.1f} {t:>12.1f} {r['images_per_s'] / t if p else nan:>10.2f}")
ceiling = max((g["gflops_per_s"] for g in ours.get("gemm") or [] if g["precision"] == "f32"),
              default=nan)
for r in ours["results"]:
    if r["precision"] != "f32" or r["batch"] not in (1, 128) or not r.get("layers"):
        continue
    print(f"\nper layer, f32, batch {r['batch']} (best plain GEMM {ceiling:.0f} GFLOP/s):")
    for l in r["layers"]:
        gf = l["flops"] / 1e6 / l["ms"] if l["ms"] > 0 and l["flops"] > 1e6 else nan
        print(f"  {l['label'][:34]:<34} {l['ms']:>8.3f} ms {gf:>8.0f} GFLOP/s "
              f"{gf / ceiling if gf == gf else nan:>5.2f}x  {' + '.join(l.get('variants', []))}")
PY
