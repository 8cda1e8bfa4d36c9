# -*- coding: utf-8 -*-
"""The spec's `attachments` (Multus NetworkAttachmentDefinitions): validation and the resolved master link."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import SpecError, build

REPO = Path(__file__).resolve().parents[2]


def _spec(inv):
    return yaml.safe_load((REPO / "inventories" / inv / "cluster.yml").read_text())


def _build(spec):
    return build(spec, "cluster.yml", yaml.safe_dump(spec, sort_keys=False))


def _problems(spec):
    with pytest.raises(SpecError) as exc:
        _build(spec)
    return exc.value.problems


def _with(inv, *attachments, networks=()):
    spec = copy.deepcopy(_spec(inv))
    spec["networks"].extend(networks)
    spec["attachments"] = list(attachments)
    return spec


def _one(problems, path):
    """The reasons reported at ``path`` (a tuple)."""
    found = [reason for p, reason in problems if p == path]
    assert found, "no problem at %r; got %r" % (path, problems)
    return found


def test_a_spec_without_attachments_publishes_an_empty_list():
    assert "attachments" not in _spec("lab")
    assert _build(_spec("lab")).cluster["attachments"] == []


def test_the_example_attachment_uses_each_nodes_storage_bridge():
    spec = _spec("example")
    (att,) = _build(spec).cluster["attachments"]
    assert (att["name"], att["type"], att["network"]) == ("storage", "bridge", "storage")
    assert att["master"] == spec["host_network"]["bridges"][0]["name"]
    assert att["all_nodes"] and att["nodes"] == []   # every node: no list on group all


def test_macvlan_master_is_the_nodes_link_on_the_network():
    spec = _with("example", {"name": "backup", "type": "macvlan", "network": "backup"})
    model = _build(spec)
    (att,) = model.cluster["attachments"]
    on_net = {name: n["network"]["networks"]["backup"] for name, n in model.nodes.items()
              if "backup" in n["network"]["networks"]}
    assert on_net, "the example spec puts some nodes on the backup network"
    assert not att["all_nodes"] and att["nodes"] == list(on_net)
    assert {att["master"]} == set(on_net.values())
    net = next(n for n in model.cluster["networks"] if n["name"] == "backup")
    assert (att["mtu"], att["vlan"], att["namespace"]) == (net["mtu"], net["vlan"], "default")
    assert att["ipam"]["type"] == "none"


def test_bridge_master_is_the_nodes_bridge():
    spec = _with("example", {"name": "storage", "namespace": "tenant-a", "type": "bridge", "network": "storage"})
    model = _build(spec)
    (att,) = model.cluster["attachments"]
    links = {n["network"]["networks"]["storage"] for n in model.nodes.values()}
    assert {att["master"]} == links
    kinds = {lk["kind"] for n in model.nodes.values() for lk in n["network"]["links"] if lk["name"] == att["master"]}
    assert kinds == {"bridge"}


def test_bridge_type_needs_a_bridge_on_every_node_of_the_network():
    problems = _problems(_with("example", {"name": "b", "type": "bridge", "network": "backup"}))
    (reason,) = _one(problems, ("attachments", 0, "type"))
    assert "needs a bridge on network backup" in reason
    assert "w1 (bond0.300)" in reason and "w3 (bond0.300)" in reason


def test_nodes_must_agree_on_the_link():
    # w2 has a single NIC (enp65s0): its peering VLAN is enp65s0.100, the others bond0.100.
    problems = _problems(_with("example", {"name": "p", "type": "macvlan", "network": "peering"}))
    (reason,) = _one(problems, ("attachments", 0, "network"))
    assert "different links" in reason and "enp65s0.100 on w2" in reason and "bond0.100 on cp1" in reason


def test_unknown_network():
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "nowhere"}))
    (reason,) = _one(problems, ("attachments", 0, "network"))
    assert reason.startswith("network 'nowhere' does not exist") and "storage" in reason


def test_network_without_nodes():
    dmz = {"name": "dmz", "vlan": 400, "cidr": "10.40.0.0/24"}
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "dmz"}, networks=[dmz]))
    (reason,) = _one(problems, ("attachments", 0, "network"))
    assert "no node is attached to network dmz" in reason


def test_duplicate_attachment_in_one_namespace():
    a = {"name": "same", "type": "macvlan", "network": "backup"}
    problems = _problems(_with("example", a, dict(a)))
    (reason,) = _one(problems, ("attachments", 1, "name"))
    assert reason == "duplicate attachment default/same"
    # The same name in another namespace is fine.
    assert len(_build(_with("example", a, dict(a, namespace="tenant-a"))).cluster["attachments"]) == 2


def test_unknown_type_is_a_schema_error_with_the_choices():
    problems = _problems(_with("example", {"name": "x", "type": "ipvlan", "network": "backup"}))
    (reason,) = _one(problems, ("attachments", 0, "type"))
    assert "'ipvlan' is not one of: macvlan, bridge" in reason


@pytest.mark.parametrize("ipam_type", ["whereabouts", "host-local"])
def test_ranged_ipam_needs_a_range(ipam_type):
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "backup",
                                           "ipam": {"type": ipam_type}}))
    assert _one(problems, ("attachments", 0, "ipam", "range")) == ["is required for ipam type %s" % ipam_type]


def test_range_outside_the_network():
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "backup",
                                           "ipam": {"type": "whereabouts", "range": "10.31.0.0/24"}}))
    (reason,) = _one(problems, ("attachments", 0, "ipam", "range"))
    assert reason == "10.31.0.0/24 is outside network backup 10.30.0.0/24"


def test_range_must_not_hand_out_node_addresses():
    spec = _spec("example")
    w1 = next(n for n in spec["nodes"] if n["name"] == "w1")["addresses"]["backup"]
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "backup",
                                           "ipam": {"type": "whereabouts", "range": "10.30.0.0/24"}}))
    reasons = _one(problems, ("attachments", 0, "ipam", "range"))
    assert any("includes %s, the address of node w1" % w1 in r and "range_start/range_end" in r for r in reasons)


def test_range_narrowed_past_the_node_addresses_is_accepted():
    att = {"name": "x", "type": "macvlan", "network": "backup",
           "ipam": {"type": "whereabouts", "range": "10.30.0.0/24", "range_start": "10.30.0.100",
                    "range_end": "10.30.0.199", "gateway": "10.30.0.1"}}
    (out,) = _build(_with("example", att)).cluster["attachments"]
    assert out["ipam"] == dict(att["ipam"])


def test_range_defaults_to_the_usable_addresses():
    att = {"name": "x", "type": "macvlan", "network": "backup",
           "ipam": {"type": "host-local", "range": "10.30.0.128/26"}}
    (out,) = _build(_with("example", att)).cluster["attachments"]
    assert (out["ipam"]["range_start"], out["ipam"]["range_end"]) == ("10.30.0.129", "10.30.0.190")


def test_range_must_not_overlap_a_load_balancer_pool():
    lab = _spec("lab")
    lan = next(p for p in lab["load_balancer"]["pools"] if p["name"] == "lan")
    problems = _problems(_with("lab", {"name": "x", "type": "macvlan", "network": "mgmt",
                                       "ipam": {"type": "whereabouts", "range": "10.77.0.192/27"}}))
    reasons = _one(problems, ("attachments", 0, "ipam", "range"))
    assert any("overlaps load-balancer pool lan (%s)" % lan["range"] in r for r in reasons)


def test_range_start_after_end():
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "backup",
                                           "ipam": {"type": "whereabouts", "range": "10.30.0.128/26",
                                                    "range_start": "10.30.0.150", "range_end": "10.30.0.140"}}))
    assert _one(problems, ("attachments", 0, "ipam", "range_start")) == ["10.30.0.150 is after range_end 10.30.0.140"]


def test_range_start_outside_range():
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "backup",
                                           "ipam": {"type": "whereabouts", "range": "10.30.0.128/26",
                                                    "range_start": "10.30.0.10"}}))
    assert _one(problems, ("attachments", 0, "ipam", "range_start")) == ["10.30.0.10 is outside the range 10.30.0.128/26"]


def test_range_only_applies_to_ranged_ipam():
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "backup",
                                           "ipam": {"type": "static", "range": "10.30.0.128/26"}}))
    assert _one(problems, ("attachments", 0, "ipam", "range")) == [
        "only applies to ipam types whereabouts and host-local"]


def test_gateway_outside_the_network():
    problems = _problems(_with("example", {"name": "x", "type": "macvlan", "network": "backup",
                                           "ipam": {"type": "dhcp", "gateway": "10.31.0.1"}}))
    assert _one(problems, ("attachments", 0, "ipam", "gateway")) == ["10.31.0.1 is outside network backup 10.30.0.0/24"]


def test_errors_name_the_file_and_line():
    spec = _with("example", {"name": "x", "type": "macvlan", "network": "nowhere"})
    text = yaml.safe_dump(spec, sort_keys=False)
    with pytest.raises(SpecError) as exc:
        build(spec, "inventories/example/cluster.yml", text)
    (msg,) = exc.value.messages()
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if ln.strip() == "network: nowhere")
    assert msg.startswith("inventories/example/cluster.yml:%d: attachments[0] (x).network: " % line)
