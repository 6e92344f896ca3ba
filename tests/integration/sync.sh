#!/usr/bin/env bash
# Peer sync: three daemons on loopback pair by URI, edit concurrently and
# converge; a killed daemon catches up; strangers, junk and removed devices
# are refused while the daemons keep serving their peers.
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
PA=$(free_port) PB=$(free_port) PC=$(free_port)
A=$T_TMP/a B=$T_TMP/b C=$T_TMP/c

digest() { jq_status "$1" .state_digest; }
converged() { local d; d=$(digest "$1"); shift; for x in "$@"; do [ "$(digest "$x")" = "$d" ] || return 1; done; }

ok "init a (full)" "$SB" --data "$A" init --name nas --role full
ok "a listens" start_daemon "$A" --listen 127.0.0.1:$PA
ok "a imports" "$SB" --data "$A" import "$FIX"

"$SB" --data "$A" pair --png "$T_TMP/qr.png" >"$T_TMP/pair.txt"
URI1=$(grep '^shoebox://pair' "$T_TMP/pair.txt" | tail -1)
check "pair prints a QR code in half blocks" 'grep -q "▀\|▄\|█" "$T_TMP/pair.txt"'
check "pair prints the URI on a line of its own" '[[ "$URI1" == shoebox://pair\?* ]]'
if command -v zbarimg >/dev/null; then
  check "the PNG QR code decodes to the URI" '[ "$(zbarimg --raw -q -Sdisable -Sqrcode.enable "$T_TMP/qr.png")" = "$URI1" ]'
else
  skip "the PNG QR code decodes to the URI" "zbarimg missing"
fi
ok "b joins with the URI" "$SB" --data "$B" join "$URI1" --name laptop --role cache
check "b holds the library after join" '[ "$(sqlite3 "$B/shoebox.db" "SELECT count(*) FROM photos WHERE put_hlc IS NOT NULL")" = "$(ls "$FIX" | wc -l | tr -d " ")" ]'
check "a used invitation is refused" \
  '! "$SB" --data "$T_TMP/d" join "$URI1" --name late 2>"$T_TMP/err" && grep -q "refused" "$T_TMP/err"'
check "a failed join leaves no library behind" '[ ! -e "$T_TMP/d/shoebox.db" ]'
URI2=$("$SB" --data "$A" pair --json | jq -r .uri)
BAD=$(sed -E 's/psk=[A-Za-z0-9_-]{4}/psk=AAAA/' <<<"$URI2")
check "a wrong secret is refused" '! "$SB" --data "$T_TMP/e" join "$BAD" 2>"$T_TMP/err" && grep -q "refused" "$T_TMP/err"'
check "the inviter logs why" 'grep -q "pairing from .* refused" "$A.log"'
PAST=$(sed -E 's/exp=[0-9]+/exp=1000000000/' <<<"$URI2")
check "an expired invitation is refused" '! "$SB" --data "$T_TMP/f" join "$PAST" 2>"$T_TMP/err" && grep -q "expired" "$T_TMP/err"'
ok "c joins with a fresh URI" "$SB" --data "$C" join "$URI2" --name phone
ok "b starts" start_daemon "$B" --listen 127.0.0.1:$PB
ok "c starts" start_daemon "$C" --listen 127.0.0.1:$PC
ok "three devices converge" until_true 30 converged "$A" "$B" "$C"
check "status lists connected peers" '[ "$(jq_status "$A" "[.peers[] | select(.connected)] | length")" = 2 ]'
check "devices lists three members" '[ "$("$SB" --data "$A" devices --json | jq length)" = 3 ]'

# Concurrent edits on three devices.
P=$("$SB" --data "$B" photos --json)
p1=$(jq -r '.[0].id' <<<"$P") p2=$(jq -r '.[1].id' <<<"$P") p3=$(jq -r '.[2].id' <<<"$P")
album=$("$SB" --data "$B" album create "Summer")
"$SB" --data "$B" album add "$album" "$p1" "$p2" >/dev/null
"$SB" --data "$C" tag "$p1" beach >/dev/null
"$SB" --data "$A" rm "$p3" >/dev/null
ok "concurrent edits converge" until_true 30 converged "$A" "$B" "$C"
check "the album reached a" '[ "$("$SB" --data "$A" albums --json | jq -r ".[0].name")" = Summer ]'
check "the tag reached b" '"$SB" --data "$B" photos --json | jq -e ".[] | select(.id == \"$p1\") | .tags == [\"beach\"]" >/dev/null'
check "the delete reached c" '[ "$("$SB" --data "$C" photos --deleted --json | jq -r ".[0].id")" = "$p3" ]'

# A daemon killed hard misses edits, then catches up on restart.
kill_hard "$C"
"$SB" --data "$A" restore "$p3" >/dev/null
"$SB" --data "$B" album rename "$album" "Summer 2008" >/dev/null
ok "c restarts" start_daemon "$C" --listen 127.0.0.1:$PC
ok "c catches up" until_true 30 converged "$A" "$B" "$C"

# A stranger with a valid handshake, and junk on the port.
check "a stranger completing a Noise handshake is refused" \
  '"$SBX_STRANGER_BIN" 127.0.0.1:$PA "$A/shoebox.db" | tee "$T_TMP/stranger" | grep -q "refused: the peer closed the session: the peer is not a member" && grep -q "session closed: the peer is not a member" "$A.log"'
for i in 1 2 3 4 5; do head -c $((i * 777)) /dev/urandom >"/dev/tcp/127.0.0.1/$PA" 2>/dev/null || true; done
printf '\x00\x30partial' >"/dev/tcp/127.0.0.1/$PA" 2>/dev/null || true
printf '\xff\xff' >"/dev/tcp/127.0.0.1/$PA" 2>/dev/null || true
check "a still runs after junk" 'kill -0 "$(daemon_pid "$A")"'
"$SB" --data "$B" tag "$p2" sunset >/dev/null
ok "a still syncs with its peers after junk" until_true 30 converged "$A" "$B" "$C"

# Removing a device: it can no longer connect or write.
CID=$(jq_status "$C" .device_id)
ok "remove c" "$SB" --data "$A" device remove "$CID"
check "devices shows c removed" '"$SB" --data "$A" devices --json | jq -e ".[] | select(.device_id == \"$CID\") | .removed" >/dev/null'
ok "the removal reaches b" until_true 30 bash -c "'$SB' --data '$B' devices --json | jq -e '.[] | select(.device_id == \"$CID\") | .removed' >/dev/null"
sleep 2
"$SB" --data "$C" tag "$p2" forbidden >/dev/null 2>&1 || true
sleep 3
check "c's later edits never reach a" \
  '! "$SB" --data "$A" photos --json | jq -e ".[] | select(.tags | index(\"forbidden\"))" >/dev/null'
check "a and b still agree" 'converged "$A" "$B"'
ok "a stops" stop_daemon "$A"
ok "b stops" stop_daemon "$B"
ok "c stops" stop_daemon "$C"
finish
