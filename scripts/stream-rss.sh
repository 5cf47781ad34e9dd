#!/usr/bin/env bash
# Peak host memory of `alexnet classify` streaming N paths (issue 29): N hard links to the
# images in assets/images (distinct paths, no disk cost) in a --list file, classified as JSON
# lines; every 30 s the resident set and the rows written so far are sampled, so the log shows
# whether memory grows with the number of paths.
#   scripts/stream-rss.sh WEIGHTS N WORKDIR [classify flags...]
# The network's cost dominates on a CPU adapter: a reduced-width net makes 100,000 paths take
# about an hour on lavapipe (2 cores).
set -euo pipefail
weights=$1 n=$2 work=$3
shift 3
bin=${ALEXNET_BIN:-target/release/alexnet}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$work/imgs"
mapfile -t base < <(ls "$root"/assets/images/*.{jpg,png})
list="$work/list-$n.txt"
: >"$list"
for ((i = 0; i < n; i++)); do
    src=${base[i % ${#base[@]}]}
    p="$work/imgs/$i.${src##*.}"
    [ -e "$p" ] || ln "$src" "$p"
    echo "$p"
done >"$list"
out="$work/out-$n.jsonl"
/usr/bin/time -f "wall %e s, peak RSS %M KB" -o "$work/time-$n.txt" \
    "$bin" classify --weights "$weights" --list "$list" --format jsonl "$@" >"$out" &
pid=$!
sleep 1
cpid=$(pgrep -P "$pid" | head -n 1 || true)
while kill -0 "$pid" 2>/dev/null; do
    if [ -n "$cpid" ] && [ -r "/proc/$cpid/status" ]; then
        rss=$(awk '/VmRSS/ {print $2}' "/proc/$cpid/status" 2>/dev/null || echo "?")
        echo "$(date +%T) rows $(wc -l <"$out") rss_kb $rss" | tee -a "$work/samples-$n.txt"
    fi
    sleep 30
done
wait "$pid"
echo "rows $(wc -l <"$out") of $n; $(cat "$work/time-$n.txt")"
