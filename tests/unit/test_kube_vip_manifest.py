"""The kube-vip static pod: a valid core/v1 Pod holding the spec's VIP by ARP on the management link.

The Pod is checked field by field against the Kubernetes API models of the
`kubernetes` Python client (generated from the upstream OpenAPI spec).
"""
import re

import kubernetes.client as k8s
import pytest

from ansible_collections.rackboot.metal.plugins.plugin_utils import kube_vip as kv
from ansible_collections.rackboot.metal.plugins.plugin_utils import kubeadm as kb
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build

VERSION = "0.9.2"


def validate(obj, type_name, path="Pod"):
    """Every key must be a field of the upstream API type, recursively, with the right kind of value."""
    if type_name in ("str", "int", "bool", "object"):
        expected = {"str": str, "int": int, "bool": bool, "object": object}[type_name]
        assert isinstance(obj, expected) and not (type_name == "int" and isinstance(obj, bool)), path
        return
    m = re.match(r"(?:list|List)\[(.+)\]$", type_name)
    if m:
        assert isinstance(obj, list), path
        for i, item in enumerate(obj):
            validate(item, m.group(1), "%s[%d]" % (path, i))
        return
    m = re.match(r"(?:dict\(str, (.+)\)|Dict\[str, (.+)\])$", type_name)
    if m:
        assert isinstance(obj, dict), path
        for k, v in obj.items():
            validate(v, m.group(1) or m.group(2), "%s.%s" % (path, k))
        return
    cls = getattr(k8s, type_name)
    by_json = {v: k for k, v in cls.attribute_map.items()}
    assert isinstance(obj, dict), path
    for key, value in obj.items():
        assert key in by_json, "%s.%s is not a field of %s" % (path, key, type_name)
        validate(value, cls.openapi_types[by_json[key]], "%s.%s" % (path, key))


@pytest.fixture
def lab(lab_spec):
    return lab_spec, build(lab_spec, source="lab")


def env_of(pod):
    return {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}


def test_manifest_is_a_valid_pod(lab):
    spec, model = lab
    cp = model.cluster["bootstrap_node"]
    pod = kv.kube_vip_manifest(model.cluster, model.nodes[cp], VERSION)
    validate(pod, "V1Pod")
    assert (pod["apiVersion"], pod["kind"]) == ("v1", "Pod")
    assert pod["metadata"]["namespace"] == "kube-system"
    assert pod["spec"]["hostNetwork"] is True
    # Env values must be strings for the API server to accept the Pod.
    assert all(isinstance(e.get("value", ""), str) for e in pod["spec"]["containers"][0]["env"])


def test_vip_arp_on_the_management_link(lab):
    spec, model = lab
    for node in spec["nodes"]:
        if node["role"] != "controlplane":
            continue
        env = env_of(kv.kube_vip_manifest(model.cluster, model.nodes[node["name"]], VERSION))
        assert env["address"] == spec["cluster"]["api_vip"]
        assert env["vip_arp"] == "true"
        # The lab's management network is the bond's native network: the VIP sits on the bond.
        assert spec["host_network"]["native_network"] == "mgmt"
        assert env["vip_interface"] == spec["host_network"]["bond"]["name"]
        assert env["port"] == str(spec["cluster"].get("api_port", 6443))
        assert env["cp_enable"] == "true" and env["vip_leaderelection"] == "true"
        assert env["svc_enable"] == "false"  # MetalLB announces Services
        assert env["vip_subnet"] == "32"


def test_image_is_pinned(lab):
    spec, model = lab
    pod = kv.kube_vip_manifest(model.cluster, model.nodes[model.cluster["bootstrap_node"]], VERSION)
    assert pod["spec"]["containers"][0]["image"] == "ghcr.io/kube-vip/kube-vip:v" + VERSION


def test_old_kube_vip_uses_vip_cidr(lab):
    spec, model = lab
    env = env_of(kv.kube_vip_manifest(model.cluster, model.nodes[model.cluster["bootstrap_node"]], "0.8.9"))
    assert env["vip_cidr"] == "32" and "vip_subnet" not in env


def test_super_admin_conf_only_while_bootstrapping_on_1_29_and_later(lab):
    spec, model = lab
    cluster = dict(model.cluster)
    assert kv.kube_vip_kubeconfig(cluster, True) == "/etc/kubernetes/super-admin.conf"
    assert kv.kube_vip_kubeconfig(cluster, False) == "/etc/kubernetes/admin.conf"
    cluster["kubernetes_version"] = "1.28.9"
    assert kv.kube_vip_kubeconfig(cluster, True) == "/etc/kubernetes/admin.conf"
    cluster["kubernetes_version"] = "1.29.0"
    assert kv.kube_vip_kubeconfig(cluster, True) == "/etc/kubernetes/super-admin.conf"


def test_kubeconfig_is_mounted_as_a_file_at_admin_conf(lab):
    spec, model = lab
    node = model.nodes[model.cluster["bootstrap_node"]]
    pod = kv.kube_vip_manifest(model.cluster, node, VERSION, kubeconfig="/etc/kubernetes/super-admin.conf")
    vol = pod["spec"]["volumes"][0]
    # The kubelet must never create a directory where kubeadm will write the kubeconfig.
    assert vol["hostPath"] == {"path": "/etc/kubernetes/super-admin.conf", "type": "File"}
    mount = pod["spec"]["containers"][0]["volumeMounts"][0]
    assert mount["name"] == vol["name"] and mount["mountPath"] == "/etc/kubernetes/admin.conf"


def test_workers_get_no_kube_vip(lab):
    spec, model = lab
    worker = next(n["name"] for n in spec["nodes"] if n["role"] == "worker")
    with pytest.raises(kb.KubeadmError, match="control-plane nodes only"):
        kv.kube_vip_manifest(model.cluster, model.nodes[worker], VERSION)


def test_leader_election_timings_are_checked(lab):
    spec, model = lab
    node = model.nodes[model.cluster["bootstrap_node"]]
    with pytest.raises(kb.KubeadmError, match="retry period < renew deadline < lease duration"):
        kv.kube_vip_manifest(model.cluster, node, VERSION, lease_duration=3, renew_deadline=3)
