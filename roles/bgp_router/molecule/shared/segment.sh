#!/bin/sh
# The lab's L2 segment: a bridge in a network namespace of its own, one veth
# per container (eth1 inside the container). Nothing is attached to the
# host's network; deleting the namespace removes the bridge and every veth.
#   segment.sh up NETNS CONTAINER=ADDRESS/PREFIX ...   (re)attach containers
#   segment.sh cut NETNS CONTAINER      silent link loss: the container's port on the
#                                      bridge goes down, the router's link stays up
#   segment.sh restore NETNS CONTAINER
#   segment.sh down NETNS
set -eu
cmd=$1 ns=$2
shift 2
port() { printf 'p-%s' "$1" | cut -c1-15; }
case $cmd in
up)
  ip netns list | grep -qx "$ns\( .*\)\?" || ip netns add "$ns"
  ip -n "$ns" link show br0 >/dev/null 2>&1 || ip -n "$ns" link add br0 type bridge
  ip -n "$ns" link set lo up
  ip -n "$ns" link set br0 up
  for spec in "$@"; do
    name=${spec%%=*} addr=${spec#*=}
    pid=$(podman inspect -f '{{.State.Pid}}' "$name")
    p=$(port "$name")
    ip -n "$ns" link del "$p" 2>/dev/null || true
    nsenter -t "$pid" -n ip link del eth1 2>/dev/null || true
    ip -n "$ns" link add "$p" type veth peer name eth1 netns "$pid"
    ip -n "$ns" link set "$p" master br0 up
    nsenter -t "$pid" -n ip addr add "$addr" dev eth1
    nsenter -t "$pid" -n ip link set eth1 up
    nsenter -t "$pid" -n ip link set lo up
  done
  ;;
cut) ip -n "$ns" link set "$(port "$1")" down ;;
restore) ip -n "$ns" link set "$(port "$1")" up ;;
down) ip netns del "$ns" 2>/dev/null || true ;;
*) echo "usage: $0 up|cut|restore|down NETNS [...]" >&2; exit 2 ;;
esac
