"""rackboot.metal.networkd_config run by Ansible itself, on this machine, in
render mode (apply: false) or check mode only: the host's own network is
never touched. The full apply path (kernel, networkd, rollback timer) runs in
the VM scenario roles/node_network/molecule/default.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils import cluster_model

REPO = Path(__file__).resolve().parents[2]
ANSIBLE = REPO / ".venv/bin/ansible"


def node_network(name="node1"):
    spec = yaml.safe_load((REPO / "inventories/lab/cluster.yml").read_text())
    return cluster_model.build(spec, "lab").nodes[name]["network"]


def run_module(args, check=False, diff=True, module="rackboot.metal.networkd_config"):
    cmd = [str(ANSIBLE), "localhost", "-i", "localhost,", "-c", "local", "-m", module, "-a", json.dumps(args)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_PYTHON_INTERPRETER=str(REPO / ".venv/bin/python"))
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout)
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def render_args(net, tmp_path, **kw):
    args = {"links": net["links"], "routes": net["routes"], "config_dir": str(tmp_path / "networkd"), "apply": False}
    args.update(kw)
    return args


def test_render_is_idempotent_and_removes_what_left_the_spec(tmp_path):
    net = node_network()
    first = run_module(render_args(net, tmp_path))
    assert first["changed"] is True
    written = sorted(p.name for p in (tmp_path / "networkd").iterdir())
    assert written == sorted(["10-rackboot-%s.network" % lk["name"] for lk in net["links"]]
                             + ["10-rackboot-%s.netdev" % lk["name"] for lk in net["links"] if lk["kind"] != "ethernet"])
    assert all(not d["before"] for d in first["diff"])  # all new files
    # An unmanaged file in the same folder is never touched.
    (tmp_path / "networkd/20-other.network").write_text("[Match]\nName=eth9\n")

    second = run_module(render_args(net, tmp_path))
    assert second["changed"] is False
    assert second["files"]["added"] == second["files"]["changed"] == second["files"]["removed"] == []

    # VLAN 100 (peering) leaves the model: its files go, the bond's VLAN= list shrinks.
    smaller = copy.deepcopy(net)
    smaller["links"] = [lk for lk in smaller["links"] if lk["name"] != "bond0.100"]
    bond = next(lk for lk in smaller["links"] if lk["name"] == "bond0")
    third = run_module(render_args(smaller, tmp_path))
    assert third["changed"] is True
    assert sorted(Path(p).name for p in third["files"]["removed"]) == ["10-rackboot-bond0.100.netdev",
                                                                      "10-rackboot-bond0.100.network"]
    assert [Path(p).name for p in third["files"]["changed"]] == ["10-rackboot-bond0.network"]
    assert not (tmp_path / "networkd/10-rackboot-bond0.100.netdev").exists()
    assert "VLAN=bond0.100" not in (tmp_path / "networkd/10-rackboot-bond0.network").read_text()
    assert (tmp_path / "networkd/20-other.network").exists()
    assert bond["name"] == "bond0"


def test_check_mode_reports_changes_with_a_diff_and_writes_nothing(tmp_path):
    net = node_network()
    run_module(render_args(net, tmp_path))
    before = {p.name: p.read_text() for p in (tmp_path / "networkd").iterdir()}
    changed = copy.deepcopy(net)
    for lk in changed["links"]:
        if lk["name"] == "bond0.100":
            lk["mtu"] = 1400
    res = run_module(render_args(changed, tmp_path), check=True)
    assert res["changed"] is True
    assert [Path(p).name for p in res["files"]["changed"]] == ["10-rackboot-bond0.100.netdev",
                                                               "10-rackboot-bond0.100.network"]
    assert any("MTUBytes=1400" in d["after"] and "MTUBytes=1500" in d["before"] for d in res["diff"])
    assert {p.name: p.read_text() for p in (tmp_path / "networkd").iterdir()} == before


def test_netplan_render_mode_is_private_and_idempotent(tmp_path):
    net = node_network()
    target = tmp_path / "netplan/60-rackboot.yaml"
    res = run_module({"links": net["links"], "routes": net["routes"], "backend": "netplan",
                      "netplan_file": str(target), "apply": False})
    assert res["changed"] is True
    assert oct(target.stat().st_mode & 0o777) == "0o600"  # netplan refuses world-readable files
    assert yaml.safe_load(target.read_text())["network"]["bonds"]["bond0"]["addresses"] == ["10.77.0.11/24"]
    again = run_module({"links": net["links"], "routes": net["routes"], "backend": "netplan",
                        "netplan_file": str(target), "apply": False})
    assert again["changed"] is False


def test_ifupdown_owning_a_managed_link_is_refused_before_anything_changes(tmp_path):
    net = node_network()
    interfaces = tmp_path / "interfaces"
    interfaces.write_text("auto lo\niface lo inet loopback\n\nauto eth1\niface eth1 inet dhcp\n")
    # check mode on top of the refusal: this test must never reach the host's network.
    res = run_module(render_args(net, tmp_path, apply=True, interfaces_file=str(interfaces)), check=True)
    assert res["failed"] is True
    assert "%s:4 (eth1)" % interfaces in res["msg"] and "Nothing was changed" in res["msg"]
    assert not (tmp_path / "networkd").exists()

    res = run_module(render_args(net, tmp_path, apply=True, interfaces_file=str(interfaces), ifupdown="takeover"),
                     check=True)
    assert res.get("failed") is not True and res["changed"] is True
    assert [Path(p).name for p in res["files"]["changed"]] == ["interfaces"]
    assert interfaces.read_text().count("iface eth1") == 1  # check mode: still there, uncommented


def test_a_shadowing_network_file_is_refused(tmp_path):
    net = node_network()
    cdir = tmp_path / "networkd"
    cdir.mkdir()
    (cdir / "05-catchall.network").write_text("[Match]\nName=eth* bond*\n\n[Network]\nDHCP=yes\n")
    res = run_module(render_args(net, tmp_path, apply=True, interfaces_file=str(tmp_path / "none")), check=True)
    assert res["failed"] is True
    assert "05-catchall.network (bond0)" in res["msg"] and "05-catchall.network (eth1)" in res["msg"]


def test_invalid_model_fails_with_the_link_named(tmp_path):
    net = node_network()
    bad = copy.deepcopy(net)
    bad["links"][3]["vlan_id"] = 5000
    res = run_module(render_args(bad, tmp_path))
    assert res["failed"] is True
    assert "links[3] (bond0.100).vlan_id: 5000 is outside 1-4094" in res["msg"]
    assert "Traceback" not in res["msg"]


@pytest.mark.parametrize("state", ["query", "confirmed"])
def test_network_rollback_with_nothing_pending_changes_nothing(tmp_path, state):
    res = run_module({"state": state, "state_dir": str(tmp_path)}, module="rackboot.metal.network_rollback",
                     check=True)
    assert res["changed"] is False and res["pending"] is None and res["rolled_back"] is None


def test_network_rollback_reports_a_rollback_the_node_made(tmp_path):
    record = {"time": "2026-01-01T00:00:00Z", "restore": ["/etc/systemd/network/10-rackboot-bond0.network"],
              "remove": [], "delete_links": ["bond0.300"]}
    (tmp_path / "rolled-back.json").write_text(json.dumps(record))
    (tmp_path / "rolled-back.reason").write_text("the confirmation timer expired\n")
    (tmp_path / "rolled-back.time").write_text("2026-01-01T00:03:00Z\n")
    res = run_module({"state": "query", "state_dir": str(tmp_path)}, module="rackboot.metal.network_rollback")
    assert res["rolled_back"]["reason"] == "the confirmation timer expired"
    assert res["rolled_back"]["delete_links"] == ["bond0.300"]
    # confirming a change that was already undone must fail, not pretend
    res = run_module({"state": "confirmed", "state_dir": str(tmp_path)}, module="rackboot.metal.network_rollback",
                     check=True)
    assert res["failed"] is True and "already rolled back" in res["msg"]


@pytest.mark.parametrize("name", ["networkd_config", "network_rollback"])
def test_module_documentation_matches_its_argument_spec(name, monkeypatch):
    import importlib

    mod = importlib.import_module("ansible_collections.rackboot.metal.plugins.modules.%s" % name)
    doc = yaml.safe_load(mod.DOCUMENTATION)
    yaml.safe_load(mod.EXAMPLES)
    yaml.safe_load(mod.RETURN)
    seen = {}

    class Stop(Exception):
        pass

    def fake(**kwargs):
        seen.update(kwargs)
        raise Stop()

    monkeypatch.setattr(mod, "AnsibleModule", fake)
    with pytest.raises(Stop):
        mod.main()
    assert seen["supports_check_mode"] is True
    spec = seen["argument_spec"]
    assert set(spec) == set(doc["options"])
    for opt, entry in doc["options"].items():
        assert spec[opt].get("type", "str") == entry.get("type", "str"), opt
        assert spec[opt].get("default") == entry.get("default"), opt
        assert spec[opt].get("choices") == entry.get("choices"), opt
