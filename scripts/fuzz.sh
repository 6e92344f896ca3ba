#!/usr/bin/env bash
# Runs every libFuzzer harness of a fuzz build for SECONDS each, one after
# another, and prints a summary.
#
#   scripts/fuzz.sh BUILD_DIR SECONDS [NAME...]     NAME: fuzz_frame or frame
#
# Each harness starts from a scratch copy of its seed corpus
# (tests/fuzz/corpus/<name>), so the inputs it finds never grow the committed
# corpus. Scratch corpora, crash artifacts and logs go to
# BUILD_DIR/fuzz-run/{corpus,artifacts,logs}/<name>, cleared at the start of
# each run; a crash's artifact stays there to reproduce it with
#   BUILD_DIR/tests/fuzz/fuzz_<name> BUILD_DIR/fuzz-run/artifacts/<name>/crash-...
# Exits 1 when any harness crashed (or leaked, timed out, ran out of memory,
# or failed to start), 0 when every one ran clean.
#
# FUZZ_TIMEOUT (default 25) is libFuzzer's per-input time-out in seconds;
# FUZZ_ARGS adds libFuzzer flags to every run.
set -uo pipefail

if [ $# -lt 2 ] || [ ! -d "$1" ] || ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt 1 ]; then
    echo "usage: $0 BUILD_DIR SECONDS [NAME...]" >&2
    exit 2
fi
build="$1"
secs="$2"
shift 2
src="$(cd "$(dirname "$0")/.." && pwd)"
run="$build/fuzz-run"

harnesses=()
if [ $# -gt 0 ]; then
    for n in "$@"; do
        n="${n#fuzz_}"
        harnesses+=("$build/tests/fuzz/fuzz_$n")
    done
else
    for f in "$build"/tests/fuzz/fuzz_*; do
        [ -f "$f" ] && [ -x "$f" ] && harnesses+=("$f")
    done
fi
if [ ${#harnesses[@]} -eq 0 ]; then
    echo "fuzz: no harness in $build/tests/fuzz (configure with -Dfuzz=true and build first)" >&2
    exit 2
fi

# shellcheck disable=SC2206  # word splitting of the extra flags is wanted
extra=(${FUZZ_ARGS:-})
summary=()
bad=0
for exe in "${harnesses[@]}"; do
    n="$(basename "$exe")"
    name="${n#fuzz_}"
    echo
    echo "=== $n: ${secs}s ==="
    if [ ! -x "$exe" ]; then
        echo "missing: $exe"
        summary+=("$(printf '%-16s %-10s' "$n" "MISSING")")
        bad=1
        continue
    fi
    # Without -Dfuzz the harnesses link a replay driver that takes a corpus
    # directory, not libFuzzer flags: refuse them rather than misrun them.
    if ! grep -qa "max_total_time" "$exe"; then
        echo "not a libFuzzer binary: $exe (build with CC=clang meson setup ... -Dfuzz=true)"
        summary+=("$(printf '%-16s %-10s' "$n" "NOT-LIBFUZZER")")
        bad=1
        continue
    fi
    corpus="$run/corpus/$name"
    art="$run/artifacts/$name"
    log="$run/logs/$name.log"
    rm -rf "$corpus" "$art" "$log"
    mkdir -p "$corpus" "$art" "$run/logs"
    seeds=0
    if [ -d "$src/tests/fuzz/corpus/$name" ]; then
        cp -r "$src/tests/fuzz/corpus/$name/." "$corpus/"
        seeds=$(find "$corpus" -type f | wc -l)
    else
        echo "note: no seed corpus at tests/fuzz/corpus/$name; starting empty"
    fi
    "$exe" -max_total_time="$secs" -timeout="${FUZZ_TIMEOUT:-25}" -print_final_stats=1 \
        -artifact_prefix="$art/" "${extra[@]}" "$corpus" >"$log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    found=$(find "$corpus" -type f | wc -l)
    arts=$(find "$art" -type f | wc -l)
    if [ "$rc" -eq 0 ] && [ "$arts" -eq 0 ]; then
        status="ok"
        tail -n 12 "$log" | grep -E "^(#[0-9]+|Done|stat::)" | tail -n 4
    else
        status="CRASH"
        bad=1
        # The sanitizer's report and libFuzzer's verdict: enough to start on.
        grep -E "ERROR: |SUMMARY: |==[0-9]+==|Test unit written|artifact_prefix|deadly signal|timeout|out-of-memory" \
            "$log" | head -n 20
        echo "full log: $log"
        [ "$arts" -gt 0 ] && find "$art" -type f | sed 's/^/artifact: /'
    fi
    summary+=("$(printf '%-16s %-10s %12s execs  corpus %4s -> %-6s artifacts %s  (exit %s)' \
        "$n" "$status" "${execs:-?}" "$seeds" "$found" "$arts" "$rc")")
done

echo
echo "=== fuzz summary: ${secs}s per harness, $build ==="
printf '%s\n' "${summary[@]}"
if [ "$bad" -ne 0 ]; then
    echo "FAILED: see the logs and artifacts under $run"
    exit 1
fi
echo "all harnesses ran clean"
