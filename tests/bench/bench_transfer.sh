#!/usr/bin/env bash
# Bench: blob transfer between two daemons on loopback, next to raw loopback
# TCP (iperf3) measured in the same run, the peak RSS of each daemon, and the
# same transfer between two encrypted libraries (encryption at rest).
#
#   bench_transfer [MiB] [ROUNDS]     (defaults 1024 and 3)
#
# Device A (role cache) imports MiB of photo-sized files (2-8 MiB each: a
# real small JPEG followed by random bytes, so the importer accepts them and
# nothing compresses); renditions are off for the import
# (SHOEBOX_IMPORT_NO_RENDER=1) so the setup is quick and only originals
# travel. A fresh device B joins as full and fetches every original, ROUNDS
# times (a new B each time, best round kept: the machine is shared). Timed
# from B's daemon start until B's status says it holds every blob (polled
# every 100 ms, bounded at 10 minutes); the transfer phase alone (B's first
# session up to its last blob received, from B's log, to the millisecond)
# is printed too. A's daemon is restarted after the import, so its peak RSS
# (VmHWM, read at the end) covers the transfers, not the import. A sample of
# files is checked byte for byte afterwards (not timed).
#
# Each round also runs the same between two encrypted libraries (init/join
# --encrypt), plain and encrypted alternating: the overhead is the median
# over rounds of the paired ratio of transfer phases (an encrypted daemon's
# start includes unlocking its key with Argon2id, a startup cost, not a
# transfer one; its VmHWM includes the KDF's memory too, so no RSS is
# reported for it). Target: at most 15% slower.
# Run by scripts/bench.sh from the build's tests/bench/. SBX_KEEP=1 keeps
# the temporary directory (libraries, daemon logs) for a look afterwards.
set -euo pipefail
BUILD=$(cd "$(dirname "$0")/../.." && pwd)
MIB=${1:-1024}
ROUNDS=${2:-3}
SB="$BUILD/shoebox" SBD="$BUILD/shoeboxd"
for tool in iperf3 jq; do
  command -v $tool >/dev/null || { echo "bench_transfer needs $tool (scripts/deps.sh)" >&2; exit 2; }
done
T=$(mktemp -d /tmp/sbx-bench-transfer-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${SBX_KEEP:-}" ]; then echo "kept $T (daemon logs: a.log, b.log)"; else rm -rf "$T"; fi
}
trap cleanup EXIT
PA=$((40000 + $$ % 20000)) PI=$((40001 + $$ % 20000)) PE=$((40002 + $$ % 20000)) PB=$((40010 + $$ % 20000))

