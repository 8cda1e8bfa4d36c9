"""kubeadm v1beta4 documents rendered from the lab and example specs.

Expected values come from the spec files (and the defaults DESIGN.md states),
never from the implementation. Field names are checked against the upstream
kubeadm v1beta4 reference (kubernetes.io/docs/reference/config-api/kubeadm-config.v1beta4/).
"""
import ipaddress

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils import kubeadm as kb
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build

# Field names of the kubeadm v1beta4 types rackboot writes, from the upstream API reference.
V1BETA4_FIELDS = {
    "InitConfiguration": {"apiVersion", "kind", "bootstrapTokens", "dryRun", "nodeRegistration",
                          "localAPIEndpoint", "certificateKey", "skipPhases", "patches", "timeouts"},
    "ClusterConfiguration": {"apiVersion", "kind", "etcd", "networking", "kubernetesVersion",
                             "controlPlaneEndpoint", "apiServer", "controllerManager", "scheduler", "dns",
                             "proxy", "certificatesDir", "imageRepository", "featureGates", "clusterName",
                             "encryptionAlgorithm", "certificateValidityPeriod", "caCertificateValidityPeriod"},
    "JoinConfiguration": {"apiVersion", "kind", "dryRun", "nodeRegistration", "caCertPath", "discovery",
                          "controlPlane", "skipPhases", "patches", "timeouts"},
    "NodeRegistrationOptions": {"name", "criSocket", "taints", "kubeletExtraArgs", "ignorePreflightErrors",
                                "imagePullPolicy", "imagePullSerial"},
    "APIEndpoint": {"advertiseAddress", "bindPort"},
    "Networking": {"serviceSubnet", "podSubnet", "dnsDomain"},
    "APIServer": {"extraArgs", "extraVolumes", "extraEnvs", "certSANs"},
    "Proxy": {"disabled"},
    "Discovery": {"bootstrapToken", "file", "tlsBootstrapToken"},
    "BootstrapTokenDiscovery": {"token", "apiServerEndpoint", "caCertHashes", "unsafeSkipCAVerification"},
    "JoinControlPlane": {"localAPIEndpoint", "certificateKey"},
    "Arg": {"name", "value"},
}

TOKEN = "abcdef.0123456789abcdef"
CA_HASH = "sha256:" + "a" * 64
CERT_KEY = "b" * 64


def kubeadm_spec(spec):
    spec["cluster"]["distribution"] = "kubeadm"
    for node in spec["nodes"]:
        node.pop("install_disk", None)
    return spec


def model_of(spec):
    return build(spec, source="test")


def mgmt_net(spec):
    return spec["cluster"].get("management_network") or spec["host_network"]["native_network"]


def by_kind(docs):
    return {d["kind"]: d for d in docs}


def check_fields(obj, type_name):
    assert set(obj) <= V1BETA4_FIELDS[type_name], "%s has unknown fields %s" % (
        type_name, sorted(set(obj) - V1BETA4_FIELDS[type_name]))


def test_bootstrap_node_gets_init_cluster_and_kubelet_documents(lab_spec):
    model = model_of(lab_spec)
    first_cp = next(n["name"] for n in lab_spec["nodes"] if n["role"] == "controlplane")
    docs = kb.node_documents(model.cluster, model.nodes[first_cp])
    assert [d["kind"] for d in docs] == ["InitConfiguration", "ClusterConfiguration", "KubeletConfiguration"]
    assert {d["apiVersion"] for d in docs[:2]} == {"kubeadm.k8s.io/v1beta4"}
    assert docs[2]["apiVersion"] == "kubelet.config.k8s.io/v1beta1"
    for name in lab_spec["nodes"][1:]:
        others = kb.node_documents(model.cluster, model.nodes[name["name"]])
        assert [d["kind"] for d in others] == ["JoinConfiguration"]


