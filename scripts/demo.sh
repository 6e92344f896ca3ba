#!/usr/bin/env bash
# make demo: shows shoebox end to end on sample photos. Grows with every
# capability; each step prints what it does and what came out.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SB="$ROOT/$BUILD/shoebox"
SBD="$ROOT/$BUILD/shoeboxd"
DEMO=$(mktemp -d /tmp/shoebox-demo-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DEMO"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" | sed "s#$ROOT/$BUILD/##g; s#$DEMO#\$DEMO#g"; "$@"; }

start() {
  local dir=$1; shift
  "$SBD" --data "$dir" "$@" >"$dir.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 100); do "$SB" --data "$dir" status >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "shoeboxd for $dir did not start:"; cat "$dir.log"; exit 1
}

step "Two devices: a laptop (cache) and an always-on NAS (full, the backup)"
run "$SB" --data "$DEMO/laptop" init --name laptop --role cache
run "$SB" --data "$DEMO/nas" init --name nas --role full

step "Their daemons"
start "$DEMO/laptop"
start "$DEMO/nas"
echo "shoeboxd running for laptop and nas"

step "Status of each device"
run "$SB" --data "$DEMO/laptop" status
run "$SB" --data "$DEMO/nas" status --json

step "Import the sample camera photos on the laptop (EXIF dates, GPS, make and model)"
SAMPLES="${SHOEBOX_SAMPLES:-$ROOT/../shared/fixtures/exif}"
if [ ! -d "$SAMPLES" ]; then
  echo "no sample photos at $SAMPLES: set SHOEBOX_SAMPLES to a folder of photos"; exit 1
fi
run "$SB" --data "$DEMO/laptop" import "$SAMPLES"
run "$SB" --data "$DEMO/laptop" import "$SAMPLES"   # again: every file is a duplicate
run "$SB" --data "$DEMO/laptop" photos

step "An album, a tag, a delete and a restore: each one a signed entry in the laptop's log"
ids=$("$SB" --data "$DEMO/laptop" photos --json | jq -r '.[] | select(.camera_make != "") | .id' | head -3)
first=$(echo "$ids" | head -1)
album=$("$SB" --data "$DEMO/laptop" album create "Old cameras")
echo "album $album"
run "$SB" --data "$DEMO/laptop" album add "$album" $ids
run "$SB" --data "$DEMO/laptop" tag "$first" vintage
run "$SB" --data "$DEMO/laptop" rm "$first"
run "$SB" --data "$DEMO/laptop" restore "${first:0:8}"
run "$SB" --data "$DEMO/laptop" albums --json
run "$SB" --data "$DEMO/laptop" status

step "Done"
echo "Coming next in this demo: pairing the NAS by QR code, sync, and the NAS backing up every original."
