#!/usr/bin/env bash
# shoebox get --out copies a held original on the daemon's thread pool: the
# daemon answers other requests while a copy runs (a test hook holds the
# copy until the test lets it go), and the copy arrives byte for byte with
# the CLI's usual output.
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
A=$T_TMP/a
GATE=$T_TMP/gate
PA=$(free_port)

ok "init" "$SB" --data "$A" init --name laptop
SHOEBOX_TEST_EXPORT_GATE=$GATE ok "start with the export gate" start_daemon "$A" --listen 127.0.0.1:$PA
ok "import a photo" "$SB" --data "$A" import "$FIX/Canon_40D.jpg"
ID=$("$SB" --data "$A" photos --json | jq -r '.[0].id')

"$SB" --data "$A" get "$ID" --out "$T_TMP/out.jpg" >"$T_TMP/get.out" 2>&1 &
GET=$!
ok "the copy has started and waits at the gate" until_true 30 test -e "$GATE.waiting"
check "the daemon answers while the copy runs" '[ "$(timeout 20 "$SB" --data "$A" status --json | jq .photos)" = 1 ]'
check "the photo list too" '[ "$(timeout 20 "$SB" --data "$A" photos --json | jq length)" = 1 ]'
check "nothing written yet" '[ ! -e "$T_TMP/out.jpg" ]'
touch "$GATE"
check "get ends well" 'wait $GET'
check "it says what it wrote" 'grep -q "^wrote $T_TMP/out.jpg ($(stat -c %s "$FIX/Canon_40D.jpg") bytes)$" "$T_TMP/get.out"'
check "the copy is byte-identical" 'cmp -s "$T_TMP/out.jpg" "$FIX/Canon_40D.jpg"'
check "no temp file is left" '! ls "$T_TMP"/out.jpg.shoebox-* >/dev/null 2>&1'
ok "get --json" bash -c "'$SB' --data '$A' --json get '$ID' --out '$T_TMP/out2.jpg' >'$T_TMP/get.json'"
check "--json gives held, size and the file name" \
  '[ "$(jq -c "[.held, .size == .done, .file_name]" "$T_TMP/get.json")" = "[true,true,\"Canon_40D.jpg\"]" ] && cmp -s "$T_TMP/out2.jpg" "$FIX/Canon_40D.jpg"'
check "a directory that does not exist is an error" \
  '! "$SB" --data "$A" get "$ID" --out "$T_TMP/no/such/dir/x.jpg" 2>"$T_TMP/err" && grep -q "cannot write the original" "$T_TMP/err"'
ok "the daemon stops" stop_daemon "$A"
finish
