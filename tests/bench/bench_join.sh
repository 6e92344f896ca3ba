#!/usr/bin/env bash
# Bench: a new device joins a library of 100,000 photos on loopback and holds
# all the metadata (equal state digest). Target <= 5 s; also bytes on the
# wire per photo. Run by scripts/bench.sh from the build's tests/bench/.
set -euo pipefail
BUILD=$(cd "$(dirname "$0")/../.." && pwd)
N=${1:-100000}
SB="$BUILD/shoebox" SBD="$BUILD/shoeboxd"
T=$(mktemp -d /tmp/sbx-bench-join-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill $p 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
PORT=$((40000 + $$ % 20000))
"$SB" --data "$T/a" init --name a >/dev/null
"$BUILD/tests/sbx-fill" "$T/a" "$N"
"$SBD" --data "$T/a" --listen 127.0.0.1:$PORT 2>"$T/a.log" & PIDS+=($!)
for _ in $(seq 100); do "$SB" --data "$T/a" status >/dev/null 2>&1 && break; sleep 0.1; done
URI=$("$SB" --data "$T/a" pair --json | jq -r .uri)
t0=$(date +%s%N)
"$SB" --data "$T/b" join "$URI" --name b --json >"$T/join.json"
t1=$(date +%s%N)
secs=$(echo "scale=3; ($t1 - $t0) / 1000000000" | bc)
bytes=$(jq -r .bytes_received "$T/join.json")
"$SBD" --data "$T/b" 2>"$T/b.log" & PIDS+=($!)
for _ in $(seq 100); do "$SB" --data "$T/b" status >/dev/null 2>&1 && break; sleep 0.1; done
da=$("$SB" --data "$T/a" status --json | jq -r .state_digest)
db=$("$SB" --data "$T/b" status --json | jq -r .state_digest)
pb=$("$SB" --data "$T/b" status --json | jq -r .photos)
echo "join of $N photos: ${secs} s, $bytes bytes received, photos on the new device: $pb"
if [ "$da" != "$db" ] || [ "$pb" != "$N" ]; then echo "digests differ: $da $db"; exit 1; fi
echo "digests equal: $da"
echo "BENCH name=join_${N}_photos value=$secs unit=s target=5 ratio=$(echo "scale=2; 5 / $secs" | bc)"
echo "BENCH name=join_bytes_per_photo value=$(echo "scale=1; $bytes / $N" | bc) unit=B"
