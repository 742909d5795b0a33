#!/bin/sh
# `make bench-spread`: RUNS (default 20) consecutive bench runs, then the
# spread of each ratio over them (bench/spread.py) in
# build/bench/spread.md.  A failed run counts as a failure and is not
# retried; the script exits 1 if any run failed.
#
#   bench/spread.sh [RUNS]
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-20}
out=$top/build/bench
dir=$out/runs
rm -rf "$dir"
mkdir -p "$dir"
failed=0
i=1
while [ "$i" -le "$runs" ]; do
    echo "bench-spread: run $i of $runs"
    if sh "$top/bench/run.sh" > "$dir/run-$i.log" 2>&1; then
        cp "$out/results.json" "$dir/run-$i.json"
        grep '^bench: doorbell round trip\|^bench: host floor' "$dir/run-$i.log"
    else
        failed=$((failed + 1))
        echo "bench-spread: run $i FAILED (see $dir/run-$i.log):"
        tail -n 5 "$dir/run-$i.log"
    fi
    i=$((i + 1))
done
python3 "$top/bench/spread.py" --runs "$runs" --failed "$failed" \
    "$dir"/run-*.json > "$out/spread.md" || exit 1
cat "$out/spread.md"
[ "$failed" -eq 0 ]
