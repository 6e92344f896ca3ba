#!/usr/bin/env bash
# A failed unlock unwinds: when opening an encrypted library fails after its
# engine and blob store are open (a test hook fails the importer's or the
# renderer's start once), the daemon stays locked with nothing open, and
# the next unlock opens the library from nothing: it works, and the daemon
# stops cleanly (sanitizer builds fail the stop on a leak or a use after
# free).
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"
export SHOEBOX_PASSPHRASE='correct horse battery staple'
A=$T_TMP/a
PA=$(free_port)

ok "encrypted init" "$SB" --data "$A" init --name laptop --encrypt
for step in import render; do
  SHOEBOX_TEST_FAIL_OPEN=$step ok "[$step] the daemon starts" start_daemon "$A" --listen 127.0.0.1:$PA
  check "[$step] the daemon waits locked" '[ "$(jq_status "$A" .locked)" = true ]'
  check "[$step] the first unlock fails at that step" \
    '! "$SB" --data "$A" unlock 2>"$T_TMP/err" && grep -q "cannot" "$T_TMP/err"'
  check "[$step] still locked, nothing of the library shown" \
    '[ "$(jq_status "$A" "[.locked, has(\"photos\")]" | jq -c .)" = "[true,false]" ]'
  ok "[$step] the next unlock works" "$SB" --data "$A" unlock
  check "[$step] unlocked" '[ "$(jq_status "$A" .locked)" = false ]'
  ok "[$step] import into it" "$SB" --data "$A" import "$FIX/Canon_40D.jpg"
  check "[$step] the photo is in the library" '[ "$(jq_status "$A" .photos)" = 1 ]'
  ok "[$step] the daemon stops cleanly" stop_daemon "$A"
  check "[$step] no sanitizer report" '! grep -q "Sanitizer" "$A.log"'
done
finish