now_ns() { date +%s%N; }
# calc FORMAT EXPRESSION: awk arithmetic, printed with a leading zero.
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# start_daemon DIR PORT [ENV=VALUE...] [-- DAEMON ARGS...]: echoes the pid
# once its control socket answers (bounded at 10 s).
start_daemon() {
  local dir=$1 port=$2 envs=(); shift 2
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do envs+=("$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  env "${envs[@]}" "$SBD" --data "$dir" --listen 127.0.0.1:$port "$@" >>"$dir.log" 2>&1 &
  local pid=$!
  for _ in $(seq 100); do
    "$SB" --data "$dir" status >/dev/null 2>&1 && { echo $pid; return 0; }
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  echo "shoeboxd for $dir did not start:" >&2; tail -5 "$dir.log" >&2
  return 1
}
stop_daemon() { # SIGTERM, then wait (bounded) for the exit
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

# 1. Raw loopback TCP, one stream, 5 s.
iperf3 -s -1 -p $PI >"$T/iperf-server.log" 2>&1 & PIDS+=("$!")
for _ in $(seq 50); do
  ss -ltn 2>/dev/null | grep -q ":$PI " && break
  sleep 0.1
done
iperf3 -c 127.0.0.1 -p $PI -t 5 -J >"$T/iperf.json"
loop=$(jq -r '.end.sum_received.bits_per_second / 8 / 1e6' "$T/iperf.json")
loop=$(printf '%.1f' "$loop")
echo "loopback TCP (iperf3, 1 stream, 5 s): $loop MB/s"

# 2. The photos: a real JPEG, then random bytes to 2-8 MiB.
mkdir -p "$T/photos"
JPEG="${SHOEBOX_SHARED:-$BUILD/../../shared}/fixtures/exif/Canon_40D.jpg"
if [ ! -f "$JPEG" ]; then
  # An 8x8 baseline JPEG made with turbojpeg, for when the fixtures are absent.
  JPEG="$T/tiny.jpg"
  base64 -d >"$JPEG" <<'EOF'
/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDABALDA4MChAODQ4SERATGCgaGBYWGDEjJR0oOjM9PDkz
ODdASFxOQERXRTc4UG1RV19iZ2hnPk1xeXBkeFxlZ2P/2wBDARESEhgVGC8aGi9jQjhCY2NjY2Nj
Y2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2P/wAARCAAIAAgDASIA
AhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQA
AAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3
ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWm
p6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEA
AwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSEx
BhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElK
U1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3
uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCIW9mn
7qG2023mR8OJ7oPjHUYG0g5ooopiP//Z
EOF
fi
want=$((MIB * 1024 * 1024)) total=0 nfiles=0
RANDOM=$((MIB + 7))
while [ $total -lt $want ]; do
  size=$(( (2 + RANDOM % 7) * 1024 * 1024 - RANDOM ))   # 2-8 MiB, odd sizes
  [ $((want - total)) -lt $size ] && [ $((want - total)) -gt 1048576 ] && size=$((want - total))
  nfiles=$((nfiles + 1))
  f=$(printf '%s/photos/p%05d.jpg' "$T" $nfiles)
  { cat "$JPEG"; head -c $((size - $(stat -c %s "$JPEG"))) /dev/urandom; } >"$f"
  total=$((total + $(stat -c %s "$f")))
done
echo "$nfiles files, $total bytes"

# log_s LINE: the seconds of day of a daemon log line's timestamp.
log_s() { awk '{ split(substr($1, 12, 12), t, ":"); printf "%.3f", t[1] * 3600 + t[2] * 60 + t[3] }' <<<"$1"; }

# setup_a DIR PORT [--encrypt]: A imports the photos (renditions off), then
# restarts so its VmHWM is the transfers'. Echoes A's pid.
setup_a() {
  local dir=$1 port=$2 enc=${3:-} pass=() pid
  [ -n "$enc" ] && pass=(--passphrase-file "$T/pass")
  "$SB" --data "$dir" init --name a --role cache ${enc:+--encrypt} "${pass[@]}" >/dev/null
  pid=$(start_daemon "$dir" "$port" SHOEBOX_IMPORT_NO_RENDER=1 -- "${pass[@]}")
  local t0 t1; t0=$(now_ns)
  "$SB" --data "$dir" import "$T/photos" --json >"$T/import.json"
  t1=$(now_ns)
  local got; got=$("$SB" --data "$dir" status --json | jq .photos)
  echo "import on A${enc:+ (encrypted)}: $got photos in $(calc %.1f "($t1 - $t0) / 1e9") s (setup, renditions off)" >&2
  [ "$got" = "$nfiles" ] || { echo "A imported $got of $nfiles files" >&2; cat "$T/import.json" >&2; return 1; }
  stop_daemon "$pid"
  pid=$(start_daemon "$dir" "$port" -- "${pass[@]}")
  local held; held=$("$SB" --data "$dir" status --json | jq .blobs.held)
  [ "$held" = "$nfiles" ] || { echo "A holds $held blobs, expected $nfiles" >&2; return 1; }
  echo "$pid"
}

# transfer ADIR APID NAME [--encrypt]: a fresh B joins A and fetches every
# original. Sets secs, phase (s), cpu_a, cpu_b, rss_b; checks a sample.
transfer() {
  local adir=$1 apid=$2 name=$3 enc=${4:-} pass=()
  [ -n "$enc" ] && pass=(--passphrase-file "$T/pass")
  local b="$T/$name"
  local uri; uri=$("$SB" --data "$adir" pair --json | jq -r .uri)
  "$SB" --data "$b" join "$uri" --name "$name" --role full ${enc:+--encrypt} "${pass[@]}" >/dev/null
  local ca0; ca0=$(cpu_s "$apid")
  # B's daemon starts: the clock runs until it holds every original.
  local t0; t0=$(now_ns)
  # A port of its own: a new device is not found where an earlier B was
  # (A would dial it there as that B, and the sessions would collide).
  PB=$((PB + 1))
  "$SBD" --data "$b" --listen 127.0.0.1:$PB "${pass[@]}" >>"$b.log" 2>&1 & pid_b=$!; PIDS+=("$pid_b")
  local limit=$((t0 + 600 * 1000000000)) held=0
  while :; do
    held=$("$SB" --data "$b" status --json 2>/dev/null | jq .blobs.held 2>/dev/null || echo 0)
    [ "$held" = "$nfiles" ] && break
    kill -0 $pid_b 2>/dev/null || { echo "B's daemon died:" >&2; tail -20 "$b.log" >&2; return 1; }
    [ "$(now_ns)" -lt $limit ] || { echo "B holds $held of $nfiles blobs after 10 minutes" >&2; tail -20 "$b.log" >&2; return 1; }
    sleep 0.1
  done
  local t1; t1=$(now_ns)
  secs=$(calc %.3f "($t1 - $t0) / 1e9")
  cpu_a=$(calc %.2f "$(cpu_s "$apid") - $ca0") cpu_b=$(cpu_s $pid_b) rss_b=$(hwm_mib $pid_b)
  local first last
  first=$(grep -m1 " connected to " "$b.log") last=$(grep " received (" "$b.log" | tail -1)
  phase=$(calc %.3f "$(log_s "$last") - $(log_s "$first")")
  # Byte for byte: the first, the last and a few between (not timed).
  "$SB" --data "$b" photos --json >"$T/photos.json"
  local bad=0 i id nm
  for i in 1 $((nfiles / 4 + 1)) $((nfiles / 2 + 1)) $((3 * nfiles / 4 + 1)) $nfiles; do
    nm=$(printf 'p%05d.jpg' $i)
    id=$(jq -r --arg n "$nm" '.[] | select(.file_name == $n) | .id' "$T/photos.json")
    if [ -z "$id" ] || ! "$SB" --data "$b" get "$id" --timeout 30 --out "$T/check.bin" >/dev/null \
       || ! cmp -s "$T/check.bin" "$T/photos/$nm"; then
      echo "differs on $name: $nm" >&2; bad=$((bad + 1))
    fi
  done
  stop_daemon $pid_b
  [ $bad -eq 0 ] || return 1
}

echo "bench-transfer passphrase" >"$T/pass"
chmod 600 "$T/pass"
pid_a=$(setup_a "$T/a" $PA); PIDS+=("$pid_a")
pid_e=$(setup_a "$T/ae" $PE --encrypt); PIDS+=("$pid_e")
# The photos and both imports left gigabytes of dirty page cache: written
# back now, not in the middle of a round (the kernel would start on it
# about 30 s after the writes, and a round waiting on a saturated disk
# measures the disk, seconds of it).
sync
n=$nfiles
best=0 best_phase=0 best_e=0 ratios=""
# plain_round R / enc_round R: one fresh receiver each.
plain_round() {
  transfer "$T/a" "$pid_a" "b$1"
  rate=$(calc %.1f "$total / 1e6 / $secs") prate=$(calc %.1f "$total / 1e6 / $phase")
  echo "round $1, plain: ${secs} s from B's start, $rate MB/s (transfer phase ${phase} s, $prate MB/s); CPU A ${cpu_a} s, B ${cpu_b} s; B peak RSS ${rss_b} MiB"
  if awk -v a="$rate" -v b="$best" 'BEGIN { exit !(a > b) }'; then
    best=$rate best_secs=$secs best_cpu_a=$cpu_a best_cpu_b=$cpu_b
  fi
  awk -v a="$prate" -v b="$best_phase" 'BEGIN { exit !(a > b) }' && best_phase=$prate
  max_rss_b=$(awk -v a="$rss_b" -v b="${max_rss_b:-0}" 'BEGIN { print (a > b) ? a : b }')
  plain_phase=$prate
}
enc_round() {
  transfer "$T/ae" "$pid_e" "be$1" --encrypt
  prate=$(calc %.1f "$total / 1e6 / $phase")
  echo "round $1, encrypted: ${secs} s from B's start (unlock included), transfer phase ${phase} s, $prate MB/s; CPU A ${cpu_a} s, B ${cpu_b} s (unlock included)"
  awk -v a="$prate" -v b="$best_e" 'BEGIN { exit !(a > b) }' && best_e=$prate
  enc_phase=$prate
}
# Plain and encrypted alternate (which goes first too), so both meet the
# same moments of a shared machine; the overhead is the median over rounds
# of the paired ratio of transfer phases.
for r in $(seq "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then plain_round "$r"; enc_round "$r"; else enc_round "$r"; plain_round "$r"; fi
  ratios="$ratios $(calc %.4f "$plain_phase / $enc_phase")"
done
rss_a=$(hwm_mib $pid_a)
stop_daemon $pid_a
stop_daemon $pid_e
mbps=$best
echo "best plain: $mbps MB/s (${best_secs} s from B's start); transfer phase $best_phase MB/s"
echo "daemon CPU in that round: A $best_cpu_a s, B $best_cpu_b s (of ${best_secs} s wall): $(calc %.2f "($best_cpu_a + $best_cpu_b) * 1e9 / $total") CPU s per GB"
echo "daemon peak RSS (VmHWM, plain libraries): A $rss_a MiB, B $max_rss_b MiB"
echo "sampled originals byte-identical on every B"
overhead=$(tr ' ' '\n' <<<"$ratios" | grep . | sort -g | awk '{ v[NR] = $1 } END { m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; printf "%.1f", (m - 1) * 100 }')
echo "encrypted at rest: best transfer phase $best_e MB/s against $best_phase MB/s plain; overhead (median of paired rounds) $overhead%"

rel=$(calc %.3f "$mbps / $loop")
echo "BENCH name=transfer_mbps value=$mbps unit=MB/s"
echo "BENCH name=loopback_tcp_mbps value=$loop unit=MB/s"
echo "BENCH name=transfer_vs_loopback value=$rel unit=ratio target=0.6 ratio=$(calc %.2f "$rel / 0.6")"
echo "BENCH name=daemon_peak_rss_a value=$rss_a unit=MiB target=64 ratio=$(calc %.2f "64 / $rss_a")"
echo "BENCH name=daemon_peak_rss_b value=$max_rss_b unit=MiB target=64 ratio=$(calc %.2f "64 / $max_rss_b")"
echo "BENCH name=transfer_phase_mbps value=$best_phase unit=MB/s"
echo "BENCH name=transfer_encrypted_phase_mbps value=$best_e unit=MB/s"
shown=$(awk -v o="$overhead" 'BEGIN { print (o < 0.1) ? 0.1 : o }')
echo "BENCH name=transfer_encrypted_overhead value=$overhead unit=% target=15 ratio=$(calc %.2f "15 / $shown")"
