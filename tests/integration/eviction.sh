#!/usr/bin/env bash
# Housekeeping on a cache device when the trash window and the cache quota
# both have work in one pass: the originals the trash drops count as freed
# before the quota picks what else to evict, so the quota evicts only what
# is still over it, and no original is dropped (and announced) twice.
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
PA=$(free_port) PF=$(free_port)
A=$T_TMP/cam F=$T_TMP/nas
blobs() { jq_status "$1" ".blobs.$2"; }
hash_of() { sqlite3 "$A/shoebox.db" "SELECT hex(hash) FROM photos WHERE file_name = '$1'"; }
id_of() { "$SB" --data "$A" photos --json | jq -r --arg n "$1" '.[] | select(.file_name == $n) | .id'; }

# Four originals of about 3 MB each (a real JPEG with random bytes after its
# end marker), about 12 MB in all.
mkdir -p "$T_TMP/q"
for i in 1 2 3 4; do
  { cat "$FIX/Canon_40D.jpg"; head -c $((3000000 + i * 4099)) /dev/urandom; } >"$T_TMP/q/q$i.jpg"
done

ok "init the camera (cache)" "$SB" --data "$A" init --name cam --role cache
ok "start it" start_daemon "$A" --listen 127.0.0.1:$PA
ok "import four photos" "$SB" --data "$A" import "$T_TMP/q"
check "the camera holds four originals" '[ "$(blobs "$A" held)" = 4 ]'
URI=$("$SB" --data "$A" pair --json | jq -r .uri)
ok "the NAS joins as full" "$SB" --data "$F" join "$URI" --name nas --role full
ok "NAS starts" start_daemon "$F" --listen 127.0.0.1:$PF
ok "the NAS holds every original" until_true 120 bash -c "[ \"\$('$SB' --data '$F' status --json | jq .blobs.held)\" = 4 ]"
ok "the camera learns they are backed up" until_true 60 bash -c "[ \"\$('$SB' --data '$A' status --json | jq .blobs.backed_up)\" = 4 ]"
ok "the camera has rendered its photos" until_true 120 bash -c "[ \"\$('$SB' --data '$A' status --json | jq .renders.pending)\" = 0 ]"

# Delete q1 and q4; q1 is the least recently used original and q4 the most,
# so the quota pass sees a trashed original first in its LRU order.
ok "rm q1" "$SB" --data "$A" rm "$(id_of q1.jpg)"
ok "rm q4" "$SB" --data "$A" rm "$(id_of q4.jpg)"
ok "camera stops" stop_daemon "$A"
ok "NAS stops" stop_daemon "$F"
for i in 1 2 3 4; do
  sqlite3 "$A/shoebox.db" "UPDATE blobs SET last_access_at = $i WHERE hex(hash) = '$(hash_of q$i.jpg)'"
done
check "the LRU order is q1, q2, q3, q4" \
  '[ "$(sqlite3 "$A/shoebox.db" "SELECT group_concat(p.file_name, \" \") FROM (SELECT p.file_name FROM blobs b JOIN photos p ON p.hash = b.hash WHERE b.kind = '"'"'original'"'"' ORDER BY b.last_access_at) p")" = "q1.jpg q2.jpg q3.jpg q4.jpg" ]'

# About 6 MB stay after the trash drops q1 and q4: a 5 MB quota then evicts
# q2 alone. Counting the trashed originals as still held would evict q2 and
# q3 as well, and drop q1 a second time.
ok "camera restarts with a 0-day trash window and a 5 MB quota" \
  start_daemon "$A" --listen 127.0.0.1:$PA --trash-days 0 --cache-quota-mb 5
ok "housekeeping runs" until_true 30 grep -q "dropped [0-9]* originals" "$A.log"
check "one pass: two past the trash window, one over the quota" \
  '[ "$(grep -c "dropped [0-9]* originals" "$A.log")" = 1 ] && grep -q "dropped 3 originals (2 past the trash window, 1 over the cache quota)" "$A.log"'
check "the camera keeps one original" '[ "$(blobs "$A" held)" = 1 ]'
check "the one kept is q3, the most recently used left" \
  '[ "$(sqlite3 "$A/shoebox.db" "SELECT p.file_name FROM blobs b JOIN photos p ON p.hash = b.hash WHERE b.kind = '"'"'original'"'"' AND b.complete = 1")" = q3.jpg ]'
finish
