#!/usr/bin/env bash
# make demo: shows shoebox end to end on sample photos. Grows with every
# capability; each step prints what it does and what came out.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SB="$ROOT/$BUILD/shoebox"
SBD="$ROOT/$BUILD/shoeboxd"
DEMO=$(mktemp -d /tmp/shoebox-demo-XXXXXX)
PORT=$((30000 + $$ % 20000))
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

digest() { "$SB" --data "$1" status --json | jq -r .state_digest; }
# The local API over the device's unix socket, with its bearer token.
api() {
  local dev=$1 method=$2 path=$3
  shift 3
  curl -s --unix-socket "$DEMO/$dev/api.sock" -H "Authorization: Bearer $(cat "$DEMO/$dev/api-token")" \
    -X "$method" "$@" "http://shoebox$path"
}
wait_converged() {
  for _ in $(seq 1 150); do [ "$(digest "$1")" = "$(digest "$2")" ] && return 0; sleep 0.2; done
  echo "did not converge"; exit 1
}

SAMPLES="${SHOEBOX_SAMPLES:-$ROOT/../shared/fixtures/exif}"
if [ ! -d "$SAMPLES" ]; then
  echo "no sample photos at $SAMPLES: set SHOEBOX_SAMPLES to a folder of photos"; exit 1
fi

step "A laptop starts a new library (role cache) and its daemon"
run "$SB" --data "$DEMO/laptop" init --name laptop --role cache
echo "\$ shoeboxd --data \$DEMO/laptop --listen 127.0.0.1:$PORT &"
start "$DEMO/laptop" --listen 127.0.0.1:$PORT

step "Import the sample camera photos (type from the bytes, SHA-256, EXIF dates, GPS, make and model)"
run "$SB" --data "$DEMO/laptop" import "$SAMPLES"
run "$SB" --data "$DEMO/laptop" import "$SAMPLES"   # again: every file is a duplicate
run "$SB" --data "$DEMO/laptop" photos

TAKEOUT="$ROOT/../shared/fixtures/takeout/gpth-pl"
if [ -d "$TAKEOUT" ] && command -v zip >/dev/null; then
  step "A Google Takeout in two zip parts (sidecars split from their photos): dates, places and names from the sidecars"
  (cd "$TAKEOUT" && find . -type f | LC_ALL=C sort >"$DEMO/takeout.txt" &&
    sed -n '1~2p' "$DEMO/takeout.txt" | zip -q -X "$DEMO/takeout-001.zip" -@ &&
    sed -n '2~2p' "$DEMO/takeout.txt" | zip -q -X "$DEMO/takeout-002.zip" -@)
  run "$SB" --data "$DEMO/laptop" import "$DEMO/takeout-001.zip" "$DEMO/takeout-002.zip"
  run "$SB" --data "$DEMO/laptop" status
fi

step "An album, a tag, a delete and a restore: each one a signed entry in the laptop's log"
ids=$("$SB" --data "$DEMO/laptop" photos --json | jq -r '.[] | select(.camera_make != "") | .id' | head -3)
first=$(echo "$ids" | head -1)
album=$("$SB" --data "$DEMO/laptop" album create "Old cameras")
echo "album $album"
run "$SB" --data "$DEMO/laptop" album add "$album" $ids
run "$SB" --data "$DEMO/laptop" tag "$first" vintage
run "$SB" --data "$DEMO/laptop" rm "$first"
run "$SB" --data "$DEMO/laptop" restore "${first:0:8}"

step "Pairing: the laptop shows a QR code; the always-on NAS joins with it (Noise_XXpsk3, one-time secret)"
"$SB" --data "$DEMO/laptop" pair --ttl 300 | tee "$DEMO/pair.txt"
URI=$(grep '^shoebox://pair' "$DEMO/pair.txt" | tail -1)
run "$SB" --data "$DEMO/nas" join "$URI" --name nas --role full
run "$SB" --data "$DEMO/other" join "$URI" --name other || echo "(a second use of the same code is refused)"

