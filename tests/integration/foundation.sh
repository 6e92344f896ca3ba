#!/usr/bin/env bash
# Foundation: init, the daemon's lifecycle and lock, status, and bad input
# that must give a clear error and change nothing.
. "$(dirname "$0")/lib.sh"

A=$T_TMP/a
B=$T_TMP/b
ok "init a cache device" "$SB" --data "$A" init --name laptop --role cache
ok "init a full device" "$SB" --data "$B" init --name nas --role full
check "secret key is mode 0600" '[ "$(stat -c %a "$A/device.key")" = 600 ]'
sum_before=$(sha256sum "$A/device.key" "$A/shoebox.db")
check "init twice refuses" '! "$SB" --data "$A" init 2>"$T_TMP/err" && grep -q "already holds a library" "$T_TMP/err"'
check "refused init changed nothing" '[ "$(sha256sum "$A/device.key" "$A/shoebox.db")" = "$sum_before" ]'
check "status without a daemon says so" '! "$SB" --data "$A" status 2>"$T_TMP/err" && grep -q "not running" "$T_TMP/err"'

ok "daemon a starts" start_daemon "$A"
ok "daemon b starts" start_daemon "$B"
check "control socket is mode 0600" '[ "$(stat -c %a "$A/control.sock")" = 600 ]'
check "second daemon on one data dir exits non-zero" \
  '! timeout 10 "$SBD" --data "$A" 2>"$T_TMP/err" && grep -q "already using" "$T_TMP/err"'

S=$("$SB" --data "$A" status --json)
check "status has a human device id with check characters" \
  '[[ "$(jq -r .device_id <<<"$S")" =~ ^[A-Z2-7]{7}(-[A-Z2-7]{7}){7}$ ]]'
check "status has the library id as a UUID" \
  '[[ "$(jq -r .library_id <<<"$S")" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]'
check "status has role, name and counts" \
  '[ "$(jq -r "[.role, .device_name, .photos, .albums] | join(\",\")" <<<"$S")" = "cache,laptop,0,0" ]'
check "status has a 256-bit state digest" '[[ "$(jq -r .state_digest <<<"$S")" =~ ^[0-9a-f]{64}$ ]]'
check "two libraries have different ids" \
  '[ "$(jq -r .library_id <<<"$S")" != "$(jq_status "$B" .library_id)" ]'
check "role full is kept" '[ "$(jq_status "$B" .role)" = full ]'
check "human status names the device" '"$SB" --data "$A" status | grep -q "laptop"'
check "unknown command is an error" '! "$SB" --data "$A" frobnicate 2>/dev/null'

ok "SIGTERM stops daemon a cleanly" stop_daemon "$A"
check "control socket removed on shutdown" '[ ! -e "$A/control.sock" ]'
check "log lines carry levels" 'grep -q " info  shoeboxd" "$A.log"'
ok "daemon a restarts" start_daemon "$A"
check "identity survives a restart" '[ "$(jq_status "$A" .device_id)" = "$(jq -r .device_id <<<"$S")" ]'
ok "SIGINT stops daemon a cleanly" bash -c "kill -INT $(daemon_pid "$A"); for i in \$(seq 50); do kill -0 $(daemon_pid "$A") 2>/dev/null || exit 0; sleep 0.1; done; exit 1"

# Bad input: each gives a clear message and a non-zero exit, changes nothing.
C=$T_TMP/c
cp -a "$A" "$C"
rm -f "$C"/shoebox.db-wal "$C"/shoebox.db-shm
head -c 4096 /dev/urandom >"$C/shoebox.db"
sum=$(sha256sum "$C/shoebox.db")
check "garbage database refused" '! timeout 10 "$SBD" --data "$C" 2>"$T_TMP/err" && grep -qi "damaged\|not a shoebox database" "$T_TMP/err"'
check "garbage database left as it was" '[ "$(sha256sum "$C/shoebox.db")" = "$sum" ]'

D=$T_TMP/d
cp -a "$A" "$D"
# Damage the header of a b-tree page of a real database (page 3; pages are
# 4096 bytes): the kind of damage a bad sector or a torn copy leaves.
printf 'garbage-garbage-garbage-garbage!' | dd of="$D/shoebox.db" bs=1 seek=$((4096 * 2)) conv=notrunc status=none
sum=$(sha256sum "$D/shoebox.db")
check "damaged page refused" '! timeout 10 "$SBD" --data "$D" 2>"$T_TMP/err" && grep -qi "damaged" "$T_TMP/err"'
check "damaged database left as it was" '[ "$(sha256sum "$D/shoebox.db")" = "$sum" ]'

E=$T_TMP/e
cp -a "$A" "$E"
rm "$E/device.key"
check "missing key refused" '! timeout 10 "$SBD" --data "$E" 2>"$T_TMP/err" && grep -q "device key.*missing" "$T_TMP/err"'
cp "$A/device.key" "$E/device.key"
# Flip every bit of byte 20 (a fixed byte would already be there in one key of 256).
b=$(od -An -tu1 -j20 -N1 "$E/device.key" | tr -d ' ')
printf "\\$(printf '%03o' $((b ^ 255)))" | dd of="$E/device.key" bs=1 seek=20 conv=notrunc status=none
check "key byte changed" '! cmp -s "$A/device.key" "$E/device.key"'
check "damaged key refused" '! timeout 10 "$SBD" --data "$E" 2>"$T_TMP/err" && grep -q "damaged" "$T_TMP/err"'
cp "$A/device.key" "$E/device.key"
chmod 644 "$E/device.key"
check "key readable by others refused" '! timeout 10 "$SBD" --data "$E" 2>"$T_TMP/err" && grep -q "readable by others" "$T_TMP/err"'
check "missing data dir refused" '! timeout 10 "$SBD" --data "$T_TMP/nowhere" 2>"$T_TMP/err" && grep -q "does not exist" "$T_TMP/err"'

if command -v setpriv >/dev/null && [ "$(id -u)" = 0 ]; then
  F=$T_TMP/f
  cp -a "$A" "$F"
  chmod 700 "$F"
  chmod 755 "$T_TMP"
  check "data dir without permission refused" \
    '! timeout 10 setpriv --reuid=65534 --regid=65534 --clear-groups "$SBD" --data "$F" 2>"$T_TMP/err" && grep -q "no permission" "$T_TMP/err"'
  check "init into a dir without permission refused" \
    '! setpriv --reuid=65534 --regid=65534 --clear-groups "$SB" --data "$F/sub" init 2>"$T_TMP/err" && grep -qi "cannot create data dir\|permission" "$T_TMP/err"'
elif [ "$(id -u)" != 0 ]; then
  F=$T_TMP/f
  mkdir -m 000 "$F"
  check "data dir without permission refused" '! timeout 10 "$SBD" --data "$F" 2>"$T_TMP/err" && grep -q "no permission" "$T_TMP/err"'
  skip "init into a dir without permission refused" "covered above"
else
  skip "data dir without permission refused" "setpriv missing"
  skip "init into a dir without permission refused" "setpriv missing"
fi
finish
