#!/usr/bin/env bash
# Third device call: the selftest WITH the Khronos validation layer (Debian's 1.3.239 deb
# carried) on the H200, at the adapter's limits and WebGPU's; then the streaming LPIPS matrix
# and classify, both under --validate, on generated inputs and random full-size weights.
set -u
for f in .gl/*.deb .dev/layer/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json WGPU_BACKEND=vulkan
B=$PWD/.dev/alexnet; W=/tmp/w; mkdir -p $W/jpg $W/lp
for lim in adapter webgpu; do
  s=$(date +%s); timeout 120 "$B" selftest --validate --limits $lim --json > "$OUT/selftest-validate-$lim.json" 2> "$OUT/selftest-validate-$lim.err"
  echo "selftest --validate --limits $lim: rc=$? in $(( $(date +%s) - s )) s"; grep -m3 -iE "validation|layer" "$OUT/selftest-validate-$lim.err"
done
python3 - "$OUT" <<'PY'
import json, sys
for lim in ("adapter", "webgpu"):
    d = json.load(open(f"{sys.argv[1]}/selftest-validate-{lim}.json"))
    bad = [c for c in d["checks"] if not c["ok"]]
    print(lim, d.get("validation"), len(d["checks"]), "checks,", len(bad), "failed")
    for c in bad[:5]: print("  FAILED", c)
PY
python3 - <<'PY'
import numpy as np, torch, torchvision
from PIL import Image
torch.manual_seed(0)
torch.save(torchvision.models.alexnet().state_dict(), "/tmp/w/alexnet.pth")
rng = np.random.default_rng(0)
for i in range(2000):
    Image.fromarray((rng.random((32, 32, 3)) * 255).astype(np.uint8)).save(f"/tmp/w/lp/{i:04d}.png")
for i in range(200):
    Image.fromarray((rng.random((375, 500, 3)) * 255).astype(np.uint8)).save(f"/tmp/w/jpg/{i:03d}.jpg", quality=90)
PY
echo "== lpips --all-pairs 2000 images 32x32 (1,999,000 pairs), --validate, --memory-mb 64"
/usr/bin/time -f "wall %e s, peak RSS %M KB" timeout 120 "$B" lpips --validate --memory-mb 64 --weights $W/alexnet.pth \
  --all-pairs $W/lp --format csv --out $W/m.csv --matrix-out $W/m.npy 2>&1 | tail -3
echo "rows $(wc -l < $W/m.csv)"
python3 -c "import numpy as np; m=np.load('/tmp/w/m.npy'); print('matrix', m.shape, 'symmetric', bool((m==m.T).all()), 'diag0', bool((np.diag(m)==0).all()), 'min offdiag', float(m[np.triu_indices(len(m),1)].min()))"
echo "== classify --validate 200 JPEGs"
timeout 60 "$B" classify --validate --weights $W/alexnet.pth --batch 64 --timings --format json $W/jpg > /dev/null 2> $W/c.err; echo "rc=$?"; tail -3 $W/c.err
