#!/bin/bash
# Classify a large image collection as a Slurm job array: one GPU per task, each task runs one
# contiguous part of the input list and writes it to a shared folder; a dependent job merges.
#
# Once, on a login node (shared file system):
#   export ALEXNET_CACHE_DIR=/shared/alexnet-cache
#   alexnet fetch-weights                                   # weights into the shared cache
#   find /shared/photos -type f | LC_ALL=C sort > /shared/photos.list
# Then submit the array (64 parts, --array is 0-based) and the merge after it:
#   jid=$(sbatch --parsable --array=0-63 deploy/slurm_array.sh)
#   sbatch --dependency=afterok:$jid --wrap "alexnet merge /shared/alexnet-run/parts /shared/alexnet-run/all"
#
# Retried or requeued tasks (sbatch --requeue, preemption) are safe: a part appears whole or
# not at all, and --skip-existing makes a task whose part is complete exit at once.
#
#SBATCH --job-name=alexnet-classify
#SBATCH --gres=gpu:1
#SBATCH --cpus-per-task=8
#SBATCH --mem=16G
#SBATCH --time=02:00:00
#SBATCH --requeue
#SBATCH --output=logs/%x-%A_%a.out

set -euo pipefail

# Shared file system paths (edit these).
INPUTS=${INPUTS:-/shared/photos}                 # a folder of images...
LIST=${LIST:-/shared/photos.list}                # ...listed once into this file (see below)
PARTS=${PARTS:-/shared/alexnet-run/parts}        # the shards' --out-dir
ALEXNET=${ALEXNET:-alexnet}                      # the static binary
export ALEXNET_CACHE_DIR=${ALEXNET_CACHE_DIR:-/shared/alexnet-cache}

: "${SLURM_ARRAY_TASK_ID:?submit with sbatch --array=0-(N-1)}"
# Slurm 21.08+ sets SLURM_ARRAY_TASK_COUNT; older ones: pass N=... with sbatch --export.
N=${N:-${SLURM_ARRAY_TASK_COUNT:?set N to the number of array tasks}}
# --shard is 0-based: submit --array=0-(N-1), not 1-N.
I=$SLURM_ARRAY_TASK_ID

# Weights: fetched once into the shared cache (above), never by every task.
if [ ! -f "$ALEXNET_CACHE_DIR/alexnet-torchvision.npz" ]; then
    echo "no weights in $ALEXNET_CACHE_DIR: run ALEXNET_CACHE_DIR=$ALEXNET_CACHE_DIR $ALEXNET fetch-weights once" >&2
    exit 2
fi

# The input list, made once (sorted, so every task sees the same list): walking ten million
# files on every task would cost N full walks of the metadata server.
if [ ! -f "$LIST" ]; then
    echo "make the list first: find $INPUTS -type f | LC_ALL=C sort > $LIST" >&2
    exit 2
fi

exec "$ALEXNET" classify --list "$LIST" --batch 32 \
    --shard "$I/$N" --out-dir "$PARTS" --skip-existing
