#!/usr/bin/env bash
# The local HTTP API with a real client (curl): the bearer token, hash-first
# uploads (dedupe, a resumed upload across a daemon crash, a wrong hash
# refused with nothing stored), gallery pages and feed cursors across edits,
# deletes and restores, a reset after a rebuild, tampered cursors, media
# with ETag and Range, the JSON endpoints of the CLI's commands, HTTP/2.
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
command -v curl >/dev/null || { echo "1..0 # SKIP curl missing"; exit 0; }
A=$T_TMP/a
# Listeners take free ports (:0); /status over the unix socket says which.
PL=$((10000 + ($$ % 20000)))  # peers: --listen takes no :0
addr() { curl -s --unix-socket "$1/api.sock" -H "Authorization: Bearer $(cat "$1/api-token")" http://x/status | jq -r .api.listen; }

ok "init" "$SB" --data "$A" init --name phone
ok "daemon starts with --api" start_daemon "$A" --api 127.0.0.1:0 --listen 127.0.0.1:$PL
U=http://$(addr "$A")
TOK=$(cat "$A/api-token")
check "api-token is made at first start, mode 0600" '[ "$(stat -c %a "$A/api-token")" = 600 ] && [ ${#TOK} -ge 32 ]'
check "api socket is mode 0600" '[ "$(stat -c %a "$A/api.sock")" = 600 ]'

# api METHOD PATH [curl args...]: prints the body; the status goes to $T_TMP/code.
api() {
  local m=$1 p=$2; shift 2
  curl -sS -o "$T_TMP/body" -w '%{http_code}' -X "$m" -H "Authorization: Bearer $TOK" "$@" "$U$p" >"$T_TMP/code"
  cat "$T_TMP/body"
}
code() { cat "$T_TMP/code"; }

check "no token: 401" '[ "$(curl -s -o /dev/null -w "%{http_code}" $U/status)" = 401 ]'
check "wrong token: 401" '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "Authorization: Bearer x$TOK" $U/status)" = 401 ]'
check "status with the token" '[ "$(api GET /status | jq -r .deviceName)" = phone ] && [ "$(code)" = 200 ]'
check "the unix socket serves the same API" \
  '[ "$(curl -s --unix-socket "$A/api.sock" -H "Authorization: Bearer $TOK" http://localhost/status | jq -r .deviceName)" = phone ]'
check "HTTP/2 with prior knowledge" \
  '[ "$(curl -s --http2-prior-knowledge -o /dev/null -w "%{http_version}" -H "Authorization: Bearer $TOK" $U/status)" = 2 ]'
check "unknown endpoint: 404 JSON" '[ "$(api GET /nothing | jq -r .error)" != null ] && [ "$(code)" = 404 ]'
check "wrong method: 405" 'api PUT /photos >/dev/null; [ "$(code)" = 405 ]'

# upload FILE [CHUNK]: a whole hash-first upload; prints the complete answer.
upload() {
  local f=$1 cs=${2:-4096} size hash r id n i
  size=$(stat -c %s "$f"); hash=$(sha256sum "$f" | cut -d' ' -f1)
  r=$(api POST /uploads -d "{\"hash\":\"$hash\",\"sizeBytes\":$size,\"chunkSize\":$cs,\"fileName\":\"$(basename "$f")\"}")
  id=$(jq -r .id <<<"$r")
  if [ "$(jq -r .alreadyExists <<<"$r")" = true ]; then echo "$r"; return; fi
  n=$(jq -r .chunks <<<"$r")
  for ((i = 0; i < n; i++)); do
    dd if="$f" bs="$cs" skip="$i" count=1 2>/dev/null | api PUT "/uploads/$id/chunks/$i" --data-binary @- >/dev/null
  done
  api POST "/uploads/$id/complete"
}

FILES=(Canon_40D.jpg Nikon_D70.jpg Kodak_CX7530.jpg gps_DSCN0010.jpg gps_DSCN0012.jpg orientation_landscape_1.jpg
       orientation_landscape_6.jpg xmp_no_exif.jpg heic_IMG_5195.HEIC)
for f in "${FILES[@]}"; do upload "$FIX/$f" >"$T_TMP/up-$f.json"; done
check "every upload completed" \
  '[ "$(cat "$T_TMP"/up-*.json | jq -s "[.[] | select(.status == \"completed\" and .alreadyExists == false)] | length")" = ${#FILES[@]} ]'
check "photos counts the uploads" '[ "$(api GET /status | jq .photos)" = ${#FILES[@]} ]'
canon=$(jq -r .photoId "$T_TMP/up-Canon_40D.jpg.json")
nikon=$(jq -r .photoId "$T_TMP/up-Nikon_D70.jpg.json")
kodak=$(jq -r .photoId "$T_TMP/up-Kodak_CX7530.jpg.json")
check "the EXIF capture time is the photo's" '[ "$(api GET /photos/$canon | jq -r .capturedAt)" = 2008-05-30T15:56:01Z ]'
check "the blob store holds the original" '[ -n "$(find "$A/blobs" -name "$(sha256sum "$FIX/Canon_40D.jpg" | cut -c1-64)")" ]'

# Hash first: the same bytes again move nothing.
H=$(sha256sum "$FIX/Canon_40D.jpg" | cut -d' ' -f1); S=$(stat -c %s "$FIX/Canon_40D.jpg")
R=$(api POST /uploads -d "{\"hash\":\"$H\",\"sizeBytes\":$S,\"chunkSize\":1024,\"fileName\":\"again.jpg\"}")
check "a second upload of the same bytes: alreadyExists, completed at once" \
  '[ "$(jq -r "[.alreadyExists, .status, .photoId] | join(\",\")" <<<"$R")" = "true,completed,$canon" ]'
check "...and the session takes no bytes" \
  'dd if="$FIX/Canon_40D.jpg" bs=1024 count=1 2>/dev/null | api PUT "/uploads/$(jq -r .id <<<"$R")/chunks/0" --data-binary @- >/dev/null; [ "$(code)" = 409 ]'
check "...and the library did not grow" '[ "$(api GET /status | jq .photos)" = ${#FILES[@]} ]'

# A resumed upload: chunks 0 and 2 of 4, a crash, the rest after restart.
F=$FIX/orientation_landscape_3.jpg
H=$(sha256sum "$F" | cut -d' ' -f1); S=$(stat -c %s "$F"); CS=$(((S + 3) / 4))
R=$(api POST /uploads -d "{\"hash\":\"$H\",\"sizeBytes\":$S,\"chunkSize\":$CS,\"fileName\":\"resumed.jpg\"}")
UP=$(jq -r .id <<<"$R")
check "a four-chunk session" '[ "$(jq -r "[.chunks, .status, .alreadyExists] | join(\",\")" <<<"$R")" = "4,pending,false" ]'
for i in 0 2; do dd if="$F" bs=$CS skip=$i count=1 2>/dev/null | api PUT "/uploads/$UP/chunks/$i" --data-binary @- >/dev/null; done
check "a short chunk is refused" \
  'head -c 10 "$F" | api PUT "/uploads/$UP/chunks/1" --data-binary @- >/dev/null; [ "$(code)" = 400 ]'
check "complete with chunks missing: 409 names them" \
  '[ "$(api POST /uploads/$UP/complete | jq -c .missingChunks)" = "[1,3]" ] && [ "$(code)" = 409 ]'
kill -9 "$(daemon_pid "$A")"; wait "$(daemon_pid "$A")" 2>/dev/null
ok "the daemon restarts after a crash" start_daemon "$A" --api 127.0.0.1:0 --listen 127.0.0.1:$PL
U=http://$(addr "$A")
check "the session lists the chunks that arrived" \
  '[ "$(api GET /uploads/$UP | jq -c "[.status, .receivedChunks]")" = "[\"uploading\",[0,2]]" ]'
for i in 1 3 0; do dd if="$F" bs=$CS skip=$i count=1 2>/dev/null | api PUT "/uploads/$UP/chunks/$i" --data-binary @- >"$T_TMP/chunk$i"; done
check "a chunk sent twice is a duplicate, not rewritten" '[ "$(jq -r .duplicate "$T_TMP/chunk0")" = true ]'
R=$(api POST /uploads/$UP/complete)
check "the resumed upload completes" '[ "$(jq -r .status <<<"$R")" = completed ] && [ "$(code)" = 200 ]'
resumed=$(jq -r .photoId <<<"$R")
check "...with the right bytes" \
  '[ "$(api GET /photos/$resumed | jq -r .hash)" = "$H" ] && [ "$(api GET /photos/$resumed/original | sha256sum | cut -d" " -f1)" = "$H" ]'
check "staging files are gone" '[ -z "$(ls "$A/uploads")" ]'

# A wrong hash: refused, nothing stored.
F=$FIX/orientation_landscape_8.jpg
S=$(stat -c %s "$F"); WRONG=$(printf 'not these bytes' | sha256sum | cut -d' ' -f1); REAL=$(sha256sum "$F" | cut -d' ' -f1)
R=$(api POST /uploads -d "{\"hash\":\"$WRONG\",\"sizeBytes\":$S,\"chunkSize\":1048576}")
UP=$(jq -r .id <<<"$R")
api PUT "/uploads/$UP/chunks/0" --data-binary @"$F" >/dev/null
R=$(api POST /uploads/$UP/complete)
check "a wrong hash fails the session" \
  '[ "$(code)" = 422 ] && [ "$(jq -r .status <<<"$R")" = failed ] && jq -r .error <<<"$R" | grep -q "hash mismatch"'
check "...and stores nothing" \
  '[ -z "$(find "$A/blobs" -name "$REAL*" -o -name "$WRONG*")" ] && [ -z "$(ls "$A/uploads")" ] && [ "$(api GET /status | jq .photos)" = $((${#FILES[@]} + 1)) ]'
check "...for good: complete again is a conflict" 'api POST /uploads/$UP/complete >/dev/null; [ "$(code)" = 409 ]'
check "junk that hashes right is refused as not a photo" \
  'head -c 3000 /dev/urandom >"$T_TMP/junk"; R=$(upload "$T_TMP/junk" 1000); [ "$(jq -r .status <<<"$R")" = failed ]'

# Gallery pages: newest capture first, every photo once, a feed cursor.
N=$((${#FILES[@]} + 1))
ALL=$(api GET "/photos?limit=1000" | jq -r '.items[].id')
check "one page holds all, newest first" \
  '[ "$(wc -l <<<"$ALL")" = $N ] && api GET "/photos?limit=1000" | jq -e "[.items[].capturedAt] as \$t | \$t == (\$t | sort | reverse)" >/dev/null'
: >"$T_TMP/paged"
P=$(api GET "/photos?limit=2"); C0=$(jq -r .feedCursor <<<"$P")
pages=1
while :; do
  jq -r '.items[].id' <<<"$P" >>"$T_TMP/paged"
  nc=$(jq -r .nextCursor <<<"$P"); [ "$nc" = null ] && break
  P=$(api GET "/photos?limit=2&cursor=$nc"); pages=$((pages + 1)); [ $pages -gt 20 ] && break
done
check "pages of 2 give every photo once, in the same order" '[ "$(cat "$T_TMP/paged")" = "$ALL" ] && [ $pages = $(((N + 1) / 2)) ]'
check "a limit over 1000 is refused" 'api GET "/photos?limit=1001" >/dev/null; [ "$(code)" = 400 ]'
check "the feed from the first page's cursor is empty" '[ "$(api GET "/feed?cursor=$C0" | jq ".items | length")" = 0 ]'

# Edits, a delete and a restore, then the feed since C0.
ALB=$(api POST /albums -d '{"name":"Cameras"}' | jq -r .id)
check "album create: 201" '[ "$(code)" = 201 ] && [[ "$ALB" =~ ^[0-9a-f-]{36}$ ]]'
api POST /albums/$ALB/photos -d "{\"photoIds\":[\"$canon\",\"$nikon\"]}" >/dev/null
# A second album with the same photo: deleting it changes both albums in
# one step (one change sequence), which the feed pages must not split.
ALB2=$(api POST /albums -d '{"name":"Nikons"}' | jq -r .id)
api POST /albums/$ALB2/photos -d "{\"photoIds\":[\"$nikon\"]}" >/dev/null
api PUT /photos/$kodak/tags/old%20camera >/dev/null
check "tags via the API" '[ "$(api GET /photos/$kodak | jq -c .tags)" = "[\"old camera\"]" ]'
api DELETE /photos/$nikon >/dev/null
F1=$(api GET "/feed?cursor=$C0")
check "feed: the tagged photo, then the tombstone, in change order" \
  '[ "$(jq -c "[.items[] | select(.type != \"album\") | [.type, .data.id]]" <<<"$F1")" = "[[\"photo\",\"$kodak\"],[\"tombstone\",\"$nikon\"]]" ]'
check "feed: both albums that held the deleted photo, changed with it" \
  '[ "$(jq -c "[.items[] | select(.type == \"album\") | .data.id] | sort" <<<"$F1")" = "$(jq -nc "[\"$ALB\", \"$ALB2\"] | sort")" ] && [ "$(jq -c "[.items[] | .type] | .[-3:] | sort" <<<"$F1")" = "[\"album\",\"album\",\"tombstone\"]" ]'
check "the tombstone says what was deleted, and when" \
  'jq -e ".items[] | select(.type == \"tombstone\") | .data.kind == \"photo\" and (.data.deletedAt | test(\"Z$\"))" <<<"$F1" >/dev/null'
check "the deleted photo left the albums in the feed" \
  '[ "$(jq -c "[.items[] | select(.type == \"album\") | .data.photoIds] | sort" <<<"$F1")" = "[[],[\"$canon\"]]" ]'
C1=$(jq -r .nextCursor <<<"$F1")
api POST /photos/$nikon/restore >/dev/null
F2=$(api GET "/feed?cursor=$C1")
check "after a restore the photo comes back as a photo" \
  'jq -e "[.items[] | select(.type == \"photo\") | .data.id] | index(\"$nikon\")" <<<"$F2" >/dev/null && ! jq -e ".items[] | select(.type == \"tombstone\")" <<<"$F2" >/dev/null'
: >"$T_TMP/fpaged"; c=$C0; k=0
while :; do
  FP=$(api GET "/feed?cursor=$c&limit=1"); jq -c '.items[] | [.type, (.data.id // .data.kind)]' <<<"$FP" >>"$T_TMP/fpaged"
  c=$(jq -r .nextCursor <<<"$FP"); k=$((k + 1))
  [ "$(jq -r .hasMore <<<"$FP")" = true ] && [ $k -lt 50 ] || break
done
check "feed pages of one give the same changes as one page" \
  '[ "$(cat "$T_TMP/fpaged")" = "$(api GET "/feed?cursor=$C0" | jq -c ".items[] | [.type, (.data.id // .data.kind)]")" ]'
check "an idle feed hands back a cursor that stays empty" \
  'c=$(api GET "/feed?cursor=$C0" | jq -r .nextCursor); [ "$(api GET "/feed?cursor=$c" | jq ".items | length")" = 0 ]'
check "a tampered cursor is refused (400)" \
  'T=$(sed "s/^\(.....\)./\1A/" <<<"$C1"); [ "$T" = "$C1" ] && T=$(sed "s/^\(.....\)./\1B/" <<<"$C1"); api GET "/feed?cursor=$T" >/dev/null; [ "$(code)" = 400 ]'
check "a page cursor is not a feed cursor" \
  'pc=$(api GET "/photos?limit=1" | jq -r .nextCursor); api GET "/feed?cursor=$pc" >/dev/null; [ "$(code)" = 400 ]'
D0=$(api GET /status | jq -r .stateDigest)
ok "rebuild the model from the log" "$SB" --data "$A" rebuild
check "the rebuild keeps the state digest" '[ "$(api GET /status | jq -r .stateDigest)" = "$D0" ]'
check "a cursor from before the rebuild gets a reset (410)" \
  '[ "$(api GET "/feed?cursor=$C1" | jq -r .reset)" = true ] && [ "$(code)" = 410 ]'
check "a fresh bootstrap works again" \
  'c=$(api GET "/photos?limit=1" | jq -r .feedCursor); api GET "/feed?cursor=$c" >/dev/null; [ "$(code)" = 200 ]'

# Media: thumbnails, ETag, Range.
check "thumbnail: a JPEG" \
  '[ "$(curl -s -o "$T_TMP/t.jpg" -w "%{http_code} %{content_type}" -H "Authorization: Bearer $TOK" $U/photos/$canon/thumb)" = "200 image/jpeg" ] && [ "$(head -c 2 "$T_TMP/t.jpg" | od -An -tx1 | tr -d " ")" = ffd8 ]'
check "medium: a JPEG" '[ "$(curl -s -o /dev/null -w "%{http_code} %{content_type}" -H "Authorization: Bearer $TOK" $U/photos/$canon/medium)" = "200 image/jpeg" ]'
ET=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $TOK" $U/photos/$canon/original | tr -d '\r' | awk -F': ' 'tolower($1) == "etag" {print $2}')
check "the original's ETag is its SHA-256" '[ "$ET" = "\"$(sha256sum "$FIX/Canon_40D.jpg" | cut -d" " -f1)\"" ]'
check "If-None-Match: 304" '[ "$(curl -s -o /dev/null -w "%{http_code}" -H "If-None-Match: $ET" -H "Authorization: Bearer $TOK" $U/photos/$canon/original)" = 304 ]'
check "Range: 206 with those bytes" \
  '[ "$(curl -s -r 100-1099 -w "%{http_code}" -o "$T_TMP/part" -H "Authorization: Bearer $TOK" $U/photos/$canon/original)" = 206 ] && cmp -s "$T_TMP/part" <(tail -c +101 "$FIX/Canon_40D.jpg" | head -c 1000)'
check "a suffix range" 'cmp -s <(curl -s -r -50 -H "Authorization: Bearer $TOK" $U/photos/$canon/original) <(tail -c 50 "$FIX/Canon_40D.jpg")'
check "an unsatisfiable range: 416" '[ "$(curl -s -r 99999999- -o /dev/null -w "%{http_code}" -H "Authorization: Bearer $TOK" $U/photos/$canon/original)" = 416 ]'
check "a HEIC gets a JPEG thumbnail" \
  '[ "$(curl -s -o /dev/null -w "%{http_code} %{content_type}" -H "Authorization: Bearer $TOK" $U/photos/$(jq -r .photoId "$T_TMP/up-heic_IMG_5195.HEIC.json")/thumb)" = "200 image/jpeg" ]'
check "a photo id that is not a UUID: 400" 'api GET /photos/xyz/thumb >/dev/null; [ "$(code)" = 400 ]'

# Imports through the API run on the importer's thread; GET /imports follows.
mkdir -p "$T_TMP/imp"; cp "$FIX/gps_DSCN0012.jpg" "$FIX/orientation_landscape_8.jpg" "$T_TMP/imp/"
R=$(api POST /imports -d "{\"paths\":[\"$T_TMP/imp\"]}")
check "import through the API: 202, and it runs" '[ "$(code)" = 202 ] && jq -e "has(\"running\")" <<<"$R" >/dev/null'
imported() { api GET /imports | jq -e '.items[0] | .status == "done" and .imported == 1 and .duplicates == 1' >/dev/null; }
ok "the import job ends: one new photo, one duplicate" until_true 60 imported
check "a relative import path is refused" 'api POST /imports -d "{\"paths\":[\"imp\"]}" >/dev/null; [ "$(code)" = 400 ]'
imp=$(api GET "/photos?limit=1000" | jq -r '.items[] | select(.fileName == "orientation_landscape_8.jpg") | .id')
# The thumbnail comes from the background renderer, after the import ended.
ok "an imported photo's thumbnail, once rendered" \
  until_true 60 bash -c "[ \"\$(curl -s -o /dev/null -w '%{http_code} %{content_type}' -H 'Authorization: Bearer $TOK' $U/photos/$imp/thumb)\" = '200 image/jpeg' ]"
check "and its original" 'cmp -s <(api GET /photos/$imp/original) "$FIX/orientation_landscape_8.jpg"'
check "free space with no full peer frees nothing" '[ "$(api POST /free-space -d "{}" | jq .freed)" = 0 ]'

# JSON endpoints of the CLI's commands.
check "albums list" '[ "$(api GET /albums | jq -r "[.items[].name] | join(\",\")")" = "Cameras,Nikons" ]'
check "album rename" '[ "$(api PATCH /albums/$ALB -d "{\"name\":\"Old cameras\"}" | jq -r .name)" = "Old cameras" ]'
check "album remove a photo" '[ "$(api DELETE /albums/$ALB/photos/$canon | jq -c .photoIds)" = "[\"$nikon\"]" ]'
check "the CLI sees the API's edits" '"$SB" --data "$A" albums --json | jq -e ".[] | select(.name == \"Old cameras\")" >/dev/null'
check "untag" '[ "$(api DELETE /photos/$kodak/tags/old%20camera | jq -c .tags)" = "[]" ]'
check "a missing album: 404" 'api GET /albums/00000000-0000-4000-8000-000000000000 >/dev/null; [ "$(code)" = 404 ]'
# A command's failure is answered by its error code, not by its wording.
check "deleting an album that does not exist: 404" \
  'api DELETE /albums/00000000-0000-4000-8000-000000000000 >/dev/null; [ "$(code)" = 404 ]'
check "adding a photo that does not exist: 404" \
  'api POST /albums/$ALB/photos -d "{\"photoIds\":[\"00000000-0000-4000-8000-000000000000\"]}" >/dev/null; [ "$(code)" = 404 ]'
check "an album name over the limit: 400" \
  'api PATCH /albums/$ALB -d "{\"name\":\"$(head -c 300 /dev/zero | tr "\0" x)\"}" >/dev/null; [ "$(code)" = 400 ]'
check "devices" '[ "$(api GET /devices | jq -r ".items[0].self")" = true ]'
check "pair gives an invitation URI" '[[ "$(api POST /pair -d "{\"ttl\":60}" | jq -r .uri)" == shoebox://pair\?* ]]'
check "a malformed body is refused" 'api POST /albums -d "{nope" >/dev/null; [ "$(code)" = 400 ]'
check "album delete" 'api DELETE /albums/$ALB >/dev/null; [ "$(code)" = 200 ] && [ "$(api GET /albums | jq ".items | length")" = 1 ]'
check "deleted photos list" \
  'api DELETE /photos/$kodak >/dev/null; [ "$(api GET "/photos?deleted=true" | jq -r ".items[0].id")" = "$kodak" ]'
check "a share link for a deleted photo: 409" \
  'api POST /shares -d "{\"photoId\":\"$kodak\"}" | jq -e ".error | test(\"deleted\")" >/dev/null && [ "$(code)" = 409 ]'
check "a deleted photo's bytes uploaded again restore it" \
  '[ "$(upload "$FIX/Kodak_CX7530.jpg" | jq -r "[.alreadyExists, .restored] | join(\",\")")" = "true,true" ] && [ "$(api GET /photos/$kodak | jq .isDeleted)" = false ]'

ok "daemon stops cleanly with a keep-alive client connected" bash -c "
  exec 3<>/dev/tcp/${U#http://}; printf 'GET /status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $TOK\r\n\r\n' >&3; sleep 0.3
  kill -TERM $(daemon_pid "$A"); for i in \$(seq 50); do kill -0 $(daemon_pid "$A") 2>/dev/null || exit 0; sleep 0.1; done; exit 1"
check "the API socket is removed on shutdown" '[ ! -e "$A/api.sock" ]'
ok "daemon restarts" start_daemon "$A" --api "${U#http://}" --listen 127.0.0.1:$PL
ok "init b" "$SB" --data "$T_TMP/b" init --name other
check "an --api address in use is an error" \
  '! timeout 10 "$SBD" --data "$T_TMP/b" --api "${U#http://}" 2>"$T_TMP/err" && grep -q "cannot listen" "$T_TMP/err"'
ok "with --api off the daemon starts" start_daemon "$T_TMP/b" --api off
check "...and serves its unix socket only" \
  '[ "$(curl -s --unix-socket "$T_TMP/b/api.sock" -H "Authorization: Bearer $(cat "$T_TMP/b/api-token")" http://x/status | jq -r ".api.listen")" = null ]'
check "pairing on a daemon that does not listen for peers: 409" \
  '[ "$(curl -s -o /dev/null -w "%{http_code}" -X POST --unix-socket "$T_TMP/b/api.sock" -H "Authorization: Bearer $(cat "$T_TMP/b/api-token")" http://x/pair)" = 409 ]'
BID=$(curl -s --unix-socket "$T_TMP/b/api.sock" -H "Authorization: Bearer $(cat "$T_TMP/b/api-token")" http://x/status | jq -r .deviceId)
check "removing a device the library never had: 404" 'api DELETE /devices/$BID >/dev/null; [ "$(code)" = 404 ]'
check "a device id with a typo: 400" \
  'T=$(sed "s/^\(...\)./\1A/" <<<"$BID"); [ "$T" = "$BID" ] && T=$(sed "s/^\(...\)./\1B/" <<<"$BID"); api DELETE /devices/$T >/dev/null; [ "$(code)" = 400 ]'
finish
