#!/usr/bin/env bash
# UPnP port mapping against a real router: Debian's miniupnpd in a network
# namespace of its own, between a LAN of two hosts and a "WAN" namespace.
#
#   lan1 192.0.2.10 ─┐                 ┌─ wan 198.51.100.2, .3 (stund)
#                    br0 ─ gw ─ veth ──┘
#   lan2 192.0.2.11 ─┘  192.0.2.1   198.51.100.1 (miniupnpd, nftables)
#
# miniupnpd refuses to map ports when its external address is private or
# reserved, and TEST-NET addresses are reserved; an ext_ip= override must be
# public too. What it accepts is a STUN check proving that its external
# address is reachable 1:1, so the WAN namespace runs a STUN server (stund,
# two addresses) and the router is configured with ext_perform_stun. Before
# that, the same router without STUN is the "router behind another NAT"
# case, which shoebox must report clearly.
#
# All traffic stays inside these namespaces (TEST-NET-1 and TEST-NET-2); they
# are deleted on exit. Needs root, miniupnpd, nft and stund; skips otherwise.
. "$(dirname "$0")/lib.sh"
: "${SBX_UPNP_PROBE:?}"
PROBE=$SBX_UPNP_PROBE

P=sbxu-$$
GW=$P-gw LAN1=$P-l1 LAN2=$P-l2 WAN=$P-wan
RUN=$T_TMP/upnp
ns_cleanup() {
  [ -f "$RUN/miniupnpd.pid" ] && kill "$(cat "$RUN/miniupnpd.pid")" 2>/dev/null
  [ -f "$RUN/stund.pid" ] && kill "$(cat "$RUN/stund.pid")" 2>/dev/null
  for ns in "$GW" "$LAN1" "$LAN2" "$WAN"; do ip netns del "$ns" 2>/dev/null; done
}
trap 'ns_cleanup; t_cleanup' EXIT

missing=""
for tool in /usr/sbin/miniupnpd /usr/sbin/nft /usr/sbin/stund; do
  [ -x "$tool" ] || missing="$missing $(basename "$tool")"
done
if [ -n "$missing" ]; then
  skip "UPnP against miniupnpd" "not installed:$missing (make deps)"
  finish
  exit
fi
if ! ip netns add "$GW" 2>/dev/null; then
  skip "UPnP against miniupnpd" "cannot create network namespaces (needs root / CAP_NET_ADMIN)"
  finish
  exit
fi
mkdir -p "$RUN"
for ns in "$LAN1" "$LAN2" "$WAN"; do ip netns add "$ns"; done
for ns in "$GW" "$LAN1" "$LAN2" "$WAN"; do ip -n "$ns" link set lo up; done
# Interface names of at most 15 characters.
if ! ip -n "$GW" link add br0 type bridge 2>/dev/null ||
   ! ip link add "u$$l1" netns "$GW" type veth peer name eth0 netns "$LAN1" 2>/dev/null; then
  skip "UPnP against miniupnpd" "cannot create a bridge and veth pairs"
  finish
  exit
fi
ip link add "u$$l2" netns "$GW" type veth peer name eth0 netns "$LAN2"
ip link add "u$$w" netns "$GW" type veth peer name eth0 netns "$WAN"
ip -n "$GW" link set "u$$l1" master br0
ip -n "$GW" link set "u$$l2" master br0
ip -n "$GW" addr add 192.0.2.1/24 dev br0
ip -n "$GW" addr add 198.51.100.1/24 dev "u$$w"
ip -n "$LAN1" addr add 192.0.2.10/24 dev eth0
ip -n "$LAN2" addr add 192.0.2.11/24 dev eth0
ip -n "$WAN" addr add 198.51.100.2/24 dev eth0
ip -n "$WAN" addr add 198.51.100.3/24 dev eth0
for dev in br0 "u$$l1" "u$$l2" "u$$w"; do ip -n "$GW" link set "$dev" up; done
for ns in "$LAN1" "$LAN2" "$WAN"; do ip -n "$ns" link set eth0 up; done
ip -n "$LAN1" route add default via 192.0.2.1
ip -n "$LAN2" route add default via 192.0.2.1
ip netns exec "$GW" sysctl -qw net.ipv4.ip_forward=1

