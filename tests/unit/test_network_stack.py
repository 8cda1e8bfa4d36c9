# -*- coding: utf-8 -*-
"""Builders of the network stack (plugins/plugin_utils/network_stack.py) against the two inventories.

Expectations come from the spec and the model, never from the builders'
output. Schema validation of the rendered files is in
tests/integration/test_network_stack_render.py.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils import network_stack as ns
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build
from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream as pinned
from conftest import VERSIONS

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = ("example", "lab")


def _spec(inv):
    return yaml.safe_load((REPO / "inventories" / inv / "cluster.yml").read_text())


def _model(spec):
    return build(spec, "cluster.yml")


@pytest.fixture(params=INVENTORIES)
def inv(request):
    spec = _spec(request.param)
    return spec, _model(spec).cluster


# --------------------------------------------------------------------------
# Kube-OVN
# --------------------------------------------------------------------------
def test_kube_ovn_cidrs_come_from_the_spec(inv):
    spec, cluster = inv
    v = ns.kube_ovn_values(cluster)["ipv4"]
    defaults = {"pod_cidr": "10.244.0.0/16", "service_cidr": "10.96.0.0/16", "join_cidr": "100.64.0.0/16"}
    want = {k: spec["cluster"].get(k, d) for k, d in defaults.items()}
    assert (v["POD_CIDR"], v["SVC_CIDR"], v["JOIN_CIDR"]) == (want["pod_cidr"], want["service_cidr"], want["join_cidr"])
    # The gateway is the first address of the pod CIDR.
    base, plen = want["pod_cidr"].split("/")
    octets = base.split(".")
    assert v["POD_GATEWAY"] == ".".join(octets[:3] + [str(int(octets[3]) + 1)])


def test_kube_ovn_leaves_lb_and_policy_to_cilium_and_sorts_after_it(inv):
    _, cluster = inv
    v = ns.kube_ovn_values(cluster)
    assert v["func"]["ENABLE_LB"] is False and v["func"]["ENABLE_NP"] is False
    # The kubelet and Multus take the first conflist in lexical order: Cilium's must win.
    assert sorted([ns.CILIUM_CONFLIST, "%s-kube-ovn.conflist" % v["cni_conf"]["CNI_CONFIG_PRIORITY"]])[0] == \
        ns.CILIUM_CONFLIST
    assert v["MASTER_NODES_LABEL"] == "node-role.kubernetes.io/control-plane"


def test_kube_ovn_master_nodes_are_the_control_planes(inv):
    spec, cluster = inv
    cps = [n["addresses"][cluster["management_network"]] for n in spec["nodes"] if n["role"] == "controlplane"]
    assert ns.kube_ovn_values(cluster)["MASTER_NODES"].split(",") == cps


def test_kube_ovn_talos_paths_only_on_talos(inv):
    spec, cluster = inv
    v = ns.kube_ovn_values(cluster)
    if spec["cluster"]["distribution"] == "talos":
        assert v["OPENVSWITCH_DIR"].startswith("/var/lib/") and v["OVN_DIR"].startswith("/var/lib/")
        assert v["DISABLE_MODULES_MANAGEMENT"] is True
    else:
        assert not {"OPENVSWITCH_DIR", "OVN_DIR", "DISABLE_MODULES_MANAGEMENT"} & set(v)


def _leaf_paths(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaf_paths(v, prefix + (k,))
        else:
            yield prefix + (k,)


def test_every_kube_ovn_key_exists_in_the_upstream_values_file(inv):
    _, cluster = inv
    upstream = yaml.safe_load((Path(pinned.path("kube_ovn_chart")) / "values.yaml").read_text())
    for path in _leaf_paths(ns.kube_ovn_values(cluster, version="1.16.2")):
        node = upstream
        for part in path:
            assert isinstance(node, dict) and part in node, "%s is not a key of the Kube-OVN chart" % ".".join(path)
            node = node[part]


# --------------------------------------------------------------------------
# Cilium
# --------------------------------------------------------------------------
def _pins():
    return yaml.safe_load((REPO / "roles/versions/defaults/main.yml").read_text())


KUBEPRISM = _pins()["versions_talos_kubeprism_port"]


def test_cilium_api_endpoint(inv):
    spec, cluster = inv
    v = ns.cilium_values(cluster, 7446)
    if spec["cluster"]["distribution"] == "talos":
        # KubePrism at the port the caller (the Talos role's setting) gives, not a constant.
        assert (v["k8sServiceHost"], v["k8sServicePort"]) == ("localhost", 7446)
        assert v["cgroup"] == {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"}
    else:
        assert (v["k8sServiceHost"], v["k8sServicePort"]) == (spec["cluster"]["api_vip"],
                                                              spec["cluster"].get("api_port", 6443))
        assert "cgroup" not in v


def test_cilium_on_talos_needs_the_kubeprism_port():
    cluster = _model(_spec("example")).cluster
    with pytest.raises(ns.NetworkStackError, match="talos_kubeprism_port"):
        ns.cilium_values(cluster)


def test_one_owner_for_the_kubeprism_port():
    """Talos enables KubePrism and Cilium dials it from the same variable."""
    talos = yaml.safe_load((REPO / "roles/talos/defaults/main.yml").read_text())
    cilium = yaml.safe_load((REPO / "roles/cilium/defaults/main.yml").read_text())
    assert talos["talos_kubeprism_port"] == "{{ versions_talos_kubeprism_port }}"
    assert cilium["cilium_kubeprism_port"] == "{{ talos_kubeprism_port | default(versions_talos_kubeprism_port) }}"


def test_cilium_is_chained_behind_kube_ovn_without_kube_proxy(inv):
    _, cluster = inv
    v = ns.cilium_values(cluster, KUBEPRISM)
    assert v["kubeProxyReplacement"] is True
    assert v["cni"]["chainingMode"] == "generic-veth" and v["cni"]["chainingTarget"] == "kube-ovn"
    assert v["cni"]["customConf"] is True and v["cni"]["exclusive"] is False
    assert v["routingMode"] == "native"
    assert v["bpf"]["masquerade"] is False and v["enableIPv4Masquerade"] is False
    cm = ns.cilium_cni_configmap(cluster, "ns1")
    assert cm["metadata"] == {"name": v["cni"]["configMap"], "namespace": "ns1",
                              "labels": {"app.kubernetes.io/managed-by": "rackboot"}}
    conf = json.loads(cm["data"][v["cni"]["configMapKey"]])
    assert [p["type"] for p in conf["plugins"]] == ["kube-ovn", "portmap", "cilium-cni"]
    assert conf["plugins"][1]["snat"] is True


def test_cilium_hubble_follows_the_spec(inv):
    spec, cluster = inv
    comp = (spec.get("components") or {}).get("cilium") or {}
    h = ns.cilium_values(cluster, KUBEPRISM)["hubble"]
    hubble = comp.get("hubble", True)
    assert h["enabled"] is hubble and h["relay"]["enabled"] is hubble
    assert h["ui"]["enabled"] is (hubble and comp.get("hubble_ui", False))


def test_component_values_are_merged_last():
    spec = _spec("lab")
    spec["components"] = {"cilium": {"values": {"hubble": {"relay": {"enabled": False}}, "k8sServicePort": 8443}},
                          "kube_ovn": {"values": {"ipv4": {"PINGER_EXTERNAL_ADDRESS": "192.0.2.1"}}}}
    cluster = _model(spec).cluster
    v = ns.cilium_values(cluster, KUBEPRISM)
    assert v["k8sServicePort"] == 8443 and v["hubble"]["relay"]["enabled"] is False
    assert v["hubble"]["enabled"] is True                 # siblings are kept
    k = ns.kube_ovn_values(cluster)["ipv4"]
    assert k["PINGER_EXTERNAL_ADDRESS"] == "192.0.2.1" and k["POD_CIDR"] == cluster["pod_cidr"]


def test_deep_merge_does_not_touch_its_inputs():
    base = {"a": {"b": 1, "c": [1]}}
    over = {"a": {"b": 2}}
    snapshot = copy.deepcopy((base, over))
    assert ns.deep_merge(base, over) == {"a": {"b": 2, "c": [1]}}
    assert (base, over) == snapshot


# --------------------------------------------------------------------------
# Chart sources
# --------------------------------------------------------------------------
@pytest.mark.parametrize("override,want", [
    ({}, {"chart_ref": "cilium", "chart_repo_url": "https://helm.cilium.io/", "chart_version": "1.19.4"}),
    ({"version": "v1.19.6"}, {"chart_ref": "cilium", "chart_repo_url": "https://helm.cilium.io/",
                              "chart_version": "1.19.6"}),
    ({"chart": "https://mirror.example/cilium"}, {"chart_ref": "cilium", "chart_repo_url": "https://mirror.example/cilium",
                                                  "chart_version": "1.19.4"}),
    ({"chart": "oci://registry.example/charts/cilium"}, {"chart_ref": "oci://registry.example/charts/cilium",
                                                        "chart_repo_url": None, "chart_version": "1.19.4"}),
    ({"chart": "/srv/charts/cilium"}, {"chart_ref": "/srv/charts/cilium", "chart_repo_url": None,
                                       "chart_version": None}),
])
def test_chart_source(override, want):
    cluster = {"components": {"cilium": override}}
    assert ns.chart_source(cluster, "cilium", "cilium", "https://helm.cilium.io/", "1.19.4") == want


# --------------------------------------------------------------------------
# Multus
# --------------------------------------------------------------------------
def test_multus_uses_ciliums_conflist_as_master_and_enough_memory(inv):
    _, cluster = inv
    upstream = [d for d in yaml.safe_load_all(Path(pinned.path("multus_manifest")).read_text()) if d]
    docs = ns.multus_resources(cluster, upstream, "cozy-multus", "4.3.0")
    cm = next(d for d in docs if d["kind"] == "ConfigMap")
    conf = json.loads(cm["data"]["daemon-config.json"])
    assert conf["multusMasterCNI"] == ns.CILIUM_CONFLIST and conf["multusConfigFile"] == "auto"
    ds = next(d for d in docs if d["kind"] == "DaemonSet")
    (c,) = ds["spec"]["template"]["spec"]["containers"]
    assert c["image"].endswith(":v4.3.0-thick")
    limit = c["resources"]["limits"]["memory"]
    assert limit.endswith(("Mi", "Gi")) and int(limit[:-2]) * (1024 if limit.endswith("Gi") else 1) > 50
    assert {d["kind"] for d in docs} >= {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                                         "ServiceAccount", "ConfigMap", "DaemonSet"}
    sa = next(d for d in docs if d["kind"] == "ServiceAccount")
    crb = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert crb["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "cozy-multus"}]


def test_multus_overlay_changes_only_what_it_must(inv):
    """Upstream's manifest, object for object; only namespace, image, daemon config and resources differ."""
    _, cluster = inv
    upstream = [d for d in yaml.safe_load_all(Path(pinned.path("multus_manifest")).read_text()) if d]
    before = copy.deepcopy(upstream)
    docs = ns.multus_resources(cluster, upstream, "cozy-multus", "4.3.0", registry="mirror.example:5000")
    assert upstream == before                       # the upstream documents are not edited
    assert docs[0] == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "cozy-multus"}}
    assert [(d["kind"], d["metadata"]["name"]) for d in docs[1:]] == \
        [(d["kind"], d["metadata"]["name"]) for d in upstream]
    crd = next(d for d in docs if d["kind"] == "CustomResourceDefinition")
    assert crd == next(d for d in upstream if d["kind"] == "CustomResourceDefinition")
    pod = next(d for d in docs if d["kind"] == "DaemonSet")["spec"]["template"]["spec"]
    assert {c["image"] for c in pod["containers"] + pod["initContainers"]} == {
        "mirror.example:5000/k8snetworkplumbingwg/multus-cni:v4.3.0-thick"}
    assert all(d["metadata"].get("namespace", "cozy-multus") == "cozy-multus" for d in docs)


