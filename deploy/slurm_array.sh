#!/bin/bash
# Classify a large image collection as a Slurm job array: one GPU per task, each task runs one
# contiguous part of the input list and writes it to a shared folder; a dependent job merges.
#
# Once, on a login node (shared file system):
#   export ALEXNET_CACHE_DIR=/shared/alexnet-cache
#   alexnet fetch-weights                                   # weights into the shared cache
#   find /shared/photos -type f | LC_ALL=C sort > /shared/photos.list
#   mkdir -p logs                 # where you submit: Slurm writes the task logs there, and a
#                                 # missing folder fails every task without any log
# Then submit the array (N parts, --array is 0-based) and the merge after it:
#   export N=64                   # the number of parts: required (see "Failed tasks" below)
#   jid=$(sbatch --parsable --array=0-$((N - 1)) deploy/slurm_array.sh)
#   sbatch --dependency=afterok:$jid --wrap "alexnet merge /shared/alexnet-run/parts /shared/alexnet-run/all"
# Variables (exported where you submit; sbatch passes your environment on): N, WEIGHTS (any
# weights file, e.g. an offline or fine-tuned model, instead of the cache's), ARCH (preset:
# torchvision, caffe or keras), LIST, PARTS, ALEXNET (the binary), ALEXNET_CACHE_DIR.
#
# Failed tasks are not retried by Slurm: `#SBATCH --requeue` only requeues a task after a node
# failure, a preemption or `scontrol requeue`, not one that exited non-zero or was killed (out
# of memory, SIGKILL). `squeue`/`sacct` show which tasks failed; resubmit just those, with the
# same N (parts already complete are skipped, so resubmitting all of them is also safe):
#   jid2=$(sbatch --parsable --array=2,5 --export=ALL,N=64 deploy/slurm_array.sh)
#   sbatch --dependency=afterok:$jid2 --wrap "alexnet merge /shared/alexnet-run/parts /shared/alexnet-run/all"
# The first merge job can never start once a task failed: clusters with
# `DependencyParameters=kill_invalid_depend` cancel it, others leave it pending with reason
# DependencyNeverSatisfied (`scancel` it). `alexnet merge` run by hand names the missing parts.
# A requeued or resubmitted task is safe: a part appears whole or not at all, and
# --skip-existing makes a task whose part is complete exit at once.
#
#SBATCH --job-name=alexnet-classify
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.out
#SBATCH --open-mode=append

set -euo pipefail

# Shared file system paths (edit these or export them).
INPUTS=${INPUTS:-/shared/photos}                 # a folder of images...
LIST=${LIST:-/shared/photos.list}                # ...listed once into this file (see above)
PARTS=${PARTS:-/shared/alexnet-run/parts}        # the shards' --out-dir
ALEXNET=${ALEXNET:-alexnet}                      # the static binary
WEIGHTS=${WEIGHTS:-}                             # empty: the cache's pre-trained weights
ARCH=${ARCH:-}                                   # empty: inferred from the weights
export ALEXNET_CACHE_DIR=${ALEXNET_CACHE_DIR:-/shared/alexnet-cache}

: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-(N-1)}"
# N is never taken from the array's size: a resubmission of some tasks (--array=2,5) is a
# smaller array, and --array=0 alone would otherwise write a one-part "result".
if [ -z "${N:-}" ]; then
    echo "set N to the number of parts (export N=64, or sbatch --export=ALL,N=64), also when resubmitting some tasks" >&2
    exit 2
fi
if ! [[ $N =~ ^[1-9][0-9]*$ ]]; then
    echo "N must be a positive number of parts, not '$N'" >&2
    exit 2
fi
# --shard is 0-based: submit --array=0-(N-1), not 1-N.
I=$SLURM_ARRAY_TASK_ID
if ((I >= N)) || ((${SLURM_ARRAY_TASK_MAX:-0} >= N)); then
    echo "task $I (array up to ${SLURM_ARRAY_TASK_MAX:-$I}) is outside 0-$((N - 1)) for N=$N: --array is 0-based" >&2
    exit 2
fi

model=()
if [ -n "$WEIGHTS" ]; then
    if [ ! -f "$WEIGHTS" ]; then
        echo "WEIGHTS=$WEIGHTS: no such file" >&2
        exit 2
    fi
    model+=(--weights "$WEIGHTS")
elif [ ! -f "$ALEXNET_CACHE_DIR/alexnet-torchvision.npz" ] && [ "$ARCH" != caffe ]; then
    # Weights: fetched once into the shared cache (above), never by every task.
    echo "no weights in $ALEXNET_CACHE_DIR: run ALEXNET_CACHE_DIR=$ALEXNET_CACHE_DIR $ALEXNET fetch-weights once, or set WEIGHTS=FILE" >&2
    exit 2
fi
if [ -n "$ARCH" ]; then
    model+=(--arch "$ARCH")
fi

# The input list, made once (sorted, so every task sees the same list): walking ten million
# files on every task would cost N full walks of the metadata server.
if [ ! -f "$LIST" ]; then
    echo "make the list first: find $INPUTS -type f | LC_ALL=C sort > $LIST" >&2
    exit 2
fi

exec "$ALEXNET" classify ${model[@]+"${model[@]}"} --list "$LIST" --batch 32 \
    --shard "$I/$N" --out-dir "$PARTS" --skip-existing
