#!/usr/bin/env bash
# Same-run A/B on one machine (lavapipe or any adapter): two alexnet binaries alternating, the
# Burn peer before and after, shader checks on/off, f32 vs f16, and PyTorch on the CPU.
# Only comparisons inside one run mean anything on shared machines.
#
#   scripts/lavapipe-ab.sh BEFORE_BINARY NOW_BINARY [BURN_BENCH_DIR]
#
# BURN_BENCH_DIR: a built copy of ../shared/peers/burn_bench (cargo build --release there).
set -uo pipefail
before=${1:?before binary}
now=${2:?now binary}
burn=${3:-}
export WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
peer() {
    [ -n "$burn" ] && (cd "$burn" && FC1_SPLIT=2 BATCHES=1,8 RUNS=5 WARMUP=1 \
        target/release/burn_wgpu 2>&1 | grep RESULT)
}
echo "== load: $(cat /proc/loadavg)"
echo "== burn"; peer
for r in 1 2 3; do
    for b in before now; do
        bin=$before; [ $b = now ] && bin=$now
        echo "== round $r $b"
        "$bin" bench --batch 1,8 --iters 5 2>&1 | grep -E "^ +f32"
    done
done
echo "== burn again"; peer
for r in 1 2; do
    echo "== checks on, round $r"
    ALEXNET_SHADER_CHECKS=1 "$now" bench --batch 8 --iters 3 2>&1 | grep -E "^ +f32"
    echo "== checks off, round $r"
    "$now" bench --batch 8 --iters 3 2>&1 | grep -E "^ +f32"
done
echo "== f32 vs f16"
"$now" bench --batch 1,8 --iters 5 --precision f32,f16 2>&1 | grep -E "^ +f(32|16)"
echo "== pytorch cpu"
python3 "$(dirname "$0")/torch_bench.py" --device cpu --batch 1,8 --iters 5 --warmup 1 \
    --precision f32 2>&1 | tail -2
echo "== load: $(cat /proc/loadavg)"
