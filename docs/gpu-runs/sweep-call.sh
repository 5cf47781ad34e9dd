#!/usr/bin/env bash
# The prepared device call for issues 26 and 27: scripts/gpu-sweep.sh on the lent GPU machine,
# one call of at most ~7.5 minutes (the stages' caps sum to 455 s). Prepare, from the repository root on the build machine:
#
#     cargo build --release && mkdir -p .dev .gl && cp target/release/alexnet .dev/ \
#       && (cd .gl && apt-get download libvulkan1)       # Debian's Vulkan loader, 116 kB
#
# then run `bash docs/gpu-runs/sweep-call.sh` there with carry [".dev", ".gl"] and a timeout
# of 480 s. Everything comes back packed in $OUT/sweep.tgz (rewritten after every stage:
# unpack it under docs/gpu-runs/ and commit), with sweep.json and summary.txt beside it.
# The loader goes in as for the first H200 run (docs/gpu-runs/2026-12-04-h200/run1.sh).
set -u
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$egl
export BIN=${BIN:-$PWD/.dev/alexnet} PACK=${PACK:-$OUT/sweep.tgz}
bash scripts/gpu-sweep.sh
rc=$?
for f in docs/gpu-runs/"$(date -u +%F)"-*/{sweep.json,summary.txt,stages.txt}; do
  [ -f "$f" ] && cp "$f" "$OUT/"
done
exit $rc
