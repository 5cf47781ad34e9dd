#!/usr/bin/env bash
# One device call: the selftest on the real GPU (adapter limits, then WebGPU's), then
# scripts/gpu-bench.sh (ours vs PyTorch on the same card). Results packed into $OUT/results.tgz
# after every stage (at most 8 files come back).
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
for icd in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json \
           /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json; do
  if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi
done
export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
export WGPU_BACKEND=vulkan
B=$PWD/.dev/alexnet
R=$OUT/r; mkdir -p "$R"
pack() { tar czf "$OUT/results.tgz" -C "$OUT" r; }
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv;
  uname -a; nproc; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"; } > "$R/machine.txt" 2>&1
cat "$R/machine.txt"
"$B" adapters > "$R/adapters.txt" 2>&1; cat "$R/adapters.txt"; pack
s=$(date +%s); timeout 90 "$B" selftest --json > "$R/selftest.json" 2> "$R/selftest.err"
echo "selftest rc=$? in $(( $(date +%s) - s )) s"; cp "$R/selftest.json" "$OUT/selftest.json"; pack
s=$(date +%s); timeout 40 "$B" selftest --limits webgpu --json > "$R/selftest-webgpu.json" 2> "$R/selftest-webgpu.err"
echo "selftest webgpu rc=$? in $(( $(date +%s) - s )) s"; pack
python3 - "$R" <<'PY'
import json, sys
for f in ("selftest.json", "selftest-webgpu.json"):
    try:
        d = json.load(open(f"{sys.argv[1]}/{f}"))
    except Exception as e:
        print(f, "unreadable:", e); continue
    checks = d.get("checks", d) if isinstance(d, dict) else d
    bad = [c for c in checks if not c.get("ok")]
    print(f, len(checks), "checks,", len(bad), "failed;", "max rel err",
          max((c.get("max_rel_err") or 0) for c in checks if c.get("ok")) if checks else None)
    for c in bad[:10]: print("  FAILED", c)
PY
s=$(date +%s); BATCHES=1,8,64,256 bash scripts/gpu-bench.sh "$R/bench" "$B" > "$R/gpu-bench.log" 2>&1
echo "gpu-bench rc=$? in $(( $(date +%s) - s )) s"; pack
cp "$R/bench/summary.txt" "$OUT/summary.txt" 2>/dev/null; cat "$R/bench/summary.txt" 2>/dev/null || tail -20 "$R/gpu-bench.log"
rm -rf "$R"
