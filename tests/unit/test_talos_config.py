# -*- coding: utf-8 -*-
"""Talos machine configurations: schema validity, semantics, determinism.

Every node of both inventories is rendered and validated against Talos'
config.schema.json (v1.13, the pinned upstream copy). The lab inventory is
kubeadm, so a Talos variant of it is built here (distribution talos, an
install disk per node). Expectations are read from the spec files, not from
the renderer.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import pathlib
import stat

import netaddr
import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.module_utils import talos_config, talos_network, talos_secrets
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build
from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream
from conftest import TALOS, VERSIONS

REPO = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_PATH = pathlib.Path(upstream.path("talos_schema"))
_spec = importlib.util.spec_from_file_location("talos_secrets_tests",
                                               pathlib.Path(__file__).with_name("test_talos_secrets.py"))
_secrets_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_secrets_tests)
run_module = _secrets_tests.run_module


def _spec_of(inventory):
    spec = yaml.safe_load((REPO / "inventories" / inventory / "cluster.yml").read_text())
    if spec["cluster"]["distribution"] != "talos":          # the lab: a Talos variant of it
        spec["cluster"]["distribution"] = "talos"
        for i, node in enumerate(spec["nodes"]):
            node["install_disk"] = "/dev/vd%s" % "abcdefgh"[i % 8]
    return spec


SPECS = {inv: _spec_of(inv) for inv in ("example", "lab")}
MODELS = {inv: build(copy.deepcopy(spec)) for inv, spec in SPECS.items()}
CASES = [(inv, name) for inv, m in MODELS.items() for name in m.nodes]


@pytest.fixture(scope="module")
def schema():
    return json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def bundle():
    return talos_secrets.generate()


def render(inv, name, bundle, **options):
    m = MODELS[inv]
    return talos_config.render(m.nodes[name], m.cluster, bundle, dict(TALOS, **options))


def spec_node(inv, name):
    return next(n for n in SPECS[inv]["nodes"] if n["name"] == name)


def spec_net(inv, name):
    return next(n for n in SPECS[inv]["networks"] if n["name"] == name)


def by_kind(docs, kind):
    return [d for d in docs if d.get("kind") == kind]


# ---------------------------------------------------------------------------------------------
def test_both_inventories_have_talos_nodes():
    assert len(CASES) == len(SPECS["example"]["nodes"]) + len(SPECS["lab"]["nodes"]) >= 12


@pytest.mark.parametrize("inv,name", CASES)
def test_every_document_validates_against_the_talos_schema(inv, name, bundle, schema):
    docs = render(inv, name, bundle)
    assert talos_config.schema_errors(docs, schema) == []
    # the written file is what validates: parse the YAML back
    parsed = [d for d in yaml.safe_load_all(talos_config.dump(docs, name, "x")) if d]
    assert parsed == docs and talos_config.schema_errors(parsed, schema) == []


def test_schema_check_catches_a_bad_document(bundle, schema):
    docs = render("example", "cp1", bundle)
    bond = by_kind(docs, "BondConfig")[0]
    bond["bondMode"] = "lacp"
    docs[0]["machine"]["install"]["disks"] = "/dev/sda"
    errors = talos_config.schema_errors(docs, schema)
    assert any("BondConfig" in e and "bondMode" in e for e in errors)
    assert any("v1alpha1" in e and "disks" in e for e in errors)


@pytest.mark.parametrize("inv,name", CASES)
def test_machine_and_cluster_sections_follow_the_spec(inv, name, bundle):
    spec, node = SPECS[inv], spec_node(inv, name)
    c = spec["cluster"]
    main = render(inv, name, bundle)[0]
    machine, cluster = main["machine"], main["cluster"]
    assert machine["type"] == node["role"]
    assert machine["install"]["disk"] == node["install_disk"]
    assert machine["kubelet"]["image"].endswith(":v" + c["kubernetes_version"])
    assert machine["features"]["kubePrism"] == {"enabled": True, "port": 7445}
    assert {"name": "openvswitch"} in machine["kernel"]["modules"]
    assert machine.get("nodeLabels", {}) == (node.get("labels") or {})
    assert cluster["clusterName"] == c["name"]
    assert cluster["network"]["cni"] == {"name": "none"}
    assert cluster["proxy"] == {"disabled": True}
    assert cluster["network"]["dnsDomain"] == c.get("domain", "cozy.local")
    assert cluster["network"]["podSubnets"] == [c.get("pod_cidr", "10.244.0.0/16")]
    assert cluster["network"]["serviceSubnets"] == [c.get("service_cidr", "10.96.0.0/16")]
    assert cluster["controlPlane"]["endpoint"] == "https://%s:%d" % (c["api_vip"], c.get("api_port", 6443))
    mgmt = spec_net(inv, c.get("management_network") or spec["host_network"]["native_network"])["cidr"]
    assert machine["kubelet"]["nodeIP"]["validSubnets"] == [mgmt]
    if node["role"] == "controlplane":
        assert cluster["apiServer"]["certSANs"][0] == c["api_vip"]
        assert set(c.get("cert_sans", [])) <= set(cluster["apiServer"]["certSANs"])
        assert cluster["etcd"]["advertisedSubnets"] == [mgmt]
        assert cluster["ca"]["key"] and cluster["etcd"]["ca"]["key"] and cluster["serviceAccount"]["key"]
    else:
        # workers get the CA certificates only, never CA keys or the encryption secret
        assert "key" not in cluster["ca"] and "key" not in machine["ca"]
        for key in ("etcd", "aggregatorCA", "serviceAccount", "secretboxEncryptionSecret", "apiServer"):
            assert key not in cluster


@pytest.mark.parametrize("inv,name", CASES)
def test_hostname_and_vip_only_on_control_planes(inv, name, bundle):
    docs = render(inv, name, bundle)
    assert [d["hostname"] for d in by_kind(docs, "HostnameConfig")] == [name]
    vips = by_kind(docs, "Layer2VIPConfig")
    node = MODELS[inv].nodes[name]
    if spec_node(inv, name)["role"] == "controlplane":
        assert vips == [{"apiVersion": "v1alpha1", "kind": "Layer2VIPConfig", "name": SPECS[inv]["cluster"]["api_vip"],
                         "link": talos_network.link_ref(node, node["network"]["management_link"])}]
        # the VIP link carries the node's management address
        vip_link = next(d for d in docs if d.get("name") == vips[0]["link"] and "addresses" in d)
        assert {"address": node["address_cidrs"]["mgmt"]} in vip_link["addresses"]
    else:
        assert vips == []


@pytest.mark.parametrize("inv,name", CASES)
def test_network_documents_match_rackboot_node_network(inv, name, bundle):
    check_network_documents(MODELS[inv].nodes[name], render(inv, name, bundle))


def check_network_documents(node, docs):
    """Every link of rackboot_node.network has its document (and nothing else), with its settings."""
    ref = lambda n: talos_network.link_ref(node, n)  # noqa: E731
    expected_kind = {"bond": "BondConfig", "vlan": "VLANConfig", "bridge": "BridgeConfig", "ethernet": "LinkConfig"}
    named = {d["name"]: d for d in docs if d.get("kind") in expected_kind.values()}
    for link in node["network"]["links"]:
        if link["kind"] == "ethernet" and link["bond"]:
            assert ref(link["name"]) not in named          # bond members are configured by the bond
            continue
        doc = named.pop(ref(link["name"]))
        assert doc["kind"] == expected_kind[link["kind"]]
        assert doc["mtu"] == link["mtu"]
        assert [a["address"] for a in doc.get("addresses", [])] == link["addresses"]
        if link["kind"] == "bond":
            assert sorted(doc["links"]) == sorted(ref(m) for m in link["members"])
            assert doc["bondMode"] == link["mode"]
        if link["kind"] == "vlan":
            assert (doc["vlanID"], doc["parent"]) == (link["vlan_id"], ref(link["parent"]))
        if link["kind"] == "bridge":
            assert doc["links"] == [ref(p) for p in link["ports"]] and doc["stp"] == {"enabled": bool(link["stp"])}
    assert named == {}, "documents for links the model does not have: %s" % sorted(named)
    # NICs pinned by MAC are aliased by that MAC
    aliases = {d["name"]: d["selector"]["match"] for d in by_kind(docs, "LinkAliasConfig")}
    assert aliases == {talos_network.alias_name(nic): 'mac(link.permanent_addr) == "%s"' % mac.lower()
                       for nic, mac in node["macs"].items()}


@pytest.mark.parametrize("inv,name", CASES)
def test_addresses_vlans_and_routes_follow_the_spec(inv, name, bundle):
    """Read straight from the spec: every address on a link, a VLAN per tagged network, gateway routes."""
    spec, snode = SPECS[inv], spec_node(inv, name)
    docs = render(inv, name, bundle)
    addressed = {a["address"]: d for d in docs for a in d.get("addresses", [])}
    for net_name, ip in snode["addresses"].items():
        net = spec_net(inv, net_name)
        cidr = "%s/%d" % (ip, netaddr.IPNetwork(net["cidr"]).prefixlen)
        assert cidr in addressed, "%s on %s is on no link" % (cidr, net_name)
        if net.get("vlan"):
            vlans = {d["vlanID"] for d in by_kind(docs, "VLANConfig")}
            assert net["vlan"] in vlans
    routes = [(r.get("destination", "0.0.0.0/0"), r["gateway"]) for d in docs for r in d.get("routes", [])]
    expected = []
    for net_name in snode["addresses"]:
        net = spec_net(inv, net_name)
        if not net.get("gateway"):
            continue
        if net_name == (spec["cluster"].get("management_network") or spec["host_network"]["native_network"]):
            expected.append(("0.0.0.0/0", net["gateway"]))
        expected += [(dest, net["gateway"]) for dest in net.get("routes", [])]
    assert sorted(routes) == sorted(expected)


def test_single_nic_node_gets_a_link_config_and_no_bond(bundle):
    docs = render("example", "w2", bundle)
    assert by_kind(docs, "BondConfig") == []
    link = by_kind(docs, "LinkConfig")
    assert [d["name"] for d in link] == ["enp65s0"]
    assert {"address": "10.10.0.22/24"} in link[0]["addresses"]


def test_active_backup_primary_is_enslaved_first(bundle):
    spec_bond = spec_node("example", "w5")["host_network"]["bond"]
    bond = by_kind(render("example", "w5", bundle), "BondConfig")[0]
    assert bond["bondMode"] == "active-backup" and bond["links"][0] == spec_bond["options"]["primary"]
    assert "lacpRate" not in bond


def test_options_reach_the_config(bundle):
    main = render("example", "cp1", bundle, allow_scheduling_on_controlplanes=True, install_image="factory/x:v1",
                  kubeprism_port=7446, kernel_modules=[{"name": "openvswitch"}, {"name": "drbd"}])[0]
    assert main["cluster"]["allowSchedulingOnControlPlanes"] is True
    assert main["machine"]["install"]["image"] == "factory/x:v1"
    assert main["machine"]["features"]["kubePrism"]["port"] == 7446
    assert [m["name"] for m in main["machine"]["kernel"]["modules"]] == ["openvswitch", "drbd"]
    assert render("example", "cp1", bundle)[0]["machine"]["install"]["image"] == "ghcr.io/siderolabs/installer:v%s" % VERSIONS["versions_talos"]

    with pytest.raises(talos_config.ConfigError, match="talos_version is required"):
        talos_config.render(MODELS["example"].nodes["cp1"], MODELS["example"].cluster, bundle)


def test_rendering_is_byte_identical_for_the_same_inputs(bundle):
    again = yaml.safe_load(talos_secrets.dump(bundle))       # same secrets, fresh objects
    m = MODELS["example"]
    shuffled = dict(reversed(list(m.cluster.items())))       # key order of the input does not matter
    for name, node in m.nodes.items():
        a = talos_config.dump(talos_config.render(node, m.cluster, bundle, TALOS), name, node["role"])
        b = talos_config.dump(talos_config.render(copy.deepcopy(node), shuffled, again, TALOS), name, node["role"])
        assert a == b


def test_missing_install_disk_is_a_clear_error(bundle):
    node = dict(MODELS["example"].nodes["w1"], install_disk=None)
    with pytest.raises(talos_config.ConfigError, match="node w1: install_disk is required"):
        talos_config.render(node, MODELS["example"].cluster, bundle, TALOS)


def test_redaction_hides_every_secret(bundle):
    docs = render("example", "cp1", bundle)
    text = talos_config.dump(talos_config.redact(docs))
    secrets = [bundle["cluster"]["secret"], bundle["secrets"]["bootstraptoken"],
               bundle["secrets"]["secretboxencryptionsecret"], bundle["trustdinfo"]["token"],
               bundle["certs"]["k8sserviceaccount"]["key"]] + [bundle["certs"][c]["key"] for c in talos_secrets.CERT_NAMES]
    assert all(s not in text for s in secrets)
    assert all(s in talos_config.dump(docs) for s in secrets[:4])


# ---------------------------------------------------------------------------------------------
# The module
# ---------------------------------------------------------------------------------------------
def test_machine_config_module_check_diff_write_and_idempotence(tmp_path, schema):
    secrets = tmp_path / "talos-secrets.yaml"
    run_module("talos_secrets", {"path": str(secrets), "cluster": "dc1-prod"}, tmp_path)
    bundle = yaml.safe_load(secrets.read_text())
    m = MODELS["example"]
    out = tmp_path / "talos" / "cp1.yaml"
    args = {"path": str(out), "node": m.nodes["cp1"], "cluster": m.cluster, "secrets_path": str(secrets),
            "schema": str(SCHEMA_PATH), "talos_version": VERSIONS["versions_talos"]}
    res, text = run_module("talos_machine_config", args, tmp_path, check=True, diff=True)
    assert res["changed"] and not out.exists()
    assert "kind: BondConfig" in res["diff"]["after"] and bundle["certs"]["os"]["key"] not in text
    res, _ = run_module("talos_machine_config", args, tmp_path)
    assert res["changed"] and stat.S_IMODE(out.stat().st_mode) == 0o600
    first = out.read_bytes()
    res, _ = run_module("talos_machine_config", args, tmp_path)
    assert not res["changed"] and out.read_bytes() == first
    assert res["documents"][:2] == ["v1alpha1", "HostnameConfig"]


def test_machine_config_module_names_the_problem(tmp_path):
    secrets = tmp_path / "talos-secrets.yaml"
    run_module("talos_secrets", {"path": str(secrets), "cluster": "dc1-prod"}, tmp_path)
    m = MODELS["example"]
    args = {"path": str(tmp_path / "w1.yaml"), "node": dict(m.nodes["w1"], install_disk=None), "cluster": m.cluster,
            "secrets_path": str(secrets), "talos_version": VERSIONS["versions_talos"]}
    res, out = run_module("talos_machine_config", args, tmp_path)
    assert res["failed"] and res["msg"] == "node w1: install_disk is required with distribution talos"
    assert "Traceback" not in out
    res, _ = run_module("talos_machine_config", dict(args, secrets_path=str(tmp_path / "nope")), tmp_path)
    assert res["failed"] and "talos_secrets" in res["msg"]


def test_machine_config_module_takes_the_common_file_options(tmp_path):
    """owner/group/mode/SELinux come from Ansible's file options; without mode the file stays 0600."""
    secrets = tmp_path / "talos-secrets.yaml"
    run_module("talos_secrets", {"path": str(secrets), "cluster": "dc1-prod"}, tmp_path)
    m = MODELS["example"]
    out = tmp_path / "w1.yaml"
    args = {"path": str(out), "node": m.nodes["w1"], "cluster": m.cluster, "secrets_path": str(secrets),
            "talos_version": VERSIONS["versions_talos"], "mode": "0640"}
    res, _ = run_module("talos_machine_config", args, tmp_path)
    assert res["changed"] and stat.S_IMODE(out.stat().st_mode) == 0o640
    first = out.read_bytes()
    res, _ = run_module("talos_machine_config", args, tmp_path)
    assert not res["changed"]
    # Only the mode differs: check mode reports it (as a diff of modes) and changes nothing.
    res, _ = run_module("talos_machine_config", dict(args, mode="u=rw,go="), tmp_path, check=True, diff=True)
    assert res["changed"] and stat.S_IMODE(out.stat().st_mode) == 0o640
    assert res["diff"] == [{"before": {"path": str(out), "mode": "0640"}, "after": {"path": str(out), "mode": "0600"}}]
    del args["mode"]
    res, _ = run_module("talos_machine_config", args, tmp_path)
    assert res["changed"] and stat.S_IMODE(out.stat().st_mode) == 0o600 and out.read_bytes() == first
