"""The VM lab's LACP switch (Open vSwitch, userspace datapath) on this machine.

No VMs: two taps stand in for a VM's fabric NICs. Checks that the switch
comes up inside the lab's namespace, bonds the taps with LACP active, uplinks
into the segment, reports its view, and that destroy leaves no daemon, file
or namespace behind. The LACP negotiation itself is checked with real guests
in roles/node_network/molecule/default.
"""
import os
import sys
from pathlib import Path

import pytest

from conftest import REPO

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rackboot.lab import lab  # noqa: E402
from rackboot.lab.common import run  # noqa: E402

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (network namespaces)"),
    pytest.mark.skipif(not lab.OVS_SCHEMA.exists(), reason="Open vSwitch is not installed (scripts/bootstrap --hosts)"),
]


def test_lacp_switch_bonds_the_taps_and_destroy_removes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RACKBOOT_RUN", str(tmp_path / "run"))
    lb = lab.Lab("switch-test")
    (vm,) = lab.parse_platforms([{"name": "node1", "fabric": ["fab-a", "fab-b"], "lacp": True}], lb.name)
    lb.destroy(quiet=True)
    lb.dir.mkdir(parents=True)
    fds = []
    try:
        run(["ip", "netns", "add", lb.netns])
        for seg in ("fab-a", "fab-b"):
            run(["ip", "-n", lb.netns, "link", "add", seg, "type", "bridge"])
        fds = [lab.open_tap(lb.netns, nic.tap) for nic in vm.nics]
        for nic in vm.nics:
            run(["ip", "-n", lb.netns, "link", "set", nic.tap, "up"])
        lb._save([vm])
        lb._start_lacp_switch([vm])

        view = lb.lacp("node1")
        assert view["bond"] == "lacp0-bond"
        assert sorted(view["members"]) == ["node1-e1", "node1-e2"]
        assert view["sys_id"] and view["sys_id"] != "00:00:00:00:00:00"
        assert "active" in view["status"]
        bond = lb.ovs("get", "port", "lacp0-bond", "bond_mode", "lacp", "other_config:lacp-time").split()
        assert bond == ["balance-tcp", "active", "fast"]
        # the uplink: one veth end in the switch, the other a port of the VM's first segment
        assert lb.ovs("list-ports", "lacp0").split() == ["lacp0-bond", "lacp0-up"]
        assert "master fab-a" in run(["ip", "-n", lb.netns, "-o", "link", "show", "lacp0-sw"]).stdout
        assert len(lb.switch_pids()) == 2

        with pytest.raises(lab.LabError, match="no LACP aggregation"):
            lb._save([vm, lab.parse_platforms([{"name": "node2"}], lb.name)[0]])
            lb.lacp("node2")
    finally:
        for fd in fds:
            os.close(fd)
        assert lb.destroy(quiet=True) is True
    assert lb.switch_pids() == set()
    assert not lb.dir.exists()
    assert not Path("/run/netns/%s" % lb.netns).exists()
