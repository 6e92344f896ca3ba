# Shared helpers for integration tests: TAP output, temp dirs, daemons that
# are always stopped on exit. Source it; then call `plan N` ... `finish`.
set -u
: "${SHOEBOX_BIN:?}" "${SHOEBOXD_BIN:?}"
SB="$SHOEBOX_BIN"
SBD="$SHOEBOXD_BIN"
T_N=0
T_FAIL=0
T_TMP=$(mktemp -d /tmp/sbx-it-XXXXXX)
T_PIDS=()

t_cleanup() {
  for p in "${T_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  chmod -R u+rwx "$T_TMP" 2>/dev/null
  [ -n "${SBX_KEEP:-}" ] && echo "# kept $T_TMP" || rm -rf "$T_TMP"
}
trap t_cleanup EXIT

ok() { # ok DESCRIPTION COMMAND...  (passes when the command succeeds)
  local d=$1; shift
  T_N=$((T_N + 1))
  if "$@" >"$T_TMP/last.out" 2>&1; then echo "ok $T_N - $d"
  else echo "not ok $T_N - $d"; T_FAIL=$((T_FAIL + 1)); sed 's/^/# /' "$T_TMP/last.out" | head -20; fi
}

check() { # check DESCRIPTION CONDITION-STRING (evaluated with bash)
  local d=$1; shift
  T_N=$((T_N + 1))
  if eval "$1"; then echo "ok $T_N - $d"
  else echo "not ok $T_N - $d"; echo "# condition: $1"; T_FAIL=$((T_FAIL + 1)); fi
}

skip() { T_N=$((T_N + 1)); echo "ok $T_N - $1 # SKIP $2"; }

finish() { echo "1..$T_N"; [ "$T_FAIL" -eq 0 ]; }

# start_daemon DIR [ARGS...]: starts shoeboxd in the background and waits
# (bounded) until its control socket answers.
start_daemon() {
  local dir=$1; shift
  "$SBD" --data "$dir" "$@" >>"$dir.log" 2>&1 &
  local pid=$!
  T_PIDS+=("$pid")
  eval "PID_$(basename "$dir" | tr -c 'a-zA-Z0-9\n' _)=$pid"
  for _ in $(seq 1 100); do
    if "$SB" --data "$dir" status >/dev/null 2>&1; then return 0; fi
    kill -0 "$pid" 2>/dev/null || { echo "# shoeboxd for $dir died:"; sed 's/^/#   /' "$dir.log" | tail -5; return 1; }
    sleep 0.1
  done
  echo "# shoeboxd for $dir did not answer in 10 s"
  return 1
}

daemon_pid() { local v="PID_$(basename "$1" | tr -c 'a-zA-Z0-9\n' _)"; echo "${!v}"; }

stop_daemon() { # stop_daemon DIR: SIGTERM, then wait (bounded) for the exit
  local pid; pid=$(daemon_pid "$1")
  kill -TERM "$pid" 2>/dev/null || return 1
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || { wait "$pid"; return $?; }; sleep 0.1; done
  return 1
}

# until_true TIMEOUT_S COMMAND...: polls a command until it succeeds.
until_true() {
  local t=$1; shift
  local end=$((SECONDS + t))
  while [ $SECONDS -lt $end ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

jq_status() { "$SB" --data "$1" status --json | jq -r "$2"; }

# kill_hard DIR: SIGKILL the daemon, then wait until it is gone (its lock
# is released only when the process has fully exited).
kill_hard() {
  local pid; pid=$(daemon_pid "$1")
  kill -KILL "$pid" 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" 2>/dev/null || true
}

# free_port: a TCP port nobody listens on now (tests run side by side) and
# that this test has not handed out before (its daemons start later, so two
# calls in a row would otherwise be free to pick the same port). Called as
# $(free_port), in a subshell: the ports handed out are kept in a file.
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    grep -qx "$p" "$T_TMP/.ports" 2>/dev/null && continue
    if ! ss -ltnH "sport = :$p" 2>/dev/null | grep -q .; then break; fi
  done
  echo "$p" >>"$T_TMP/.ports"
  echo "$p"
}
