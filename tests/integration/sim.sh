#!/usr/bin/env bash
# sbx-sim is deterministic: a seed replays the same run to the byte, and its
# output has the promised form.
. "$(dirname "$0")/lib.sh"
SIM="$SBX_SIM_BIN"
for net in peer gossip; do
  a=$("$SIM" --seed 7 --replicas 4 --steps 200 --net $net)
  b=$("$SIM" --seed 7 --replicas 4 --steps 200 --net $net)
  check "$net: the same seed gives the same run" '[ -n "$a" ] && [ "$a" = "$b" ]'
  check "$net: one line of the promised form" '[[ "$a" =~ ^seed=7\ replicas=4\ entries=[0-9]+\ converged\ digest=[0-9a-f]{64}$ ]]'
  c=$("$SIM" --seed 8 --replicas 4 --steps 200 --net $net)
  check "$net: another seed gives another run" '[ "$a" != "$c" ]'
done
check "bad arguments are refused" '! "$SIM" --seeds 5:1 2>/dev/null'
finish
