#!/usr/bin/env bash
# Second device call: end-to-end classify (decoding on 16 cores + GPU) with --timings, training
# steps (bench --train-from), and LPIPS all-pairs, on generated inputs and random full-size
# torchvision weights (torchvision.models.alexnet(), seed 0; no network there).
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
export VK_DRIVER_FILES=/usr/share/vulkan/icd.d/nvidia_icd.json WGPU_BACKEND=vulkan
B=$PWD/.dev/alexnet; W=/tmp/w; mkdir -p $W/jpg $W/lp
python3 - <<'PY'
import numpy as np, torch, torchvision
from PIL import Image
torch.manual_seed(0)
torch.save(torchvision.models.alexnet().state_dict(), "/tmp/w/alexnet.pth")
rng = np.random.default_rng(0)
for i in range(1000):
    a = (rng.random((375, 500, 3)) * 255).astype(np.uint8)
    a[::8] //= 2
    Image.fromarray(a).save(f"/tmp/w/jpg/{i:04d}.jpg", quality=90)
for i in range(200):
    Image.fromarray((rng.random((64, 64, 3)) * 255).astype(np.uint8)).save(f"/tmp/w/lp/{i:03d}.png")
print("inputs ready")
PY
echo "== classify 1000 JPEGs 500x375 (decode on $(nproc) cores + GPU), batch 64 and 256"
for b in 64 256; do
  timeout 60 "$B" classify --weights $W/alexnet.pth --batch $b --timings --format json $W/jpg > /dev/null 2> $W/t.err
  echo "batch $b rc=$?"; grep -iE "inputs|bound|load" $W/t.err | tail -4
done
echo "== bench --train-from (SGD steps/s, random weights)"
timeout 120 "$B" bench --train-from fc8,conv4,conv1 --batch 32,128 --iters 5 --warmup 1 2>&1 | tail -20
echo "== lpips --all-pairs 200 images 64x64 (19900 pairs)"
s=$(date +%s.%N); timeout 60 "$B" lpips --weights $W/alexnet.pth --all-pairs $W/lp --format csv --out $W/m.csv 2>&1 | tail -3
echo "lpips rc=$? wall $(python3 -c "import time;print(round(time.time()-$s,2))") s, rows $(wc -l < $W/m.csv)"
s=$(date +%s.%N); timeout 60 "$B" lpips --weights $W/alexnet.pth $W/lp/000.png $W/lp/001.png 2>&1 | tail -2
echo "single pair wall $(python3 -c "import time;print(round(time.time()-$s,2))") s"
