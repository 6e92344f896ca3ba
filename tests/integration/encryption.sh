#!/usr/bin/env bash
# Encryption at rest: an encrypted library built from the fixtures leaves no
# known plaintext in any file of its data dir (names, camera makes, GPS,
# bytes of the photos), a wrong passphrase changes nothing, a flipped bit in
# the database or in a blob is reported and never served, the daemon waits
# locked for its passphrase, and the passphrase changes without touching
# the data. The same scan of a plain library must find plenty: the control
# that shows the scan can fail.
. "$(dirname "$0")/lib.sh"
: "${SBX_BLOBTOOL_BIN:?}" "${SHOEBOX_SHARED:?}"
TOOL="$SBX_BLOBTOOL_BIN"
FIX="$SHOEBOX_SHARED/fixtures/exif"
PASS='correct horse battery staple'
export SHOEBOX_PASSPHRASE="$PASS"
base=$((20000 + ($$ % 20000) + 7))
PA=$base PB=$((base + 1))

A=$T_TMP/a
ok "encrypted init (passphrase from SHOEBOX_PASSPHRASE)" "$SB" --data "$A" init --name laptop --encrypt
check "the key file is sealed" '[ "$(head -c 7 "$A/device.key")" = SBXKEY2 ] && [ "$(stat -c %a "$A/device.key")" = 600 ]'
check "init --json says encrypted" \
  '"$SB" --data "$T_TMP/j" --json init --encrypt | jq -e ".encrypted == true" >/dev/null'

ok "the daemon starts and waits locked" start_daemon "$A" --listen 127.0.0.1:$PA
S=$("$SB" --data "$A" status --json)
check "locked status: encrypted, locked, nothing else" \
  '[ "$(jq -c "[.encrypted, .locked, has(\"device_id\"), has(\"photos\")]" <<<"$S")" = "[true,true,false,false]" ]'
check "human status says locked" '"$SB" --data "$A" status | grep -q "locked"'
check "other commands refused while locked" \
  '! "$SB" --data "$A" photos 2>"$T_TMP/err" && grep -q "locked" "$T_TMP/err"'
check "a wrong passphrase is refused" \
  '! SHOEBOX_PASSPHRASE=wrong "$SB" --data "$A" unlock 2>"$T_TMP/err" && grep -q "wrong passphrase" "$T_TMP/err"'
check "still locked after it" '[ "$(jq_status "$A" .locked)" = true ]'
ok "unlock with the passphrase" "$SB" --data "$A" unlock
S=$("$SB" --data "$A" status --json)
check "status --json: encrypted true, unlocked" \
  '[ "$(jq -c "[.encrypted, .locked, .device_name]" <<<"$S")" = "[true,false,\"laptop\"]" ]'
check "a second unlock says so" \
  '! "$SB" --data "$A" unlock 2>"$T_TMP/err" && grep -q "already unlocked" "$T_TMP/err"'
ok "import the fixtures" "$SB" --data "$A" import "$FIX"
P=$("$SB" --data "$A" photos --json)
check "the photos are in the library" '[ "$(jq length <<<"$P")" -ge 10 ]'
check "with their GPS and makes" '[ "$(jq "[.[] | select(.location_lat != null)] | length" <<<"$P")" -ge 2 ]'
ok "album and tag" bash -c "id=\$(\"$SB\" --data \"$A\" album create 'Holiday in Toscana') && \"$SB\" --data \"$A\" tag \"$(jq -r '.[0].id' <<<"$P")\" sunset-over-siena"

# A device joining with --encrypt keeps what it receives encrypted too.
B=$T_TMP/b
URI=$("$SB" --data "$A" pair --json | jq -r .uri)
ok "b joins with --encrypt" env SHOEBOX_PASSPHRASE='b has its own' "$SB" --data "$B" join "$URI" --name phone --encrypt
check "b's key file is sealed" '[ "$(head -c 7 "$B/device.key")" = SBXKEY2 ]'
ok "b starts locked" start_daemon "$B" --listen 127.0.0.1:$PB
check "b is locked" '[ "$(jq_status "$B" .locked)" = true ]'
check "a's passphrase does not open b" \
  '! "$SB" --data "$B" unlock 2>"$T_TMP/err" && grep -q "wrong passphrase" "$T_TMP/err"'