@pytest.mark.parametrize("name, distribution", [("example", "talos"), ("lab", "kubeadm")])
def test_multus_mounts_the_hosts_netns_where_the_distribution_keeps_them(name, distribution):
    """Talos keeps pod namespaces in /var/run/netns (not /run/netns); elsewhere upstream's path stays."""
    cluster = _model(_spec(name)).cluster
    assert cluster["distribution"] == distribution
    upstream = [d for d in yaml.safe_load_all(Path(pinned.path("multus_manifest")).read_text()) if d]
    pod = next(d for d in ns.multus_resources(cluster, upstream, "n", "4.3.0") if d["kind"] == "DaemonSet")
    (vol,) = [v for v in pod["spec"]["template"]["spec"]["volumes"] if v["name"] == "host-run-netns"]
    assert vol["hostPath"]["path"] == {"talos": "/var/run/netns/", "kubeadm": "/run/netns/"}[distribution]


def _with_attachment_ipam(ipam_type):
    """The cilium example with its storage attachment's IPAM set to ``ipam_type``."""
    spec = _spec("cilium")
    spec["attachments"][0]["ipam"] = {"type": ipam_type}
    if ipam_type == "whereabouts":
        spec["attachments"][0]["ipam"].update(range="192.168.30.0/24", range_start="192.168.30.100",
                                              range_end="192.168.30.150")
    return _model(spec).cluster


