"""Every validation rule of the cluster spec: a valid spec, one defect, the message.

Each case starts from the lab spec (valid), breaks exactly one thing and
asserts that the model refuses it with the expected field path and reason.
"""
import re

import pytest

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import SpecError, build


def problems_of(spec):
    with pytest.raises(SpecError) as exc:
        build(spec, source="spec.yml")
    return exc.value.messages()


def assert_problem(spec, path, fragment):
    """``path`` without item names: 'nodes[1] (node2).role' is matched by 'nodes[1].role'."""
    msgs = [re.sub(r"\] \([a-z0-9-]+\)", "]", m) for m in problems_of(spec)]
    wanted = "spec.yml: %s: " % path
    hits = [m for m in msgs if m.startswith(wanted) and fragment in m]
    assert hits, "expected %r with %r, got:\n%s" % (path, fragment, "\n".join(msgs))
    return msgs


def node(spec, name):
    return next(n for n in spec["nodes"] if n["name"] == name)


def test_lab_spec_is_valid(lab_spec):
    model = build(lab_spec)
    assert sorted(model.nodes) == ["node1", "node2", "node3"]
    assert sorted(model.routers) == ["rtr-bird", "rtr-frr"]


# --- structure: unknown keys, types, enums --------------------------------
def test_unknown_top_level_key(lab_spec):
    lab_spec["tenant"] = []
    assert_problem(lab_spec, "tenant", "unknown key; did you mean 'tenants'?")


def test_unknown_nested_key_names_the_path(lab_spec):
    lab_spec["nodes"][1]["rol"] = "worker"
    assert_problem(lab_spec, "nodes[1].rol", "did you mean 'role'?")


def test_unknown_key_in_bgp(lab_spec):
    lab_spec["load_balancer"]["bgp"]["hold"] = 9
    assert_problem(lab_spec, "load_balancer.bgp.hold", "unknown key")


def test_wrong_type(lab_spec):
    lab_spec["networks"][0]["mtu"] = "1500"
    assert_problem(lab_spec, "networks[0].mtu", "must be an integer, got a string")


def test_bool_is_not_an_integer(lab_spec):
    lab_spec["networks"][1]["vlan"] = True
    assert_problem(lab_spec, "networks[1].vlan", "must be an integer")


def test_unquoted_version(lab_spec):
    lab_spec["cluster"]["kubernetes_version"] = 1.34
    assert_problem(lab_spec, "cluster.kubernetes_version", 'quoted string like "1.34.1"')


def test_list_expected(lab_spec):
    lab_spec["nodes"] = {"node1": {}}
    assert_problem(lab_spec, "nodes", "must be a list, got a mapping")


def test_required_field(lab_spec):
    del lab_spec["cluster"]["api_vip"]
    assert_problem(lab_spec, "cluster.api_vip", "is required")


@pytest.mark.parametrize("path,setter,fragment", [
    ("cluster.distribution", lambda s: s["cluster"].update(distribution="talso"), "did you mean 'talos'?"),
    ("nodes[0].role", lambda s: s["nodes"][0].update(role="master"), "not one of: controlplane, worker"),
    ("host_network.bond.mode", lambda s: s["host_network"]["bond"].update(mode="lacp"),
     "not one of: 802.3ad, active-backup, balance-xor"),
    ("load_balancer.pools[0].mode", lambda s: s["load_balancer"]["pools"][0].update(mode="arp"),
     "not one of: bgp, l2"),
    ("routers[0].platform", lambda s: s["routers"][0].update(platform="ffr"), "did you mean 'frr'?"),
])
def test_bad_enums(lab_spec, path, setter, fragment):
    setter(lab_spec)
    assert_problem(lab_spec, path, fragment)


# --- addresses and CIDRs ---------------------------------------------------
def test_cidr_with_host_bits(lab_spec):
    lab_spec["networks"][0]["cidr"] = "10.77.0.1/24"
    assert_problem(lab_spec, "networks[0].cidr", "host bits set; the network is 10.77.0.0/24")


def test_not_a_cidr(lab_spec):
    lab_spec["cluster"]["pod_cidr"] = "10.244.0.0"
    assert_problem(lab_spec, "cluster.pod_cidr", "is not a CIDR")


def test_prefix_too_long(lab_spec):
    lab_spec["cluster"]["service_cidr"] = "10.96.0.0/33"
    assert_problem(lab_spec, "cluster.service_cidr", "is not a CIDR")