def test_cluster_configuration_follows_the_lab_spec(lab_spec):
    model = model_of(lab_spec)
    cc = kb.cluster_configuration(model.cluster)
    check_fields(cc, "ClusterConfiguration")
    check_fields(cc["networking"], "Networking")
    check_fields(cc["apiServer"], "APIServer")
    check_fields(cc["proxy"], "Proxy")
    spec = lab_spec["cluster"]
    # Defaults from DESIGN.md when the lab spec leaves them out.
    assert cc["networking"]["podSubnet"] == spec.get("pod_cidr", "10.244.0.0/16")
    assert cc["networking"]["serviceSubnet"] == spec.get("service_cidr", "10.96.0.0/16")
    assert cc["networking"]["dnsDomain"] == spec.get("domain", "cozy.local")
    assert cc["controlPlaneEndpoint"] == "%s:%d" % (spec["api_vip"], spec.get("api_port", 6443))
    assert cc["kubernetesVersion"] == "v" + spec["kubernetes_version"]
    assert cc["clusterName"] == spec["name"]
    for key in ("podSubnet", "serviceSubnet"):
        ipaddress.ip_network(cc["networking"][key])  # a real CIDR


def test_kube_proxy_is_disabled_in_stored_config_and_skipped_at_init(lab_spec):
    model = model_of(lab_spec)
    boot = model.nodes[model.cluster["bootstrap_node"]]
    docs = by_kind(kb.node_documents(model.cluster, boot))
    # proxy.disabled lives in ClusterConfiguration, which kubeadm stores and upgrade reads again.
    assert docs["ClusterConfiguration"]["proxy"] == {"disabled": True}
    assert "addon/kube-proxy" in docs["InitConfiguration"]["skipPhases"]
    assert "--skip-phases=addon/kube-proxy" in kb.commands()["init"]


def test_cert_sans_hold_vip_extras_and_control_planes(example_spec):
    spec = kubeadm_spec(example_spec)
    model = model_of(spec)
    sans = kb.cluster_configuration(model.cluster)["apiServer"]["certSANs"]
    assert sans[0] == spec["cluster"]["api_vip"]
    for extra in spec["cluster"]["cert_sans"]:
        assert extra in sans
    net = mgmt_net(spec)
    for node in spec["nodes"]:
        if node["role"] == "controlplane":
            assert node["name"] in sans and node["addresses"][net] in sans
        else:
            assert node["addresses"][net] not in sans
    assert len(sans) == len(set(sans))


def test_init_configuration_uses_the_management_address(lab_spec):
    model = model_of(lab_spec)
    boot = next(n for n in lab_spec["nodes"] if n["role"] == "controlplane")
    ic = kb.init_configuration(model.cluster, model.nodes[boot["name"]])
    check_fields(ic, "InitConfiguration")
    check_fields(ic["nodeRegistration"], "NodeRegistrationOptions")
    check_fields(ic["localAPIEndpoint"], "APIEndpoint")
    address = boot["addresses"][mgmt_net(lab_spec)]
    assert ic["localAPIEndpoint"] == {"advertiseAddress": address, "bindPort": 6443}
    assert {"name": "node-ip", "value": address} in ic["nodeRegistration"]["kubeletExtraArgs"]
    assert ic["nodeRegistration"]["name"] == boot["name"]
    assert ic["nodeRegistration"]["criSocket"].startswith("unix://")
    for arg in ic["nodeRegistration"]["kubeletExtraArgs"]:
        check_fields(arg, "Arg")


def test_init_configuration_only_for_the_bootstrap_node(lab_spec):
    model = model_of(lab_spec)
    worker = next(n["name"] for n in lab_spec["nodes"] if n["role"] == "worker")
    with pytest.raises(kb.KubeadmError, match="only for the bootstrap node"):
        kb.init_configuration(model.cluster, model.nodes[worker])


