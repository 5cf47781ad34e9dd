#!/usr/bin/env bash
# deploy/slurm_array.sh on a real (one-node) Slurm, as tests/it/slurm.rs runs it:
#
#   .ci/slurm-array-test.sh ALEXNET WEIGHTS IMAGES WORK
#
# ALEXNET: the binary; WEIGHTS: a weights file (the reduced-width test fixture); IMAGES: a
# folder of images; WORK: an empty folder, which ends up holding the Slurm state and logs
# (WORK/slurm), the submission folder (WORK/submit, with logs/), the parts, and the outputs the
# test compares: WORK/all.jsonl + all.logits.npy (the array's parts merged by a Slurm job) and
# WORK/single.jsonl + single.logits.npy (one unsharded `classify --format jsonl`).
#
# The story: `sbatch --array=0-3` of the script, unchanged, with the merge as an `afterok`
# job; task 2 is SIGKILLed while running (it holds in a wrapper named by the script's ALEXNET
# variable until the kill), so it ends FAILED and the cluster cancels the merge
# (kill_invalid_depend); `alexnet merge` refuses, naming the missing part; task 2 alone is
# resubmitted (--array=2, N=4) with a new merge after it, and both complete. A submission
# without N fails with the script's message; a requeued task finds its part complete and
# appends to its log. Two tasks of `alexnet adapters` check that each task is told its own
# GPU (WORK/gpu-0.out, gpu-1.out). Every wait is bounded; on exit, jobs still running are
# cancelled and the daemons stopped by PID.
#
# Exit 77 where Slurm or munge is not installed (.ci/install-slurm.sh installs them) or when
# not run as root.
set -euo pipefail
if (($# != 4)); then
    echo "usage: $0 ALEXNET WEIGHTS IMAGES WORK" >&2
    exit 2
fi
ALEXNET_BIN=$(realpath "$1")
WEIGHTS=$(realpath "$2")
IMAGES=$(realpath "$3")
WORK=$(realpath "$4")
ROOT=$(cd "$(dirname "$0")/.." && pwd)

for tool in munged mungekey slurmctld slurmd sbatch scontrol sinfo squeue scancel; do
    if ! command -v "$tool" >/dev/null; then
        echo "Slurm is not installed here ($tool not found): install slurm-wlm and munge (.ci/install-slurm.sh)" >&2
        exit 77
    fi
done

if [ "$(id -u)" != 0 ]; then
    echo "the one-node Slurm needs root here (slurmd runs each job as its user): run as root" >&2
    exit 77
fi

# shellcheck source=slurm-cluster.sh
source "$ROOT/.ci/slurm-cluster.sh"
trap slurm_stop EXIT
trap "exit 143" TERM
trap "exit 130" INT
start=$SECONDS
slurm_start "$WORK/slurm"
echo "one-node Slurm up in $((SECONDS - start)) s ($(slurmctld -V))"

# The state of job $1 (one job, or every task of an array: "COMPLETED FAILED ..." by task).
states() {
    scontrol -o show job "$1" | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' | sort | tr '\n' ' '
}
# Waits (at most $2 s) until nothing of job $1 is pending, configuring, running or completing.
wait_done() {
    local jid=$1 limit=$2 t0=$SECONDS s
    while :; do
        s=$(states "$jid")
        if [ -n "$s" ] && ! grep -qE 'PENDING|CONFIGURING|RUNNING|COMPLETING|REQUEUE|SUSPENDED' <<<"$s"; then
            return 0
        fi
        if ((SECONDS - t0 >= limit)); then
            echo "job $jid not finished after $limit s: $s" >&2
            scontrol show job "$jid" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}
expect_states() { # JOB WANT WHAT
    local got
    got=$(states "$1")
    if [ "$got" != "$2" ]; then
        echo "$3: job $1 ended as '$got', expected '$2'" >&2
        scontrol show job "$1" >&2 || true
        tail -n 20 "$WORK"/submit/logs/* >&2 || true
        exit 1
    fi
}

mkdir -p "$WORK/submit/logs"
cd "$WORK/submit"
LIST=$WORK/photos.list
PARTS=$WORK/parts
find "$IMAGES" -type f | LC_ALL=C sort >"$LIST"
# ALEXNET for the first submission: task 2 holds until it is killed; the others run the binary.
cat >"$WORK/alexnet-holding" <<EOF
#!/bin/bash
if [ "\${SLURM_ARRAY_TASK_ID:-}" = 2 ]; then
    echo \$\$ > "$WORK/held.pid.tmp" && mv "$WORK/held.pid.tmp" "$WORK/held.pid"
    exec sleep 300
fi
exec "$ALEXNET_BIN" "\$@"
EOF
chmod +x "$WORK/alexnet-holding"
export LIST PARTS WEIGHTS

# A task without N fails at once with the script's message.
nojid=$(env -u N sbatch --parsable --array=1 --output=logs/no-n-%A_%a.out "$ROOT/deploy/slurm_array.sh")
wait_done "$nojid" 30
expect_states "$nojid" "FAILED " "without N"
grep -q "set N to the number of parts" logs/no-n-*.out

# Each task's own GPU: Slurm sets CUDA_VISIBLE_DEVICES per task, and `alexnet adapters` (no
# adapter named) says which adapter that names, or (no GPU here) that it names none.
gid=$(sbatch --parsable --array=0-1 --gres=gpu:1 --output="$WORK/gpu-%a.out" \
    --wrap "env -u WGPU_ADAPTER_NAME '$ALEXNET_BIN' adapters")

t0=$SECONDS
jid=$(N=4 ALEXNET=$WORK/alexnet-holding sbatch --parsable --array=0-3 "$ROOT/deploy/slurm_array.sh")
mid=$(sbatch --parsable --dependency=afterok:"$jid" --output=logs/merge-%j.out \
    --wrap "'$ALEXNET_BIN' merge '$PARTS' '$WORK/all'")
slurm_wait_for 60 test -s "$WORK/held.pid" || {
    echo "task 2 never started" >&2
    exit 1
}
kill -KILL "$(cat "$WORK/held.pid")"
wait_done "$jid" 120
wait_done "$mid" 30
expect_states "$jid" "COMPLETED COMPLETED COMPLETED FAILED " "the array with task 2 killed"
expect_states "$mid" "CANCELLED " "the merge after a failed task"
wait_done "$gid" 30
echo "array: tasks 0, 1, 3 COMPLETED, task 2 FAILED (SIGKILL), merge CANCELLED in $((SECONDS - t0)) s"

if "$ALEXNET_BIN" merge "$PARTS" "$WORK/refused" 2>"$WORK/refused.err"; then
    echo "merge accepted a run with a killed task" >&2
    exit 1
fi
cat "$WORK/refused.err"
grep -q "shard 2;" "$WORK/refused.err"
test ! -e "$WORK/refused.jsonl"

# A requeue (what node failures and preemption do; here `scontrol requeue` of the finished
# task 0) reruns the task after cred_expire: its part is complete, so it is skipped, and its
# second run is appended to the same log (--open-mode=append).
t0=$SECONDS
scontrol requeue "${jid}_0"
jid2=$(sbatch --parsable --array=2 --export=ALL,N=4,ALEXNET="$ALEXNET_BIN" "$ROOT/deploy/slurm_array.sh")
mid2=$(sbatch --parsable --dependency=afterok:"$jid2" --output=logs/merge-%j.out \
    --wrap "'$ALEXNET_BIN' merge '$PARTS' '$WORK/all'")
wait_done "$jid2" 120
wait_done "$mid2" 30
expect_states "$jid2" "COMPLETED " "the resubmitted task 2"
expect_states "$mid2" "COMPLETED " "the merge after the resubmission"
echo "task 2 resubmitted alone and merged in $((SECONDS - t0)) s"
slurm_wait_for 60 bash -c "grep -q 'skipped' logs/alexnet-classify-${jid}_0.out" || {
    echo "the requeued task 0 did not run again: $(states "$jid")" >&2
    cat logs/alexnet-classify-"${jid}"_0.out >&2
    exit 1
}
wait_done "$jid" 30
grep -q "wrote .*part-00000-of-00004.manifest.json" logs/alexnet-classify-"${jid}"_0.out
echo "task 0 requeued: skipped, its log appended to, after $((SECONDS - t0)) s"

"$ALEXNET_BIN" classify --weights "$WEIGHTS" --list "$LIST" --format jsonl \
    --logits-out "$WORK/single.logits.npy" >"$WORK/single.jsonl"
echo "done in $((SECONDS - start)) s"
