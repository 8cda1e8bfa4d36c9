# -*- coding: utf-8 -*-
"""talosctl command lines and the order of operations (plugins/module_utils/talos_cli.py).

The rollout runs against a fake talosctl (test_talos_fakectl.py) that only
accepts the documented flags and simulates maintenance mode, configured nodes,
etcd and bootstrap.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.module_utils import talos_cli, talos_config, talos_secrets
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build
from conftest import TALOS

REPO = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("talos_fakectl", pathlib.Path(__file__).with_name("test_talos_fakectl.py"))
fakectl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakectl)


# ---------------------------------------------------------------------------------------------
# Command lines: the forms of the Talos CLI reference
# ---------------------------------------------------------------------------------------------
def test_maintenance_apply_is_insecure_without_talosconfig():
    argv = talos_cli.cmd_apply_insecure("talosctl", "10.0.0.11", "/a/cp1.yaml")
    assert argv == ["talosctl", "apply-config", "--insecure", "--nodes", "10.0.0.11", "--file", "/a/cp1.yaml"]
    assert "--talosconfig" not in argv


def test_authenticated_apply_names_talosconfig_node_endpoint_file_and_mode():
    argv = talos_cli.cmd_apply("talosctl", "/a/talosconfig", "10.0.0.11", "/a/cp1.yaml", "no-reboot")
    assert argv[:3] == ["talosctl", "--talosconfig", "/a/talosconfig"]
    assert argv[3] == "apply-config" and "--insecure" not in argv
    pairs = dict(zip(argv[4::2], argv[5::2]))
    assert pairs == {"--nodes": "10.0.0.11", "--endpoints": "10.0.0.11", "--file": "/a/cp1.yaml", "--mode": "no-reboot"}


def test_apply_mode_must_be_a_documented_mode():
    with pytest.raises(ValueError):
        talos_cli.cmd_apply("talosctl", "tc", "10.0.0.11", "f", "immediate")   # removed in Talos 0.x


def test_configured_probe_reads_the_active_or_persistent_machine_config():
    argv = talos_cli.cmd_probe_configured("talosctl", "tc", "10.0.0.11")
    assert argv[3:6] == ["get", "machineconfig", "v1alpha1"] and argv[argv.index("--output") + 1] == "yaml"
    assert talos_cli.cmd_probe_configured("talosctl", "tc", "10.0.0.11", "persistent")[5] == "persistent"


def test_bootstrap_targets_one_node_through_itself():
    argv = talos_cli.cmd_bootstrap("talosctl", "tc", "10.0.0.11")
    assert argv == ["talosctl", "--talosconfig", "tc", "bootstrap", "--nodes", "10.0.0.11", "--endpoints", "10.0.0.11"]


def test_health_lists_control_planes_and_workers():
    argv = talos_cli.cmd_health("talosctl", "tc", "10.0.0.11", ["10.0.0.11", "10.0.0.12"], ["10.0.0.21"], 600)
    assert argv[argv.index("--control-plane-nodes") + 1] == "10.0.0.11,10.0.0.12"
    assert argv[argv.index("--worker-nodes") + 1] == "10.0.0.21"
    assert argv[argv.index("--wait-timeout") + 1] == "600s"
    assert "--worker-nodes" not in talos_cli.cmd_health("talosctl", "tc", "a", ["a"], [], 5)


def test_kubeconfig_goes_to_stdout_without_merging():
    argv = talos_cli.cmd_kubeconfig("talosctl", "tc", "10.0.0.11")
    assert argv[3:5] == ["kubeconfig", "-"] and "--merge=false" in argv


# ---------------------------------------------------------------------------------------------
# Plans (pure)
# ---------------------------------------------------------------------------------------------
NODES = [{"name": "w1", "address": "10.0.0.21", "role": "worker"},
         {"name": "cp2", "address": "10.0.0.12", "role": "controlplane"},
         {"name": "cp1", "address": "10.0.0.11", "role": "controlplane"},
         {"name": "w2", "address": "10.0.0.22", "role": "worker"}]


def test_control_planes_first_bootstrap_node_first_of_all():
    assert [n["name"] for n in talos_cli.order_nodes(NODES, "cp1")] == ["cp1", "cp2", "w1", "w2"]


def test_plan_apply_chooses_insecure_for_maintenance_and_skips_identical():
    desired = {n["name"]: [{"version": "v1alpha1", "n": n["name"]}] for n in NODES}
    states = {"cp1": ("maintenance", None), "cp2": ("configured", desired["cp2"]),
              "w1": ("configured", [{"version": "v1alpha1", "n": "old"}]), "w2": ("configured", None)}
    plan = {s["name"]: s["action"] for s in talos_cli.plan_apply(NODES, states, desired, "cp1")}
    assert plan == {"cp1": "insecure", "cp2": "none", "w1": "apply", "w2": "apply"}


def test_plan_apply_refuses_when_any_node_is_unreachable():
    states = {n["name"]: ("maintenance", None) for n in NODES}
    states["w2"] = ("unreachable", None)
    states["cp2"] = ("unreachable", None)
    with pytest.raises(talos_cli.PlanError) as e:
        talos_cli.plan_apply(NODES, states, {}, "cp1")
    assert "cp2, w2" in str(e.value)


CPS = [n for n in NODES if n["role"] == "controlplane"]


def test_plan_bootstrap_once_on_the_bootstrap_node():
    plan = talos_cli.plan_bootstrap(CPS, {"cp1": None, "cp2": None}, False, "cp1")
    assert plan["action"] == "bootstrap" and plan["node"] == "cp1"


def test_plan_bootstrap_skips_when_any_control_plane_runs_etcd():
    plan = talos_cli.plan_bootstrap(CPS, {"cp1": None, "cp2": ["cp2"]}, False, "cp1")
    assert plan["action"] == "none" and "cp2" in plan["reason"]


def test_plan_bootstrap_never_twice_after_a_recorded_bootstrap():
    with pytest.raises(talos_cli.PlanError) as e:
        talos_cli.plan_bootstrap(CPS, {"cp1": None, "cp2": None}, True, "cp1")
    assert "bootstrapped before" in str(e.value)


def test_plan_bootstrap_rejects_a_worker_as_bootstrap_node():
    with pytest.raises(talos_cli.PlanError):
        talos_cli.plan_bootstrap(CPS, {}, False, "w1")


def test_parse_etcd_members_reads_the_hostname_column():
    text = ("NODE         ID                 HOSTNAME   PEER URLS                CLIENT URLS              LEARNER\n"
            "10.5.0.2     43a3d0c7cab1f5df   cp1        https://10.5.0.2:2380    https://10.5.0.2:2379    false\n"
            "10.5.0.2     5f2b1a7de0c3e9aa   cp2        https://10.5.0.3:2380    https://10.5.0.3:2379    false\n")
    assert talos_cli.parse_etcd_members(text) == ["cp1", "cp2"]
    assert talos_cli.parse_etcd_members("") == []


def test_parse_machineconfig_reads_the_spec_documents():
    text = yaml.safe_dump({"node": "a", "metadata": {"id": "v1alpha1"}, "spec": "version: v1alpha1\n---\nkind: X\n"})
    assert talos_cli.parse_machineconfig(text) == [{"version": "v1alpha1"}, {"kind": "X"}]
    assert talos_cli.parse_machineconfig("::: not yaml [") is None


# ---------------------------------------------------------------------------------------------
# Rollout of the example inventory against the fake talosctl
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def rack(tmp_path):
    """The example inventory rendered into tmp_path, every node in maintenance mode."""
    spec = yaml.safe_load((REPO / "inventories/example/cluster.yml").read_text())
    model = build(spec)
    bundle = talos_secrets.generate()
    crt, key = talos_secrets.client_certificate(bundle)
    tc = tmp_path / "talosconfig"
    addrs = [model.nodes[c]["management_address"] for c in model.groups["controlplane"]]
    tc.write_text(yaml.safe_dump(talos_secrets.talosconfig("dc1-prod", addrs, addrs, bundle, crt, key)))
    nodes, files, desired = [], {}, {}
    for name, node in model.nodes.items():
        docs = talos_config.render(node, model.cluster, bundle, TALOS)
        path = tmp_path / ("%s.yaml" % name)
        path.write_text(talos_config.dump(docs, name, node["role"]))
        files[name] = str(path)
        desired[name] = [d for d in yaml.safe_load_all(path.read_text()) if d]
        nodes.append({"name": name, "address": node["management_address"], "role": node["role"]})
    talosctl, state = fakectl.install_fake(tmp_path, {n["address"]: {"state": "maintenance"} for n in nodes},
                                           bundle["certs"]["os"]["crt"])

    def run(argv):
        assert argv[0] == talosctl
        return fakectl.run_inprocess(argv, state)

    class Rack(object):
        pass
    r = Rack()
    r.model, r.nodes, r.files, r.desired, r.state = model, nodes, files, desired, state
    r.talos = lambda: talos_cli.Talos(talosctl, str(tc), run, sleep=lambda s: None)
    r.cps = [n for n in nodes if n["role"] == "controlplane"]
    r.bootstrap_node = model.cluster["bootstrap_node"]
    return r


def _rollout(rack, marker=False):
    talos = rack.talos()
    states = {n["name"]: talos.probe(n["address"]) for n in rack.nodes}
    plan = talos_cli.plan_apply(rack.nodes, states, rack.desired, rack.bootstrap_node)
    talos.apply(plan, rack.files, "auto")
    boot = talos.bootstrap(rack.cps, rack.bootstrap_node, marker, timeout=5, interval=0)
    members = talos.wait_etcd(rack.cps, rack.bootstrap_node, timeout=5, interval=0)
    return plan, boot, members, talos.log


def test_first_rollout_applies_insecurely_then_bootstraps_once(rack):
    plan, boot, members, log = _rollout(rack)
    assert all(s["action"] == "insecure" for s in plan)
    assert [s["name"] for s in plan][:3] == rack.model.groups["controlplane"]
    applies = [c for c in log if "apply-config" in c]
    assert len(applies) == len(rack.nodes) and all("--insecure" in c for c in applies)
    # every control plane is configured before any worker
    last_cp = max(i for i, c in enumerate(applies) if c[c.index("--nodes") + 1] in {n["address"] for n in rack.cps})
    first_w = min(i for i, c in enumerate(applies) if c[c.index("--nodes") + 1] not in {n["address"] for n in rack.cps})
    assert last_cp < first_w
    assert boot == {"action": "bootstrap", "node": rack.bootstrap_node, "reason": boot["reason"]}
    assert members == sorted(rack.model.groups["controlplane"])
    state = fakectl.read_state(rack.state)
    assert state["bootstraps"] == 1
    bootstrap_calls = [c for c in state["calls"] if "bootstrap" in c]
    cp1 = rack.model.nodes[rack.bootstrap_node]["management_address"]
    assert len(bootstrap_calls) == 1
    assert bootstrap_calls[0][bootstrap_calls[0].index("--nodes") + 1] == cp1
    # the node received exactly the rendered file
    for n in rack.nodes:
        assert state["nodes"][n["address"]]["config"] == pathlib.Path(rack.files[n["name"]]).read_text()


def test_second_rollout_changes_nothing(rack):
    _rollout(rack)
    plan, boot, _, log = _rollout(rack, marker=True)
    assert {s["action"] for s in plan} == {"none"}
    assert boot["action"] == "none"
    assert not [c for c in log if "apply-config" in c or "bootstrap" in c]
    assert fakectl.read_state(rack.state)["bootstraps"] == 1


def test_changed_config_is_applied_authenticated_to_that_node_only(rack):
    _rollout(rack)
    path = pathlib.Path(rack.files["w3"])
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    docs[0]["machine"]["nodeLabels"] = {"node.rackboot.io/pool": "gpu"}
    path.write_text(talos_config.dump(docs))
    rack.desired["w3"] = docs
    plan, _, _, log = _rollout(rack, marker=True)
    assert {s["name"]: s["action"] for s in plan if s["action"] != "none"} == {"w3": "apply"}
    applies = [c for c in log if "apply-config" in c]
    assert len(applies) == 1 and "--insecure" not in applies[0] and "--talosconfig" in applies[0]


def test_unreachable_node_stops_the_rollout_before_any_apply(rack):
    state = fakectl.read_state(rack.state)
    state["nodes"][rack.model.nodes["w6"]["management_address"]]["state"] = "down"
    pathlib.Path(rack.state).write_text(json.dumps(state))
    with pytest.raises(talos_cli.PlanError) as e:
        _rollout(rack)
    assert "w6" in str(e.value)
    assert not [c for c in fakectl.read_state(rack.state)["calls"] if "apply-config" in c]


def test_recorded_bootstrap_without_etcd_is_refused(rack):
    talos = rack.talos()
    states = {n["name"]: talos.probe(n["address"]) for n in rack.nodes}
    talos.apply(talos_cli.plan_apply(rack.nodes, states, rack.desired, rack.bootstrap_node), rack.files, "auto")
    with pytest.raises(talos_cli.PlanError):
        talos.bootstrap(rack.cps, rack.bootstrap_node, True, timeout=5, interval=0)
    assert fakectl.read_state(rack.state).get("bootstraps", 0) == 0


def test_wrong_cluster_talosconfig_is_not_accepted(rack, tmp_path):
    other = talos_secrets.generate()
    crt, key = talos_secrets.client_certificate(other)
    tc = tmp_path / "other-talosconfig"
    tc.write_text(yaml.safe_dump(talos_secrets.talosconfig("x", ["10.10.0.11"], [], other, crt, key)))
    talos = rack.talos()
    talos.talosconfig = str(tc)
    # configured-node probe fails, maintenance probe answers: the node is (correctly) seen as fresh
    assert talos.probe("10.10.0.11") == ("maintenance", None)


def test_waiting_for_etcd_times_out_with_a_clear_message(rack):
    clock = iter(range(0, 1000, 10))
    talos = rack.talos()
    talos.clock = lambda: next(clock)
    with pytest.raises(talos_cli.PlanError) as e:
        talos.wait_etcd(rack.cps, rack.bootstrap_node, timeout=30, interval=10)
    assert "timed out after 30s" in str(e.value)