def _mounts(container):
    return {m["mountPath"]: m for m in container.get("volumeMounts", [])}


def _host_paths(pod):
    return {v["name"]: v["hostPath"]["path"] for v in pod.get("volumes", []) if "hostPath" in v}


@pytest.mark.parametrize("ipam_type", ["dhcp", "whereabouts", "none"])
def test_the_cni_dhcp_daemon_runs_exactly_when_an_attachment_uses_dhcp(ipam_type):
    cluster = _with_attachment_ipam(ipam_type)
    dhcp = ipam_type == "dhcp"
    docs = ns.cni_dhcp_daemon(cluster, "cozy-multus", VERSIONS["versions_busybox"], registry="mirror.example:5000")
    assert len(docs) == (1 if dhcp else 0)
    if not dhcp:
        return
    (ds,) = docs
    pod = ds["spec"]["template"]["spec"]
    assert (ds["kind"], ds["metadata"]["namespace"]) == ("DaemonSet", "cozy-multus")
    assert pod["hostNetwork"] is True and pod["tolerations"] == [{"operator": "Exists"}]
    (c,) = pod["containers"]
    assert c["command"] == ["/opt/cni/bin/dhcp", "daemon"] and c["securityContext"] == {"privileged": True}
    assert c["image"] == "mirror.example:5000/library/busybox:%s" % VERSIONS["versions_busybox"]
    paths, mounts = _host_paths(pod), _mounts(c)
    # The host's plugin, socket folder and network namespaces, at the paths the plugin uses.
    assert paths[mounts["/opt/cni/bin/dhcp"]["name"]] == "/opt/cni/bin/dhcp"
    assert paths[mounts["/run/cni"]["name"]] == "/run/cni"
    assert paths[mounts["/var/run/netns"]["name"]] == "/var/run/netns"
    assert mounts["/var/run/netns"]["mountPropagation"] == "HostToContainer"
    (init,) = pod["initContainers"]
    assert init["command"] == ["rm", "-f", "/run/cni/dhcp.sock"]
    assert paths[_mounts(init)["/run/cni"]["name"]] == "/run/cni"


