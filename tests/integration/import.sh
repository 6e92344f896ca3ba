#!/usr/bin/env bash
# Import through the CLI: a Google Takeout in two zip parts (sidecars split
# from their media, an album folder with a localized metadata file, trashed,
# favorite and archived items), the same Takeout extracted to a folder, a
# second import that adds nothing, a kill -9 in the middle of an import and
# its resume, progress while it runs, and a responsive daemon throughout.
. "$(dirname "$0")/lib.sh"
FIX="$SHOEBOX_SHARED/fixtures/takeout/gpth-pl"
EXIF="$SHOEBOX_SHARED/fixtures/exif"

# ---- the Takeout, prepared as Google would ship it ----
SRC=$T_TMP/src
mkdir -p "$SRC/Takeout"
cp -rp "$FIX/." "$SRC/Takeout/"
chmod -R u+w "$SRC"
G="$SRC/Takeout/Zdjęcia Google"
ALBUM_DIR="$G/Wakacje nad morzem"
mkdir -p "$ALBUM_DIR"
for f in IMG_20200516_154811.jpg IMG_20200520_184607.jpg xd.gif; do
  cp -p "$G/Photos from 2020/$f" "$G/Photos from 2020/$f.json" "$ALBUM_DIR/"
done
# The album's title comes from its metadata file, whatever the names.
echo '{"title":"Wakacje 2020","description":"","access":"protected","date":{"timestamp":"1600000000","formatted":"x"}}' \
  >"$ALBUM_DIR/metadane.json"
edit() { jq "$2" "$1" >"$1.new" && mv "$1.new" "$1"; }
edit "$G/Photos from 2019/received_2406590499662709.jpeg.json" '. + {trashed: true}'
edit "$G/Photos from 2020/IMG_20200626_102054.jpg.json" '. + {favorited: true}'
edit "$G/Photos from 2020/IMG_20200628_135408.jpg.json" '. + {archived: true}'

# Two parts: the sidecars of one year folder and the album travel in the
# second, named without .zip (recognised by content).
(cd "$SRC" && find Takeout -type f | LC_ALL=C sort >all.txt &&
  grep -E "Photos from 2020/.*\.json$|Wakacje" all.txt >b.txt &&
  grep -vxF -f b.txt all.txt >a.txt &&
  zip -q -X part1.zip -@ <a.txt && zip -q -X part2.data -@ <b.txt)
# Media files (not JSON) under the Google Photos root, album copies apart.
n_media=$(find "$G" -type f ! -name '*.json' ! -path "$ALBUM_DIR/*" | wc -l | tr -d ' ')

A=$T_TMP/a
ok "init" "$SB" --data "$A" init --name laptop
ok "daemon starts" start_daemon "$A"
ok "import a Takeout of two zip parts" \
  bash -c "'$SB' --data '$A' import --json '$SRC/part2.data' '$SRC/part1.zip' >'$T_TMP/imp.json'"
check "--json prints one line with exactly the summary keys" \
  '[ "$(wc -l <"$T_TMP/imp.json")" = 1 ] && [ "$(jq -c "keys" "$T_TMP/imp.json")" = "[\"duplicates\",\"errors\",\"imported\",\"skipped\"]" ]'
check "every media file imported once ($n_media)" '[ "$(jq .imported "$T_TMP/imp.json")" = "$n_media" ]'
check "album copies are duplicates of the year folder's" '[ "$(jq .duplicates "$T_TMP/imp.json")" = 3 ]'
check "the orphan sidecar is reported" \
  'jq -e ".errors[] | select(.path | endswith(\"editing_multiple_lines_pt1.webm.json\")) | .reason | test(\"sidecar\")" "$T_TMP/imp.json" >/dev/null'
check "the media without a sidecar is reported (and imported)" \
  'jq -e ".errors[] | select(.path | endswith(\"tia3059641059518022454.gif\")) | .reason | test(\"without a Takeout sidecar\")" "$T_TMP/imp.json" >/dev/null'
