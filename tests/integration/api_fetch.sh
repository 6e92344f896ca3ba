#!/usr/bin/env bash
# Originals through the API of a device that does not hold them, and big
# uploads. a (full) holds the originals, b (cache) holds none:
# - POST /uploads/{id}/complete of a 64 MiB file runs off the loop: while
#   it runs the session says completing, a second complete gets 409 and
#   GET /status is answered before the completion's own answer;
# - GET /photos/{id}/original on b with Prefer: wait=0 answers 503 at once;
#   two requests (one a Range request) made while a is stopped both wait,
#   a restarts, and one fetch serves both, byte for byte;
# - with a stopped, a request answers 503 + Retry-After within its wait
#   (Prefer: wait=2); an unknown photo is 404 at once; clients that go away
#   while waiting (HTTP/1.1 and HTTP/2) leave b healthy; a request waiting
#   when b stops gets 503 and b exits cleanly (ASan: no leak, no error).
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
command -v curl >/dev/null || { echo "1..0 # SKIP curl missing"; exit 0; }
A=$T_TMP/a B=$T_TMP/b
addr() { curl -s --unix-socket "$1/api.sock" -H "Authorization: Bearer $(cat "$1/api-token")" http://x/status | jq -r .api.listen; }
LA=$((10000 + ($$ % 10000) * 2)) LB=$((10001 + ($$ % 10000) * 2))

ok "init a (full)" "$SB" --data "$A" init --name nas --role full
# Completions on a take 2 s longer (a test hook), so the test can see the
# loop serve while one runs without racing a fast disk.
SHOEBOX_TEST_COMPLETE_DELAY_MS=2000 ok "a starts" start_daemon "$A" --listen 127.0.0.1:$LA --api 127.0.0.1:0 --no-discovery
URI=$("$SB" --data "$A" pair --json | jq -r .uri)
ok "b joins (cache)" "$SB" --data "$B" join "$URI" --name laptop
ok "b starts" start_daemon "$B" --listen 127.0.0.1:$LB --api 127.0.0.1:0 --no-discovery
UA=http://$(addr "$A") UB=http://$(addr "$B")
TA=$(cat "$A/api-token") TB=$(cat "$B/api-token")

# Big photos: a real JPEG with bytes after its end (decoders stop at EOI).
big() { cat "$FIX/$1" >"$2"; head -c "$3" /dev/urandom >>"$2"; }
big Canon_40D.jpg "$T_TMP/big1.jpg" $((24 << 20))
big Nikon_D70.jpg "$T_TMP/big2.jpg" $((4 << 20))
big Kodak_CX7530.jpg "$T_TMP/big64.jpg" $((64 << 20))

# begin_upload FILE: a session on a with every chunk sent; prints its id.
begin_upload() {
  local f=$1 cs=$((8 << 20)) size hash r id n i
  size=$(stat -c %s "$f"); hash=$(sha256sum "$f" | cut -d' ' -f1)
  r=$(curl -sS -H "Authorization: Bearer $TA" -X POST "$UA/uploads" \
    -d "{\"hash\":\"$hash\",\"sizeBytes\":$size,\"chunkSize\":$cs,\"fileName\":\"$(basename "$f")\"}")
  id=$(jq -r .id <<<"$r"); n=$(jq -r .chunks <<<"$r")
  for ((i = 0; i < n; i++)); do
    dd if="$f" bs="$cs" skip="$i" count=1 2>/dev/null |
      curl -sS -H "Authorization: Bearer $TA" -X PUT --data-binary @- "$UA/uploads/$id/chunks/$i" >/dev/null
  done
  echo "$id"
}
complete() { curl -sS -H "Authorization: Bearer $TA" -X POST "$UA/uploads/$1/complete"; }
P1=$(complete "$(begin_upload "$T_TMP/big1.jpg")" | jq -r .photoId)
P2=$(complete "$(begin_upload "$T_TMP/big2.jpg")" | jq -r .photoId)
P3=$(complete "$(begin_upload "$FIX/gps_DSCN0010.jpg")" | jq -r .photoId)
check "three photos uploaded to a" '[[ "$P1" =~ ^[0-9a-f-]{36}$ ]] && [[ "$P2" =~ ^[0-9a-f-]{36}$ ]] && [[ "$P3" =~ ^[0-9a-f-]{36}$ ]]'

# A 64 MiB completion on the thread pool: while it runs, its session says
# so, a second complete is refused, and /status is answered before the
# completion's own answer comes.
ID64=$(begin_upload "$T_TMP/big64.jpg")
( complete "$ID64" >"$T_TMP/c64.json"; date +%s%N >"$T_TMP/c64.t" ) &
CPID=$!
completing() { [ "$(curl -s -H "Authorization: Bearer $TA" "$UA/uploads/$ID64" | jq -r .completing)" = true ]; }
ok "the completion is under way (the session says completing)" until_true 20 completing
curl -sf -o "$T_TMP/status.json" -H "Authorization: Bearer $TA" "$UA/status"; date +%s%N >"$T_TMP/status.t"
SECOND=$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TA" -X POST "$UA/uploads/$ID64/complete")
wait "$CPID"
check "a second complete while the first runs: 409" '[ "$SECOND" = 409 ]'
check "/status answered while the 64 MiB completion ran" \
  '[ "$(jq -r .deviceName "$T_TMP/status.json")" = nas ] && [ "$(cat "$T_TMP/status.t")" -lt "$(cat "$T_TMP/c64.t")" ]'
check "...and the completion stored it" '[ "$(jq -r .status "$T_TMP/c64.json")" = completed ]'
P64=$(jq -r .photoId "$T_TMP/c64.json")
check "the 64 MiB original reads back byte for byte" \
  '[ "$(curl -s -H "Authorization: Bearer $TA" "$UA/photos/$P64/original" | sha256sum)" = "$(sha256sum <"$T_TMP/big64.jpg")" ]'

# b learns of the photos (and that a holds them) by sync.
knows() { [ "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TB" "$UB/photos/$1")" = 200 ]; }
knows_all() { knows "$P1" && knows "$P2" && knows "$P3"; }
ok "b knows the photos" until_true 60 knows_all
check "b holds no original yet (Prefer: wait=0 answers at once: 503, Retry-After)" \
  '[ "$(curl -s -D "$T_TMP/w0.h" -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TB" -H "Prefer: wait=0" "$UB/photos/$P2/original")" = 503 ] && grep -qi "^retry-after:" "$T_TMP/w0.h"'

# Two requests at once, one of them a Range request, while the only holder
# is away: both wait; a comes back; one fetch serves both.
ok "a stops" stop_daemon "$A"
H1=$(sha256sum <"$T_TMP/big1.jpg" | cut -c1-12)
curl -s -o "$T_TMP/f1" -w "%{http_code}" -H "Authorization: Bearer $TB" -H "Prefer: wait=90" \
  "$UB/photos/$P1/original" >"$T_TMP/code1" &
C1=$!
curl -s -o "$T_TMP/f2" -w "%{http_code}" -H "Authorization: Bearer $TB" -H "Prefer: wait=90" -r 1000000-1999999 \
  "$UB/photos/$P1/original" >"$T_TMP/code2" &
C2=$!
waiting() { [ "$(grep -c "waits for original $H1" "$B.log")" = 2 ]; }
ok "both requests wait for the original" until_true 20 waiting
ok "a restarts" start_daemon "$A" --listen 127.0.0.1:$LA --api 127.0.0.1:0 --no-discovery
wait "$C1" "$C2"
check "both requests answered (200 and 206)" '[ "$(cat "$T_TMP/code1") $(cat "$T_TMP/code2")" = "200 206" ]'
check "the whole original, byte for byte" '[ "$(sha256sum <"$T_TMP/f1")" = "$(sha256sum <"$T_TMP/big1.jpg")" ]'
check "the range, byte for byte" 'cmp -s "$T_TMP/f2" <(tail -c +1000001 "$T_TMP/big1.jpg" | head -c 1000000)'
check "one fetch served both (b received the blob once)" '[ "$(grep -c "blob $H1 received" "$B.log")" = 1 ]'
check "b holds it now: If-None-Match with its ETag gives 304" \
  '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TB" -H "If-None-Match: \"$(sha256sum <"$T_TMP/big1.jpg" | cut -d" " -f1)\"" "$UB/photos/$P1/original")" = 304 ]'
check "an unknown photo: 404 at once" \
  '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TB" "$UB/photos/00000000-0000-4000-8000-000000000000/original")" = 404 ]'

# The only holder is gone: the wait ends in 503 within its bound.
ok "a stops again" stop_daemon "$A"
curl -s -D "$T_TMP/to.h" -o "$T_TMP/to.json" -w "%{http_code} %{time_total}" -H "Authorization: Bearer $TB" \
  -H "Prefer: wait=2" "$UB/photos/$P3/original" >"$T_TMP/to.out"
read -r TCODE TTIME <"$T_TMP/to.out"
check "holder stopped: 503 with Retry-After" '[ "$TCODE" = 503 ] && grep -qi "^retry-after:" "$T_TMP/to.h" && [ "$(jq .holders "$T_TMP/to.json")" = 1 ]'
check "...after waiting about 2 s, not longer than 8 s" 'awk -v t="$TTIME" "BEGIN { exit !(t >= 1.5 && t < 8) }"'

# Clients that go away while waiting.
curl -s -o /dev/null --max-time 1 -H "Authorization: Bearer $TB" -H "Prefer: wait=5" "$UB/photos/$P3/original"; R1=$?
curl -s -o /dev/null --http2-prior-knowledge --max-time 1 -H "Authorization: Bearer $TB" -H "Prefer: wait=5" \
  "$UB/photos/$P3/original"; R2=$?
check "an HTTP/1.1 client gone while waiting (curl gave up)" '[ $R1 = 28 ]'
check "an HTTP/2 client gone while waiting (curl gave up)" '[ $R2 = 28 ]'
check "b still answers" '[ "$(curl -s -H "Authorization: Bearer $TB" "$UB/status" | jq -r .deviceName)" = laptop ]'
# One more waits when b is told to stop: it is answered 503 at once.
curl -s -o "$T_TMP/stop.json" -w "%{http_code}" -H "Authorization: Bearer $TB" -H "Prefer: wait=60" \
  "$UB/photos/$P3/original" >"$T_TMP/stop.code" &
WPID=$!
sleep 1
ok "b stops cleanly with a request waiting" stop_daemon "$B"
wait "$WPID"
check "...which got 503 (shutting down)" '[ "$(cat "$T_TMP/stop.code")" = 503 ]'
check "no sanitizer report in the logs" '! grep -q "ERROR: \|runtime error" "$A.log" "$B.log"'
finish
