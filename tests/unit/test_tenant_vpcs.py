# -*- coding: utf-8 -*-
"""Tenant VPCs (tenants[].vpc) and load_balancer.class: every refusal with its
line, field path and reason, and the Kube-OVN resources against the spec
(inventories/tenant-vpcs/cluster.yml). Rendering through the playbook is in
tests/integration/test_network_stack_variants.py."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils import manifests as mf
from ansible_collections.rackboot.metal.plugins.plugin_utils import network_stack as ns
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build
from conftest import REPO
from spec_edits import assert_refused, edit

SPEC = (REPO / "inventories/tenant-vpcs/cluster.yml").read_text()
CILIUM = (REPO / "inventories/cilium/cluster.yml").read_text()






CRM = SPEC[SPEC.index("  - name: crm\n"):SPEC.index("  - name: internal\n")]


# (id, spec text, fragment on the reported line, path, fragment of the reason)
REFUSED = [
    ("subnets-overlap", edit(SPEC, ("subnet: 10.0.11.0/24", "subnet: 10.0.10.128/25")),
     "subnet: 10.0.10.128/25", "tenants[1] (crm).vpc.subnet", "overlaps tenant shop's subnet (10.0.10.0/24)"),
    ("subnet-in-pod-cidr", edit(SPEC, ("subnet: 10.0.12.0/24", "subnet: 10.244.3.0/24")),
     "subnet: 10.244.3.0/24", "tenants[2] (internal).vpc.subnet", "overlaps pod_cidr"),
    ("subnet-in-join-cidr", edit(SPEC, ("subnet: 10.0.12.0/24", "subnet: 100.64.9.0/24")),
     "subnet: 100.64.9.0/24", "tenants[2] (internal).vpc.subnet", "overlaps join_cidr"),
    ("subnet-in-fabric", edit(SPEC, ("subnet: 10.0.12.0/24", "subnet: 10.30.0.0/25")),
     "subnet: 10.30.0.0/25", "tenants[2] (internal).vpc.subnet", "overlaps network mgmt"),
    ("subnet-host-bits", edit(SPEC, ("subnet: 10.0.12.0/24", "subnet: 10.0.12.1/24")),
     "subnet: 10.0.12.1/24", "tenants[2] (internal).vpc.subnet", "host bits set"),
    ("eip-outside-network", edit(SPEC, ("eip: 203.0.113.20", "eip: 203.0.113.40")),
     "eip: 203.0.113.40", "tenants[0] (shop).vpc.eip", "outside the external network ext-public 203.0.113.16/28"),
    ("eip-is-the-gateway", edit(SPEC, ("eip: 203.0.113.20", "eip: 203.0.113.17")),
     "eip: 203.0.113.17", "tenants[0] (shop).vpc.eip", "already used by the gateway of network ext-public"),
    ("eip-is-a-node", edit(SPEC, ("eip: 100.65.1.10", "eip: 100.65.0.21")),
     "eip: 100.65.0.21", "tenants[1] (crm).vpc.eip", "already used by node w1"),
    ("eip-in-lb-pool", edit(SPEC, ("eip: 100.65.1.10", "eip: 100.65.9.3"),
                             ("      mode: l2\n", "      mode: l2\n    - name: cloud\n      cidr: 100.65.9.0/28\n"
                                                  "      mode: l2\n")),
     "eip: 100.65.9.3", "tenants[1] (crm).vpc.eip", "inside load-balancer pool cloud (100.65.9.0/28)"),
    ("fip-is-another-eip", edit(SPEC, ("address: 203.0.113.21", "address: 203.0.113.20")),
     "address: 203.0.113.20", "tenants[0] (shop).vpc.floating_ips[0].address", "already used by the EIP of tenant"),
    ("fip-target-outside-subnet", edit(SPEC, ("target: 10.0.10.20", "target: 10.0.11.20")),
     "target: 10.0.11.20", "tenants[0] (shop).vpc.floating_ips[0].target", "not a pod or VM address of the subnet"),
    ("fip-target-is-the-gateway", edit(SPEC, ("target: 10.0.10.20", "target: 10.0.10.1")),
     "target: 10.0.10.1", "tenants[0] (shop).vpc.floating_ips[0].target", "its gateway is 10.0.10.1"),
    ("fip-target-twice", edit(SPEC, ("target: 10.0.11.6", "target: 10.0.11.5")),
     "target: 10.0.11.5", "tenants[1] (crm).vpc.floating_ips[1].target", "already has a floating IP"),
    ("eip-without-network", edit(SPEC, ("    vpc:\n      subnet: 10.0.12.0/24\n",
                                          "    vpc:\n      subnet: 10.0.12.0/24\n      eip: 203.0.113.25\n")),
     "eip: 203.0.113.25", "tenants[2] (internal).vpc.eip", "needs external_network"),
    ("unknown-external-network", edit(SPEC, ("external_network: ext-public", "external_network: ext-pub")),
     "external_network: ext-pub", "tenants[0] (shop).vpc.external_network", "network 'ext-pub' does not exist"),
    ("external-network-without-bridge", edit(SPEC, ("    - name: br-ext-public\n      network: ext-public\n", "")),
     "external_network: ext-public", "tenants[0] (shop).vpc.external_network", "no node has a bridge on network"),
    ("external-network-without-gateway", edit(SPEC, ("    gateway: 203.0.113.17\n", "")),
     "external_network: ext-public", "tenants[0] (shop).vpc.external_network", "has no gateway"),
    ("no-gateway-node-label", edit(SPEC, (CRM, ""), ("    labels: {ovn.kubernetes.io/external-gw: \"true\"}\n", ""),
                                    ("    labels: {ovn.kubernetes.io/external-gw: \"true\"}\n", "")),
     "external_network: ext-public", "tenants[0] (shop).vpc.external_network", "is labelled ovn.kubernetes.io/ext"),
    ("tenant-named-like-external", edit(SPEC, ("  - name: internal\n", "  - name: ext-cloud\n")),
     "  - name: ext-cloud\n    vpc", "tenants[2] (ext-cloud).name", "an external network's Subnet"),
    ("tenant-named-like-kube-ovn", edit(SPEC, ("  - name: internal\n", "  - name: join\n")),
     "  - name: join\n", "tenants[2] (join).name", "Kube-OVN's own Vpc/Subnets"),
    ("vpc-under-cilium", CILIUM.replace("tenants:\n  - name: media\n",
                                        "tenants:\n  - name: media\n    vpc:\n      subnet: 10.0.10.0/24\n"),
     "    vpc:", "tenants[0] (media).vpc", "variant cilium has no Kube-OVN"),
    ("class-when-cilium-announces", CILIUM.replace("load_balancer:\n", "load_balancer:\n  class: example.com/lb\n"),
     "class:", "load_balancer.class", "installs no MetalLB (lb_announcer is cilium)"),
    ("class-not-a-label-key", edit(SPEC, ("class: metallb.io/metallb", "class: 'metallb io'")),
     "class:", "load_balancer.class", "is not a Kubernetes label key"),
]


@pytest.mark.parametrize("case", REFUSED, ids=[c[0] for c in REFUSED])
def test_bad_tenant_networks_are_refused_with_the_field_path(tmp_path, case):
    assert_refused(tmp_path, *case[1:])


def _cluster(text=SPEC):
    return build(yaml.safe_load(text), "cluster.yml").cluster


def test_resources_follow_the_spec_and_validate_against_the_kube_ovn_crds():
    spec, cluster = yaml.safe_load(SPEC), _cluster()
    docs = ns.tenant_vpc_resources(cluster)
    assert mf.validator().problems(docs, "kube_ovn") == []
    got = {(d["kind"], d["metadata"]["name"]): d["spec"] for d in docs}
    assert got[("ProviderNetwork", "ext-public")] == {"defaultInterface": "br-ext-public"}   # every node has it
    assert got[("Subnet", "ext-cloud")]["excludeIps"] == ["100.65.0.1", "100.65.0.21"]      # gateway, node w1
    shop = spec["tenants"][0]["vpc"]
    assert got[("OvnEip", "shop-snat")] == {"externalSubnet": "ext-public", "type": "nat", "v4Ip": shop["eip"]}
    assert got[("OvnFip", "shop-fip-203-0-113-21")]["v4Ip"] == shop["floating_ips"][0]["target"]
    assert got[("Vpc", "internal")] == {"namespaces": ["internal"]}      # no external network, no NAT
    assert not [k for k in got if k[1].startswith("internal-")]
    assert ("Vpc", "plain") not in got


def test_a_bridge_on_some_nodes_only_selects_those_nodes():
    text = SPEC.replace("    addresses: {mgmt: 10.30.0.21, ext-cloud: 100.65.0.21}\n",
                        "    addresses: {mgmt: 10.30.0.21, ext-cloud: 100.65.0.21}\n"
                        "    host_network:\n      bridges:\n        - {name: br-ext-cloud, network: ext-cloud}\n")
    pn = {d["metadata"]["name"]: d["spec"] for d in ns.tenant_vpc_resources(_cluster(text))
          if d["kind"] == "ProviderNetwork"}
    assert pn["ext-public"]["nodeSelector"]["matchExpressions"][0]["values"] == ["cp1", "cp2", "cp3"]
    assert "nodeSelector" not in pn["ext-cloud"]


def test_vpc_tenants_reach_the_world_only_through_their_nat():
    policies = {p["metadata"]["namespace"]: p["spec"] for p in ns.tenant_policies(_cluster())}
    assert {"toEntities": ["world"]} in policies["shop"]["egress"]
    assert {"fromEntities": ["world"]} in policies["shop"]["ingress"]
    for tenant in ("internal", "plain"):
        assert {"toEntities": ["world"]} not in policies[tenant]["egress"]
        assert {"fromEntities": ["world"]} not in policies[tenant]["ingress"]


def test_load_balancer_class_is_metallbs_and_absent_by_default():
    assert ns.metallb_values(_cluster())["loadBalancerClass"] == "metallb.io/metallb"
    lab = build(yaml.safe_load((REPO / "inventories/lab/cluster.yml").read_text()), "lab").cluster
    assert "loadBalancerClass" not in ns.metallb_values(lab)
    assert ns.tenant_vpc_resources(lab) == [] and lab["external_networks"] == []
