#!/usr/bin/env bash
# The measurement behind swarm-overlay's bridge_nf.rs: task-to-task iperf3
# over the kernel's VXLAN (built with `ip` commands, bridge and VXLAN device
# in each host's namespace) with the br_netfilter hooks on (a new
# namespace's default) and off in the hosts' namespaces, beside the
# underlay. Needs root, iproute2, iperf3, and br_netfilter loaded to show a
# difference. Usage: bash scripts/bench/vxlan_bridge_nf.sh [seconds]
set -euo pipefail
secs=${1:-4}
ns=(xsw xh1 xh2 xt1 xt2)
cleanup() { pkill -f "iperf3 -s -D -B 10.91.0.2|iperf3 -s -D -B 198.18.0.2" 2>/dev/null || true
            for n in "${ns[@]}"; do ip netns del "$n" 2>/dev/null || true; done; }
build() {
  cleanup
  for n in "${ns[@]}"; do ip netns add "$n"; ip -n "$n" link set lo up; done
  ip -n xsw link add ul0 type bridge; ip -n xsw link set ul0 up
  for i in 1 2; do
    ip -n xsw link add p$i type veth peer name eth0 netns xh$i
    ip -n xsw link set p$i master ul0 up
    ip -n xh$i addr add 198.18.0.$i/24 dev eth0; ip -n xh$i link set eth0 up
    ip -n xh$i link add br0 type bridge; ip -n xh$i link set br0 up
    ip -n xh$i link add vx0 type vxlan id 4096 local 198.18.0.$i dstport 4789 nolearning noudpcsum
    ip -n xh$i link set vx0 mtu 1450 master br0 up
    ip -n xh$i link add ve0 mtu 1450 type veth peer name eth0 netns xt$i
    ip -n xh$i link set ve0 master br0 up
    ip -n xt$i link set eth0 address 02:42:0a:5b:00:0$i
    ip -n xt$i addr add 10.91.0.$i/24 dev eth0; ip -n xt$i link set eth0 up
  done
  bridge -n xh1 fdb add 02:42:0a:5b:00:02 dev vx0 dst 198.18.0.2 self permanent
  bridge -n xh2 fdb add 02:42:0a:5b:00:01 dev vx0 dst 198.18.0.1 self permanent
  ip -n xt1 neigh add 10.91.0.2 lladdr 02:42:0a:5b:00:02 dev eth0 nud permanent
  ip -n xt2 neigh add 10.91.0.1 lladdr 02:42:0a:5b:00:01 dev eth0 nud permanent
  for n in $1; do
    ip netns exec "$n" sysctl -qw net.bridge.bridge-nf-call-iptables=0 \
      net.bridge.bridge-nf-call-ip6tables=0 net.bridge.bridge-nf-call-arptables=0
  done
  ip netns exec xt2 iperf3 -s -D -B 10.91.0.2
  ip netns exec xh2 iperf3 -s -D -B 198.18.0.2
  sleep 0.5
}
gbit() { ip netns exec "$1" iperf3 -c "$2" -t "$secs" -J |
  python3 -c "import sys,json; print(round(json.load(sys.stdin)['end']['sum_received']['bits_per_second']/1e9,2))"; }
trap cleanup EXIT
for off in "" "xh1 xh2"; do
  build "$off"
  echo "hooks off in [${off:-none}]: overlay $(gbit xt1 10.91.0.2) Gbit/s, underlay $(gbit xh1 198.18.0.2) Gbit/s"
done
