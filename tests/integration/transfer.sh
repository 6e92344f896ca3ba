#!/usr/bin/env bash
# Blob transfers that resume from what is already on disk: a blob whose
# every chunk was received before a crash is installed without asking for
# a chunk; one with a chunk damaged on disk since gets that chunk again; a
# blob installed under its name whose record step failed is recorded, not
# fetched again (the peer serves only bad chunks, so a re-fetch could not
# complete). The work on the database and the whole file runs on the
# thread pool: the daemon answers while it is held (a test hook).
. "$(dirname "$0")/lib.sh"
: "${SBX_BLOBTOOL_BIN:?}"
TOOL="$SBX_BLOBTOOL_BIN"
FIX="$SHOEBOX_SHARED/fixtures/exif"
PA=$(free_port) PB=$(free_port)
A=$T_TMP/cam B=$T_TMP/laptop
CHUNK=1048576

# Big photos: a real JPEG with random bytes after its end, several chunks.
mkdir -p "$T_TMP/big"
for i in 1 2 3 4; do
  { cat "$FIX/Canon_40D.jpg"; head -c $((5 * CHUNK + i * 4099)) /dev/urandom; } >"$T_TMP/big/big$i.jpg"
done
id_of() { "$SB" --data "$B" photos --json | jq -r --arg n "$1" '.[] | select(.file_name == $n) | .id'; }
held() { sqlite3 "$B/shoebox.db" "SELECT count(*) FROM blobs WHERE kind = 'original' AND complete = 1"; }

ok "init the camera" "$SB" --data "$A" init --name cam --role cache
ok "start it" start_daemon "$A" --listen 127.0.0.1:$PA
ok "import big photos" "$SB" --data "$A" import "$T_TMP/big"
URI=$("$SB" --data "$A" pair --json | jq -r .uri)
ok "a laptop joins (cache)" "$SB" --data "$B" join "$URI" --name laptop --role cache

# 1. Every chunk already verified on disk, not installed: a resume.
H1=$("$TOOL" partial "$B" "$T_TMP/big/big1.jpg")
check "big1 is a partial blob with every chunk present" \
  '[ "$(sqlite3 "$B/shoebox.db" "SELECT count(*) FROM blob_chunks WHERE have = 0 AND hex(hash) = upper(\"$H1\")")" = 0 ] && [ "$(held)" = 0 ]'
# 2. Every chunk marked present, one of them damaged on disk since.
H2=$("$TOOL" partial "$B" "$T_TMP/big/big2.jpg")
printf 'damage' | dd of="$B/blobs/partial/$H2" bs=1 seek=$((2 * CHUNK + 777)) conv=notrunc status=none
check "big2's partial file is damaged in chunk 2" '! cmp -s "$B/blobs/partial/$H2" "$T_TMP/big/big2.jpg"'

ok "laptop starts" start_daemon "$B" --listen 127.0.0.1:$PB
ok "get big1" "$SB" --data "$B" get "$(id_of big1.jpg)" --timeout 60 --out "$T_TMP/got1.jpg"
check "big1 is byte-identical" 'cmp -s "$T_TMP/got1.jpg" "$T_TMP/big/big1.jpg"'
check "big1 resumed with every chunk verified" 'grep -q "blob ${H1:0:12}: resuming a transfer, 6 of 6 chunks" "$B.log"'
ok "get big2" "$SB" --data "$B" get "$(id_of big2.jpg)" --timeout 60 --out "$T_TMP/got2.jpg"
check "big2 is byte-identical (the damaged chunk came again)" 'cmp -s "$T_TMP/got2.jpg" "$T_TMP/big/big2.jpg"'
check "big2 resumed with every chunk verified first" 'grep -q "blob ${H2:0:12}: resuming a transfer, 6 of 6 chunks" "$B.log"'
check "then found the damaged chunk" 'grep -q "blob ${H2:0:12}: 1 chunks were damaged on disk" "$B.log"'
check "the laptop holds both" '[ "$(held)" = 2 ]'
ok "laptop stops" stop_daemon "$B"