# The tables and chains miniupnpd's nftables back end fills (its defaults:
# table inet "filter", chains miniupnpd, prerouting_miniupnpd and
# postrouting_miniupnpd); forwarding is closed except for what it opens.
ip netns exec "$GW" nft -f - <<'EOF'
table inet filter {
  chain forward { type filter hook forward priority 0; policy drop; ct state established,related accept; jump miniupnpd; }
  chain miniupnpd { }
  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; }
  chain prerouting_miniupnpd { }
  chain postrouting_miniupnpd { }
}
EOF

conf() { # conf FILE [EXTRA LINES...]
  local f=$1; shift
  {
    echo "ext_ifname=u$$w"
    echo "listening_ip=br0"
    echo "port=0"
    echo "enable_natpmp=no"
    echo "enable_upnp=yes"
    echo "secure_mode=yes"
    echo "uuid=3f6f1f5e-1e0a-4b2c-9d1e-00000000$(printf %04x $(( $$ % 65536 )))"
    echo "lease_file=$RUN/leases"
    printf '%s\n' "$@"
    echo "allow 1024-65535 192.0.2.0/24 1024-65535"
    echo "deny 0-65535 0.0.0.0/0 0-65535"
  } >"$f"
}

start_router() { # start_router CONF LOG: miniupnpd in the foreground (-d), in the background
  ip netns exec "$GW" /usr/sbin/miniupnpd -f "$1" -d -P "$RUN/miniupnpd.pidfile" >"$2" 2>&1 &
  echo $! >"$RUN/miniupnpd.pid"
  # Ready when its HTTP port is open.
  until_true 10 grep -q "HTTP listening on port" "$2"
}

stop_router() {
  kill "$(cat "$RUN/miniupnpd.pid")" 2>/dev/null
  until_true 5 bash -c "! kill -0 $(cat "$RUN/miniupnpd.pid") 2>/dev/null"
  rm -f "$RUN/miniupnpd.pid"
}

# in NS ARGS...: the probe in a namespace, output in $OUT, status in $RC.
in_ns() {
  local ns=$1; shift
  OUT=$(ip netns exec "$ns" "$PROBE" --delay 1000 "$@" 2>&1); RC=$?
  sed 's/^/#   /' <<<"$OUT"
}

# 1. A router whose external address is reserved (TEST-NET-2): it is found,
# and refuses; shoebox says the router is behind another NAT.
conf "$RUN/nat.conf"
ok "miniupnpd starts with a reserved external address" start_router "$RUN/nat.conf" "$RUN/nat.log"
check "miniupnpd warns that forwarding is impossible" 'grep -q "Port forwarding is impossible" "$RUN/nat.log"'
in_ns "$LAN1" map 22000
check "the router is discovered, with this host's LAN address and control URL" \
  'grep -Eq "^router 192\.0\.2\.10 http://192\.0\.2\.1:[0-9]+/" <<<"$OUT"'
check "the mapping is refused as ESTATE, saying the router has no public address" \
  '[ $RC = 1 ] && grep -q "^error map ESTATE .*no public IPv4 address.*behind another NAT" <<<"$OUT"'
stop_router

# 2. The same router, once STUN shows its external address reachable 1:1.
ip netns exec "$WAN" /usr/sbin/stund -h 198.51.100.2 -a 198.51.100.3 >"$RUN/stund.log" 2>&1 &
echo $! >"$RUN/stund.pid"
conf "$RUN/stun.conf" "ext_perform_stun=yes" "ext_stun_host=198.51.100.2" "ext_stun_port=3478"
ok "miniupnpd starts with STUN" start_router "$RUN/stun.conf" "$RUN/stun.log"
check "STUN enabled port forwarding" 'grep -q "Port forwarding is now enabled" "$RUN/stun.log"'