def test_join_configurations_without_secrets(example_spec):
    spec = kubeadm_spec(example_spec)
    model = model_of(spec)
    net = mgmt_net(spec)
    endpoint = "%s:6443" % spec["cluster"]["api_vip"]
    for node in spec["nodes"][1:]:
        jc = kb.join_configuration(model.cluster, model.nodes[node["name"]])
        check_fields(jc, "JoinConfiguration")
        check_fields(jc["discovery"], "Discovery")
        check_fields(jc["discovery"]["bootstrapToken"], "BootstrapTokenDiscovery")
        assert jc["discovery"]["bootstrapToken"] == {"apiServerEndpoint": endpoint}
        assert {"name": "node-ip", "value": node["addresses"][net]} in jc["nodeRegistration"]["kubeletExtraArgs"]
        dumped = yaml.safe_dump(jc)
        assert "token:" not in dumped and "certificateKey" not in dumped
        if node["role"] == "controlplane":
            check_fields(jc["controlPlane"], "JoinControlPlane")
            assert jc["controlPlane"]["localAPIEndpoint"]["advertiseAddress"] == node["addresses"][net]
            # kube-vip's manifest is already in /etc/kubernetes/manifests when a control plane joins.
            assert "DirAvailable--etc-kubernetes-manifests" in jc["nodeRegistration"]["ignorePreflightErrors"]
        else:
            assert "controlPlane" not in jc
            assert "ignorePreflightErrors" not in jc["nodeRegistration"]


def test_join_configuration_with_secrets(example_spec):
    spec = kubeadm_spec(example_spec)
    model = model_of(spec)
    cp = next(n["name"] for n in spec["nodes"][1:] if n["role"] == "controlplane")
    worker = next(n["name"] for n in spec["nodes"] if n["role"] == "worker")
    jc = kb.join_configuration(model.cluster, model.nodes[cp], TOKEN, [CA_HASH], CERT_KEY)
    assert jc["discovery"]["bootstrapToken"]["token"] == TOKEN
    assert jc["discovery"]["bootstrapToken"]["caCertHashes"] == [CA_HASH]
    assert jc["controlPlane"]["certificateKey"] == CERT_KEY
    wc = kb.join_configuration(model.cluster, model.nodes[worker], TOKEN, [CA_HASH])
    assert wc["discovery"]["bootstrapToken"]["token"] == TOKEN and "controlPlane" not in wc
    with pytest.raises(kb.KubeadmError, match="certificate key"):
        kb.join_configuration(model.cluster, model.nodes[cp], TOKEN, [CA_HASH])
    with pytest.raises(kb.KubeadmError, match="bootstrap token"):
        kb.join_configuration(model.cluster, model.nodes[worker], "not-a-token", [CA_HASH])
    with pytest.raises(kb.KubeadmError, match="CA hashes"):
        kb.join_configuration(model.cluster, model.nodes[worker], TOKEN, ["md5:00"])
    with pytest.raises(kb.KubeadmError, match="64 hex"):
        kb.join_configuration(model.cluster, model.nodes[cp], TOKEN, [CA_HASH], "xyz")


def test_node_labels_become_a_kubelet_argument(example_spec):
    spec = kubeadm_spec(example_spec)
    labelled = next(n for n in spec["nodes"] if n.get("labels"))
    model = model_of(spec)
    args = {a["name"]: a["value"] for a in
            kb.join_configuration(model.cluster, model.nodes[labelled["name"]])["nodeRegistration"]["kubeletExtraArgs"]}
    assert sorted(args["node-labels"].split(",")) == sorted("%s=%s" % kv for kv in labelled["labels"].items())


def test_kubelet_configuration_matches_containerd_and_cluster_dns(lab_spec):
    model = model_of(lab_spec)
    kc = kb.kubelet_configuration(model.cluster)
    assert kc["cgroupDriver"] == "systemd"
    svc = ipaddress.ip_network(lab_spec["cluster"].get("service_cidr", "10.96.0.0/16"))
    assert kc["clusterDNS"] == [str(svc[10])]
    assert kc["clusterDomain"] == lab_spec["cluster"].get("domain", "cozy.local")


def test_old_kubernetes_is_refused_with_a_reason(lab_spec):
    lab_spec["cluster"]["kubernetes_version"] = "1.30.4"
    model = model_of(lab_spec)
    with pytest.raises(kb.KubeadmError, match=r"1\.30\.4.*1\.31 or later"):
        kb.cluster_configuration(model.cluster)


def test_documents_survive_a_yaml_round_trip(lab_spec):
    model = model_of(lab_spec)
    for name, node in model.nodes.items():
        docs = kb.node_documents(model.cluster, node)
        text = "---\n".join(yaml.safe_dump(d) for d in docs)
        assert list(yaml.safe_load_all(text)) == docs
