#!/usr/bin/env bash
# Upload chunks are hashed and synced on libuv's thread pool, not on the
# daemon's loop. A test hook makes every chunk write take 300 ms longer, so
# writes overlap for sure; then, with real clients:
# - every chunk of a file sent at once, each on its own HTTP/2 connection
#   (and chunk 0 twice at once): each is stored once, the second chunk 0 is
#   a duplicate, the session completes with the right bytes;
# - a wrong X-Chunk-Sha256 (a malformed one, and a well-formed one that does
#   not match, sent while the right chunk is being written): 400, nothing
#   stored for it;
# - a chunk whose client gives up before its write ends (HTTP/1.1, and an
#   HTTP/2 stream reset) is stored anyway;
# - a session that ended refuses chunks (409); GET /status is answered
#   while writes run;
# - the daemon stops cleanly with writes waiting (they get 503, over HTTP/2
#   as over HTTP/1.1) and running (ASan: no leak, no error).
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
command -v curl >/dev/null || { echo "1..0 # SKIP curl missing"; exit 0; }
A=$T_TMP/a
ok "init" "$SB" --data "$A" init --name phone
SHOEBOX_TEST_CHUNK_DELAY_MS=300 ok "the daemon starts (chunk writes take 300 ms longer)" start_daemon "$A" --api 127.0.0.1:0
U=http://$(curl -s --unix-socket "$A/api.sock" -H "Authorization: Bearer $(cat "$A/api-token")" http://x/status | jq -r .api.listen)
TOK=$(cat "$A/api-token")
AUTH="Authorization: Bearer $TOK"

# A real JPEG with bytes after its end, in chunks of 40000 bytes.
F=$T_TMP/photo.jpg
{ cat "$FIX/Canon_40D.jpg"; head -c 300000 /dev/urandom; } >"$F"
CS=40000 SIZE=$(stat -c %s "$F") HASH=$(sha256sum "$F" | cut -d' ' -f1)
N=$(((SIZE + CS - 1) / CS))
mkdir -p "$T_TMP/c"
for ((i = 0; i < N; i++)); do dd if="$F" of="$T_TMP/c/$i" bs=$CS skip=$i count=1 2>/dev/null; done
csum() { sha256sum "$T_TMP/c/$1" | cut -d' ' -f1; }
session() { curl -sS -H "$AUTH" -X POST "$U/uploads" -d "{\"hash\":\"$HASH\",\"sizeBytes\":$SIZE,\"chunkSize\":$CS}" | jq -r .id; }
ID=$(session)
check "a session of $N chunks" '[[ "$ID" =~ ^[0-9a-f-]{36}$ ]] && [ $N -ge 8 ]'