ok "b unlocks with its own" env SHOEBOX_PASSPHRASE='b has its own' "$SB" --data "$B" unlock
ok "a and b converge" until_true 30 bash -c '[ "$("$0" --data "$1" status --json | jq -r .state_digest)" = "$("$0" --data "$2" status --json | jq -r .state_digest)" ]' "$SB" "$A" "$B"
check "b holds the photos" '[ "$(jq_status "$B" .photos)" = "$(jq length <<<"$P")" ]'
ok "b stops" stop_daemon "$B"
ok "the daemon stops" stop_daemon "$A"
# The originals in the blob store (the importer stores them itself once it
# writes blobs; the tool puts them in either way).
ok "originals into the blob store" "$TOOL" put "$A" "$FIX"/*
check "no WAL or journal left behind" '[ ! -e "$A/shoebox.db-wal" ] && [ ! -e "$A/shoebox.db-journal" ]'

# What must not be found: every fixture's name and 16 windows of its bytes,
# camera makes and models, GPS as text and as doubles, names typed by the
# user.
scan_args=()
for f in "$FIX"/*; do scan_args+=(-w "$f" -s "$(basename "$f")"); done
scan_args+=(-s Canon -s NIKON -s Nikon -s KODAK -s Apple -s "iPhone 11" -s COOLPIX -s "43.46" -s "11.88")
scan_args+=(-s laptop -s "Holiday in Toscana" -s sunset-over-siena -s "SQLite format 3" -s JFIF -s Exif)
while read -r lat lon; do
  scan_args+=(-d "$lat" -d "$lon")
done < <(jq -r '.[] | select(.location_lat != null) | "\(.location_lat) \(.location_lon)"' <<<"$P")
while read -r h; do scan_args+=(-s "$h"); done < <(jq -r '.[].hash' <<<"$P")
ok "no known plaintext in any file of the encrypted data dir" "$TOOL" scan "$A" "${scan_args[@]}"
ok "none in the joined device's data dir either" "$TOOL" scan "$B" "${scan_args[@]}"
check "the scan covered the database and the blobs" \
  '[ "$(find "$A" -type f | wc -l)" -ge 12 ] && [ "$(find "$A/blobs" -type f | wc -l)" -ge 11 ]'
check "grep finds no camera make either" '! grep -r -a -l -F -e Canon -e NIKON -e "Toscana" "$A"'

# The control: the same library unencrypted shows all of it.
C=$T_TMP/plain
ok "plain init" env -u SHOEBOX_PASSPHRASE "$SB" --data "$C" init --name laptop
ok "plain daemon" start_daemon "$C"
check "plain status --json: encrypted false" '[ "$(jq_status "$C" .encrypted)" = false ]'
ok "plain import" "$SB" --data "$C" import "$FIX"
ok "plain album" "$SB" --data "$C" album create 'Holiday in Toscana'
ok "plain daemon stops" stop_daemon "$C"
ok "plain originals" env -u SHOEBOX_PASSPHRASE "$TOOL" put "$C" "$FIX"/*
"$TOOL" scan "$C" "${scan_args[@]}" >"$T_TMP/plain-scan" 2>&1
check "the same scan finds names, makes, GPS and photo bytes in a plain data dir" \
  'grep -q "FOUND string \"Canon_40D.jpg\"" "$T_TMP/plain-scan" && grep -q "FOUND string \"NIKON\"" "$T_TMP/plain-scan" &&
   grep -q "double" "$T_TMP/plain-scan" && grep -q "FOUND bytes" "$T_TMP/plain-scan"'

# A wrong passphrase changes nothing, from the daemon or from passwd.
sums() { (cd "$1" && find . -type f ! -name shoeboxd.lock -print0 | sort -z | xargs -0 sha256sum); }
before=$(sums "$A")
printf 'not the passphrase\n' >"$T_TMP/wrong"
chmod 600 "$T_TMP/wrong"
check "shoeboxd --passphrase-file with a wrong one exits, saying so" \
  '! timeout 20 "$SBD" --data "$A" --passphrase-file "$T_TMP/wrong" 2>"$T_TMP/err" && grep -q "wrong passphrase" "$T_TMP/err"'
check "passwd with a wrong one refuses" \
  '! SHOEBOX_PASSPHRASE=nope SHOEBOX_NEW_PASSPHRASE=x "$SB" --data "$A" passwd 2>"$T_TMP/err" && grep -q "wrong passphrase" "$T_TMP/err"'
check "nothing in the data dir changed" '[ "$(sums "$A")" = "$before" ]'
printf '%s\n' "$PASS" >"$T_TMP/pass"
chmod 644 "$T_TMP/pass"
check "a passphrase file others can read is refused" \
  '! timeout 20 "$SBD" --data "$A" --passphrase-file "$T_TMP/pass" 2>"$T_TMP/err" && grep -q "chmod 600" "$T_TMP/err"'
chmod 600 "$T_TMP/pass"

# Unattended start, then a new passphrase without re-encrypting anything.
ok "shoeboxd --passphrase-file starts unlocked" start_daemon "$A" --passphrase-file "$T_TMP/pass"
check "its status is unlocked with the photos" '[ "$(jq_status "$A" "[.locked, .photos >= 10] | @csv")" = "false,true" ]'
db_before=$(sha256sum <"$A/shoebox.db")
ok "passwd while the daemon runs" env SHOEBOX_NEW_PASSPHRASE='a new one' "$SB" --data "$A" passwd
check "the data was not re-encrypted" '[ "$(sha256sum <"$A/shoebox.db")" = "$db_before" ]'
ok "the daemon stops" stop_daemon "$A"
check "the old passphrase no longer opens it" \
  '! timeout 20 "$SBD" --data "$A" --passphrase-file "$T_TMP/pass" 2>"$T_TMP/err" && grep -q "wrong passphrase" "$T_TMP/err"'
export SHOEBOX_PASSPHRASE='a new one'
ok "the new one does" start_daemon "$A"
ok "unlock with the new one" "$SB" --data "$A" unlock
check "same library, same photos" '[ "$(jq_status "$A" .photos)" = "$(jq length <<<"$P")" ]'
ok "SIGTERM stops it" stop_daemon "$A"
ok "a locked daemon stops cleanly too" bash -c "\"$SBD\" --data \"$A\" >/dev/null 2>&1 & p=\$!; for i in \$(seq 50); do \"$SB\" --data \"$A\" status >/dev/null 2>&1 && break; sleep 0.1; done; kill -TERM \$p; wait \$p"

# A flipped bit in the database: reported as damage, the daemon does not
# start on it, the file is left as it was.
D=$T_TMP/d
cp -a "$A" "$D"
printf '%s\n' 'a new one' >"$T_TMP/pass2"
chmod 600 "$T_TMP/pass2"
size=$(stat -c %s "$D/shoebox.db")
for page in 0 2 $((size / 4096 - 1)); do
  off=$((page * 4096 + 1234))
  orig=$(dd if="$D/shoebox.db" bs=1 skip=$off count=1 status=none | od -An -tu1 | tr -d ' ')
  printf "$(printf '\\%03o' $((orig ^ 4)))" | dd of="$D/shoebox.db" bs=1 seek=$off conv=notrunc status=none
  sum=$(sha256sum <"$D/shoebox.db")
  check "a flipped bit in page $((page + 1)) is reported as damage" \
    '! timeout 20 "$SBD" --data "$D" --passphrase-file "$T_TMP/pass2" 2>"$T_TMP/err" && grep -q "damaged" "$T_TMP/err"'
  check "and the database is left as it was" '[ "$(sha256sum <"$D/shoebox.db")" = "$sum" ]'
  printf "$(printf '\\%03o' "$orig")" | dd of="$D/shoebox.db" bs=1 seek=$off conv=notrunc status=none
done
ok "restored, it opens again" start_daemon "$D" --passphrase-file "$T_TMP/pass2"
ok "and stops" stop_daemon "$D"

# A flipped bit in a blob: detected, never served; the others still read.
E=$T_TMP/e
cp -a "$A" "$E"
canon=$(sha256sum "$FIX/Canon_40D.jpg" | cut -d' ' -f1)
nikon=$(sha256sum "$FIX/Nikon_D70.jpg" | cut -d' ' -f1)
ok "a blob reads back byte for byte" "$TOOL" get "$E" "$canon" "$T_TMP/canon.out"
check "the same bytes" 'cmp -s "$T_TMP/canon.out" "$FIX/Canon_40D.jpg"'
# Blob files sit at blobs/ab/cd/NAME; tmp/ and partial/ are one level up.
for f in $(find "$E/blobs" -mindepth 3 -type f); do
  printf 'Z' | dd of="$f" bs=1 seek=100 conv=notrunc status=none
done
check "a damaged blob is reported corrupt by verify" \
  '! "$TOOL" verify "$E" "$canon" >"$T_TMP/out" 2>&1 && grep -q "corrupt" "$T_TMP/out"'
check "and a read of it fails without writing anything" \
  '! "$TOOL" get "$E" "$nikon" "$T_TMP/nikon.out" 2>/dev/null && [ ! -e "$T_TMP/nikon.out" ]'
finish
