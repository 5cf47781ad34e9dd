#!/usr/bin/env bash
# Every WGSL shader of the project through Tint (the WGSL compiler of Chromium / Dawn, stricter
# than naga in places), in headless Chromium's WebGPU on SwiftShader (no GPU needed):
#
#   scripts/browser-shaders.sh
#
# For each module the program compiles (shaders/*.wgsl, plus the host-side rewrites of src/:
# mm.wgsl once per tile of src/kernels/mm.rs TILES, gemm_f16.wgsl[native] when the adapter has
# shader-f16, coop.wgsl[emulated] likewise (the hardware coop.wgsl is a wgpu extension that
# WebGPU lacks), sgd/adam.wgsl[vec4]) it creates a compute pipeline per @compute entry point
# (layout 'auto') on a device with the adapter's limits, and again on one with WebGPU's default
# limits: one line per (module, entry point), `ok ...` or the error. A shader whose entry point
# binds more than 8 storage buffers (WebGPU's default per stage) is a failure. Then it runs
# gemm.wgsl on a small problem and compares with a CPU reference. Last line: `N passed, N failed`;
# exit status 0 only if nothing failed.
#
# Needs python3 (stdlib only) and Chromium; installs nothing. On Debian / Ubuntu:
#   apt-get update && apt-get install -y chromium
# Environment: CHROMIUM (the browser binary, default: chromium on PATH), CHROMIUM_FLAGS (extra
# flags), BROWSER_SHADERS_TIMEOUT (seconds for the whole run, default 600: about 100 s
# on CI's 2 cores before the seventh mm.wgsl tile and the -im2col entries, 417 s on 2 cores
# shared with four builds; nearly all of it SwiftShader compiling the mm.wgsl tiles).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v python3 >/dev/null; then
    echo "FAIL python3 not found"
    echo "0 passed, 1 failed"
    exit 1
fi
if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null; then
    echo "FAIL chromium not found. Install it with: apt-get update && apt-get install -y chromium"
    echo "(or point CHROMIUM at a Chromium / Chrome binary)"
    echo "0 passed, 1 failed"
    exit 1
fi
limit=${BROWSER_SHADERS_TIMEOUT:-600}
# run.py stops itself (and Chromium) at the limit; `timeout` is the backstop if it hangs.
exec timeout -k 5 $((${limit%.*} + 20)) python3 "$here/browser-shaders/run.py"
