#!/usr/bin/env bash
# Blobs by hash: a full (backup) daemon fetches every original from a cache
# daemon, byte for byte; free-space then frees the cache; get brings one
# back; a transfer killed midway resumes; a lying peer is caught.
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
PA=$(free_port) PB=$(free_port) PF=$(free_port)
A=$T_TMP/cam B=$T_TMP/laptop F=$T_TMP/nas
digest() { jq_status "$1" .state_digest; }
blobs() { jq_status "$1" ".blobs.$2"; }

# Big photos: a real JPEG with random bytes after its end (decoders stop at
# the end marker), so transfers take long enough to be killed midway.
mkdir -p "$T_TMP/big"
for i in 1 2 3; do
  { cat "$FIX/Canon_40D.jpg"; head -c $((24 * 1024 * 1024 + i * 4099)) /dev/urandom; } >"$T_TMP/big/big$i.jpg"
done

ok "init the camera device (cache)" "$SB" --data "$A" init --name cam --role cache
ok "start it" start_daemon "$A" --listen 127.0.0.1:$PA
ok "import photos" "$SB" --data "$A" import "$FIX"
ok "import big photos" "$SB" --data "$A" import "$T_TMP/big"
n=$(jq_status "$A" .photos)
check "the cache holds its own originals" '[ "$(blobs "$A" held)" = "$n" ] && [ "$(blobs "$A" backed_up)" = 0 ]'
check "...and misses none" '[ "$(blobs "$A" missing)" = 0 ]'

# A second cache device gets one big original on demand (it becomes a
# second holder, used by the lying-peer case below).
URI=$("$SB" --data "$A" pair --json | jq -r .uri)
ok "a laptop joins" "$SB" --data "$B" join "$URI" --name laptop --role cache
ok "laptop starts" start_daemon "$B" --listen 127.0.0.1:$PB
BIG1=$("$SB" --data "$B" photos --json | jq -r '.[] | select(.file_name == "big1.jpg") | .id')
ok "get a big original on the laptop" "$SB" --data "$B" get "$BIG1" --timeout 60 --out "$T_TMP/got1.jpg"
check "it is byte-identical" 'cmp -s "$T_TMP/got1.jpg" "$T_TMP/big/big1.jpg"'
check "the laptop holds no other original" '[ "$(blobs "$B" held)" = 1 ] && [ "$(blobs "$B" missing)" = $((n - 1)) ]'

# The camera now lies on every chunk it serves; the laptop is honest.
ok "camera stops" stop_daemon "$A"
SHOEBOX_TEST_CORRUPT_CHUNKS=1 start_daemon "$A" --listen 127.0.0.1:$PA
check "camera restarted (lying)" 'kill -0 "$(daemon_pid "$A")"'

URI=$("$SB" --data "$A" pair --json | jq -r .uri)
ok "the NAS joins as full" "$SB" --data "$F" join "$URI" --name nas --role full
ok "NAS starts" start_daemon "$F" --listen 127.0.0.1:$PF
ok "the NAS gets the lying camera's bad chunks caught" until_true 60 grep -q "served a bad chunk" "$F.log"
ok "big1 completes from the honest laptop" until_true 60 bash -c "'$SB' --data '$F' get '$BIG1' --timeout 20 --out '$T_TMP/nas1.jpg' && cmp -s '$T_TMP/nas1.jpg' '$T_TMP/big/big1.jpg'"

# The camera tells the truth again: the NAS fetches the rest. Kill the NAS
# hard in the middle of a transfer (a test hook stalls its transfers after
# a few chunks, so the kill cannot miss), restart it: it resumes.
ok "NAS stops" stop_daemon "$F"
ok "camera stops" stop_daemon "$A"
ok "camera restarts (honest)" start_daemon "$A" --listen 127.0.0.1:$PA
SHOEBOX_TEST_STALL_AFTER_CHUNKS=4 start_daemon "$F" --listen 127.0.0.1:$PF
check "NAS restarted (stalling after 4 chunks a blob)" 'kill -0 "$(daemon_pid "$F")"'
ok "a transfer has verified chunks on disk" until_true 60 bash -c "[ \"\$(sqlite3 '$F/shoebox.db' 'SELECT count(*) FROM blob_chunks c JOIN blobs b ON b.hash = c.hash WHERE b.complete = 0 AND c.have = 1' 2>/dev/null)\" -gt 0 ]"
kill_hard "$F"
check "a partial blob stays after kill -9" 'ls "$F"/blobs/partial/ | grep -q .'
ok "NAS restarts" start_daemon "$F" --listen 127.0.0.1:$PF
ok "the NAS ends with every original" until_true 120 bash -c "[ \"\$('$SB' --data '$F' status --json | jq .blobs.held)\" = $n ]"
check "the restart resumed from verified chunks" 'grep -q "resuming" "$F.log"'

