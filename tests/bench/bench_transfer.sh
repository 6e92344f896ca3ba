#!/usr/bin/env bash
# Bench: blob transfer between two daemons on loopback, next to raw loopback
# TCP (iperf3) measured in the same run, and the peak RSS of each daemon.
#
#   bench_transfer [MiB]     (default 1024)
#
# Device A (role cache) imports MiB of photo-sized files (2-8 MiB each: a
# real small JPEG followed by random bytes, so the importer accepts them and
# nothing compresses); renditions are off for the import
# (SHOEBOX_IMPORT_NO_RENDER=1) so the setup is quick and only originals
# travel. Device B joins as full and fetches every original. Timed from B's
# daemon start until B's status says it holds every blob (polled every
# 100 ms, bounded at 10 minutes). A's daemon is restarted after the import,
# so its peak RSS (VmHWM, read at the end) covers the transfer, not the
# import. A sample of files is checked byte for byte afterwards (not timed).
# Run by scripts/bench.sh from the build's tests/bench/. SBX_KEEP=1 keeps
# the temporary directory (libraries, daemon logs) for a look afterwards.
set -euo pipefail
BUILD=$(cd "$(dirname "$0")/../.." && pwd)
MIB=${1:-1024}
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
PA=$((40000 + $$ % 20000)) PB=$((40001 + $$ % 20000)) PI=$((40002 + $$ % 20000))

now_ns() { date +%s%N; }
# calc FORMAT EXPRESSION: awk arithmetic, printed with a leading zero.
calc() { awk "BEGIN { printf \"$1\", $2 }"; }
# CPU seconds (user + system) a process has used so far.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$1/stat"; }
hwm_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# start_daemon DIR PORT [ENV=VALUE...]: echoes the pid once its control
# socket answers (bounded at 10 s).
start_daemon() {
  local dir=$1 port=$2; shift 2
  env "$@" "$SBD" --data "$dir" --listen 127.0.0.1:$port >>"$dir.log" 2>&1 &
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

# A imports them (renditions off), then restarts so its VmHWM is the transfer's.
"$SB" --data "$T/a" init --name a --role cache >/dev/null
pid_a=$(start_daemon "$T/a" $PA SHOEBOX_IMPORT_NO_RENDER=1); PIDS+=("$pid_a")
t0=$(now_ns)
"$SB" --data "$T/a" import "$T/photos" --json >"$T/import.json"
t1=$(now_ns)
n=$("$SB" --data "$T/a" status --json | jq .photos)
echo "import on A: $n photos in $(calc %.1f "($t1 - $t0) / 1e9") s (setup, renditions off)"
[ "$n" = "$nfiles" ] || { echo "A imported $n of $nfiles files" >&2; cat "$T/import.json" >&2; exit 1; }
stop_daemon $pid_a
pid_a=$(start_daemon "$T/a" $PA); PIDS+=("$pid_a")
held_a=$("$SB" --data "$T/a" status --json | jq .blobs.held)
[ "$held_a" = "$n" ] || { echo "A holds $held_a blobs, expected $n" >&2; exit 1; }

URI=$("$SB" --data "$T/a" pair --json | jq -r .uri)
"$SB" --data "$T/b" join "$URI" --name b --role full >/dev/null
cpu_a0=$(cpu_s $pid_a)

# B's daemon starts: the clock runs until it holds every original.
t0=$(now_ns)
"$SBD" --data "$T/b" --listen 127.0.0.1:$PB >>"$T/b.log" 2>&1 & pid_b=$!; PIDS+=("$pid_b")
limit=$((t0 + 600 * 1000000000)) held=0
while :; do
  held=$("$SB" --data "$T/b" status --json 2>/dev/null | jq .blobs.held 2>/dev/null || echo 0)
  [ "$held" = "$n" ] && break
  kill -0 $pid_b 2>/dev/null || { echo "B's daemon died:" >&2; tail -20 "$T/b.log" >&2; exit 1; }
  [ "$(now_ns)" -lt $limit ] || { echo "B holds $held of $n blobs after 10 minutes" >&2; tail -20 "$T/b.log" >&2; exit 1; }
  sleep 0.1
done
t1=$(now_ns)
secs=$(calc %.3f "($t1 - $t0) / 1e9")
cpu_a=$(calc %.2f "$(cpu_s $pid_a) - $cpu_a0") cpu_b=$(cpu_s $pid_b)
rss_a=$(hwm_mib $pid_a) rss_b=$(hwm_mib $pid_b)
mbps=$(calc %.1f "$total / 1e6 / $secs")
echo "transfer of $n originals ($total bytes): ${secs} s, $mbps MB/s"
echo "daemon CPU during the transfer: A $cpu_a s, B $cpu_b s (of ${secs} s wall)"
echo "daemon peak RSS (VmHWM): A $rss_a MiB, B $rss_b MiB"

# Byte for byte: the first, the last and a few between (not timed).
"$SB" --data "$T/b" photos --json >"$T/photos.json"
bad=0 checked=0
for i in 1 $((nfiles / 4 + 1)) $((nfiles / 2 + 1)) $((3 * nfiles / 4 + 1)) $nfiles; do
  name=$(printf 'p%05d.jpg' $i)
  id=$(jq -r --arg n "$name" '.[] | select(.file_name == $n) | .id' "$T/photos.json")
  if [ -z "$id" ] || ! "$SB" --data "$T/b" get "$id" --timeout 30 --out "$T/check.bin" >/dev/null \
     || ! cmp -s "$T/check.bin" "$T/photos/$name"; then
    echo "differs on B: $name" >&2; bad=$((bad + 1))
  fi
  checked=$((checked + 1))
done
[ $bad -eq 0 ] || exit 1
echo "$checked sampled originals byte-identical on B"

rel=$(calc %.3f "$mbps / $loop")
echo "BENCH name=transfer_mbps value=$mbps unit=MB/s"
echo "BENCH name=loopback_tcp_mbps value=$loop unit=MB/s"
echo "BENCH name=transfer_vs_loopback value=$rel unit=ratio target=0.6 ratio=$(calc %.2f "$rel / 0.6")"
echo "BENCH name=daemon_peak_rss_a value=$rss_a unit=MiB target=64 ratio=$(calc %.2f "64 / $rss_a")"
echo "BENCH name=daemon_peak_rss_b value=$rss_b unit=MiB target=64 ratio=$(calc %.2f "64 / $rss_b")"