def test_not_an_address(lab_spec):
    node(lab_spec, "node2")["addresses"]["mgmt"] = "10.77.0.300"
    assert_problem(lab_spec, "nodes[1].addresses.mgmt", "is not an IPv4 address")


def test_ipv6_is_refused_clearly(lab_spec):
    lab_spec["cluster"]["api_vip"] = "fd00::5"
    assert_problem(lab_spec, "cluster.api_vip", "IPv6 is not supported yet")


def test_pod_and_service_cidrs_overlap(lab_spec):
    lab_spec["cluster"]["service_cidr"] = "10.244.128.0/17"
    assert_problem(lab_spec, "cluster.service_cidr", "overlaps pod_cidr")


def test_join_cidr_overlaps_network(lab_spec):
    lab_spec["cluster"]["join_cidr"] = "10.77.0.0/16"
    assert_problem(lab_spec, "networks[0].cidr", "network mgmt (10.77.0.0/24) overlaps join_cidr")


def test_networks_overlap(lab_spec):
    lab_spec["networks"][2]["cidr"] = "10.77.0.0/23"
    assert_problem(lab_spec, "networks[2].cidr", "overlaps network mgmt")


def test_bgp_pool_overlaps_pod_cidr(lab_spec):
    lab_spec["load_balancer"]["pools"][0]["cidr"] = "10.244.10.0/28"
    assert_problem(lab_spec, "load_balancer.pools[0]", "pool public (10.244.10.0/28) overlaps pod_cidr")


def test_bgp_pool_overlaps_network(lab_spec):
    lab_spec["load_balancer"]["pools"][0]["cidr"] = "10.77.100.240/28"
    assert_problem(lab_spec, "load_balancer.pools[0]", "overlaps network peering")


def test_pools_overlap_each_other(lab_spec):
    lab_spec["load_balancer"]["pools"].append({"name": "more", "cidr": "198.51.100.8/29", "mode": "bgp"})
    assert_problem(lab_spec, "load_balancer.pools[2]", "pool more (198.51.100.8/29) overlaps pool public")


def test_l2_pool_overlapping_service_cidr(lab_spec):
    lab_spec["load_balancer"]["pools"][1]["range"] = "10.96.0.10-10.96.0.20"
    assert_problem(lab_spec, "load_balancer.pools[1]", "overlaps service_cidr")


# --- duplicates --------------------------------------------------------------
def test_duplicate_node_name(lab_spec):
    lab_spec["nodes"][2]["name"] = "node2"
    assert_problem(lab_spec, "nodes[2].name", "duplicate node name 'node2'")


def test_router_name_clashes_with_node(lab_spec):
    lab_spec["routers"][0]["name"] = "node1"
    assert_problem(lab_spec, "routers[0].name", "duplicate host name 'node1'")


def test_duplicate_network_name(lab_spec):
    lab_spec["networks"][2]["name"] = "peering"
    assert_problem(lab_spec, "networks[2].name", "duplicate network name 'peering'")


def test_duplicate_pool_name(lab_spec):
    lab_spec["load_balancer"]["pools"][1]["name"] = "public"
    assert_problem(lab_spec, "load_balancer.pools[1].name", "duplicate pool name 'public'")


def test_duplicate_tenant(lab_spec):
    lab_spec["tenants"].append({"name": "tenant-a"})
    assert_problem(lab_spec, "tenants[2].name", "duplicate tenant 'tenant-a'")


def test_duplicate_node_address(lab_spec):
    node(lab_spec, "node3")["addresses"]["peering"] = "10.77.100.12"
    assert_problem(lab_spec, "nodes[2].addresses.peering", "10.77.100.12 is already used by node node2")


def test_node_address_equals_gateway(lab_spec):
    node(lab_spec, "node3")["addresses"]["mgmt"] = "10.77.0.1"
    assert_problem(lab_spec, "nodes[2].addresses.mgmt", "already used by the gateway of network mgmt")


def test_duplicate_vlan(lab_spec):
    lab_spec["networks"][2]["vlan"] = 100
    assert_problem(lab_spec, "networks[2].vlan", "VLAN 100 is already used by network 'peering'")


def test_duplicate_mac(example_spec):
    example_spec["nodes"][1]["macs"]["eno2"] = "0C:C4:7A:00:01:01"
    assert_problem(example_spec, "nodes[1].macs.eno2", "already used by node cp1 eno1")


