"""`rackboot lab up` end to end on this machine: the lab spec's rack as QEMU VMs
and router containers, the real playbooks, and every printed figure checked
against what the routers and nodes themselves report (read here with the
daemons' own commands, not with the code that printed the figures).

Slow (TCG VMs: 15-25 minutes on 2 cores, images built on first use). Marked
`lab`: part of the full suite, left out by `--quick`; `./scripts/test -- -m lab`
runs it alone.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import REPO
from rackboot.lab import images
from rackboot.lab.lab import Lab, _qemu_markers, ssh_base_args

LAB = "rblab-lab"
VIP = "198.51.100.1/32"
NODES = {"node1": "10.77.100.11", "node2": "10.77.100.12", "node3": "10.77.100.13"}
ROUTERS = {"rtr-frr": "frr", "rtr-bird": "bird"}
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO / "collections")]),
           CONTAINERS_CONF=str(REPO / "src/rackboot/lab/containers.conf"), COLUMNS="200")

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def rackboot(*args, timeout=1800):
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "rackboot", *args], cwd=REPO, env=ENV, capture_output=True,
                         text=True, timeout=timeout)
    print("$ rackboot %s  (%.0f s, rc %d)\n%s\n%s" % (" ".join(args), time.monotonic() - t0, res.returncode,
                                                     res.stdout[-6000:], res.stderr[-3000:]))
    return res, time.monotonic() - t0


def on_router(router, *cmd):
    pid = subprocess.run(["podman", "inspect", "-f", "{{.State.Pid}}", "%s-%s" % (LAB, router)], env=ENV,
                         capture_output=True, text=True, check=True).stdout.strip()
    return subprocess.run(["nsenter", "-t", pid, "-m", "-u", "-n", *cmd], capture_output=True, text=True,
                          check=True).stdout


def on_node(node, cmd):
    port = Lab(LAB).vm(node).port
    return subprocess.run([*ssh_base_args(images.ssh_key(), port), cmd], capture_output=True, text=True,
                          timeout=60).stdout


def nexthops(router):
    """Gateways of the router's kernel route to the pool address, from `ip route` text."""
    return sorted(re.findall(r"via (\S+)", on_router(router, "ip", "route", "show", VIP)))


def established(router):
    """Node addresses whose BGP session the router's daemon reports Established."""
    if ROUTERS[router] == "frr":
        peers = json.loads(on_router(router, "vtysh", "-c", "show bgp neighbors json"))
        return sorted(a for a, p in peers.items() if p.get("bgpState") == "Established")
    found = []
    for block in on_router(router, "birdc", "show", "protocols", "all").split("\n\n"):
        addr, state = re.search(r"Neighbor address:\s+(\S+)", block), re.search(r"BGP state:\s+(\S+)", block)
        if addr and state and state.group(1) == "Established":
            found.append(addr.group(1))
    return sorted(found)


def bfd_up(router):
    if ROUTERS[router] == "frr":
        return sorted(p["peer"] for p in json.loads(on_router(router, "vtysh", "-c", "show bfd peers json"))
                      if p.get("status") == "up")
    return sorted(line.split()[0] for line in on_router(router, "birdc", "show", "bfd", "sessions").splitlines()
                  if re.match(r"^\d+\.\d+\.\d+\.\d+\s", line) and " Up " in line)


def wait_for(pred, timeout, step=0.5):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


@pytest.fixture(scope="module")
def lab():
    rackboot("lab", "down")
    res, secs = rackboot("lab", "up")
    yield res, secs
    rackboot("lab", "down")