def test_the_cni_dhcp_daemon_needs_its_image_version():
    with pytest.raises(ns.NetworkStackError, match="versions_busybox"):
        ns.cni_dhcp_daemon(_with_attachment_ipam("dhcp"), "cozy-multus", None)


def test_multus_refuses_a_manifest_that_is_not_multus():
    cluster = _model(_spec("lab")).cluster
    with pytest.raises(ns.NetworkStackError, match="not the pinned multus-daemonset-thick.yml"):
        ns.multus_resources(cluster, [{"kind": "ConfigMap", "metadata": {"name": "x"}}], "n", "4.3.0")


def test_nad_config_uses_the_resolved_link():
    spec = _spec("example")
    spec["attachments"] = [
        {"name": "store", "namespace": "tenant-a", "type": "bridge", "network": "storage",
         "ipam": {"type": "whereabouts", "range": "10.200.0.128/25"}},
        {"name": "backup", "type": "macvlan", "network": "backup", "ipam": {"type": "host-local",
                                                                          "range": "10.30.0.128/26"}},
    ]
    model = _model(spec)
    nads = ns.nad_resources(model.cluster)
    assert [(n["metadata"]["namespace"], n["metadata"]["name"]) for n in nads] == [("tenant-a", "store"),
                                                                                   ("default", "backup")]
    store, backup = (json.loads(n["spec"]["config"]) for n in nads)
    node = model.nodes["cp1"]["network"]["networks"]
    assert store["type"] == "bridge" and store["bridge"] == node["storage"]
    assert store["ipam"]["type"] == "whereabouts" and store["ipam"]["range"] == "10.200.0.128/25"
    w1 = model.nodes["w1"]["network"]["networks"]
    assert backup["type"] == "macvlan" and backup["master"] == w1["backup"]
    assert backup["ipam"]["ranges"][0][0]["subnet"] == "10.30.0.128/26"
    mtus = {n["name"]: n["mtu"] for n in model.cluster["networks"]}
    assert (store["mtu"], backup["mtu"]) == (mtus["storage"], mtus["backup"])