def test_bad_mac(example_spec):
    example_spec["nodes"][0]["macs"]["eno1"] = "0c:c4:7a:00:01"
    assert_problem(example_spec, "nodes[0].macs.eno1", "is not a MAC address")


# --- ranges ------------------------------------------------------------------
@pytest.mark.parametrize("vlan", [0, 4095, -1])
def test_vlan_out_of_range(lab_spec, vlan):
    lab_spec["networks"][1]["vlan"] = vlan
    assert_problem(lab_spec, "networks[1].vlan", "is outside 1-4094")


@pytest.mark.parametrize("mtu", [1279, 9217])
def test_mtu_out_of_range(lab_spec, mtu):
    lab_spec["networks"][2]["mtu"] = mtu
    assert_problem(lab_spec, "networks[2].mtu", "is outside 1280-9216")


@pytest.mark.parametrize("field,value", [("asn", 0), ("asn", 4294967296)])
def test_router_asn_out_of_range(lab_spec, field, value):
    lab_spec["routers"][0][field] = value
    assert_problem(lab_spec, "routers[0].asn", "ASN %d is outside 1-4294967295" % value)


def test_node_asn_out_of_range(lab_spec):
    lab_spec["load_balancer"]["bgp"]["node_asn"] = 0
    assert_problem(lab_spec, "load_balancer.bgp.node_asn", "outside 1-4294967295")


def test_four_byte_asn_is_fine(lab_spec):
    lab_spec["load_balancer"]["bgp"]["node_asn"] = 4200000001
    assert build(lab_spec).cluster["load_balancer"]["bgp"]["node_asn"] == 4200000001


def test_keepalive_not_below_hold(lab_spec):
    lab_spec["load_balancer"]["bgp"].update(hold_time=9, keepalive_time=9)
    assert_problem(lab_spec, "load_balancer.bgp.keepalive_time", "must be below the hold time 9 s")


# --- membership ----------------------------------------------------------------
def test_node_address_outside_its_network(lab_spec):
    node(lab_spec, "node3")["addresses"]["mgmt"] = "192.168.101.5"
    assert_problem(lab_spec, "nodes[2].addresses.mgmt",
                   "192.168.101.5 is outside network mgmt 10.77.0.0/24")


def test_node_address_is_the_network_address(lab_spec):
    node(lab_spec, "node3")["addresses"]["storage"] = "10.77.200.0"
    assert_problem(lab_spec, "nodes[2].addresses.storage", "not a usable host address")


def test_router_address_outside_peering_network(lab_spec):
    lab_spec["routers"][1]["address"] = "10.77.0.2"
    assert_problem(lab_spec, "routers[1].address", "outside the BGP network peering 10.77.100.0/24")


def test_gateway_outside_network(lab_spec):
    lab_spec["networks"][0]["gateway"] = "10.78.0.1"
    assert_problem(lab_spec, "networks[0].gateway", "outside network mgmt 10.77.0.0/24")


def test_range_start_after_end(lab_spec):
    lab_spec["load_balancer"]["pools"][1]["range"] = "10.77.0.220-10.77.0.200"
    assert_problem(lab_spec, "load_balancer.pools[1].range", "range start 10.77.0.220 is after its end 10.77.0.200")


def test_malformed_range(lab_spec):
    lab_spec["load_balancer"]["pools"][1]["range"] = "10.77.0.200/29"
    assert_problem(lab_spec, "load_balancer.pools[1].range", "not a range FIRST-LAST")


def test_pool_needs_exactly_one_of_cidr_and_range(lab_spec):
    lab_spec["load_balancer"]["pools"][1]["cidr"] = "10.77.0.192/28"
    assert_problem(lab_spec, "load_balancer.pools[1]", "set exactly one of cidr or range")


def test_l2_pool_outside_every_network(lab_spec):
    lab_spec["load_balancer"]["pools"][1]["range"] = "192.0.2.10-192.0.2.20"
    assert_problem(lab_spec, "load_balancer.pools[1]", "L2 pool 192.0.2.10-192.0.2.20 is not inside any network")


def test_l2_pool_on_a_network_no_node_is_attached_to(lab_spec):
    lab_spec["networks"].append({"name": "dmz", "vlan": 300, "cidr": "10.77.30.0/24"})
    lab_spec["load_balancer"]["pools"][1]["range"] = "10.77.30.10-10.77.30.20"
    assert_problem(lab_spec, "load_balancer.pools[1]", "inside network dmz, which no node is attached to")


