#!/usr/bin/env bash
# Sums every suite of a meson test run into one line: "N passed, N failed".
# Each TAP point counts once; a test program that failed without printing a
# failing TAP point (a crash, a time-out) counts as one failure.
set -euo pipefail
log="$1"
[ -f "$log" ] || { echo "0 passed, 1 failed"; echo "no test log at $log" >&2; exit 1; }
jq -rs '
  map(
    (.stdout // "" | split("\n")) as $lines
    | ($lines | map(select(test("^ok [0-9]+") and (test("# *(SKIP|skip)") | not))) | length) as $ok
    | ($lines | map(select(test("^ok [0-9]+.*# *(SKIP|skip)"))) | length) as $skip
    | ($lines | map(select(test("^not ok [0-9]+"))) | length) as $bad
    | if ($ok + $skip + $bad) == 0 then
        # A plain program (no TAP): its exit status is one result.
        {ok: (if .result == "OK" then 1 else 0 end), skip: (if .result == "SKIP" then 1 else 0 end),
         bad: (if (.result == "OK" or .result == "SKIP") then 0 else 1 end)}
      else
        {ok: $ok, skip: $skip,
         bad: (if (.result != "OK" and .result != "SKIP" and $bad == 0) then 1 else $bad end)}
      end
  )
  | reduce .[] as $t ({ok:0, bad:0, skip:0}; .ok += $t.ok | .bad += $t.bad | .skip += $t.skip)
  | "\(.ok) passed, \(.bad) failed, \(.skip) skipped"
' "$log"