# Thumbnails and mediums are rendered by the camera after its import (the
# laptop joined while they were still being made): every device fetches
# every one of them eagerly, whatever its role.
ok "the camera has rendered its photos" until_true 120 bash -c "[ \"\$('$SB' --data '$A' status --json | jq .renders.pending)\" = 0 ]"
rendered=$(sqlite3 "$A/shoebox.db" "SELECT count(*) FROM photos WHERE thumb_hash IS NOT NULL AND medium_hash IS NOT NULL")
check "the camera rendered its JPEGs ($rendered photos)" '[ "$rendered" -gt 3 ]'
for dev in "$F" "$B"; do
  ok "$(basename "$dev") holds every thumbnail and medium" until_true 60 bash -c "[ \"\$(sqlite3 '$dev/shoebox.db' \"SELECT count(*) FROM photos p JOIN blobs t ON t.hash = p.thumb_hash AND t.complete = 1 JOIN blobs m ON m.hash = p.medium_hash AND m.complete = 1\")\" = $rendered ]"
done
for f in "$FIX"/*.jpg "$T_TMP"/big/*.jpg; do
  id=$("$SB" --data "$F" photos --json | jq -r --arg n "$(basename "$f")" '.[] | select(.file_name == $n) | .id')
  "$SB" --data "$F" get "$id" --timeout 10 --out "$T_TMP/check.bin" >/dev/null && cmp -s "$T_TMP/check.bin" "$f" || echo "# differs: $f"
done >"$T_TMP/cmp.txt"
check "every original on the NAS is byte-identical" '[ ! -s "$T_TMP/cmp.txt" ]'
ok "the camera learns they are backed up" until_true 60 bash -c "[ \"\$('$SB' --data '$A' status --json | jq .blobs.backed_up)\" = $n ]"

# free-space frees only what a full peer holds; get brings one back.
ok "free-space on the camera" bash -c "'$SB' --data '$A' free-space --json >'$T_TMP/free.json'"
check "every original was freed" '[ "$(jq .freed "$T_TMP/free.json")" = "$n" ] && [ "$(blobs "$A" held)" = 0 ]'
check "...the camera misses them all, and they are still backed up" \
  '[ "$(blobs "$A" missing)" = "$n" ] && [ "$(blobs "$A" backed_up)" = "$n" ]'
check "none is lost: the NAS still holds all" '[ "$(blobs "$F" held)" = "$n" ]'
CANON=$("$SB" --data "$A" photos --json | jq -r '.[] | select(.file_name == "Canon_40D.jpg") | .id')
ok "get brings one back" "$SB" --data "$A" get "$CANON" --timeout 60 --out "$T_TMP/canon.jpg"
check "byte-identical" 'cmp -s "$T_TMP/canon.jpg" "$FIX/Canon_40D.jpg"'
check "free-space never frees what no full peer holds" \
  '[ "$("$SB" --data "$B" free-space --min-full-peers 2 --json | jq .freed)" = 0 ]'
# A cache quota evicts backed-up originals (LRU); the trash window drops
# the originals of deleted photos everywhere.
ok "camera stops" stop_daemon "$A"
ok "camera restarts with a cache quota of 0 MB" start_daemon "$A" --listen 127.0.0.1:$PA --cache-quota-mb 0
ok "the quota evicts the backed-up original" until_true 30 bash -c "[ \"\$('$SB' --data '$A' status --json | jq .blobs.held)\" = 0 ]"
check "thumbnails stay" '[ "$(sqlite3 "$A/shoebox.db" "SELECT count(*) FROM blobs WHERE kind = '"'"'thumb'"'"'")" -gt 0 ]'
ok "rm a photo" "$SB" --data "$A" rm "$CANON"
ok "NAS stops" stop_daemon "$F"
ok "NAS restarts with a trash window of 0 days" start_daemon "$F" --listen 127.0.0.1:$PF --trash-days 0
ok "the deleted photo's original is dropped" until_true 60 bash -c "[ \"\$('$SB' --data '$F' status --json | jq .blobs.held)\" = $((n - 1)) ]"
ok "all three agree" until_true 30 bash -c "[ \"\$('$SB' --data '$A' status --json | jq -r .state_digest)\" = \"\$('$SB' --data '$F' status --json | jq -r .state_digest)\" ]"
finish
