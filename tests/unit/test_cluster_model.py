"""What the model computes from a valid spec: defaults, host networks, BGP peers, groups."""
import ipaddress

from conftest import REPO, load_yaml

import json

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build, read_spec, resolve_node


def links_by_name(node):
    return {lk["name"]: lk for lk in node["network"]["links"]}


def test_example_spec_parses_unchanged():
    data = load_yaml(REPO / "inventories" / "example" / "cluster.yml")
    model = build(data, source="cluster.yml")
    assert set(model.nodes) == {n["name"] for n in data["nodes"]}
    assert set(model.routers) == {r["name"] for r in data["routers"]}


def test_defaults_are_filled_in(lab_spec):
    for key in ("domain", "pod_cidr", "service_cidr", "join_cidr"):
        lab_spec["cluster"].pop(key, None)
    lab_spec["load_balancer"]["bgp"].pop("bfd")
    cluster = build(lab_spec).cluster
    assert (cluster["domain"], cluster["pod_cidr"], cluster["service_cidr"], cluster["join_cidr"]) == \
        ("cozy.local", "10.244.0.0/16", "10.96.0.0/16", "100.64.0.0/16")
    assert cluster["api_port"] == 6443
    assert cluster["load_balancer"]["bgp"]["hold_time"] == 9
    assert cluster["load_balancer"]["bgp"]["bfd"] == {"interval_ms": 100, "multiplier": 3}


def test_derived_cluster_addresses(example_spec):
    cluster = build(example_spec).cluster
    svc = ipaddress.ip_network(example_spec["cluster"]["service_cidr"])
    pod = ipaddress.ip_network(example_spec["cluster"]["pod_cidr"])
    assert cluster["kubernetes_service_ip"] == str(svc[1])
    assert cluster["dns_service_ip"] == str(svc[10])
    assert cluster["pod_gateway"] == str(pod[1])
    assert cluster["api_endpoint"] == "https://%s:6443" % example_spec["cluster"]["api_vip"]
    first_cp = next(n["name"] for n in example_spec["nodes"] if n["role"] == "controlplane")
    assert cluster["bootstrap_node"] == first_cp


def test_groups(example_spec):
    model = build(example_spec)
    spec_nodes = example_spec["nodes"]
    assert set(model.groups["controlplane"]) == {n["name"] for n in spec_nodes if n["role"] == "controlplane"}
    assert set(model.groups["workers"]) == {n["name"] for n in spec_nodes if n["role"] == "worker"}
    assert set(model.groups["k8s_nodes"]) == {n["name"] for n in spec_nodes}
    assert set(model.groups["talos"]) == {n["name"] for n in spec_nodes}
    for rack in {n["rack"] for n in spec_nodes}:
        assert set(model.groups["rack_" + rack]) == {n["name"] for n in spec_nodes if n["rack"] == rack}
    for platform in ("frr", "bird"):
        assert model.groups[platform] == [r["name"] for r in example_spec["routers"] if r["platform"] == platform]


def test_rack_names_with_dashes_become_valid_group_names(lab_spec):
    lab_spec["nodes"][0]["rack"] = "row-a-12"
    assert build(lab_spec).groups["rack_row_a_12"] == ["node1"]