# 3. Installed under its name, the row still partial; the camera now lies
# on every chunk it serves, so only a blob recorded from disk completes.
H3=$("$TOOL" partial "$B" "$T_TMP/big/big3.jpg" installed)
check "big3 is in place but not recorded" \
  '[ -e "$B/blobs/${H3:0:2}/${H3:2:2}/$H3" ] && [ ! -e "$B/blobs/partial/$H3" ] && [ "$(held)" = 2 ]'
ok "camera stops" stop_daemon "$A"
SHOEBOX_TEST_CORRUPT_CHUNKS=1 start_daemon "$A" --listen 127.0.0.1:$PA
check "camera restarted (lying)" 'kill -0 "$(daemon_pid "$A")"'
ok "laptop restarts" start_daemon "$B" --listen 127.0.0.1:$PB
ok "get big3" "$SB" --data "$B" get "$(id_of big3.jpg)" --timeout 60 --out "$T_TMP/got3.jpg"
check "big3 is byte-identical" 'cmp -s "$T_TMP/got3.jpg" "$T_TMP/big/big3.jpg"'
check "big3 was recorded, no chunk fetched" '! grep -q "served a bad chunk [0-9]* of blob ${H3:0:12}" "$B.log"'
check "the laptop holds all three" '[ "$(held)" = 3 ]'
ok "laptop stops" stop_daemon "$B"
ok "camera stops" stop_daemon "$A"

# 4. A new blob, its partial begun by a store job that a test hook holds:
# the daemon answers meanwhile, and the blob arrives once it is let go.
GATE=$T_TMP/gate
ok "camera restarts (honest)" start_daemon "$A" --listen 127.0.0.1:$PA
SHOEBOX_TEST_STORE_GATE=$GATE ok "laptop restarts with the store job gate" start_daemon "$B" --listen 127.0.0.1:$PB
"$SB" --data "$B" get "$(id_of big4.jpg)" --timeout 60 --out "$T_TMP/got4.jpg" >"$T_TMP/get4.out" 2>&1 &
GET=$!
ok "the store job waits at the gate" until_true 30 test -e "$GATE.waiting"
check "the daemon answers while it is held" '[ "$(timeout 20 "$SB" --data "$B" status --json | jq .photos)" = 4 ]'
touch "$GATE"
check "get big4 ends well" 'wait $GET'
check "big4 is byte-identical" 'cmp -s "$T_TMP/got4.jpg" "$T_TMP/big/big4.jpg"'
ok "laptop stops" stop_daemon "$B"

# 5. An encrypted library's partial blob, every chunk recorded, its header
# damaged on disk since: opening it resets the partial, so the chunks the
# loop counted as written are asked for again (it used to try to install
# the blob again and again, forever).
E=$T_TMP/phone PE=$(free_port)
export SHOEBOX_PASSPHRASE="phone passphrase"
URI=$("$SB" --data "$A" pair --json | jq -r .uri)
ok "an encrypted phone joins" "$SB" --data "$E" join "$URI" --name phone --role cache --encrypt
H5=$("$TOOL" partial "$E" "$T_TMP/big/big1.jpg")
PART=$(ls "$E/blobs/partial/")
check "one partial file, under a keyed name" '[ "$(echo "$PART" | wc -l)" = 1 ] && [ "$PART" != "$H5" ]'
printf 'damage' | dd of="$E/blobs/partial/$PART" bs=1 seek=3 conv=notrunc status=none
ok "phone starts" start_daemon "$E" --listen 127.0.0.1:$PE
ok "phone unlocks" "$SB" --data "$E" unlock
E_ID=$("$SB" --data "$E" photos --json | jq -r '.[] | select(.file_name == "big1.jpg") | .id')
ok "get big1 on the phone" "$SB" --data "$E" get "$E_ID" --timeout 60 --out "$T_TMP/got5.jpg"
check "big1 is byte-identical" 'cmp -s "$T_TMP/got5.jpg" "$T_TMP/big/big1.jpg"'
check "the damaged header was found" 'grep -qi "damaged\|header" "$E.log"'
ok "phone stops" stop_daemon "$E"
unset SHOEBOX_PASSPHRASE
ok "camera stops" stop_daemon "$A"
finish
