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
# Writes OUTDIR/ours.json (alexnet bench), OUTDIR/torch.json (scripts/torch_bench.py),
# OUTDIR/adapters.txt and OUTDIR/summary.txt (the side-by-side table, also printed).
# Budget: under 8 minutes on one GPU (each step is capped with `timeout`).
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

"$bin" adapters | tee "$out/adapters.txt"
echo "== alexnet bench (batches $batches, f32 and f16, per layer, GEMM ceiling)"
timeout 300 "$bin" bench --batch "$batches" --iters 10 --warmup 2 --per-layer --gemm \
  --precision f32,f16 --format json > "$out/ours.json"
echo "== PyTorch (fp32 with TF32 off, cudnn.benchmark on; fp16 autocast)"
timeout 240 python3 "$here/torch_bench.py" --batch "$batches" --out "$out/torch.json"

python3 - "$out" <<'PY' | tee "$out/summary.txt"
import json, sys
out = sys.argv[1]
ours = json.load(open(f"{out}/ours.json"))
torch = json.load(open(f"{out}/torch.json"))
peer = {(r["precision"], r["batch"]): r for r in torch["results"]}
print(f"ours: {ours['adapter']} ({ours['backend']}, {ours['driver']}); "
      f"pytorch {torch['torch']} on {torch['device']}")
print(f"{'prec':>4} {'batch':>5} {'ours img/s':>11} {'torch img/s':>12} {'ours/torch':>10}")
for r in ours["results"]:
    p = peer.get((r["precision"], r["batch"]))
    t = p["images_per_s"] if p else float("nan")
    print(f"{r['precision']:>4} {r['batch']:>5} {r['images_per_s']:>11.1f} {t:>12.1f} "
          f"{r['images_per_s'] / t if p else float('nan'):>10.2f}")
PY
