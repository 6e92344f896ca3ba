#!/usr/bin/env bash
# The library through the CLI: import, photos, delete and restore, albums,
# tags, id prefixes, and the state digest across a restart.
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/exif"

A=$T_TMP/a
ok "init" "$SB" --data "$A" init --name laptop
ok "daemon starts" start_daemon "$A"
d0=$(jq_status "$A" .state_digest)
ok "import the camera fixtures" bash -c "'$SB' --data '$A' import --json '$FIX' >'$T_TMP/imp.json'"
check "import summary counts every file" '[ "$(jq -r "[.imported, .duplicates] | join(\",\")" "$T_TMP/imp.json")" = "$(ls "$FIX" | wc -l | tr -d " "),0" ]'
check "import again adds nothing" \
  '[ "$("$SB" --data "$A" import --json "$FIX" | jq -r "[.imported, .duplicates] | join(\",\")")" = "0,$(ls "$FIX" | wc -l | tr -d " ")" ]'

P=$("$SB" --data "$A" photos --json)
n=$(jq length <<<"$P")
check "photos lists every photo" '[ "$n" = "$(ls "$FIX" | wc -l | tr -d " ")" ]'
check "photos use the seed field names" \
  '[ "$(jq -r ".[0] | [has(\"id\"), has(\"hash\"), has(\"file_name\"), has(\"size_bytes\"), has(\"captured_at\"), has(\"width\"), has(\"height\"), has(\"mime_type\"), has(\"location_lat\"), has(\"location_lon\"), has(\"camera_make\"), has(\"camera_model\"), has(\"is_deleted\")] | all" <<<"$P")" = true ]'
check "EXIF date of the Canon file" '[ "$(jq -r ".[] | select(.file_name == \"Canon_40D.jpg\") | .captured_at" <<<"$P")" = 2008-05-30T15:56:01Z ]'
check "GPS of a south-west fixture is signed" \
  'jq -e ".[] | select(.file_name == \"gps_DSCN0010.jpg\") | .location_lat > 43 and .location_lon > 11" <<<"$P" >/dev/null'
check "state digest moved" '[ "$(jq_status "$A" .state_digest)" != "$d0" ]'

canon=$(jq -r '.[] | select(.file_name == "Canon_40D.jpg") | .id' <<<"$P")
nikon=$(jq -r '.[] | select(.file_name == "Nikon_D70.jpg") | .id' <<<"$P")
kodak=$(jq -r '.[] | select(.file_name == "Kodak_CX7530.jpg") | .id' <<<"$P")
# A one-character prefix shared by two photos is ambiguous; a unique one works.
amb=$(jq -r '[.[].id[0:1]] | group_by(.) | map(select(length > 1)) | .[0][0] // empty' <<<"$P")
if [ -n "$amb" ]; then
  check "ambiguous prefix refused" '! "$SB" --data "$A" rm "$amb" 2>"$T_TMP/err" && grep -q ambiguous "$T_TMP/err"'
else
  skip "ambiguous prefix refused" "no two ids share a first character"
fi
check "unknown id refused" '! "$SB" --data "$A" rm ffffffff-0000 2>"$T_TMP/err" && grep -q "no photo" "$T_TMP/err"'

ok "rm by unique prefix" "$SB" --data "$A" rm "${canon:0:13}"
check "deleted photo leaves the list" '[ "$("$SB" --data "$A" photos --json | jq length)" = $((n - 1)) ]'
check "deleted photo is listed as deleted" \
  '[ "$("$SB" --data "$A" photos --deleted --json | jq -r ".[0].id + \" \" + (.[0].is_deleted|tostring)")" = "$canon true" ]'
ok "restore" "$SB" --data "$A" restore "$canon"
check "restored photo is back" '[ "$("$SB" --data "$A" photos --json | jq length)" = "$n" ]'

album=$("$SB" --data "$A" album create "Old cameras")
check "album create prints a full id" '[[ "$album" =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]'
ok "album add" "$SB" --data "$A" album add "$album" "$canon" "$nikon" "$kodak"
check "albums lists photo_ids in order" \
  '[ "$("$SB" --data "$A" albums --json | jq -r ".[0].photo_ids | join(\",\")")" = "$canon,$nikon,$kodak" ]'
ok "album remove" "$SB" --data "$A" album remove "$album" "$nikon"
check "removed item is gone" '[ "$("$SB" --data "$A" albums --json | jq -r ".[0].photo_ids | join(\",\")")" = "$canon,$kodak" ]'
ok "rm a photo of the album" "$SB" --data "$A" rm "$kodak"
check "deleted photo drops out of the album" '[ "$("$SB" --data "$A" albums --json | jq -r ".[0].photo_ids | join(\",\")")" = "$canon" ]'
ok "restore it" "$SB" --data "$A" restore "$kodak"
check "restore brings it back into the album" \
  '[ "$("$SB" --data "$A" albums --json | jq -r ".[0].photo_ids | join(\",\")")" = "$canon,$kodak" ]'
ok "album rename" "$SB" --data "$A" album rename "${album:0:8}" "Vintage"
check "album has its new name" '[ "$("$SB" --data "$A" albums --json | jq -r ".[0].name")" = Vintage ]'

ok "tag" "$SB" --data "$A" tag "$nikon" beach
ok "tag again, other case" "$SB" --data "$A" tag "$nikon" sunset
check "photo has its tags" \
  '[ "$("$SB" --data "$A" photos --json | jq -r ".[] | select(.id == \"$nikon\") | .tags | join(\",\")")" = "beach,sunset" ]'
ok "untag" "$SB" --data "$A" untag "$nikon" beach
check "untagged" '[ "$("$SB" --data "$A" photos --json | jq -r ".[] | select(.id == \"$nikon\") | .tags | join(\",\")")" = "sunset" ]'

ok "album delete" "$SB" --data "$A" album delete "$album"
check "deleted album leaves the list" '[ "$("$SB" --data "$A" albums --json | jq length)" = 0 ]'

# The background renderer writes the thumbnails of the import: done before
# the digest is taken.
ok "the background renders are done" \
  until_true 120 bash -c "[ \"\$('$SB' --data '$A' status --json | jq .renders.pending)\" = 0 ]"
S1=$("$SB" --data "$A" status --json)
ok "daemon stops" stop_daemon "$A"
ok "daemon restarts" start_daemon "$A"
check "state digest survives a restart" '[ "$(jq_status "$A" .state_digest)" = "$(jq -r .state_digest <<<"$S1")" ]'
check "counts survive a restart" '[ "$(jq_status "$A" .photos)" = "$n" ]'
check "an import of a missing path is an error" '! "$SB" --data "$A" import "$T_TMP/nothing" 2>/dev/null'
mkdir -p "$T_TMP/junk"
head -c 5000 /dev/urandom >"$T_TMP/junk/noise.jpg"
head -c 100 "$FIX/Canon_40D.jpg" >"$T_TMP/junk/truncated.jpg"
check "junk files are reported, not imported" \
  '[ "$("$SB" --data "$A" import --json "$T_TMP/junk" | jq -r "[.imported, (.errors | length)] | join(\",\")")" = "0,2" ]'
finish