step "The NAS runs its daemon; the two devices sync over Noise_XX and agree on the state digest"
echo "\$ shoeboxd --data \$DEMO/nas --listen 127.0.0.1:$((PORT + 1)) --public 127.0.0.1:$((PORT + 2)) &"
start "$DEMO/nas" --listen 127.0.0.1:$((PORT + 1)) --public 127.0.0.1:$((PORT + 2))
wait_converged "$DEMO/laptop" "$DEMO/nas"
run "$SB" --data "$DEMO/nas" devices
run "$SB" --data "$DEMO/nas" albums --json
echo "laptop digest $(digest "$DEMO/laptop")"
echo "nas    digest $(digest "$DEMO/nas")"

step "An edit on the NAS reaches the laptop live"
run "$SB" --data "$DEMO/nas" album rename "$album" "Vintage cameras"
wait_converged "$DEMO/laptop" "$DEMO/nas"
run "$SB" --data "$DEMO/laptop" albums
run "$SB" --data "$DEMO/laptop" status

step "The NAS (role full) backs up every original, fetched by hash in verified chunks"
n=$("$SB" --data "$DEMO/laptop" status --json | jq .photos)
for _ in $(seq 1 300); do
  [ "$("$SB" --data "$DEMO/nas" status --json | jq .blobs.held)" -ge "$n" ] && break; sleep 0.2
done
for _ in $(seq 1 100); do
  [ "$("$SB" --data "$DEMO/laptop" status --json | jq .blobs.backed_up)" -ge "$n" ] && break; sleep 0.2
done
echo "nas    blobs: $("$SB" --data "$DEMO/nas" status --json | jq -c .blobs)"
echo "laptop blobs: $("$SB" --data "$DEMO/laptop" status --json | jq -c .blobs)"

step "Thumbnails and mediums: rendered in the background after the import, fetched eagerly by every device"
for _ in $(seq 1 300); do
  [ "$("$SB" --data "$DEMO/laptop" status --json | jq .renders.pending)" = 0 ] && break; sleep 0.2
done
echo "laptop renders: $("$SB" --data "$DEMO/laptop" status --json | jq -c .renders)"
thumbs() {
  local n=0 id
  for id in $("$SB" --data "$DEMO/$1" photos --json | jq -r '.[].id'); do
    [ "$(api "$1" GET "/photos/$id/thumb" -o /dev/null -w '%{http_code}')" = 200 ] && n=$((n + 1))
  done
  echo "$n"
}
echo "photos with a thumbnail, through each device's local API: laptop $(thumbs laptop), nas $(thumbs nas)"

step "The laptop frees its disk: only originals the NAS holds are deleted; get brings one back"
run "$SB" --data "$DEMO/laptop" free-space
echo "laptop blobs: $("$SB" --data "$DEMO/laptop" status --json | jq -c .blobs)"
one=$("$SB" --data "$DEMO/laptop" photos --json | jq -r '.[] | select(.file_name == "Canon_40D.jpg") | .id')
run "$SB" --data "$DEMO/laptop" get "$one" --out "$DEMO/Canon_40D.jpg"
cmp "$DEMO/Canon_40D.jpg" "$SAMPLES/Canon_40D.jpg" && echo "byte-identical to the original file"

step "An app on the laptop asks the local API for an original the laptop no longer holds"
two=$("$SB" --data "$DEMO/laptop" photos --json | jq -r --arg one "$one" '[.[] | select(.id != $one and .camera_make != "")][0] | .id + " " + .hash')
echo "\$ curl --unix-socket \$DEMO/laptop/api.sock -H 'Authorization: Bearer ...' http://shoebox/photos/${two%% *}/original"
api laptop GET "/photos/${two%% *}/original" >"$DEMO/two.jpg"
[ "$(sha256sum "$DEMO/two.jpg" | cut -d' ' -f1)" = "${two##* }" ] &&
  echo "fetched from the NAS on demand, verified, served: $(stat -c %s "$DEMO/two.jpg") bytes, SHA-256 matches the photo"

step "A share link: the NAS serves the album to someone outside the library"
echo "\$ shoebox --data \$DEMO/nas share create --album ${album:0:8} --expires 7d"
url=$("$SB" --data "$DEMO/nas" share create --album "$album" --expires 7d)
echo "$url"
echo "the page has $(curl -s "$url" | grep -o '<img' | wc -l) thumbnails; a tampered link: $(curl -s -o /dev/null -w '%{http_code}' "${url%?}x")"

step "Done"
echo "Every device holds the whole library model and every thumbnail; the NAS holds every original,"
echo "serves share links, and any device's local API can fetch an original from it on demand."
