#!/usr/bin/env bash
# LPIPS benchmark: `alexnet lpips` vs the `lpips` 0.1.4 package (net='alex', v0.1) on PyTorch
# CPU with the same number of threads, in one run on one machine, offline.
#
#     scripts/lpips-bench.sh [OUTDIR] [BINARY]
#
# OUTDIR (default: a new temp dir) gets the inputs (scripts/lpips_bench.py gen: 100 images at
# 64x64 and 40 at 256x256 from seeded numpy, a full-size torchvision-layout AlexNet .npz with
# seeded random values, ~233 MiB, and a trunk-only copy), every run's output, results.jsonl (one
# line per timed process) and summary.txt (the table, the checks, load averages).
# BINARY defaults to target/release/alexnet. Needs python3 with numpy, pillow, torch,
# torchvision, lpips==0.1.4, opencv-python-headless.
#
# Tasks (all v0.1): pair1 (1 pair, 64²), pairs64 (100 pairs, 64², --pairs), pairs256 (20 pairs,
# 256², --pairs), allpairs64 (the 4950 pairs of the 100 64² images: ours --all-pairs
# --matrix-out; the package as lpips_1dir_allpairs.py does it, one forward per pair, timed on the
# pairs that fit in PKG_ALLPAIRS_S seconds (default 60) and extrapolated to 4950 — the summary
# says "extrapolated" — and batched, BATCH=32 pairs per forward, every image decoded once).
# Ours also: loadonly (start, adapter, weights, pipelines, then a pair it refuses: no GPU work)
# with the full file and with a trunk-only file, and pair1 with the trunk-only file.
# Rounds alternate ours / package (ROUNDS=2: ours, pkg, ours, pkg) to cancel machine noise.
# Wall times are per process: start, imports, weights, images, compute, output.
# Also (c) per pair with torch.set_num_threads(1) (who=pkg-1thread), see below.
# Budget on lavapipe with 2 cores: ~8-10 minutes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$(mktemp -d /tmp/lpips-bench.XXXXXX)}
bin=${2:-$here/../target/release/alexnet}
rounds=${ROUNDS:-2}
pkg_allpairs_s=${PKG_ALLPAIRS_S:-60}
export THREADS=${THREADS:-2} BATCH=${BATCH:-32}
py="python3 $here/lpips_bench.py"
mkdir -p "$out"
cd "$out"
: > results.jsonl
: > loadavg.txt

note_load() { echo "$(date -u +%FT%TZ) $1: $(uptime | sed 's/.*load average/load average/')" | tee -a loadavg.txt; }
now() { date +%s.%N; }
# record WHO TASK ROUND START [EXTRA_JSON_FILE]
record() {
  local who=$1 task=$2 round=$3 t0=$4 extra=${5:-}
  python3 - "$who" "$task" "$round" "$t0" "$(now)" "$extra" >> results.jsonl <<'PY'
import json, sys
who, task, rnd, t0, t1, extra = sys.argv[1:]
r = {"who": who, "task": task, "round": int(rnd), "wall_s": float(t1) - float(t0)}
if extra:
    e = json.load(open(extra))
    r["compute_s"] = e["compute_s"]
    r["start_to_loaded_s"] = e["start_to_loaded_s"]
    if e.get("extrapolated"):
        # wall of the sampled run, with the loop's sampled time replaced by the extrapolated one
        r["wall_measured_s"] = r["wall_s"]
        r["pairs_timed"] = e["pairs_timed"]
        r["extrapolated"] = True
        sampled = e["compute_s"] * e["pairs_timed"] / e["pairs"]
        r["wall_s"] = r["wall_s"] - sampled + e["compute_s"]
print(json.dumps(r))
PY
  tail -n 1 results.jsonl
}

note_load "start"
"$bin" --version
"$bin" adapters | tee adapters.txt
$py gen "$out"
python3 -c "
import numpy as np
from PIL import Image
Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save('tiny.png')
z = np.load('alexnet-random.npz')
np.savez('trunk-only.npz', **{k: z[k] for k in z.files if k.startswith('features')})"
printf '%s\t%s\n' "$out/img64/im000.png" "$out/tiny.png" > loadonly.txt
w="--weights $out/alexnet-random.npz"
# warm the page cache for both sides (the first read of the 233 MiB file is not what we time)
cat alexnet-random.npz trunk-only.npz > /dev/null

ours() {
  local r=$1 t
  t=$(now); "$bin" lpips $w --pairs loadonly.txt > /dev/null 2>&1 || true; record ours loadonly "$r" "$t"
  t=$(now); "$bin" lpips --weights trunk-only.npz --pairs loadonly.txt > /dev/null 2>&1 || true
  record ours loadonly-trunk "$r" "$t"
  t=$(now); "$bin" lpips --weights trunk-only.npz --pairs pair1.txt > /dev/null; record ours pair1-trunk "$r" "$t"
  t=$(now); "$bin" lpips $w --pairs pair1.txt > /dev/null; record ours pair1 "$r" "$t"
  t=$(now); "$bin" lpips $w --pairs pairs64.txt --format json --out ours-pairs64.json
  record ours pairs64 "$r" "$t"
  t=$(now); "$bin" lpips $w --pairs pairs256.txt --format json --out ours-pairs256.json
  record ours pairs256 "$r" "$t"
  t=$(now); "$bin" lpips $w --all-pairs img64 --matrix-out matrix64.npy --format csv --out ours-allpairs64.csv
  record ours allpairs64 "$r" "$t"
}
pkg() {
  local r=$1 t
  for task in pairs64 pairs256; do
    t=$(now); $py torch "$out" "$task" "torch-$task.json"; record pkg "$task" "$r" "$t" "torch-$task.json"
  done
  t=$(now); $py torch "$out" allpairs torch-allpairs.json --max-seconds "$pkg_allpairs_s"
  record pkg allpairs64 "$r" "$t" torch-allpairs.json
  # the same with ONE torch thread: OpenMP's spinning threads collapse when the host is
  # oversubscribed (other load), so this shows how much of (c) is contention
  t=$(now); THREADS=1 $py torch "$out" allpairs torch-allpairs-1t.json --max-seconds "$pkg_allpairs_s"
  record pkg-1thread allpairs64 "$r" "$t" torch-allpairs-1t.json
  for task in 64 256; do
    t=$(now); $py torch "$out" "batched$task" "torch-batched$task.json"
    record pkg-batched "pairs$task" "$r" "$t" "torch-batched$task.json"
  done
  t=$(now); $py torch "$out" batched-allpairs torch-batched-allpairs.json
  record pkg-batched allpairs64 "$r" "$t" torch-batched-allpairs.json
}

for r in $(seq 1 "$rounds"); do
  note_load "round $r ours"
  ours "$r"
  note_load "round $r package"
  pkg "$r"
done
note_load "end"

{
  echo "alexnet lpips vs lpips 0.1.4 (PyTorch CPU, torch.set_num_threads($THREADS)), $(date -u +%F)"
  echo "adapter: $(grep -m1 'default' adapters.txt | sed 's/^\* //; s/ *<- default//')"
  echo "host: $(nproc) CPUs visible; $(python3 -c 'import torch; print("torch", torch.__version__)')"
  cat loadavg.txt
  echo
  $py table "$out"
  echo
  $py check "$out"
} 2>&1 | tee summary.txt
echo "results in $out"