@pytest.mark.parametrize("owner,range_", [
    ("node node2", "10.77.0.12-10.77.0.20"),
    ("the gateway of network mgmt", "10.77.0.1-10.77.0.3"),
    ("the API VIP", "10.77.0.4-10.77.0.6"),
])
def test_pool_collides_with_assigned_address(lab_spec, owner, range_):
    lab_spec["load_balancer"]["pools"][1]["range"] = range_
    assert_problem(lab_spec, "load_balancer.pools[1]", "the address of %s" % owner)


def test_pool_collides_with_router_management_address(lab_spec):
    lab_spec["routers"][0]["management_address"] = "10.77.0.210"
    assert_problem(lab_spec, "load_balancer.pools[1]", "10.77.0.210, the address of router rtr-frr (management)")


def test_api_vip_outside_management_network(lab_spec):
    lab_spec["cluster"]["api_vip"] = "10.77.100.5"
    assert_problem(lab_spec, "cluster.api_vip", "outside the management network mgmt 10.77.0.0/24")


def test_api_vip_taken_by_a_node(lab_spec):
    lab_spec["cluster"]["api_vip"] = "10.77.0.11"
    assert_problem(lab_spec, "nodes[0].addresses.mgmt", "10.77.0.11 is already used by the API VIP")


def test_node_references_unknown_network(lab_spec):
    node(lab_spec, "node2")["addresses"]["stroage"] = "10.77.200.99"
    assert_problem(lab_spec, "nodes[1].addresses.stroage", "network 'stroage' does not exist")


def test_bridge_references_unknown_network(lab_spec):
    lab_spec["host_network"]["bridges"][0]["network"] = "vms"
    assert_problem(lab_spec, "host_network.bridges[0].network", "network 'vms' does not exist")


def test_bgp_references_unknown_network(lab_spec):
    lab_spec["load_balancer"]["bgp"]["network"] = "transit"
    assert_problem(lab_spec, "load_balancer.bgp.network", "network 'transit' does not exist")


def test_native_network_unknown(lab_spec):
    lab_spec["host_network"]["native_network"] = "mgmnt"
    assert_problem(lab_spec, "host_network.native_network", "network 'mgmnt' does not exist")


def test_native_network_must_be_untagged(lab_spec):
    lab_spec["host_network"]["native_network"] = "peering"
    assert_problem(lab_spec, "host_network.native_network", "is tagged (VLAN 100)")


def test_node_without_bgp_address_while_bgp_pools_exist(lab_spec):
    del node(lab_spec, "node3")["addresses"]["peering"]
    assert_problem(lab_spec, "nodes[2].addresses", "has no address on the BGP network peering")


def test_bgp_pools_need_bgp_section(lab_spec):
    del lab_spec["load_balancer"]["bgp"]
    lab_spec["routers"] = []
    assert_problem(lab_spec, "load_balancer.bgp", "is required because BGP-mode pools exist")


def test_routers_need_bgp_section(lab_spec):
    del lab_spec["load_balancer"]["bgp"]
    lab_spec["load_balancer"]["pools"] = [p for p in lab_spec["load_balancer"]["pools"] if p["mode"] == "l2"]
    assert_problem(lab_spec, "routers", "load_balancer.bgp is required")


def test_node_without_management_address(lab_spec):
    del node(lab_spec, "node2")["addresses"]["mgmt"]
    assert_problem(lab_spec, "nodes[1].addresses", "has no address on the management network mgmt")


def test_second_untagged_network_on_a_node(lab_spec):
    lab_spec["networks"].append({"name": "oob", "cidr": "10.99.0.0/24"})
    node(lab_spec, "node1")["addresses"]["oob"] = "10.99.0.11"
    assert_problem(lab_spec, "nodes[0].addresses.oob", "network oob is untagged but the node's native network is mgmt")


def test_no_controlplane(lab_spec):
    for n in lab_spec["nodes"]:
        n["role"] = "worker"
    assert_problem(lab_spec, "nodes", "no node has role controlplane")


def test_talos_needs_install_disk(lab_spec):
    lab_spec["cluster"]["distribution"] = "talos"
    msgs = problems_of(lab_spec)
    assert sum("install_disk: is required with distribution talos" in m for m in msgs) == 3


