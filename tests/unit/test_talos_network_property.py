# -*- coding: utf-8 -*-
"""Property test: any host network the spec allows becomes schema-valid Talos documents that mirror the model.

Hypothesis draws specs (bond or single NIC, bond modes and options, tagged
networks, MTUs, bridges, MACs, roles), the inventory model resolves them, and
the rendered machine configuration must validate against Talos' schema and
contain exactly the links of rackboot_node.network.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.rackboot.metal.plugins.module_utils import talos_config, talos_secrets
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build
from conftest import TALOS

_spec = importlib.util.spec_from_file_location("talos_config_tests",
                                               pathlib.Path(__file__).with_name("test_talos_config.py"))
_config_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_config_tests)

SCHEMA = json.loads(_config_tests.SCHEMA_PATH.read_text())
BUNDLE = talos_secrets.generate()
VLANS = [("peering", 100, "10.100.0.0/24"), ("storage", 200, "10.200.0.0/24"), ("backup", 300, "10.30.0.0/24")]


@st.composite
def specs(draw):
    tagged = draw(st.lists(st.sampled_from(VLANS), unique=True, max_size=3))
    mtus = {name: draw(st.sampled_from([1500, 9000])) for name, _, _ in tagged}
    networks = [{"name": "mgmt", "cidr": "10.10.0.0/24", "gateway": "10.10.0.1"}]
    for name, vlan, cidr in tagged:
        net = {"name": name, "vlan": vlan, "cidr": cidr, "mtu": mtus[name]}
        if name == "backup":
            net.update(gateway="10.30.0.1", routes=["10.31.0.0/16"])
        networks.append(net)
    members = draw(st.lists(st.sampled_from(["eno1", "eno2", "ens1f0", "ens1f1"]), min_size=1, max_size=3,
                            unique=True))
    host_network = {"native_network": "mgmt"}
    if draw(st.booleans()):
        mode = draw(st.sampled_from(["802.3ad", "active-backup", "balance-xor"]))
        options = {"miimon": draw(st.sampled_from([50, 100]))}
        if mode == "802.3ad":
            options["lacp_rate"] = draw(st.sampled_from(["slow", "fast"]))
        if mode != "active-backup":
            options["xmit_hash_policy"] = draw(st.sampled_from(["layer2", "layer2+3", "layer3+4"]))
        elif draw(st.booleans()):
            options["primary"] = members[-1]
        host_network["bond"] = {"name": "bond0", "mode": mode, "interfaces": members, "options": options}
    else:
        host_network["interface"] = members[0]
    bridged = draw(st.lists(st.sampled_from([n for n, _, _ in tagged] or ["mgmt"]), unique=True, max_size=2))
    host_network["bridges"] = [{"name": "br-%s" % n, "network": n, "stp": draw(st.booleans())} for n in bridged]
    nics = members if "bond" in host_network else members[:1]
    macs = {nic: "0c:c4:7a:00:0%d:%02x" % (1, i) for i, nic in enumerate(nics) if draw(st.booleans())}
    nodes = []
    for i, role in enumerate(["controlplane"] + draw(st.lists(st.just("worker"), max_size=1))):
        addresses = {"mgmt": "10.10.0.%d" % (11 + i)}
        addresses.update({name: cidr.replace("0/24", str(11 + i)) for name, _, cidr in tagged})
        nodes.append({"name": "n%d" % i, "role": role, "install_disk": "/dev/sda", "addresses": addresses,
                      "macs": macs if i == 0 else {}})
    return {"plugin": "rackboot.metal.cluster",
            "cluster": {"name": "prop", "distribution": "talos", "kubernetes_version": "1.34.1", "api_vip": "10.10.0.5"},
            "networks": networks, "host_network": host_network, "nodes": nodes}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_any_host_network_renders_valid_documents(spec):
    model = build(spec)
    for name, node in model.nodes.items():
        docs = talos_config.render(node, model.cluster, BUNDLE, TALOS)
        assert talos_config.schema_errors(docs, SCHEMA) == []
        _config_tests.check_network_documents(node, docs)
        vips = [d for d in docs if d.get("kind") == "Layer2VIPConfig"]
        assert len(vips) == (1 if node["role"] == "controlplane" else 0)