def test_bonded_node_network(example_spec):
    model = build(example_spec)
    node = model.nodes["cp1"]
    links = links_by_name(node)
    bond = links["bond0"]
    assert bond["kind"] == "bond" and bond["members"] == ["eno1", "eno2"]
    assert bond["mode"] == "802.3ad"
    assert bond["options"]["lacp_rate"] == "fast" and bond["options"]["xmit_hash_policy"] == "layer3+4"
    # the untagged management network sits on the bond itself
    assert bond["network"] == "mgmt" and bond["addresses"] == ["10.10.0.11/24"]
    # one VLAN link per tagged network, child of the bond
    for net in example_spec["networks"]:
        if net.get("vlan") and net["name"] in example_spec["nodes"][0]["addresses"]:
            vlan = links["bond0.%d" % net["vlan"]]
            assert vlan["kind"] == "vlan" and vlan["parent"] == "bond0" and vlan["vlan_id"] == net["vlan"]
            assert vlan["mtu"] == net.get("mtu", 1500)
    # parents carry the largest MTU of their children; members follow the bond
    assert bond["mtu"] == 9000 and links["eno1"]["mtu"] == 9000 and links["eno1"]["bond"] == "bond0"
    # the bridge takes the storage address; the VLAN becomes its port
    assert links["bond0.200"]["addresses"] == [] and links["bond0.200"]["bridge"] == "br-storage"
    assert links["br-storage"]["ports"] == ["bond0.200"] and links["br-storage"]["addresses"] == ["10.200.0.11/24"]
    # parents come before children
    order = [lk["name"] for lk in node["network"]["links"]]
    assert order.index("eno1") < order.index("bond0") < order.index("bond0.200") < order.index("br-storage")
    assert node["network"]["routes"] == [{"to": "0.0.0.0/0", "via": "10.10.0.1", "dev": "bond0", "network": "mgmt"}]
    assert node["network"]["management_link"] == "bond0"
    assert node["macs"]["eno1"] == "0c:c4:7a:00:01:01" and links["eno1"]["mac"] == "0c:c4:7a:00:01:01"


def test_single_nic_override(example_spec):
    node = build(example_spec).nodes["w2"]
    links = links_by_name(node)
    assert node["network"]["uplink"] == "enp65s0"
    assert links["enp65s0"]["kind"] == "ethernet" and links["enp65s0"]["members"] == []
    assert "bond0" not in links and "enp65s0.100" in links
    assert links["enp65s0.100"]["parent"] == "enp65s0"


def test_bond_override_keeps_other_keys(example_spec):
    node = build(example_spec).nodes["w5"]
    bond = links_by_name(node)["bond0"]
    assert bond["mode"] == "active-backup" and bond["options"]["primary"] == "eno1"
    assert "lacp_rate" not in bond["options"]
    # bridges were not overridden, so the cluster-wide bridge is still there
    assert "br-storage" in links_by_name(node)


def test_network_routes_go_via_that_networks_gateway(example_spec):
    node = build(example_spec).nodes["w1"]
    backup = next(n for n in example_spec["networks"] if n["name"] == "backup")
    assert {"to": backup["routes"][0], "via": backup["gateway"], "dev": "bond0.%d" % backup["vlan"],
            "network": "backup"} in node["network"]["routes"]
    # a node without an address on that network gets no such route
    assert all(r["network"] != "backup" for r in build(example_spec).nodes["w2"]["network"]["routes"])


def test_bridge_without_address_still_carries_its_vlan(lab_spec):
    del lab_spec["nodes"][2]["addresses"]["storage"]
    node = build(lab_spec).nodes["node3"]
    links = links_by_name(node)
    assert links["br-storage"]["addresses"] == [] and links["br-storage"]["ports"] == ["bond0.200"]


def test_node_bgp_peers_are_the_routers(example_spec):
    model = build(example_spec)
    bgp = model.nodes["w3"]["bgp"]
    assert bgp["asn"] == example_spec["load_balancer"]["bgp"]["node_asn"]
    assert bgp["address"] == next(n for n in example_spec["nodes"] if n["name"] == "w3")["addresses"]["peering"]
    assert [(p["name"], p["address"], p["asn"]) for p in bgp["peers"]] == \
        [(r["name"], r["address"], r["asn"]) for r in example_spec["routers"]]


def test_router_peers_are_every_node(example_spec):
    model = build(example_spec)
    router = model.routers["tor1"]
    assert [(p["name"], p["address"]) for p in router["peers"]] == \
        [(n["name"], n["addresses"]["peering"]) for n in example_spec["nodes"]]
    assert all(p["asn"] == 65001 for p in router["peers"])
    assert router["ebgp"] is True and router["router_id"] == router["address"]
    assert router["accept"] == [{"prefix": "203.0.113.0/26", "ge": 32, "le": 32}]
    assert router["max_prefixes"] == 64  # every address of the /26 BGP pool
    assert model.hostvars("tor1")["ansible_host"] == "10.10.0.2"


