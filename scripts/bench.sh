#!/usr/bin/env bash
# Runs every benchmark built under BUILD_DIR/tests/bench/, one after another
# (they share two cores; running them together would make every figure
# wrong), then prints a summary table.
#
#   scripts/bench.sh BUILD_DIR [NAME...]     NAME: bench_engine or engine
#
# Each benchmark prints its own figures. A line of the machine-readable form
#   BENCH name=<id> value=<number> unit=<unit> [target=<number>] [ratio=<number>]
# becomes a row of the summary. The ratio is value/target unless the bench
# gives its own; either way a ratio >= 1 means the target is met (a bench
# whose figure is better when lower prints its own ratio, target/value).
# Benchmarks this build lacks are skipped with a message. Exits 1 when a
# benchmark failed (non-zero exit), 0 otherwise: a missed target is a
# figure to read, not a failure.
#
# Extra arguments for one benchmark: BENCH_ARGS_<name>, e.g.
#   BENCH_ARGS_bench_engine="20000" scripts/bench.sh build-release
set -uo pipefail

if [ $# -lt 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 BUILD_DIR [NAME...]" >&2
    exit 2
fi
build="$1"
shift
dir="$build/tests/bench"

# The order the benches run in: cheap and self-contained first. Any other
# bench_* program found in the build runs after these.
known=(bench_noise bench_entry bench_media bench_blob bench_engine bench_api)

names=()
if [ $# -gt 0 ]; then
    for n in "$@"; do
        case "$n" in bench_*) names+=("$n") ;; *) names+=("bench_$n") ;; esac
    done
else
    names=("${known[@]}")
    if [ -d "$dir" ]; then
        for f in "$dir"/bench_*; do
            [ -f "$f" ] && [ -x "$f" ] || continue
            n="$(basename "$f")"
            case " ${names[*]} " in *" $n "*) ;; *) names+=("$n") ;; esac
        done
    fi
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/sbx-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
rows="$work/rows"   # bench|id|value|unit|target|ratio|status
: >"$rows"
failed=0

for n in "${names[@]}"; do
    exe="$dir/$n"
    echo
    echo "=== $n ==="
    if [ ! -x "$exe" ] || [ -d "$exe" ]; then
        echo "skipped: $n is not built in $build"
        printf '%s|-|-|-|-|-|skipped\n' "$n" >>"$rows"
        continue
    fi
    var="BENCH_ARGS_$n"
    # shellcheck disable=SC2206  # word splitting of the extra arguments is wanted
    args=(${!var:-})
    out="$work/$n.out"
    start=$(date +%s.%N)
    "$exe" "${args[@]}" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    echo "--- $n: exit $rc after ${secs}s"
    status=ok
    if [ "$rc" -ne 0 ]; then
        status="FAILED(exit $rc)"
        failed=1
    fi
    # Each BENCH line becomes a row; a bench with none gets one row that says so.
    if ! awk -v bench="$n" -v status="$status" '
        /^BENCH / {
            delete kv
            for (i = 2; i <= NF; i++) {
                eq = index($i, "=")
                if (eq > 1) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
            }
            if (!("name" in kv) || !("value" in kv)) next
            target = ("target" in kv) ? kv["target"] : "-"
            ratio = ("ratio" in kv) ? kv["ratio"] : "-"
            if (ratio == "-" && target != "-" && target + 0 != 0)
                ratio = sprintf("%.2f", kv["value"] / target)
            unit = ("unit" in kv) ? kv["unit"] : ""
            printf "%s|%s|%s|%s|%s|%s|%s\n", bench, kv["name"], kv["value"], unit, target, ratio, status
            found = 1
        }
        END { exit found ? 0 : 1 }' "$out" >>"$rows"; then
        printf '%s|(no BENCH line)|-|-|-|-|%s\n' "$n" "$status" >>"$rows"
    fi
done

echo
echo "=== summary ($build) ==="
awk -F'|' '
    BEGIN {
        printf "%-14s %-28s %14s %-10s %12s %7s  %s\n", "bench", "figure", "value", "unit", "target", "ratio", "status"
    }
    {
        st = $7
        if (st == "ok" && $6 != "-") st = ($6 + 0 >= 1) ? "ok, target met" : "ok, BELOW target"
        printf "%-14s %-28s %14s %-10s %12s %7s  %s\n", $1, $2, $3, $4, $5, $6, st
    }' "$rows"
exit $failed
