#!/usr/bin/env bash
# `make multihost`: the service as 1, 2 and 3 hosts on one PostgreSQL (benchmarks/multihost.py).
#
# Hosts are network namespaces this script makes. The rules, in this order:
#   1. an `unreachable` route for the whole range used (198.18.0.0/15, reserved for
#      benchmarking) goes in BEFORE anything is made, so no packet for it can leave the machine;
#   2. traffic goes only to addresses of the namespaces made here (the driver checks too);
#   3. a trap removes every namespace, link and route made here on any exit.
# Without CAP_NET_ADMIN (not root, a locked-down container) it skips and says why.
set -euo pipefail
RANGE=198.18.0.0/15
BRIDGE=cpn-br0
BRIDGE_ADDRESS=198.18.0.1
HOSTS=3
PYTHON=${PYTHON:-.venv/bin/python}

can_admin_network() {
  [ "$(id -u)" = 0 ] || return 1
  local caps
  caps=$(awk '/^CapEff/ {print $2}' /proc/self/status)
  (( (16#$caps >> 12) & 1 )) || return 1  # bit 12: CAP_NET_ADMIN
  command -v ip >/dev/null
}
if ! can_admin_network; then
  echo "make multihost: skipped: making network namespaces needs root with CAP_NET_ADMIN and iproute2"
  exit 0
fi
if [ -n "$(ip route show "$RANGE")" ] || ip -o addr | grep -q ' 198\.1[89]\.'; then
  echo "make multihost: $RANGE is already in use here (another run?): not touching it" >&2
  exit 1
fi

route_added=0
cleanup() {
  set +e
  for i in $(seq 1 $HOSTS); do
    pids=$(ip netns pids "cpn-h$i" 2>/dev/null)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null
    ip netns del "cpn-h$i" 2>/dev/null
    ip link del "cpn-v$i" 2>/dev/null
  done
  ip link del "$BRIDGE" 2>/dev/null
  [ "$route_added" = 1 ] && ip route del unreachable "$RANGE"
  left=$(ip netns list | grep -c '^cpn-h')
  echo "make multihost: cleaned up (namespaces left: $left)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

ip route add unreachable "$RANGE"  # rule 1: before anything else exists
route_added=1
ip link add "$BRIDGE" type bridge
ip addr add "$BRIDGE_ADDRESS/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
addresses=() namespaces=()
for i in $(seq 1 $HOSTS); do
  ns="cpn-h$i" address="198.18.0.1$i"
  ip netns add "$ns"
  ip link add "cpn-v$i" type veth peer name "cpn-p$i"
  ip link set "cpn-v$i" master "$BRIDGE" up
  ip link set "cpn-p$i" netns "$ns"
  ip -n "$ns" addr add "$address/24" dev "cpn-p$i"
  ip -n "$ns" link set lo up
  ip -n "$ns" link set "cpn-p$i" up  # no default route: the bridge's /24 is all it reaches
  addresses+=("$address") namespaces+=("$ns")
done
"$PYTHON" -m benchmarks.multihost --bridge "$BRIDGE_ADDRESS" \
  --hosts "$(IFS=,; echo "${addresses[*]}")" --namespaces "$(IFS=,; echo "${namespaces[*]}")"