def test_ibgp_and_listen_range(lab_spec):
    lab_spec["load_balancer"]["bgp"]["node_asn"] = 65000
    lab_spec["routers"][0]["listen_range"] = True
    model = build(lab_spec)
    assert model.routers["rtr-frr"]["ebgp"] is False
    assert model.routers["rtr-frr"]["listen_range"] == "10.77.100.0/24"
    assert model.routers["rtr-bird"]["listen_range"] is None
    # without management_address Ansible reaches the router on its BGP address
    assert model.hostvars("rtr-bird")["ansible_host"] == "10.77.100.2"


def test_pools_split_by_mode(example_spec):
    lb = build(example_spec).cluster["load_balancer"]
    assert [p["name"] for p in lb["bgp_pools"]] == ["public"]
    assert [p["name"] for p in lb["l2_pools"]] == ["lan"]
    lan = lb["l2_pools"][0]
    assert lan["addresses"] == ["10.10.0.200-10.10.0.220"] and lan["size"] == 21 and lan["network"] == "mgmt"
    covered = set()
    for c in lan["cidrs"]:
        covered |= set(ipaddress.ip_network(c))
    assert covered == {ipaddress.ip_address("10.10.0.200") + i for i in range(21)}
    assert lan["announce_all"] and lan["announce_nodes"] == []   # every node is on mgmt


def test_hostvars_of_a_node(lab_spec):
    model = build(lab_spec)
    hv = model.hostvars("node2")
    assert set(hv) == {"ansible_host", "rackboot_node_spec"}
    assert hv["ansible_host"] == "10.77.0.12"
    assert hv["rackboot_node_spec"]["addresses"]["storage"] == "10.77.200.12"
    node = resolve_node(hv["rackboot_node_spec"], model.cluster)
    assert node["address_cidrs"]["storage"] == "10.77.200.12/24"


def test_a_node_resolves_from_its_own_part_and_the_cluster():
    # What a play gets for rackboot_node (its spec part and rackboot_cluster,
    # both through JSON as AWX stores them) is what the model computed; nodes
    # with their own host_network (node1 of the lab, w2 of the example) too.
    for name in ("example", "lab"):
        model = read_spec(str(REPO / "inventories" / name / "cluster.yml"))
        cluster = json.loads(json.dumps(model.cluster))
        assert any("host_network" in s for s in model.node_specs.values())
        for node, spec in model.node_specs.items():
            assert set(spec) <= {"name", "role", "rack", "install_disk", "labels", "macs", "addresses", "host_network"}
            assert resolve_node(json.loads(json.dumps(spec)), cluster) == model.nodes[node], node


def test_the_cluster_node_filter_keeps_clusters_apart_and_refuses_other_input():
    import pytest
    from ansible.errors import AnsibleFilterError
    from ansible_collections.rackboot.metal.plugins.filter.cluster import FilterModule

    node = FilterModule().filters()["cluster_node"]
    models = [read_spec(str(REPO / "inventories" / name / "cluster.yml")) for name in ("example", "lab")]
    for _ in range(2):   # the second round reads each cluster's part from the cache
        for model in models:
            for name, own in model.node_specs.items():
                assert node(own, model.cluster) == model.nodes[name]
    with pytest.raises(AnsibleFilterError, match="rackboot_node_spec of a node and the rackboot_cluster"):
        node({"name": "x"}, {"name": "not a cluster"})


def test_the_cluster_travels_as_one_string_and_decodes_once():
    # Group all carries rackboot_cluster_json: --list copies group all into
    # every host and encodes value by value, so it is one string, not ~600 values.
    import pytest
    from ansible.errors import AnsibleFilterError
    from ansible_collections.rackboot.metal.plugins.filter.cluster import FilterModule
    from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import cluster_json

    filters = FilterModule().filters()
    decode, node = filters["cluster_from_json"], filters["cluster_node"]
    for name in ("example", "lab"):
        model = read_spec(str(REPO / "inventories" / name / "cluster.yml"))
        text = cluster_json(model.cluster)
        assert decode(text) == json.loads(json.dumps(model.cluster))
        # the same object on every read, so that cluster_node reads its part once
        assert decode(text) is decode("%s" % text[:-1] + text[-1:])
        for host, own in model.node_specs.items():
            assert node(own, text) == model.nodes[host]
    for bad, reason in (("{", "is not JSON"), ("[]", "holds a list"), (None, "not NoneType")):
        with pytest.raises(AnsibleFilterError, match=reason):
            decode(bad)
