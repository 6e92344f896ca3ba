#!/usr/bin/env bash
# LAN discovery across two network namespaces joined by a veth pair, like two
# machines on one Ethernet segment: each side runs sbx_discovery_probe (the
# real discovery glue) and must hear the other's key, over IPv4 and over
# IPv6 link-local; devices of another library must not; two devices on one
# host must hear each other through the multicast loop.
#
# All traffic stays inside the namespaces this script makes (TEST-NET-1
# addresses, 192.0.2.0/24, and IPv6 link-local); they are deleted on exit.
# Needs root (CAP_NET_ADMIN); skips otherwise.
. "$(dirname "$0")/lib.sh"
: "${SBX_DISCOVERY_PROBE:?}"
PROBE=$SBX_DISCOVERY_PROBE

NS_A=sbxd-$$-a
NS_B=sbxd-$$-b
ns_cleanup() {
  ip netns del "$NS_A" 2>/dev/null
  ip netns del "$NS_B" 2>/dev/null
}
trap 'ns_cleanup; t_cleanup' EXIT

if ! ip netns add "$NS_A" 2>/dev/null; then
  skip "discovery across network namespaces" "cannot create network namespaces (needs root / CAP_NET_ADMIN)"
  finish
  exit
fi
ip netns add "$NS_B"
# No duplicate address detection on interfaces made from now on: their
# link-local IPv6 address is usable at once instead of after a second.
for ns in "$NS_A" "$NS_B"; do
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0 2>/dev/null
done
# Names of at most 15 characters; the pid keeps parallel runs apart.
if ! ip link add "sbxd$$a" netns "$NS_A" type veth peer name "sbxd$$b" netns "$NS_B" 2>/dev/null; then
  skip "discovery across network namespaces" "cannot create a veth pair"
  finish
  exit
fi
for ns in "$NS_A" "$NS_B"; do ip -n "$ns" link set lo up; done
ip -n "$NS_A" addr add 192.0.2.1/24 dev "sbxd$$a"
ip -n "$NS_B" addr add 192.0.2.2/24 dev "sbxd$$b"
ip -n "$NS_A" link set "sbxd$$a" up
ip -n "$NS_B" link set "sbxd$$b" up

LIB=00112233445566778899aabbccddeeff
OTHER=ffeeddccbbaa99887766554433221100
PORT=27183  # the real discovery port: nothing else lives in these namespaces

# probe NS OUT ARGS...: runs a probe in a namespace in the background.
probe() {
  local ns=$1 out=$2; shift 2
  ip netns exec "$ns" "$PROBE" --port "$PORT" --interval 500 "$@" >"$out" 2>&1 &
}

key_of() { awk '$1 == "key" { print $2; exit }' "$1"; }
heard() { # heard OUT KEY FAMILY: OUT found KEY over FAMILY (ipv4/ipv6)
  awk -v k="$2" -v f="$3" '$1 == "found" && $2 == k && $3 == f { ok = 1 } END { exit !ok }' "$1"
}

# 1. Two namespaces find each other over IPv4 and IPv6.
probe "$NS_A" "$T_TMP/a.out" --library "$LIB" --tcp-port 22001 --want both --timeout 10000
PA=$!
probe "$NS_B" "$T_TMP/b.out" --library "$LIB" --tcp-port 22002 --want both --timeout 10000
PB=$!
wait $PA; RA=$?
wait $PB; RB=$?
sed 's/^/# a: /' "$T_TMP/a.out"
sed 's/^/# b: /' "$T_TMP/b.out"
KA=$(key_of "$T_TMP/a.out")
KB=$(key_of "$T_TMP/b.out")
check "probe a heard a device before its time-out" '[ "$RA" = 0 ]'
check "probe b heard a device before its time-out" '[ "$RB" = 0 ]'
check "a heard b's key over IPv4, from b's address" 'heard "$T_TMP/a.out" "$KB" ipv4 && grep -q "^found $KB ipv4 192.0.2.2 22002$" "$T_TMP/a.out"'
check "b heard a's key over IPv4, from a's address" 'heard "$T_TMP/b.out" "$KA" ipv4 && grep -q "^found $KA ipv4 192.0.2.1 22001$" "$T_TMP/b.out"'
check "a heard b's key over IPv6 link-local" 'heard "$T_TMP/a.out" "$KB" ipv6 && grep -q "^found $KB ipv6 fe80::.*%sbxd$$a 22002$" "$T_TMP/a.out"'
check "b heard a's key over IPv6 link-local" 'heard "$T_TMP/b.out" "$KA" ipv6'
check "neither heard itself" '! heard "$T_TMP/a.out" "$KA" ipv4 && ! heard "$T_TMP/b.out" "$KB" ipv4'
check "their own announcements came back and were skipped" 'grep -q "own=[1-9]" "$T_TMP/a.out"'
check "nothing was refused between them, and every send went out" \
  'grep -q "bad_signature=0 replayed=0" "$T_TMP/a.out" && grep -q "malformed=0 stale=0" "$T_TMP/b.out" &&
   grep -q "send_errors=0 " "$T_TMP/a.out" && grep -q "send_errors=0 " "$T_TMP/b.out"'

# 2. Another library: packets arrive, are recognised as foreign, nothing is found.
probe "$NS_A" "$T_TMP/c.out" --library "$LIB" --timeout 2500
PC=$!
probe "$NS_B" "$T_TMP/d.out" --library "$OTHER" --timeout 2500
PD=$!
wait $PC; RC=$?
wait $PD; RD=$?
sed 's/^/# c: /' "$T_TMP/c.out"
check "devices of two libraries do not find each other" '[ "$RC" = 1 ] && [ "$RD" = 1 ] && ! grep -q "^found" "$T_TMP/c.out" "$T_TMP/d.out"'
check "the other library's announcements did arrive and were refused by tag" \
  'grep -q "other_library=[1-9]" "$T_TMP/c.out" && grep -q "other_library=[1-9]" "$T_TMP/d.out"'

# 3. Two devices on one host (one namespace) hear each other through the
# multicast loop.
probe "$NS_A" "$T_TMP/e.out" --library "$LIB" --want 4 --ipv4-only --timeout 10000
PE=$!
probe "$NS_A" "$T_TMP/f.out" --library "$LIB" --want 4 --ipv4-only --timeout 10000
PF=$!
wait $PE; RE=$?
wait $PF; RF=$?
KE=$(key_of "$T_TMP/e.out")
KF=$(key_of "$T_TMP/f.out")
check "two devices in one namespace find each other" \
  '[ "$RE" = 0 ] && [ "$RF" = 0 ] && heard "$T_TMP/e.out" "$KF" ipv4 && heard "$T_TMP/f.out" "$KE" ipv4'

# 4. With its only link down, a device falls back to the loopback interface:
# it hears itself there (skipped as its own) and nobody else.
ip -n "$NS_B" link set "sbxd$$b" down
probe "$NS_A" "$T_TMP/g.out" --library "$LIB" --timeout 2000 --ipv4-only
PG=$!
wait $PG; RG=$?
check "with the link down nothing is found" '[ "$RG" = 1 ] && ! grep -q "^found" "$T_TMP/g.out"'
check "and the loopback fallback carried its own announcements" 'grep -q "own=[1-9]" "$T_TMP/g.out"'

finish
