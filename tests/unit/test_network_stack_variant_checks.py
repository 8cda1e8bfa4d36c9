# -*- coding: utf-8 -*-
"""cluster.network_stack: the variants' validation (field path, line, reason)
and what the builders make of each variant. Expectations come from the spec.

The examples are inventories/cilium/cluster.yml and inventories/no-cni/cluster.yml; rendering
them through the real charts is tests/integration/test_network_stack_variants.py.
"""

from __future__ import annotations

import copy

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils import network_stack as ns
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import SpecError, build
from conftest import REPO
from spec_edits import assert_refused, edit

LAB = (REPO / "inventories/lab/cluster.yml").read_text()
CILIUM = (REPO / "inventories/cilium/cluster.yml").read_text()
NONE = (REPO / "inventories/no-cni/cluster.yml").read_text()








LAB_CILIUM = edit(LAB, ("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  network_stack:\n    variant: cilium\n"))

# (id, spec text, fragment on the reported line, path, fragment of the reason)
REFUSED = [
    ("join-cidr-under-cilium",
     edit(LAB_CILIUM, ("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  join_cidr: 100.64.0.0/16\n")),
     "join_cidr:", "cluster.join_cidr", "Kube-OVN's join network; variant cilium has no Kube-OVN"),
    ("cilium-option-under-kubeovn",
     edit(LAB, ("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  network_stack:\n    routing_mode: native\n")),
     "routing_mode:", "cluster.network_stack.routing_mode", "only applies to variant cilium (variant kubeovn-cilium)"),
    ("announcer-under-none",
     edit(NONE, ("    variant: none\n", "    variant: none\n    lb_announcer: cilium\n")),
     "lb_announcer:", "cluster.network_stack.lb_announcer", "only applies to variant cilium (variant none, which "
                                                            "announces with MetalLB)"),
    ("tunnel-protocol-with-native-routing",
     edit(CILIUM, ("    routing_mode: tunnel\n", "    routing_mode: native\n")),
     "tunnel_protocol:", "cluster.network_stack.tunnel_protocol", "only applies to routing_mode tunnel"),
    ("dsr-over-vxlan",
     edit(CILIUM, ("tunnel_protocol: geneve", "tunnel_protocol: vxlan")),
     "dsr: true", "cluster.network_stack.dsr", "set tunnel_protocol geneve"),
    ("mask-wider-than-pool",
     edit(CILIUM, ("pod_mask_size: 24", "pod_mask_size: 16"), ("pod_cidr: 10.42.0.0/16", "pod_cidr: 10.42.0.0/20")),
     "pod_mask_size:", "cluster.network_stack.pod_mask_size", "/16 is wider than cluster.pod_cidr 10.42.0.0/20"),
    ("too-few-node-blocks",
     edit(CILIUM, ("pod_mask_size: 24", "pod_mask_size: 25"), ("pod_cidr: 10.42.0.0/16", "pod_cidr: 10.42.0.0/24")),
     "pod_mask_size:", "cluster.network_stack.pod_mask_size", "holds 2 blocks of /25, fewer than the 3 nodes"),
    ("mask-out-of-range", edit(CILIUM, ("pod_mask_size: 24", "pod_mask_size: 30")),
     "pod_mask_size:", "cluster.network_stack.pod_mask_size", "outside 16-28"),
    ("announce-off-devices", edit(CILIUM, ("devices: [bond0, bond0.30]", "devices: [bond0]")),
     "devices:", "cluster.network_stack.devices", "L2 pool storage is announced on bond0.30, which devices does not"),
    ("cilium-announcer-with-bgp",
     edit(LAB_CILIUM, ("    variant: cilium\n", "    variant: cilium\n    lb_announcer: cilium\n")),
     "lb_announcer:", "cluster.network_stack.lb_announcer", "needs lb_announcer metallb"),
    ("kube-ovn-values-under-cilium", LAB_CILIUM + "components:\n  kube_ovn:\n    values: {a: 1}\n",
     "  kube_ovn:", "components.kube_ovn", "variant cilium does not install kube_ovn"),
    ("metallb-values-when-cilium-announces", CILIUM + "components:\n  metallb:\n    values: {a: 1}\n",
     "  metallb:", "components.metallb", "does not install metallb (lb_announcer is cilium)"),
    ("attachments-under-none",
     NONE + "attachments:\n  - name: x\n    type: macvlan\n    network: mgmt\n",
     "  - name: x", "attachments[0] (x)", "variant none has none"),
    ("bad-variant", edit(LAB, ("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  network_stack: {variant: cillium}\n")),
     "network_stack:", "cluster.network_stack.variant", "did you mean 'cilium'?"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_combinations_are_refused_with_the_field_path(tmp_path, case):
    assert_refused(tmp_path, *case[1:])


def _cluster(text):
    return build(yaml.safe_load(text), "cluster.yml").cluster


def test_the_default_is_kubeovn_cilium_with_every_component():
    for inv in ("example", "lab"):
        stack = build(yaml.safe_load((REPO / "inventories" / inv / "cluster.yml").read_text()), inv).cluster[
            "network_stack"]
        assert stack == {"variant": "kubeovn-cilium", "tenant_policy": "CiliumNetworkPolicy",
                         "components": ["kube_ovn", "cilium", "multus", "metallb", "cozy_proxy"]}


def test_each_variant_installs_only_its_components():
    assert _cluster(LAB_CILIUM)["network_stack"]["components"] == ["cilium", "multus", "metallb"]
    assert _cluster(CILIUM)["network_stack"]["components"] == ["cilium", "multus"]      # Cilium announces
    assert _cluster(NONE)["network_stack"]["components"] == ["metallb"]
    no_pools = yaml.safe_load(NONE)
    del no_pools["load_balancer"]
    assert build(no_pools, "x").cluster["network_stack"]["components"] == []
    with pytest.raises(ns.NetworkStackError, match="installs no Cilium"):
        ns.cilium_values(_cluster(NONE))


def test_a_join_cidr_overlapping_the_fabric_is_not_a_problem_without_kube_ovn():
    spec = yaml.safe_load(LAB_CILIUM)
    spec["networks"][0]["cidr"], spec["cluster"]["api_vip"] = "100.64.0.0/24", "100.64.0.5"
    for node in spec["nodes"]:
        node["addresses"]["mgmt"] = node["addresses"]["mgmt"].replace("10.77.0.", "100.64.0.")
    spec["networks"][0]["gateway"] = "100.64.0.1"
    spec["load_balancer"]["pools"][1]["range"] = "100.64.0.200-100.64.0.220"
    build(copy.deepcopy(spec), "x")               # the default join CIDR is not used
    spec["cluster"]["network_stack"] = {"variant": "kubeovn-cilium"}
    with pytest.raises(SpecError, match="network mgmt .* overlaps join_cidr"):
        build(spec, "x")


def test_cilium_alone_values_follow_the_spec():
    spec = yaml.safe_load(CILIUM)
    opts = spec["cluster"]["network_stack"]
    v = ns.cilium_values(_cluster(CILIUM), kubeprism_port=7445)
    assert v["ipam"] == {"mode": "cluster-pool", "operator": {
        "clusterPoolIPv4PodCIDRList": [spec["cluster"]["pod_cidr"]], "clusterPoolIPv4MaskSize": opts["pod_mask_size"]}}
    assert (v["routingMode"], v["tunnelProtocol"]) == (opts["routing_mode"], opts["tunnel_protocol"])
    assert v["encryption"] == {"enabled": True, "type": opts["encryption"]}
    assert v["loadBalancer"] == {"algorithm": "maglev", "mode": "dsr", "dsrDispatch": "geneve"}
    assert v["devices"] == opts["devices"]
    assert v["l2announcements"] == {"enabled": True}
    assert v["kubeProxyReplacement"] is True and (v["k8sServiceHost"], v["k8sServicePort"]) == ("localhost", 7445)
    assert v["cni"] == {"exclusive": False}
    assert "chainingMode" not in v["cni"] and "ipv4NativeRoutingCIDR" not in v
    # kubeadm: the API VIP, no Talos cgroup settings.
    kubeadm = _cluster(edit(CILIUM, ("distribution: talos", "distribution: kubeadm")))
    v = ns.cilium_values(kubeadm)
    assert (v["k8sServiceHost"], v["k8sServicePort"]) == (spec["cluster"]["api_vip"], 6443) and "cgroup" not in v


def test_native_routing_routes_the_pod_cidr_between_nodes():
    text = edit(CILIUM, ("    routing_mode: tunnel\n    tunnel_protocol: geneve\n", "    routing_mode: native\n"),
                 ("encryption: wireguard", "encryption: none"), ("dsr: true", "dsr: false"))
    v = ns.cilium_values(_cluster(text), kubeprism_port=7445)
    assert (v["routingMode"], v["ipv4NativeRoutingCIDR"], v["autoDirectNodeRoutes"]) == \
        ("native", yaml.safe_load(text)["cluster"]["pod_cidr"], True)
    assert "tunnelProtocol" not in v and "encryption" not in v and v["loadBalancer"]["mode"] == "snat"


def test_l2_policies_announce_on_each_pools_network_link():
    docs = ns.cilium_lb_resources(_cluster(CILIUM))
    policies = {d["metadata"]["name"]: d["spec"] for d in docs if d["kind"] == "CiliumL2AnnouncementPolicy"}
    # lan is the native network (the bond), storage VLAN 30 (bond0.30), where only cp1 and w1 have addresses.
    assert policies["lan"]["interfaces"] == ["^bond0$"] and "nodeSelector" not in policies["lan"]
    assert policies["storage"]["interfaces"] == ["^bond0\\.30$"]
    assert policies["storage"]["nodeSelector"]["matchExpressions"][0]["values"] == ["cp1", "w1"]
    assert ns.cilium_lb_resources(_cluster(LAB_CILIUM)) == []         # MetalLB announces


def test_tenant_isolation_under_none_is_a_network_policy():
    cluster = _cluster(NONE)
    [pol] = ns.tenant_policies(cluster)
    assert pol["kind"] == "NetworkPolicy" and pol["metadata"]["namespace"] == "team-a"
    rules = pol["spec"]["egress"]
    assert {b["ipBlock"]["cidr"] for b in rules[2]["to"]} == {"10.20.0.5/32", "10.20.0.11/32"}
    assert rules[2]["ports"] == [{"port": 6443, "protocol": "TCP"}]
    assert "no CNI" in ns.network_stack_summary(cluster)


def test_ipsec_secret_never_carries_an_empty_key():
    assert "stringData" not in ns.cilium_ipsec_secret(None)
    assert ns.cilium_ipsec_secret("3+ rfc4106(gcm(aes)) ab 128")["stringData"] == {"keys": "3+ rfc4106(gcm(aes)) ab 128"}
    with pytest.raises(ns.NetworkStackError, match="rackboot_cilium_ipsec_keys is empty"):
        ns.cilium_ipsec_secret("")