# --- names ---------------------------------------------------------------------
@pytest.mark.parametrize("path,setter", [
    ("cluster.name", lambda s: s["cluster"].update(name="Lab_1")),
    ("nodes[0].name", lambda s: s["nodes"][0].update(name="node1.example.com")),
    ("routers[0].name", lambda s: s["routers"][0].update(name="-tor")),
    ("networks[0].name", lambda s: s["networks"][0].update(name="MGMT")),
    ("tenants[0].name", lambda s: s["tenants"][0].update(name="x" * 64)),
    ("nodes[0].rack", lambda s: s["nodes"][0].update(rack="rack 1")),
])
def test_names_must_be_dns_labels(lab_spec, path, setter):
    setter(lab_spec)
    assert_problem(lab_spec, path, "is not a DNS-1123 label")


def test_tenant_cannot_be_a_system_namespace(lab_spec):
    lab_spec["tenants"][0]["name"] = "kube-system"
    assert_problem(lab_spec, "tenants[0].name", "is a system namespace")


def test_interface_name_too_long(lab_spec):
    lab_spec["host_network"]["bond"]["name"] = "bond-uplink-0001"
    assert_problem(lab_spec, "host_network.bond.name", "not a valid Linux interface name")


def test_vlan_interface_name_too_long(lab_spec):
    lab_spec["host_network"]["bond"]["name"] = "bond-uplink1"
    # node1 has a bond of its own (bond0); node2 inherits the cluster's.
    assert_problem(lab_spec, "nodes[1]", "VLAN interface name bond-uplink1.100 is longer than 15 characters")


# --- host network --------------------------------------------------------------
def test_bond_and_interface_both_set(lab_spec):
    node(lab_spec, "node2")["host_network"] = {"interface": "enp65s0"}
    assert_problem(lab_spec, "nodes[1].host_network", "set either bond or interface, not both (set bond: null")


def test_neither_bond_nor_interface(lab_spec):
    lab_spec["host_network"]["bond"] = None
    assert_problem(lab_spec, "host_network", "needs a bond or an interface")


def test_bond_primary_must_be_member(lab_spec):
    lab_spec["host_network"]["bond"]["options"] = {"primary": "eth9"}
    assert_problem(lab_spec, "host_network.bond.options.primary", "'eth9' is not a member of the bond")


def test_lacp_rate_only_for_8023ad(lab_spec):
    lab_spec["host_network"]["bond"]["options"] = {"lacp_rate": "fast"}
    assert_problem(lab_spec, "host_network.bond.options.lacp_rate", "only applies to mode 802.3ad")


def test_bond_member_listed_twice(lab_spec):
    lab_spec["host_network"]["bond"]["interfaces"] = ["eth1", "eth1"]
    assert_problem(lab_spec, "host_network.bond.interfaces", "lists a NIC twice")


def test_two_bridges_on_one_network(lab_spec):
    lab_spec["host_network"]["bridges"].append({"name": "br-storage2", "network": "storage"})
    assert_problem(lab_spec, "host_network.bridges[1].network", "network 'storage' already has a bridge")


def test_routes_need_a_gateway(lab_spec):
    lab_spec["networks"][2]["routes"] = ["10.88.0.0/16"]
    assert_problem(lab_spec, "networks[2].routes", "routes need a gateway on network storage")


# --- reporting -----------------------------------------------------------------
def test_all_problems_are_reported_at_once(lab_spec):
    lab_spec["cluster"]["distribution"] = "k3s"
    lab_spec["networks"][1]["vlan"] = 5000
    node(lab_spec, "node3")["addresses"]["mgmt"] = "192.168.101.5"
    lab_spec["routers"][0]["asn"] = 0
    msgs = problems_of(lab_spec)
    for path in ("cluster.distribution", "networks[1] (peering).vlan", "nodes[2] (node3).addresses.mgmt",
                 "routers[0] (rtr-frr).asn"):
        assert any(": %s: " % path in m for m in msgs), msgs
    # One root cause, one message: the VLAN that failed is not used by later checks.
    assert len(msgs) == 4, msgs


def test_messages_carry_line_numbers(lab_spec):
    from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import locate_lines
    text = "plugin: rackboot.metal.cluster\ncluster:\n  name: Bad_Name\n"
    lines = locate_lines(text, [("cluster", "name"), ("nodes",)])
    assert lines[("cluster", "name")] == 3
    assert ("nodes",) not in lines


def test_even_controlplane_count_warns(lab_spec):
    node(lab_spec, "node2")["role"] = "controlplane"
    model = build(lab_spec)
    assert any("2 control-plane nodes" in w for w in model.warnings)