# Every chunk at once, chunk 0 twice, chunk 1 also with the hash of chunk
# 2, chunk 3 also with a malformed hash. (One connection each: curl 7.88
# fails the second stream of a prior-knowledge HTTP/2 connection it reuses,
# for any request, with "Error in the HTTP2 framing layer": curl/curl#10634,
# fixed in curl 8.0.)
args=() PROTO=--http2-prior-knowledge
put() { # put NAME CHUNK FILE [HEADER]: one more transfer of the parallel curl
  [ ${#args[@]} -gt 0 ] && args+=(--next)
  args+=($PROTO -s -o "$T_TMP/r.$1" -w "$1 %{http_code}\n" -X PUT -H "$AUTH" --data-binary "@$3")
  [ -n "${4:-}" ] && args+=(-H "$4")
  args+=("$U/uploads/$ID/chunks/$2")
}
for ((i = 0; i < N; i++)); do put "c$i" $i "$T_TMP/c/$i" "X-Chunk-Sha256: $(csum $i)"; done
put dup0 0 "$T_TMP/c/0" "X-Chunk-Sha256: $(csum 0)"
put bad1 1 "$T_TMP/c/1" "X-Chunk-Sha256: $(csum 2)"
put junk3 3 "$T_TMP/c/3" "X-Chunk-Sha256: not-a-hash"
curl -Z --parallel-immediate --parallel-max 50 "${args[@]}" >"$T_TMP/codes" &
PPID_=$!
ok "GET /status is answered while the writes run" \
  bash -c "curl -sf -H '$AUTH' '$U/status' | jq -e '.deviceName == \"phone\"'"
wait $PPID_
code() { awk -v n="$1" '$1 == n {print $2}' "$T_TMP/codes"; }
oks=0; for ((i = 0; i < N; i++)); do [ "$(code c$i)" = 200 ] && oks=$((oks + 1)); done
check "every chunk stored: $oks of $N answered 200" '[ $oks = $N ] && [ "$(code dup0)" = 200 ]'
check "chunk 0 sent twice at once: written once, the other a duplicate" \
  '[ "$(jq -s -c "[.[].duplicate] | sort" "$T_TMP/r.c0" "$T_TMP/r.dup0")" = "[false,true]" ]'
check "a chunk whose X-Chunk-Sha256 does not match: 400" \
  '[ "$(code bad1)" = 400 ] && jq -r .error "$T_TMP/r.bad1" | grep -q "does not match its X-Chunk-Sha256"'
check "a malformed X-Chunk-Sha256: 400" '[ "$(code junk3)" = 400 ]'
check "the last answer counts every chunk" \
  '[ "$(jq -s "[.[].receivedCount] | max" "$T_TMP"/r.c*)" = $N ] && [ "$(jq -sc "[.[].chunks] | unique" "$T_TMP"/r.c*)" = "[$N]" ]'
S=$(curl -s -H "$AUTH" "$U/uploads/$ID")
check "the session: uploading, every chunk received" \
  '[ "$(jq -c "[.status, (.receivedChunks | length)]" <<<"$S")" = "[\"uploading\",$N]" ]'
R=$(curl -s -H "$AUTH" -X POST "$U/uploads/$ID/complete")
check "it completes (the bad-hash chunk stored nothing)" '[ "$(jq -r .status <<<"$R")" = completed ]'
P=$(jq -r .photoId <<<"$R")
check "...with the right bytes" '[ "$(curl -s -H "$AUTH" "$U/photos/$P/original" | sha256sum | cut -d" " -f1)" = "$HASH" ]'
check "a chunk for the completed session: 409" \
  '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "$AUTH" -X PUT --data-binary @"$T_TMP/c/0" "$U/uploads/$ID/chunks/0")" = 409 ]'

# A client that gives up before its chunk's write ends: stored anyway.
{ cat "$FIX/Nikon_D70.jpg"; head -c 100000 /dev/urandom; } >"$F"
SIZE=$(stat -c %s "$F") HASH=$(sha256sum "$F" | cut -d' ' -f1) N=$(((SIZE + CS - 1) / CS))
for ((i = 0; i < N; i++)); do dd if="$F" of="$T_TMP/c/$i" bs=$CS skip=$i count=1 2>/dev/null; done
ID=$(session)
curl -s -o /dev/null -H "$AUTH" -X PUT --max-time 0.1 --data-binary @"$T_TMP/c/1" "$U/uploads/$ID/chunks/1"; GONE=$?
curl -s -o /dev/null --http2-prior-knowledge -H "$AUTH" -X PUT --max-time 0.1 --data-binary @"$T_TMP/c/2" \
  "$U/uploads/$ID/chunks/2"; GONE2=$?
check "the clients gave up (curl timed out, HTTP/1.1 and HTTP/2)" '[ $GONE = 28 ] && [ $GONE2 = 28 ]'
got12() { [ "$(curl -s -H "$AUTH" "$U/uploads/$ID" | jq -c .receivedChunks)" = "[1,2]" ]; }
ok "their chunks are stored all the same" until_true 10 got12
for ((i = 0; i < N; i++)); do
  [ $i = 1 ] || [ $i = 2 ] || curl -s -o /dev/null -H "$AUTH" -X PUT --data-binary @"$T_TMP/c/$i" "$U/uploads/$ID/chunks/$i"
done
check "the session completes with its bytes" \
  'R=$(curl -s -H "$AUTH" -X POST "$U/uploads/$ID/complete"); [ "$(jq -r .status <<<"$R")" = completed ] && [ "$(curl -s -H "$AUTH" "$U/photos/$(jq -r .photoId <<<"$R")/original" | sha256sum | cut -d" " -f1)" = "$HASH" ]'

# Stopping with writes running and waiting (two run at a time, 300 ms each:
# the last of a dozen wait for over a second).
{ cat "$FIX/Kodak_CX7530.jpg"; head -c 440000 /dev/urandom; } >"$F"
SIZE=$(stat -c %s "$F") HASH=$(sha256sum "$F" | cut -d' ' -f1) N=$(((SIZE + CS - 1) / CS))
for ((i = 0; i < N; i++)); do dd if="$F" of="$T_TMP/c/$i" bs=$CS skip=$i count=1 2>/dev/null; done
ID=$(session)
args=()
# HTTP/2 and HTTP/1.1 in turn: a 503 must reach both (HTTP/2 forbids the
# Connection header HTTP/1.1 gets with it).
for ((i = 0; i < N; i++)); do
  if ((i % 2)); then PROTO=--http1.1; else PROTO=--http2-prior-knowledge; fi
  put "s$i" $i "$T_TMP/c/$i"
done
curl -Z --parallel-immediate --parallel-max 50 "${args[@]}" >"$T_TMP/codes" &
PPID_=$!
writing() { grep -q . <(curl -s -H "$AUTH" "$U/uploads/$ID" | jq -r 'select(.status == "uploading")'); }
ok "writes under way" until_true 10 writing
ok "the daemon stops cleanly meanwhile" stop_daemon "$A"
wait $PPID_
n200=$(grep -c " 200$" "$T_TMP/codes"); n503=$(grep -c " 503$" "$T_TMP/codes")
check "every write got an answer: $n200 stored, $n503 told to retry (503)" \
  '[ $((n200 + n503)) = $N ] && [ $n200 -ge 1 ] && [ $n503 -ge 1 ]'
ok "the daemon restarts" start_daemon "$A" --api 127.0.0.1:0
R=$(curl -s --unix-socket "$A/api.sock" -H "$AUTH" "http://x/uploads/$ID")
check "the chunks answered 200 are those the session lists" \
  '[ "$(jq -c .receivedChunks <<<"$R")" = "$(grep " 200$" "$T_TMP/codes" | sed "s/^s\([0-9]*\) .*/\1/" | sort -n | jq -sc .)" ]'
ok "the daemon stops" stop_daemon "$A"
check "no sanitizer report in the log" '! grep -q "ERROR: \|runtime error" "$A.log"'
finish