check "the archive browser page is reported as not media" \
  'jq -e ".errors[] | select(.path | endswith(\".html\")) | .reason | test(\"not a photo\")" "$T_TMP/imp.json" >/dev/null'
check "skipped: the orphan sidecar and the page" '[ "$(jq .skipped "$T_TMP/imp.json")" = 2 ]'

"$SB" --data "$A" photos --json >"$T_TMP/live.json"
"$SB" --data "$A" photos --deleted --json >"$T_TMP/deleted.json"
jq -s 'add' "$T_TMP/live.json" "$T_TMP/deleted.json" >"$T_TMP/all.json"
check "nothing lost: live + deleted = media" '[ "$(jq length "$T_TMP/all.json")" = "$n_media" ]'
check "the trashed item is imported as deleted" \
  '[ "$(jq -r "[.[] | .file_name] | join(\",\")" "$T_TMP/deleted.json")" = received_2406590499662709.jpeg ]'

# Every sidecar's photoTakenTime (UTC seconds) is the capture time of the
# photo its title names.
bad=0; n_dates=0
while IFS= read -r -d '' js; do
  media="${js%.json}"
  [ -f "$media" ] || continue
  case "$js" in "$ALBUM_DIR"/*) continue ;; esac
  title=$(jq -r .title "$js")
  want=$(date -u -d "@$(jq -r .photoTakenTime.timestamp "$js")" +%Y-%m-%dT%H:%M:%SZ)
  have=$(jq -r --arg t "$title" '.[] | select(.file_name == $t) | .captured_at' "$T_TMP/all.json")
  n_dates=$((n_dates + 1))
  if [ "$have" != "$want" ]; then bad=$((bad + 1)); echo "# $title: captured_at $have, sidecar says $want"; fi
done < <(find "$G" -name '*.json' -print0)
check "captured_at is photoTakenTime for all $n_dates sidecars" '[ "$bad" = 0 ] && [ "$n_dates" -ge 20 ]'
check "one photo's date, spelled out" \
  '[ "$(jq -r ".[] | select(.file_name == \"IMG_20200516_154811.jpg\") | .captured_at" "$T_TMP/all.json")" = 2020-05-16T13:48:12Z ]'
check "geoData becomes the location" \
  'jq -e ".[] | select(.file_name == \"IMG_20200516_154811.jpg\") | (.location_lat - 49.21468333333333 | fabs) < 1e-9 and (.location_lon - 22.641144444444443 | fabs) < 1e-9" "$T_TMP/all.json" >/dev/null'
check "0,0 in the sidecar is no location" \
  '[ "$(jq -r ".[] | select(.file_name == \"xd.gif\") | .location_lat" "$T_TMP/all.json")" = null ]'
check "no sidecar: the date comes from the file time" \
  '[ "$(jq -r ".[] | select(.file_name == \"tia3059641059518022454.gif\") | .captured_at | .[0:4]" "$T_TMP/all.json")" != null ]'
check "favorited and archived are kept" \
  '[ "$(jq -r "[.[] | select(.favorite) | .file_name] + [.[] | select(.archived) | .file_name] | join(\",\")" "$T_TMP/all.json")" = "IMG_20200626_102054.jpg,IMG_20200628_135408.jpg" ]'

"$SB" --data "$A" albums --json >"$T_TMP/albums.json"
check "one album, titled from its metadata file" '[ "$(jq -r "[.[].name] | join(\",\")" "$T_TMP/albums.json")" = "Wakacje 2020" ]'
want_ids=$(for f in IMG_20200516_154811.jpg IMG_20200520_184607.jpg xd.gif; do
  jq -r --arg t "$f" '.[] | select(.file_name == $t) | .id' "$T_TMP/all.json"; done | paste -sd, -)
check "the album holds the year folder's photos, in file order" \
  '[ "$(jq -r ".[0].photo_ids | join(\",\")" "$T_TMP/albums.json")" = "$want_ids" ]'
check "year folders are not albums" '[ "$(jq length "$T_TMP/albums.json")" = 1 ]'

DB="$A/shoebox.db"
check "a blob for every original" \
  '[ "$(sqlite3 "$DB" "SELECT count(*) FROM blobs WHERE kind = '"'"'original'"'"' AND complete = 1")" = "$n_media" ]'
check "blob.held announced for every original" '[ "$(sqlite3 "$DB" "SELECT count(*) FROM blob_holders WHERE held = 1")" = "$n_media" ]'
# Thumbnails and mediums come from the background renderer, after the
# import returned: wait for it (bounded), then look.
ok "the background renderer finishes (status: no render pending)" \
  until_true 180 bash -c "[ \"\$('$SB' --data '$A' status --json | jq .renders.pending)\" = 0 ]"
check "thumbnails and mediums rendered for the JPEGs" \
  '[ "$(sqlite3 "$DB" "SELECT count(*) FROM photos WHERE mime_type = '"'"'image/jpeg'"'"' AND (thumb_hash IS NULL OR medium_hash IS NULL)")" = 0 ]'
check "other types are not queued, nothing failed, the queue is empty" \
  '[ "$(jq_status "$A" .renders.failed)" = 0 ] && [ "$(sqlite3 "$DB" "SELECT count(*) FROM render_queue")" = 0 ] && [ "$(sqlite3 "$DB" "SELECT count(*) FROM photos WHERE mime_type = '"'"'image/gif'"'"' AND thumb_hash IS NULL")" -gt 0 ]'
# (A photo smaller than a thumbnail has one rendition for both sizes: the
# same bytes, one blob.)
check "the renditions are complete blobs of this device" \
  '[ "$(sqlite3 "$DB" "SELECT count(*) FROM photos p JOIN blobs t ON t.hash = p.thumb_hash AND t.complete = 1 JOIN blobs m ON m.hash = p.medium_hash AND m.complete = 1")" = "$(sqlite3 "$DB" "SELECT count(*) FROM photos WHERE thumb_hash IS NOT NULL")" ]'
check "every photo's hash is its original's blob" \
  '[ "$(sqlite3 "$DB" "SELECT count(*) FROM photos p LEFT JOIN blobs b ON b.hash = p.hash WHERE b.hash IS NULL")" = 0 ]'

entries=$(jq_status "$A" .entries)
digest=$(jq_status "$A" .state_digest)
ok "import the same archive again" bash -c "'$SB' --data '$A' import --json '$SRC/part1.zip' '$SRC/part2.data' >'$T_TMP/again.json'"
check "again: nothing imported, everything a duplicate" \
  '[ "$(jq -r "[.imported, .duplicates] | join(\",\")" "$T_TMP/again.json")" = "0,$((n_media + 3))" ]'
check "again: no entry written, same state digest" \
  '[ "$(jq_status "$A" .entries)" = "$entries" ] && [ "$(jq_status "$A" .state_digest)" = "$digest" ]'
ok "restore the trashed item" "$SB" --data "$A" restore "$(jq -r '.[0].id' "$T_TMP/deleted.json")"
check "restored" '[ "$("$SB" --data "$A" photos --json | jq length)" = "$n_media" ]'

# ---- a crash between the photos' transaction and the job's rows ----
E=$T_TMP/e
ok "init a library for the crash" "$SB" --data "$E" init --name crash
export SHOEBOX_TEST_IMPORT_EXIT_AFTER_WRITE=1
ok "daemon starts (test hook: exit after the first photo write)" start_daemon "$E"
unset SHOEBOX_TEST_IMPORT_EXIT_AFTER_WRITE
check "the import dies with the daemon" '! "$SB" --data "$E" import "$SRC/part1.zip" "$SRC/part2.data" 2>/dev/null'
wait "$(daemon_pid "$E")" 2>/dev/null
check "the photos of the first batch were written, their rows say applying" \
  '[ "$(sqlite3 "$E/shoebox.db" "SELECT count(*) FROM photos")" -gt 0 ] && [ "$(sqlite3 "$E/shoebox.db" "SELECT count(*) FROM import_job_files WHERE state = '"'"'applying'"'"'")" -gt 0 ]'
ok "daemon restarts" start_daemon "$E"
ok "run the import again" bash -c "'$SB' --data '$E' import --json '$SRC/part1.zip' '$SRC/part2.data' >'$T_TMP/crash.json'"
check "what the crashed run wrote counts as imported, not duplicate" \
  '[ "$(jq -c "[.imported, .duplicates, .skipped]" "$T_TMP/crash.json")" = "$(jq -c "[.imported, .duplicates, .skipped]" "$T_TMP/imp.json")" ]'
check "the album written after the crash is complete" \
  '[ "$("$SB" --data "$E" albums --json | jq -c "[.[] | [.name, (.photo_ids | length)]]")" = "[[\"Wakacje 2020\",3]]" ]'
check "the trashed item is deleted" '[ "$("$SB" --data "$E" photos --deleted --json | jq length)" = 1 ]'
ok "stop it" stop_daemon "$E"

# ---- the same Takeout extracted to a folder ----
B=$T_TMP/b
ok "init a second library" "$SB" --data "$B" init --name nas
ok "its daemon starts" start_daemon "$B"
ok "import the extracted Takeout folder" bash -c "'$SB' --data '$B' import --json '$SRC/Takeout' >'$T_TMP/dir.json'"
check "folder: same counts as the zips" \
  '[ "$(jq -c "[.imported, .duplicates, .skipped]" "$T_TMP/dir.json")" = "$(jq -c "[.imported, .duplicates, .skipped]" "$T_TMP/imp.json")" ]'
# Photo ids derive from the library, so the two libraries compare by name.
album_names() { jq -n -c --slurpfile a "$1" --slurpfile p "$2" \
  '[$a[0][] | [.name, [.photo_ids[] as $id | $p[0][] | select(.id == $id) | .file_name]]]'; }
"$SB" --data "$B" albums --json >"$T_TMP/b_albums.json"
("$SB" --data "$B" photos --json; "$SB" --data "$B" photos --deleted --json) | jq -s add >"$T_TMP/b_all.json"
check "folder: the same album with the same photos in the same order" \
  '[ "$(album_names "$T_TMP/b_albums.json" "$T_TMP/b_all.json")" = "$(album_names "$T_TMP/albums.json" "$T_TMP/all.json")" ] && [ "$(album_names "$T_TMP/albums.json" "$T_TMP/all.json" | jq ".[0][1] | length")" = 3 ]'
facts() { jq -c --arg skip "$NOSIDE" 'map(select(.file_name != $skip) | [.file_name, .captured_at, .location_lat, .location_lon, .favorite, .archived, .is_deleted]) | sort' "$1"; }
NOSIDE=tia3059641059518022454.gif
check "folder: the same names, dates, places and flags" '[ "$(facts "$T_TMP/b_all.json")" = "$(facts "$T_TMP/all.json")" ]'
# Without a sidecar the date is the file time: a zip keeps it to 2 seconds.
secs() { jq -r --arg n "$NOSIDE" '.[] | select(.file_name == $n) | .captured_at | sub("\\.[0-9]+Z$"; "Z") | fromdate' "$1"; }
check "folder and zip: the file time of the item without a sidecar, within 2 s" \
  '[ "$(secs "$T_TMP/b_all.json")" -ge 1000000000 ] && d=$(( $(secs "$T_TMP/b_all.json") - $(secs "$T_TMP/all.json") )) && [ "${d#-}" -le 2 ]'
ok "stop the second daemon" stop_daemon "$B"

# ---- a killed import resumes ----
GEN=$T_TMP/gen
mkdir -p "$GEN/sub"
for i in $(seq -w 1 80); do
  d="$GEN"; [ $((10#$i % 3)) = 0 ] && d="$GEN/sub"
  { cat "$EXIF/Canon_40D.jpg"; head -c 48 /dev/urandom; } >"$d/img_$i.jpg"
done
head -c 3000 /dev/urandom >"$GEN/noise.bin"
n_gen=80
C=$T_TMP/c
ok "init a third library" "$SB" --data "$C" init --name phone
# One processing thread: 80 files take about 5 s, whatever the cores.
export SHOEBOX_TEST_IMPORT_DELAY_MS=60 SHOEBOX_IMPORT_THREADS=1
ok "slow daemon starts (test hook: 60 ms per file, one thread)" start_daemon "$C"
unset SHOEBOX_TEST_IMPORT_DELAY_MS SHOEBOX_IMPORT_THREADS
"$SB" --data "$C" import --json "$GEN" >"$T_TMP/killed.json" 2>"$T_TMP/killed.err" &
imp_pid=$!
ok "the import shows in status with its progress" \
  until_true 10 bash -c "'$SB' --data '$C' status --json | jq -e '.import_jobs[0] | .files_total == $((n_gen + 1)) and .bytes_total > 0 and .files_done >= 0'"
check "the daemon answers while the import runs" 'timeout 2 "$SB" --data "$C" photos --json >/dev/null'
check "a second import is refused while one runs" \
  '! "$SB" --data "$C" import "$EXIF" 2>"$T_TMP/busy.err" && grep -q "already running" "$T_TMP/busy.err"'
ok "some batches land" until_true 20 bash -c "[ \$('$SB' --data '$C' status --json | jq .photos) -ge 20 ]"
kill -KILL "$(daemon_pid "$C")"
wait "$imp_pid" 2>/dev/null
before=$(sqlite3 "$C/shoebox.db" "SELECT count(*) FROM photos")
check "killed midway: part of the files are in" '[ "$before" -ge 20 ] && [ "$before" -lt "$n_gen" ]'
ok "daemon restarts" start_daemon "$C"
check "the killed job is not shown as running" '[ "$(jq_status "$C" ".import_jobs | length")" = 0 ]'
ok "run the same import again" bash -c "'$SB' --data '$C' import --json '$GEN' >'$T_TMP/resumed.json'"
check "resumed: complete counts, no duplicates" \
  '[ "$(jq -c "[.imported, .duplicates, .skipped]" "$T_TMP/resumed.json")" = "[$n_gen,0,1]" ]'
check "resumed: every file once in the library" '[ "$(jq_status "$C" .photos)" = "$n_gen" ]'
check "resumed: one original blob per photo" \
  '[ "$(sqlite3 "$C/shoebox.db" "SELECT count(*) FROM blobs WHERE kind = '"'"'original'"'"'")" = "$n_gen" ]'
check "resumed: the same job went on" 'grep -q "import resumed" "$C.log" && [ "$(sqlite3 "$C/shoebox.db" "SELECT count(*) FROM import_jobs")" = 1 ]'
check "the unreadable file is reported" '[ "$(jq -r ".errors[0].path" "$T_TMP/resumed.json")" = "$GEN/noise.bin" ]'

# ---- renders: a killed daemon finishes them; a corrupt image fails once ----
RSRC=$T_TMP/rsrc
mkdir -p "$RSRC"
cp "$EXIF"/*.jpg "$EXIF"/*.HEIC "$RSRC/"
# A JPEG without its quantization tables: its bytes hash and probe (size,
# EXIF), but no decoder can render it.
{ head -c 5660 "$EXIF/Canon_40D.jpg"; tail -c +5799 "$EXIF/Canon_40D.jpg"; } >"$RSRC/zz_no_tables.jpg"
n_r=$(find "$RSRC" -type f | wc -l | tr -d ' ')
R=$T_TMP/r
ok "init a library for the renders" "$SB" --data "$R" init --name renders
# One render thread, 1.5 s per photo: the renders outlast the import.
export SHOEBOX_TEST_RENDER_DELAY_MS=1500 SHOEBOX_RENDER_THREADS=1
ok "slow renderer starts (test hook: 1.5 s per render)" start_daemon "$R"
unset SHOEBOX_TEST_RENDER_DELAY_MS SHOEBOX_RENDER_THREADS
ok "import returns before the renders are done" bash -c "'$SB' --data '$R' import --json '$RSRC' >'$T_TMP/r.json'"
check "every file imported, the corrupt one too" '[ "$(jq .imported "$T_TMP/r.json")" = "$n_r" ]'
check "status shows the render backlog" '[ "$(jq_status "$R" .renders.pending)" -gt 0 ]'
# A thumbnail still queued is not rendered on the daemon's loop by the API:
# 503 with Retry-After, the renderer makes it.
queued=$(sqlite3 "$R/shoebox.db" "SELECT hex(q.photo_id) FROM render_queue q JOIN photos p ON p.id = q.photo_id WHERE q.state = 'pending' AND p.thumb_hash IS NULL AND p.file_name != 'zz_no_tables.jpg' ORDER BY p.file_name DESC LIMIT 1" | tr 'A-F' 'a-f' | sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/')
check "a queued thumbnail through the API: 503 with Retry-After" \
  'curl -s -D "$T_TMP/q.h" -o /dev/null --unix-socket "$R/api.sock" -H "Authorization: Bearer $(cat "$R/api-token")" "http://x/photos/$queued/thumb" && grep -q "^HTTP/1.1 503" "$T_TMP/q.h" && grep -qi "^retry-after: " "$T_TMP/q.h"'
kill_hard "$R"
check "renders left pending in the database by the killed daemon" \
  '[ "$(sqlite3 "$R/shoebox.db" "SELECT count(*) FROM render_queue q JOIN photos p ON p.id = q.photo_id WHERE q.state = '"'"'pending'"'"' AND p.thumb_hash IS NULL")" -gt 0 ]'
ok "daemon restarts" start_daemon "$R"
ok "it finishes the renders" until_true 120 bash -c "[ \"\$('$SB' --data '$R' status --json | jq .renders.pending)\" = 0 ]"
check "every photo has its thumbnail and medium but the corrupt one" \
  '[ "$(sqlite3 "$R/shoebox.db" "SELECT group_concat(file_name) FROM photos WHERE thumb_hash IS NULL OR medium_hash IS NULL")" = zz_no_tables.jpg ]'
check "the corrupt image is marked failed, with the reason" \
  '[ "$(jq_status "$R" .renders.failed)" = 1 ] && sqlite3 "$R/shoebox.db" "SELECT error FROM render_queue WHERE state = '"'"'failed'"'"'" | grep -q "cannot render the image"'
ok "stop it" stop_daemon "$R"
tries=$(grep -c "render: photo .*cannot render" "$R.log")
ok "start it again" start_daemon "$R"
sleep 3
check "the failed render is not tried again (tried $tries time(s) before)" \
  '[ "$(grep -c "render: photo .*cannot render" "$R.log")" = "$tries" ] && [ "$tries" -le 2 ] && [ "$(jq_status "$R" .renders.failed)" = 1 ] && [ "$(jq_status "$R" .renders.pending)" = 0 ]'
check "shoebox status says it" '"$SB" --data "$R" status | grep -q "^renders  0 thumbnails to render, 1 failed"'
# The API decodes nothing on the daemon's loop: a failed render is answered
# from its record, a photo never tried is handed to the renderer.
uuid_of() { # uuid_of FILE_NAME: the photo's id in R
  sqlite3 "$R/shoebox.db" "SELECT hex(id) FROM photos WHERE file_name = '$1'" | tr 'A-F' 'a-f' |
    sed -E 's/(.{8})(.{4})(.{4})(.{4})(.{12})/\1-\2-\3-\4-\5/'
}
rapi() { curl -s -D "$T_TMP/rh" -o "$T_TMP/rb" --unix-socket "$R/api.sock" -H "Authorization: Bearer $(cat "$R/api-token")" "http://x$1"; }
CORRUPT=$(uuid_of zz_no_tables.jpg)
check "the failed render's thumbnail: 404 with the recorded reason" \
  'rapi /photos/$CORRUPT/thumb; grep -q "^HTTP/1.1 404" "$T_TMP/rh" && jq -r .error "$T_TMP/rb" | grep -q "rendering this photo failed (cannot render the image"'
check "...and its medium; neither is tried again" \
  'rapi /photos/$CORRUPT/medium; grep -q "^HTTP/1.1 404" "$T_TMP/rh" && jq -r .error "$T_TMP/rb" | grep -q "cannot render the image" && [ "$(grep -c "render: photo .*cannot render" "$R.log")" = "$tries" ] && [ "$(jq_status "$R" .renders.failed)" = 1 ]'
ok "stop it again" stop_daemon "$R"
# A photo the renderer never saw: imported by a daemon without render
# threads, its queue row gone (as in a library from before the renderer).
{ cat "$EXIF/Canon_40D.jpg"; printf 'bytes after the end: a photo of its own'; } >"$T_TMP/late.jpg"
export SHOEBOX_RENDER_THREADS=0
ok "a daemon without render threads" start_daemon "$R"
unset SHOEBOX_RENDER_THREADS
ok "it imports one more photo" "$SB" --data "$R" import "$T_TMP/late.jpg"
ok "stop it" stop_daemon "$R"
LATE=$(uuid_of late.jpg)
sqlite3 "$R/shoebox.db" "DELETE FROM render_queue WHERE state = 'pending'"
check "the photo has no thumbnail and no row in the render queue" \
  '[ "$(sqlite3 "$R/shoebox.db" "SELECT count(*) FROM photos p WHERE p.file_name = '"'"'late.jpg'"'"' AND p.thumb_hash IS NULL AND NOT EXISTS (SELECT 1 FROM render_queue q WHERE q.photo_id = p.id)")" = 1 ]'
ok "start it with its renderer" start_daemon "$R"
check "its thumbnail asked for: queued for the renderer, 503 with Retry-After" \
  'rapi /photos/$LATE/thumb; grep -q "^HTTP/1.1 503" "$T_TMP/rh" && grep -qi "^retry-after: " "$T_TMP/rh" && grep -q "has no thumbnail: queued for the renderer" "$R.log"'
late_thumb() { rapi /photos/$LATE/thumb; grep -q "^HTTP/1.1 200" "$T_TMP/rh" && grep -qi "^content-type: image/jpeg" "$T_TMP/rh"; }
ok "the renderer makes it, then it is served" until_true 60 late_thumb
check "...its medium too, and the queue is empty again" \
  'rapi /photos/$LATE/medium; grep -q "^HTTP/1.1 200" "$T_TMP/rh" && [ "$(jq_status "$R" .renders.pending)" = 0 ] && [ "$(jq_status "$R" .renders.failed)" = 1 ]'
ok "stop it once more" stop_daemon "$R"

# ---- a progress bar on a terminal ----
if command -v script >/dev/null; then
  rm -rf "$GEN/sub"
  D=$T_TMP/d
  "$SB" --data "$D" init --name tty >/dev/null
  # Slow enough per file that 8 threads still take a few redraws (0.25 s each).
  export SHOEBOX_TEST_IMPORT_DELAY_MS=100
  ok "a daemon for the terminal test" start_daemon "$D"
  unset SHOEBOX_TEST_IMPORT_DELAY_MS
  script -qec "'$SB' --data '$D' import '$GEN'" /dev/null >"$T_TMP/tty.out" 2>&1
  check "a terminal gets a progress bar with files, bytes, rate and ETA" \
    'tr "\r" "\n" <"$T_TMP/tty.out" | grep -Eq "\[=*>? *\] +[0-9]+%  [0-9]+/[0-9]+ files  .*B/.*B  .*B/s  ETA [0-9]+:[0-9]{2}"'
  check "and the summary at the end" 'grep -q "^imported [0-9]*, duplicates" <(tr "\r" "\n" <"$T_TMP/tty.out" | sed "s/\x1b\[K//g")'
else
  skip "a terminal gets a progress bar" "no script(1)"
  skip "and the summary at the end" "no script(1)"
fi
finish