# --------------------------------------------------------------------------
# MetalLB
# --------------------------------------------------------------------------
def _kinds(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_metallb_peers_are_the_spec_routers(inv):
    spec, cluster = inv
    docs = ns.metallb_resources(cluster, "mlb", "pw")
    bgp = spec["load_balancer"]["bgp"]
    peers = _kinds(docs, "BGPPeer")
    want = [(r["name"], r["asn"], r["address"]) for r in spec["routers"]]
    assert [(p["metadata"]["name"], p["spec"]["peerASN"], p["spec"]["peerAddress"]) for p in peers] == want
    for p in peers:
        assert p["apiVersion"] == "metallb.io/v1beta2"
        assert p["spec"]["myASN"] == bgp["node_asn"]
        assert p["spec"]["holdTime"] == "%ds" % bgp.get("hold_time", 9)
        assert p["spec"]["keepaliveTime"] == "%ds" % bgp.get("keepalive_time", 3)
        assert p["spec"]["passwordSecret"] == {"name": "pw", "namespace": "mlb"}
    bfd = bgp.get("bfd", {"interval_ms": 100, "multiplier": 3})
    (prof,) = _kinds(docs, "BFDProfile")
    assert all(p["spec"]["bfdProfile"] == prof["metadata"]["name"] for p in peers)
    assert prof["spec"] == {"receiveInterval": bfd["interval_ms"], "transmitInterval": bfd["interval_ms"],
                            "detectMultiplier": bfd["multiplier"]}


def test_metallb_pools_are_the_spec_pools(inv):
    spec, cluster = inv
    docs = ns.metallb_resources(cluster)
    pools = {p["metadata"]["name"]: p["spec"] for p in _kinds(docs, "IPAddressPool")}
    want = {p["name"]: [p.get("cidr") or p["range"]] for p in spec["load_balancer"]["pools"]}
    assert {k: v["addresses"] for k, v in pools.items()} == want
    l2 = {a["metadata"]["name"]: a["spec"]["ipAddressPools"] for a in _kinds(docs, "L2Advertisement")}
    bgp = {a["metadata"]["name"]: a["spec"] for a in _kinds(docs, "BGPAdvertisement")}
    by_mode = {m: sorted(p["name"] for p in spec["load_balancer"]["pools"] if p["mode"] == m) for m in ("l2", "bgp")}
    assert sorted(l2) == by_mode["l2"] and all(v == [k] for k, v in l2.items())
    assert sorted(bgp) == by_mode["bgp"]
    assert all(v["ipAddressPools"] == [k] and v["aggregationLength"] == 32 for k, v in bgp.items())


def test_metallb_l2_pool_is_announced_only_from_nodes_on_its_network():
    spec = _spec("lab")
    spec["networks"].append({"name": "edge", "vlan": 500, "cidr": "10.77.50.0/24"})
    spec["nodes"][1]["addresses"]["edge"] = "10.77.50.12"
    spec["load_balancer"]["pools"].append({"name": "edge", "range": "10.77.50.100-10.77.50.110", "mode": "l2"})
    docs = ns.metallb_resources(_model(spec).cluster)
    adv = next(a for a in _kinds(docs, "L2Advertisement") if a["metadata"]["name"] == "edge")
    (sel,) = adv["spec"]["nodeSelectors"]
    assert sel["matchExpressions"] == [{"key": "kubernetes.io/hostname", "operator": "In",
                                        "values": [spec["nodes"][1]["name"]]}]
    lan = next(a for a in _kinds(docs, "L2Advertisement") if a["metadata"]["name"] == "lan")
    assert "nodeSelectors" not in lan["spec"]                 # every node is on mgmt


def test_metallb_without_bgp_has_no_peers():
    spec = _spec("lab")
    spec["routers"] = []
    spec["load_balancer"] = {"pools": [p for p in spec["load_balancer"]["pools"] if p["mode"] == "l2"]}
    docs = ns.metallb_resources(_model(spec).cluster)
    assert not _kinds(docs, "BGPPeer") and not _kinds(docs, "BFDProfile") and not _kinds(docs, "BGPAdvertisement")
    assert [d["metadata"]["name"] for d in _kinds(docs, "IPAddressPool")] == ["lan"]


def test_metallb_without_bfd_has_no_profile():
    spec = _spec("lab")
    spec["load_balancer"]["bgp"]["bfd"] = None
    docs = ns.metallb_resources(_model(spec).cluster)
    assert not _kinds(docs, "BFDProfile")
    assert all("bfdProfile" not in p["spec"] for p in _kinds(docs, "BGPPeer"))


def test_metallb_keeps_the_frr_k8s_backend(inv):
    _, cluster = inv
    v = ns.metallb_values(cluster)
    # speaker.frr (deprecated FRR mode) and frrk8s (the 0.16 default) exclude each other.
    assert not (v.get("speaker") or {}).get("frr", {}).get("enabled")
    assert (v.get("frrk8s") or {}).get("enabled", True) is True
    assert v["speaker"]["tolerateMaster"] is True


def test_password_secret():
    s = ns.metallb_password_secret("s3cret", "mlb", "pw")
    assert (s["type"], s["metadata"]["name"], s["metadata"]["namespace"]) == ("kubernetes.io/basic-auth", "pw", "mlb")
    assert s["stringData"] == {"password": "s3cret"}
    placeholder = ns.metallb_password_secret(None, "mlb", "pw")
    assert "stringData" not in placeholder and "data" not in placeholder
    assert "s3cret" not in json.dumps(placeholder)
    with pytest.raises(ns.NetworkStackError, match="rackboot_bgp_password is empty"):
        ns.metallb_password_secret("", "mlb")


# --------------------------------------------------------------------------
# Tenants, cozy-proxy
# --------------------------------------------------------------------------
def test_one_default_deny_policy_per_tenant(inv):
    spec, cluster = inv
    tenants = [t["name"] for t in spec.get("tenants") or []]
    docs = ns.tenant_resources(cluster)
    assert [d["metadata"]["name"] for d in docs if d["kind"] == "Namespace"] == tenants
    policies = ns.tenant_policies(cluster)
    assert [p["metadata"]["namespace"] for p in policies] == tenants
    kinds = [d["kind"] for d in docs]
    assert kinds.index("CiliumNetworkPolicy") > max(i for i, k in enumerate(kinds) if k == "Namespace")
    for p in policies:
        s = p["spec"]
        assert s["endpointSelector"] == {} and s["enableDefaultDeny"] == {"ingress": True, "egress": True}
        assert s["ingress"] == [{"fromEndpoints": [{}]}]
        dns = [r for r in s["egress"] if r.get("toPorts")]
        (rule,) = dns
        assert rule["toEndpoints"][0]["matchLabels"]["k8s:k8s-app"] == "kube-dns"
        assert {(x["port"], x["protocol"]) for x in rule["toPorts"][0]["ports"]} == {("53", "UDP"), ("53", "TCP")}
        assert {"toEntities": ["kube-apiserver"]} in s["egress"]
        assert {"toEndpoints": [{}]} in s["egress"]
        # Nothing else is allowed out: no world, no cluster-wide entities.
        assert len(s["egress"]) == 3


def test_cozy_proxy_values(inv):
    _, cluster = inv
    v = ns.cozy_proxy_values(cluster, "0.2.0")
    assert v["daemonset"]["hostNetwork"] is True and v["image"]["tag"] == "v0.2.0"