def test_lab_up(lab):
    res, secs = lab
    assert res.returncode == 0, res.stderr[-3000:]
    figures = json.loads((Lab(LAB).dir / "figures.json").read_text())
    print("lab up: %.0f s, hosts %.0f s" % (secs, figures["hosts_s"]))
    # Links: the printed model comparison holds on the nodes themselves.
    for row in figures["links"]:
        node = row["node"]
        sysfs = on_node(node, "cat /sys/class/net/bond0/bonding/mode /sys/class/net/bond0/bonding/slaves")
        assert row["mode"] in sysfs and all(m in sysfs.split() for m in row["members"]) and len(row["members"]) == 2
        for v in row["vlans"]:
            assert "vlan protocol 802.1Q id %d" % v["model_id"] in on_node(node, "ip -d link show %s" % v["name"])
        assert on_node(node, "ping -M do -s 8972 -c 1 -W 2 -q 10.77.200.1%d >/dev/null && echo ok"
                       % (2 if node != "node2" else 3)).strip() == "ok"
        link = json.loads(on_node(node, "ip -d -j link show bond0"))[0]
        assert link["mtu"] == row["mtu"] == 9000 and link["linkinfo"]["info_data"]["mode"] == row["mode"]
        for v in row["vlans"]:
            assert json.loads(on_node(node, "ip -j link show %s" % v["name"]))[0]["mtu"] == v["mtu"] == v["model_mtu"]
    assert on_node("node1", "cat /sys/class/net/bond0/bonding/ad_num_ports").strip() == "2"
    assert "802.3ad" in on_node("node1", "cat /sys/class/net/bond0/bonding/mode")
    bonding = on_node("node1", "cat /proc/net/bonding/bond0")
    assert re.search(r"Active Aggregator Info:\s*\n\s*Aggregator ID: (\d+)\s*\n\s*Number of ports: 2", bonding)
    assert len(set(re.findall(r"Aggregator ID: (\d+)", bonding))) == 1, bonding  # both ports in one aggregator
    # The switch's side of node1's aggregation, from Open vSwitch itself.
    ctl = str(Lab(LAB).dir / "ovs" / "ovs-vswitchd.ctl")
    switch = subprocess.run(["ovs-appctl", "-t", ctl, "lacp/show", "lacp0-bond"], capture_output=True, text=True,
                            check=True).stdout
    assert re.search(r"status: active negotiated", switch) and switch.count("current attached") == 2, switch
    row1 = next(r for r in figures["links"] if r["node"] == "node1")
    assert "negotiated" in row1["lacp"]["switch_status"] and row1["lacp"]["one_aggregator"]
    assert all(r["lacp"] is None or r["lacp"]["active_ports"] == 2 for r in figures["links"])
    # BGP: what the routers report now is what was printed.
    for row in figures["routers"]:
        router = row["router"]
        assert established(router) == sorted(NODES.values())
        assert bfd_up(router) == sorted(NODES.values())
        assert nexthops(router) == sorted(NODES.values())
        assert sorted(row["nexthops"]) == sorted(NODES)
        assert all(s["state"] == "Established" and s["md5"] and s["bfd"] == "up" for s in row["sessions"].values())
        # TCP-MD5 on every BGP socket, from the kernel's socket table.
        assert on_router(router, "ss", "-tniH", "state", "established",
                         "( sport = :179 or dport = :179 )").count("md5") == 3
    # Printed in the output.
    for word in ("Second converge: 0 changed", "stand-in", "not applied", "dropped"):
        assert word in res.stdout, word
    assert all(c["changed"] == 0 for c in figures["second_converge"])
    assert all(v is not None and v < 3 for v in figures["failover"]["dropped_after_s"].values()), figures["failover"]


def test_cut_link_changes_route(lab):
    everyone = sorted(NODES.values())
    # The starting point: every node in the route on both routers.
    assert wait_for(lambda: all(nexthops(r) == everyone for r in ROUTERS), 120), {r: nexthops(r) for r in ROUTERS}
    for nic in ("eth1", "eth2"):
        Lab(LAB).set_link("node2", nic, False)
    try:
        gone = {r: wait_for(lambda r=r: NODES["node2"] not in nexthops(r), 15, 0.1) for r in ROUTERS}
        assert all(v is not None for v in gone.values()), gone
        rest = sorted([NODES["node1"], NODES["node3"]])
        assert all(nexthops(r) == rest for r in ROUTERS), {r: nexthops(r) for r in ROUTERS}
    finally:
        for nic in ("eth1", "eth2"):
            Lab(LAB).set_link("node2", nic, True)
    assert wait_for(lambda: all(nexthops(r) == everyone for r in ROUTERS), 120)


def test_status_shows_sessions(lab):
    res, _ = rackboot("lab", "status")
    assert res.returncode == 0
    for word in ("node1", "rtr-bird", "Established", VIP):
        assert word in res.stdout


def test_lab_down_leaves_nothing(lab):
    res, _ = rackboot("lab", "down")
    assert res.returncode == 0, res.stderr
    assert not [p for p, (name, _vm) in _qemu_markers().items() if name == LAB]
    assert not os.path.exists("/run/netns/rb-%s" % LAB)
    assert not Lab(LAB).dir.exists()
    ps = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], env=ENV, capture_output=True, text=True)
    assert not [n for n in ps.stdout.split() if n.startswith(LAB + "-")]
    procs = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert "rackboot:%s:" % LAB not in procs and "/labs/%s/ovs" % LAB not in procs
    # No tap, bridge or veth of the lab leaked into the host's own namespace.
    host_links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    assert not re.findall(r"^\d+: (node\d-e\d|fab-[ab]|stack-[ab]|lacp\d\S*|rtr\S*)[@:]", host_links, re.M)