in_ns "$LAN1" map 22000
check "lan1 maps TCP 22000 to external 22000 for 3600 s, external address 198.51.100.1" \
  '[ $RC = 0 ] && grep -q "^mapped 22000 22000 3600 198.51.100.1 0$" <<<"$OUT"'
check "the router holds the redirect to lan1" \
  'ip netns exec "$GW" nft list chain inet filter prerouting_miniupnpd | grep -q "dport 22000 dnat ip to 192.0.2.10:22000"'
check "the mapping carries the description shoebox" 'grep -q "protocol TCP for: shoebox" "$RUN/stun.log"'

# A connection from the WAN to the external port reaches lan1.
ip netns exec "$LAN1" "$PROBE" serve 22000 >"$RUN/serve.out" 2>&1 &
SERVE=$!
until_true 5 grep -q "^listening 22000" "$RUN/serve.out"
GOT=$(ip netns exec "$WAN" timeout 5 bash -c 'exec 3<>/dev/tcp/198.51.100.1/22000 && read -r -t 5 line <&3 && echo "$line"' 2>&1)
wait $SERVE
check "a WAN connection to 198.51.100.1:22000 reaches lan1 through the mapping" \
  '[ "$GOT" = shoebox ] && grep -q "^served" "$RUN/serve.out"'

in_ns "$LAN1" map 22000
check "mapping the same port again renews it (same external port)" \
  '[ $RC = 0 ] && grep -q "^mapped 22000 22000 " <<<"$OUT"'
in_ns "$LAN2" map 22000
check "lan2 asking for 22000 gets the next free port, 22001" \
  '[ $RC = 0 ] && grep -q "^mapped 22000 22001 3600 " <<<"$OUT"'
in_ns "$LAN2" --lease 120 map 23000
check "a shorter lease is granted as asked" '[ $RC = 0 ] && grep -q "^mapped 23000 23000 120 " <<<"$OUT"'
# Deleting a port that was never mapped should be UPnP error 714 (ENOENT
# here), but miniupnpd 2.3.1's nftables back end answers success: accept
# both, and insist only that nothing else comes back.
in_ns "$LAN1" map 22000 unmap 22000 unmap 24000
check "lan1 deletes its mapping; deleting a port never mapped is success or ENOENT" \
  'grep -q "^unmapped 22000$" <<<"$OUT" && { [ $RC = 0 ] || grep -q "^error unmap ENOENT" <<<"$OUT"; }'
check "the redirect to lan1 is gone from the router" \
  '! ip netns exec "$GW" nft list chain inet filter prerouting_miniupnpd | grep -q "192.0.2.10:22000"'
# lan2's first step maps 22000, free again, to find the router.
in_ns "$LAN2" map 22000 unmap 22000 unmap 22001 unmap 23000
check "lan2 deletes its mappings" '[ $RC = 0 ] && grep -q "^unmapped 23000$" <<<"$OUT"'
check "the router holds no redirect any more" \
  '! ip netns exec "$GW" nft list chain inet filter prerouting_miniupnpd | grep -q dnat'
in_ns "$LAN1" --if eth0 map 1000
check "a port the router's rules forbid is refused with the router's reason" \
  '[ $RC = 1 ] && grep -q "^error map EPERM .*port 1000.*Action not authorized (606)" <<<"$OUT"'
stop_router

# 3. No router at all: a clear error, in about the discovery delay.
in_ns "$LAN1" map 22000
MS=$(awk '$1 == "error" { print $4 }' <<<"$OUT")
check "with no router the error is ENOENT, 'no UPnP router answered'" \
  '[ $RC = 1 ] && grep -q "^error map ENOENT .*no UPnP router answered within 1000 ms" <<<"$OUT"'
check "and it comes within 3 s (took ${MS:-?} ms)" '[ -n "$MS" ] && [ "$MS" -lt 3000 ]'

finish
