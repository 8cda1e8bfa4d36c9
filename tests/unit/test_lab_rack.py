"""Fast tests of `rackboot lab` (rackboot.lab.rack, .figures): no VMs, no podman."""
from pathlib import Path

from conftest import REPO
from rackboot.lab.figures import bonding_state, link_ok
from rackboot.collection import plain as _plain
from rackboot.lab.rack import RackLab, load_spec

BONDING_8023AD = """Ethernet Channel Bonding Driver: v6.1.0-50-amd64

Bonding Mode: IEEE 802.3ad Dynamic link aggregation
MII Status: up

802.3ad info
LACP active: on
Active Aggregator Info:
\tAggregator ID: 1
\tNumber of ports: 2

Slave Interface: eth1
MII Status: up
Aggregator ID: 1

Slave Interface: eth2
MII Status: down
Aggregator ID: 2
"""


def test_bonding_state_reads_aggregators():
    s = bonding_state(BONDING_8023AD)
    assert s["mode"].startswith("IEEE 802.3ad")
    assert (s["active_aggregator"], s["active_ports"]) == (1, 2)
    assert s["members"] == {"eth1": {"mii": "up", "aggregator": 1}, "eth2": {"mii": "down", "aggregator": 2}}


def test_link_ok_needs_one_aggregator_and_jumbo_frames():
    row = {"mode": "802.3ad", "model_mode": "802.3ad", "members": ["eth1", "eth2"], "model_members": ["eth1", "eth2"],
           "mtu": 9000, "model_mtu": 9000, "vlans": [{"id": 100, "model_id": 100, "mtu": 1500, "model_mtu": 1500}],
           "jumbo": [{"ok": True}],
           "lacp": {"active_ports": 2, "one_aggregator": True, "switch_status": ["active", "negotiated"]}}
    assert link_ok(row)
    assert not link_ok(dict(row, lacp=dict(row["lacp"], one_aggregator=False)))
    assert not link_ok(dict(row, jumbo=[{"ok": False}]))
    assert not link_ok(dict(row, vlans=[{"id": 200, "model_id": 100, "mtu": 1500, "model_mtu": 1500}]))


def test_plain_unwraps_unsafe_values():
    assert _plain({"a": [{"__ansible_unsafe": "x"}], "b": {"__ansible_unsafe": "y"}}) == {"a": ["x"], "b": "y"}


def test_lab_spec_platforms():
    inv = REPO / "inventories/lab"
    spec = load_spec(inv, ["--vault-id", "lab@%s" % (inv / "vault-password.txt")])
    platforms = RackLab(spec).platforms()
    # node1's bond is 802.3ad in the lab spec: its switch ports get an LACP partner, the others do not.
    assert [(p["name"], p["lacp"]) for p in platforms] == [("node1", True), ("node2", False), ("node3", False)]
    assert spec.vip == "198.51.100.1" and spec.gateway() == "10.77.0.1/24"
    assert spec.lab_name == "rblab-lab" and spec.container("rtr-frr") == "rblab-lab-rtr-frr"
    assert Path(str(RackLab(spec).overlay)).name == "inventory"
