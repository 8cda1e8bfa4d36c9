# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Helm values and Kubernetes resources of the cluster network stack.

Pure functions of ``rackboot_cluster`` (the inventory plugin's normalized
cluster): Kube-OVN, Cilium (chained behind Kube-OVN as kube-proxy
replacement, or alone under variant ``cilium``), Multus thick, MetalLB,
cozy-proxy, tenant isolation and tenant VPCs. The
roles call them through the filters in ``plugins/filter/network_stack.py``,
so render mode and the install apply exactly the same data.

Settings follow Cozystack's ``kubeovn-cilium`` variant; docs/network-stack.md
explains each one. ``components.<name>.values`` from the spec is deep-merged
last, so a cluster can override any value without a code change.
"""

from __future__ import annotations

import copy
import json
import re

from ansible_collections.rackboot.metal.plugins.plugin_utils.manifests import mirror_image, mirror_values

__all__ = [
    "DEFAULT_NAMESPACES", "deep_merge", "chart_source", "kube_ovn_values", "cilium_values",
    "cilium_cni_configmap", "cilium_cni_conflist", "multus_resources", "nad_resources",
    "metallb_values", "metallb_resources", "metallb_password_secret", "cozy_proxy_values",
    "tenant_resources", "tenant_policies", "CNI_CONFIGMAP", "CILIUM_CONFLIST", "KUBEPRISM_HOST",
    "with_image_registry", "variant", "cilium_lb_resources", "cilium_ipsec_secret", "network_stack_summary",
    "tenant_vpc_resources", "uses_dhcp", "cni_dhcp_daemon",
    "NetworkStackError",
]

# Cozystack's namespaces (cluster_model.RESERVED_NAMESPACES keeps tenants out of them).
DEFAULT_NAMESPACES = {
    "kube_ovn": "cozy-kubeovn", "cilium": "cozy-cilium", "multus": "cozy-multus",
    "metallb": "cozy-metallb", "cozy_proxy": "cozy-proxy",
}
CNI_CONFIGMAP = "cni-configuration"
CNI_CONFIGMAP_KEY = "cni-config"
# Cilium writes the chained conflist under this name; Kube-OVN's priority "10"
# sorts after it, so the kubelet (and Multus, as its master) pick Cilium's.
CILIUM_CONFLIST = "05-cilium.conflist"
KUBE_OVN_CNI_PRIORITY = "10"
KUBE_OVN_SOCKET = "/run/openvswitch/kube-ovn-daemon.sock"
KUBEPRISM_HOST = "localhost"
CONTROL_PLANE_LABEL = "node-role.kubernetes.io/control-plane"
NAD_GROUP = "k8s.cni.cncf.io"
MULTUS_IMAGE = "ghcr.io/k8snetworkplumbingwg/multus-cni"
# The CNI dhcp daemon: the host's dhcp plugin, run from busybox (which also
# removes a stale socket); pinned by roles/versions (versions_busybox).
DHCP_DAEMON_IMAGE = "docker.io/library/busybox"
DHCP_SOCKET_DIR = "/run/cni"          # the plugin's default socket: /run/cni/dhcp.sock
DHCP_SOCKET_VOLUME = "cni-dhcp-socket"
DHCP_PLUGIN = "/opt/cni/bin/dhcp"     # the host's plugin binary (kubeadm: the kubernetes-cni package)
COZY_PROXY_IMAGE = "ghcr.io/cozystack/cozystack/cozy-proxy"
TENANT_POLICY = "rackboot-tenant-isolation"
CILIUM_IPSEC_SECRET = "cilium-ipsec-keys"


class NetworkStackError(ValueError):
    """Input the builders cannot turn into resources (reported as a clean Ansible error)."""


def deep_merge(base, override):
    """Return ``base`` with ``override`` merged in: mappings recursively, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _component(cluster, name):
    return (cluster.get("components") or {}).get(name) or {}


def _with_overrides(cluster, name, values):
    return deep_merge(values, _component(cluster, name).get("values") or {})


def _talos(cluster):
    return cluster.get("distribution") == "talos"


def _meta(name, namespace=None, labels=None):
    meta = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    if labels:
        meta["labels"] = dict(labels)
    return meta


def chart_source(cluster, component, chart_ref, repo_url, version):
    """Where a chart comes from: the role's defaults, overridden by ``components.<name>``.

    ``components.<name>.chart`` may be a repository URL (http/https: the chart
    name stays ``chart_ref``), an ``oci://`` reference, or a local path (a
    mirror or an unpacked chart for air-gapped sites). Returns the
    kubernetes.core.helm arguments ``chart_ref``, ``chart_repo_url`` and
    ``chart_version`` (``None`` where the source has no version, a local path).
    """
    comp = _component(cluster, component)
    version = comp.get("version") or version
    version = str(version).lstrip("v") if version else None
    chart = comp.get("chart")
    if not chart:
        if repo_url:
            return {"chart_ref": chart_ref, "chart_repo_url": repo_url, "chart_version": version}
        chart = chart_ref
    if chart.startswith(("http://", "https://")):
        return {"chart_ref": chart_ref, "chart_repo_url": chart, "chart_version": version}
    if chart.startswith("oci://"):
        return {"chart_ref": chart, "chart_repo_url": None, "chart_version": version}
    # A local path carries its own version in Chart.yaml.
    return {"chart_ref": chart, "chart_repo_url": None, "chart_version": None}


# ----------------------------------------------------------------------------
# Kube-OVN (legacy chart keys, charts/kube-ovn)
# ----------------------------------------------------------------------------
def kube_ovn_values(cluster, namespace=None, version=None):
    """Kube-OVN values: one pod CIDR with central IPAM; LB and NetworkPolicy left to Cilium."""
    cps = cluster["controlplane"]
    values = {
        "namespace": namespace or DEFAULT_NAMESPACES["kube_ovn"],
        # ovn-central runs on the control planes: name them by label and by the
        # addresses their kubelets register (the management addresses).
        "MASTER_NODES_LABEL": CONTROL_PLANE_LABEL,
        "MASTER_NODES": ",".join(n["management_address"] for n in cps),
        "networking": {"NET_STACK": "ipv4", "ENABLE_SSL": True, "NETWORK_TYPE": "geneve",
                       "TUNNEL_TYPE": "geneve"},
        # Cilium does service load balancing and network policy.
        "func": {"ENABLE_LB": False, "ENABLE_NP": False},
        "ipv4": {
            "POD_CIDR": cluster["pod_cidr"],
            "POD_GATEWAY": cluster["pod_gateway"],
            "SVC_CIDR": cluster["service_cidr"],
            "JOIN_CIDR": cluster["join_cidr"],
        },
        "cni_conf": {"CNI_CONFIG_PRIORITY": KUBE_OVN_CNI_PRIORITY},
    }
    if version:
        values["global"] = {"images": {"kubeovn": {"tag": "v" + str(version).lstrip("v")}}}
    if _talos(cluster):
        # /etc is read-only on Talos and it has no loadable modules to manage.
        values.update({"OPENVSWITCH_DIR": "/var/lib/openvswitch", "OVN_DIR": "/var/lib/ovn",
                       "DISABLE_MODULES_MANAGEMENT": True})
    return _with_overrides(cluster, "kube_ovn", values)


# ----------------------------------------------------------------------------
# Cilium, chained behind Kube-OVN (generic-veth)
# ----------------------------------------------------------------------------
def cilium_api_endpoint(cluster, kubeprism_port=None):
    """(host, port) Cilium uses to reach the API without kube-proxy: the VIP on
    kubeadm, KubePrism on Talos (its port is the Talos role's setting,
    talos_kubeprism_port, passed in: one owner)."""
    if _talos(cluster):
        if not kubeprism_port:
            raise NetworkStackError("cilium_values needs the KubePrism port on Talos (talos_kubeprism_port)")
        return KUBEPRISM_HOST, int(kubeprism_port)
    return cluster["api_vip"], cluster["api_port"]


def cilium_cni_conflist():
    """The chained CNI config: Kube-OVN plumbs and allocates, portmap, then Cilium attaches."""
    return {
        "name": "generic-veth",
        "cniVersion": "0.3.1",
        "plugins": [
            {"type": "kube-ovn", "server_socket": KUBE_OVN_SOCKET,
             "ipam": {"type": "kube-ovn", "server_socket": KUBE_OVN_SOCKET}},
            {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
            {"type": "cilium-cni"},
        ],
    }


def cilium_cni_configmap(cluster, namespace=None):
    """The ConfigMap Cilium reads its custom CNI config from (``cni.configMap``)."""
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": _meta(CNI_CONFIGMAP, namespace or DEFAULT_NAMESPACES["cilium"],
                          {"app.kubernetes.io/managed-by": "rackboot"}),
        "data": {CNI_CONFIGMAP_KEY: json.dumps(cilium_cni_conflist(), indent=2, sort_keys=True) + "\n"},
    }


def variant(cluster):
    """The network-stack variant (``cluster.network_stack.variant``; kubeovn-cilium by default)."""
    return (cluster.get("network_stack") or {}).get("variant") or "kubeovn-cilium"


def _hubble(comp):
    # Hubble's TLS certificates are made in the cluster by Cilium's certgen
    # Job and renewed by its CronJob: the keys never pass through the
    # controller or the artifacts, every render is byte-identical, and
    # `helm upgrade` does not rotate them (method "helm" does all three wrong).
    hubble = bool(comp.get("hubble", True))
    return {"enabled": hubble, "relay": {"enabled": hubble},
            "ui": {"enabled": bool(comp.get("hubble_ui", False)) and hubble},
            "tls": {"enabled": True, "auto": {"enabled": True, "method": "cronJob"}}}


def _cilium_standalone(cluster, host, port):
    """Cilium alone (variant ``cilium``): its own cluster-pool IPAM, routing,
    encryption, Maglev (with DSR when asked) and, as the announcer, LB-IPAM
    with L2 announcements. Every key is one the chart's templates read
    (tests/integration/test_network_stack_variants.py checks the cilium-config they make)."""
    opts = cluster["network_stack"]
    pod = cluster["pod_cidr"]
    values = {
        "kubeProxyReplacement": True,
        "k8sServiceHost": host,
        "k8sServicePort": port,
        # Multus (thick) writes its own config beside 05-cilium.conflist.
        "cni": {"exclusive": False},
        "ipam": {"mode": "cluster-pool", "operator": {"clusterPoolIPv4PodCIDRList": [pod],
                                                      "clusterPoolIPv4MaskSize": opts["pod_mask_size"]}},
        "routingMode": opts["routing_mode"],
        "bpf": {"masquerade": True},
        "loadBalancer": {"algorithm": "maglev", "mode": "dsr" if opts["dsr"] else "snat"},
        "l2announcements": {"enabled": opts["lb_announcer"] == "cilium"},
        "operator": {"replicas": min(2, cluster["node_count"])},
        "hubble": _hubble(_component(cluster, "cilium")),
    }
    if opts["routing_mode"] == "native":
        # Every node shares the management L2 segment: Cilium installs the
        # routes to the other nodes' pod blocks itself.
        values.update(ipv4NativeRoutingCIDR=pod, autoDirectNodeRoutes=True)
    else:
        values["tunnelProtocol"] = opts["tunnel_protocol"]
        if opts["dsr"]:
            values["loadBalancer"]["dsrDispatch"] = "geneve"
    if opts["encryption"] != "none":
        values["encryption"] = {"enabled": True, "type": opts["encryption"]}
    if opts["devices"]:
        values["devices"] = list(opts["devices"])
    return values


def cilium_values(cluster, kubeprism_port=None):
    """Cilium values: chained behind Kube-OVN (kube-proxy replacement, policy
    and Hubble on top of Kube-OVN's datapath), or alone (variant ``cilium``).

    The image is the chart's own (pinned by digest), so the chart version pins it.
    """
    host, port = cilium_api_endpoint(cluster, kubeprism_port)
    if variant(cluster) == "cilium":
        values = _cilium_standalone(cluster, host, port)
    elif variant(cluster) == "kubeovn-cilium":
        values = _cilium_chained(cluster, host, port)
    else:
        raise NetworkStackError("variant %s installs no Cilium" % variant(cluster))
    if _talos(cluster):
        # Talos mounts cgroup v2 itself; Cilium must not mount another.
        values["cgroup"] = {"autoMount": {"enabled": False}, "hostRoot": "/sys/fs/cgroup"}
    return _with_overrides(cluster, "cilium", values)


def _cilium_chained(cluster, host, port):
    values = {
        "kubeProxyReplacement": True,
        "k8sServiceHost": host,
        "k8sServicePort": port,
        "cni": {
            "chainingMode": "generic-veth",
            "chainingTarget": "kube-ovn",
            "customConf": True,
            "configMap": CNI_CONFIGMAP,
            "configMapKey": CNI_CONFIGMAP_KEY,
            # customConf already keeps Cilium from taking the CNI dir over; say it
            # twice so Multus' config survives upgrades.
            "exclusive": False,
        },
        # Kube-OVN routes pod traffic and owns masquerading. The agent refuses
        # native routing with masquerading on and no native-routing CIDR; the
        # pod CIDR is named anyway, so turning masquerading on later cannot
        # masquerade pod-to-pod traffic.
        "routingMode": "native",
        "ipv4NativeRoutingCIDR": cluster["pod_cidr"],
        "autoDirectNodeRoutes": False,
        "bpf": {"masquerade": False},
        "enableIPv4Masquerade": False,
        "enableIPv6Masquerade": False,
        "enableIdentityMark": False,
        "devices": "ovn0 genev_sys_6081",
        "forceDeviceDetection": True,
        "daemon": {"enableSourceIPVerification": False},
        "loadBalancer": {"algorithm": "maglev"},
        "ipam": {"mode": "kubernetes"},
        "operator": {"replicas": min(2, cluster["node_count"])},
        "hubble": _hubble(_component(cluster, "cilium")),
    }
    return values


def cilium_lb_resources(cluster):
    """LB-IPAM pools and L2 announcement policies when Cilium announces
    (``lb_announcer: cilium``): one CiliumLoadBalancerIPPool per pool and, per
    L2 pool, a CiliumL2AnnouncementPolicy on the links of the pool's network,
    limited to the nodes attached to it. Empty otherwise."""
    opts = cluster.get("network_stack") or {}
    if variant(cluster) != "cilium" or opts.get("lb_announcer") != "cilium":
        return []
    lb = cluster.get("load_balancer") or {}
    interfaces = {a["pool"]: a["interfaces"] for a in opts.get("l2_announcements") or []}
    out = []
    for pool in lb.get("pools") or []:
        blocks = [{"cidr": c} for c in pool["cidrs"]] if pool["cidr"] else \
            [dict(zip(("start", "stop"), pool["addresses"][0].split("-")))]
        out.append({"apiVersion": "cilium.io/v2", "kind": "CiliumLoadBalancerIPPool",
                    "metadata": _meta(pool["name"], labels={"rackboot.io/pool": pool["name"]}),
                    "spec": {"blocks": blocks, "disabled": False,
                             # autoAssign false: only Services that name the pool get an address.
                             "serviceSelector": {} if pool["auto_assign"] else
                             {"matchLabels": {"rackboot.io/pool": pool["name"]}}}})
    for pool in lb.get("l2_pools") or []:
        # No serviceSelector: every LoadBalancer Service. ARP for an address is
        # only asked on the network that holds it, so the interfaces decide.
        spec = {"loadBalancerIPs": True, "externalIPs": False,
                "interfaces": ["^%s$" % re.escape(i) for i in interfaces.get(pool["name"], [])]}
        if not pool["announce_all"]:
            spec["nodeSelector"] = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                          "values": list(pool["announce_nodes"])}]}
        out.append({"apiVersion": "cilium.io/v2alpha1", "kind": "CiliumL2AnnouncementPolicy",
                    "metadata": _meta(pool["name"]), "spec": spec})
    return out


def _vaulted_secret(name, namespace, kind, key, value, variable, empty_hint):
    """A Secret whose one key comes from a vaulted variable. ``value=None`` gives
    the render-mode placeholder: the Secret without its data, so the secret
    never lands in the artifacts folder."""
    secret = {"apiVersion": "v1", "kind": "Secret", "type": kind, "metadata": _meta(name, namespace)}
    if value is None:
        secret["metadata"]["annotations"] = {
            "rackboot.io/not-rendered": "stringData.%s comes from %s at install time" % (key, variable)}
        return secret
    if not str(value):
        raise NetworkStackError("%s is empty; %s" % (variable, empty_hint))
    secret["stringData"] = {key: str(value)}
    return secret


def cilium_ipsec_secret(keys, namespace=None):
    """The ``cilium-ipsec-keys`` Secret Cilium's IPsec reads (key ``keys``), from
    the vaulted ``rackboot_cilium_ipsec_keys``; ``keys=None`` gives the
    render-mode placeholder without data."""
    return _vaulted_secret(CILIUM_IPSEC_SECRET, namespace or DEFAULT_NAMESPACES["cilium"], "Opaque", "keys", keys,
                           "rackboot_cilium_ipsec_keys", "encryption ipsec needs the key line (for example: "
                           "3+ rfc4106(gcm(aes)) <40 hex digits> 128)")


# ----------------------------------------------------------------------------
# Multus (thick plugin) and NetworkAttachmentDefinitions
# ----------------------------------------------------------------------------
def multus_resources(cluster, manifest, namespace=None, version=None, image=MULTUS_IMAGE,
                     memory_request="100Mi", memory_limit="1Gi", cpu_request="100m", registry=None):
    """Multus thick from the pinned upstream manifest (the documents of
    ``multus-daemonset-thick.yml``), with rackboot's overlay: its own
    namespace, the release image ``<image>:v<version>-thick`` (upstream's file
    says ``snapshot-thick``), Cilium's chained conflist as the master CNI
    config, and memory the daemon survives with. The upstream file is never
    edited; a new Multus release changes only the pin."""
    ns = namespace or DEFAULT_NAMESPACES["multus"]
    if not version:
        raise NetworkStackError("multus_resources needs the Multus version (versions_multus)")
    ref = "%s:v%s-thick" % (image, str(version).lstrip("v"))
    if registry:
        ref = mirror_image(ref, registry)
    # A plain copy (JSON): Ansible's lazy containers hand out new element objects.
    docs = json.loads(json.dumps([d for d in manifest if d]))
    kinds = [d.get("kind") for d in docs]
    for want in ("CustomResourceDefinition", "ConfigMap", "DaemonSet", "ServiceAccount"):
        if want not in kinds:
            raise NetworkStackError("the Multus manifest has no %s: not the pinned multus-daemonset-thick.yml" % want)
    for doc in docs:
        kind, meta = doc["kind"], doc.setdefault("metadata", {})
        if "namespace" in meta:
            meta["namespace"] = ns
        if kind == "ClusterRoleBinding":
            for subject in doc.get("subjects") or []:
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = ns
        if kind == "ConfigMap" and "daemon-config.json" in (doc.get("data") or {}):
            conf = json.loads(doc["data"]["daemon-config.json"])
            conf["multusMasterCNI"] = CILIUM_CONFLIST
            doc["data"]["daemon-config.json"] = json.dumps(conf, indent=2, sort_keys=True) + "\n"
        if kind == "DaemonSet":
            pod = doc["spec"]["template"]["spec"]
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                c["image"] = ref
            for c in pod.get("containers", []):
                # Upstream's 50Mi gets the daemon OOM-killed under load.
                c["resources"] = {"requests": {"cpu": cpu_request, "memory": memory_request},
                                  "limits": {"memory": memory_limit}}
            if cluster.get("distribution") == "talos":
                # Talos keeps pod network namespaces in /var/run/netns, which is
                # not /run/netns there: with upstream's path new pods fail to
                # start (Talos' Multus guide). Same volume, same mount point.
                for vol in pod.get("volumes", []):
                    if vol.get("name") == "host-run-netns":
                        vol["hostPath"]["path"] = "/var/run/netns/"
    return [{"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(ns)}] + docs


def uses_dhcp(cluster):
    """Whether an attachment of the spec takes its address from DHCP (``ipam.type: dhcp``)."""
    return any((a.get("ipam") or {}).get("type") == "dhcp" for a in cluster.get("attachments") or [])


def cni_dhcp_daemon(cluster, namespace=None, version=None, image=DHCP_DAEMON_IMAGE, registry=None):
    """The CNI ``dhcp`` daemon on every node, when an attachment uses DHCP IPAM
    (nothing otherwise): the ``dhcp`` plugin only asks this daemon, which
    acquires and renews the leases from inside each pod's network namespace
    (containernetworking/plugins plugins/ipam/dhcp). The thick Multus daemon
    runs the client chrooted into the host (``chrootDir: /hostroot``), so it
    finds the daemon's socket at the host's /run/cni/dhcp.sock. The host's own
    ``/opt/cni/bin/dhcp`` runs from a small image, as RKE2's multus chart
    does: the host's /run/cni (its socket, a stale one removed first), the
    network namespaces (/var/run/netns: Talos keeps them there, elsewhere it
    is /run/netns through /var/run), host network, privileged. A node
    without the plugin binary says so in the pod's events (hostPath type File)."""
    if not uses_dhcp(cluster):
        return []
    if not version:
        raise NetworkStackError("cni_dhcp_daemon needs the image version (versions_busybox)")
    ns = namespace or DEFAULT_NAMESPACES["multus"]
    ref = "%s:%s" % (image, version)
    if registry:
        ref = mirror_image(ref, registry)
    labels = {"app": "cni-dhcp-daemon", "app.kubernetes.io/managed-by": "rackboot"}
    socket_mount = {"name": DHCP_SOCKET_VOLUME, "mountPath": DHCP_SOCKET_DIR}
    privileged = {"privileged": True}
    pod = {
        "hostNetwork": True,
        "priorityClassName": "system-node-critical",
        "nodeSelector": {"kubernetes.io/os": "linux"},
        # Pods on every node may ask for a lease: control planes and tainted nodes too.
        "tolerations": [{"operator": "Exists"}],
        "initContainers": [{"name": "remove-stale-socket", "image": ref, "securityContext": privileged,
                            "command": ["rm", "-f", DHCP_SOCKET_DIR + "/dhcp.sock"], "volumeMounts": [socket_mount]}],
        "containers": [{
            "name": "dhcp", "image": ref, "securityContext": privileged,
            "command": [DHCP_PLUGIN, "daemon"],
            "resources": {"requests": {"cpu": "10m", "memory": "20Mi"}, "limits": {"memory": "100Mi"}},
            "volumeMounts": [
                {"name": "dhcp-plugin", "mountPath": DHCP_PLUGIN, "readOnly": True},
                socket_mount,
                # Pods' namespaces are mounted after the daemon starts.
                {"name": "netns", "mountPath": "/var/run/netns", "mountPropagation": "HostToContainer"},
            ],
        }],
        "volumes": [
            {"name": "dhcp-plugin", "hostPath": {"path": DHCP_PLUGIN, "type": "File"}},
            {"name": DHCP_SOCKET_VOLUME, "hostPath": {"path": DHCP_SOCKET_DIR, "type": "DirectoryOrCreate"}},
            {"name": "netns", "hostPath": {"path": "/var/run/netns", "type": "DirectoryOrCreate"}},
        ],
    }
    return [{
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": _meta("cni-dhcp-daemon", ns, labels),
        "spec": {"selector": {"matchLabels": {"app": "cni-dhcp-daemon"}},
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }]


def with_image_registry(values, chart_defaults, registry):
    """``values`` with every image repository of the chart moved to ``registry``
    (``cluster.image_registry``; nothing when empty). The repositories are found
    in the chart's defaults merged with ``values``, so a repository rackboot or
    the spec sets is mirrored too."""
    if not registry:
        return values
    return deep_merge(values, mirror_values(deep_merge(chart_defaults, values), registry))


def _nad_ipam(ipam):
    kind = ipam.get("type") or "none"
    if kind == "none":
        return {}
    out = {"type": kind}
    if kind in ("whereabouts", "host-local"):
        if kind == "whereabouts":
            out.update({"range": ipam["range"], "range_start": ipam["range_start"], "range_end": ipam["range_end"]})
        else:
            out["ranges"] = [[{"subnet": ipam["range"], "rangeStart": ipam["range_start"],
                               "rangeEnd": ipam["range_end"]}]]
        if ipam.get("gateway"):
            out["gateway"] = ipam["gateway"]
    return out


def nad_config(attachment):
    """The CNI config (a JSON string) of one attachment from ``rackboot_cluster.attachments``."""
    conf = {"cniVersion": "0.3.1", "name": attachment["name"], "type": attachment["type"],
            "mtu": attachment["mtu"]}
    if attachment["type"] == "macvlan":
        conf.update({"master": attachment["master"], "mode": "bridge"})
    else:
        conf.update({"bridge": attachment["master"], "isGateway": False, "ipMasq": False})
    conf["ipam"] = _nad_ipam(attachment.get("ipam") or {})
    return json.dumps(conf, sort_keys=True)


def nad_resources(cluster):
    """One NetworkAttachmentDefinition per ``attachments`` entry of the spec."""
    out = []
    for a in cluster.get("attachments") or []:
        out.append({
            "apiVersion": NAD_GROUP + "/v1", "kind": "NetworkAttachmentDefinition",
            "metadata": _meta(a["name"], a["namespace"], {"rackboot.io/network": a["network"]}),
            "spec": {"config": nad_config(a)},
        })
    return out


# ----------------------------------------------------------------------------
# MetalLB
# ----------------------------------------------------------------------------
def metallb_values(cluster):
    """MetalLB chart values: speakers on every node, control planes included (the routers peer with all).

    BGP and BFD go through the chart's default backend, frr-k8s; the older
    ``speaker.frr`` mode is deprecated and mutually exclusive with it.
    """
    values = {"speaker": {"tolerateMaster": True}, "crds": {"enabled": True}}
    lb_class = (cluster.get("load_balancer") or {}).get("class")
    if lb_class:
        # Controller and speakers serve only Services of this class (--lb-class).
        values["loadBalancerClass"] = lb_class
    return _with_overrides(cluster, "metallb", values)


def _duration(seconds):
    return "%ds" % seconds


def metallb_bfd_profile_name(cluster):
    return cluster["name"] + "-bfd"


def metallb_resources(cluster, namespace=None, password_secret="rackboot-bgp-password", with_password=True):
    """Pools, advertisements, BFD profile and one BGPPeer per router (the routers' side of the sessions)."""
    ns = namespace or DEFAULT_NAMESPACES["metallb"]
    lb = cluster.get("load_balancer") or {}
    out = []
    for pool in lb.get("pools") or []:
        out.append({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
                    "metadata": _meta(pool["name"], ns),
                    "spec": {"addresses": list(pool["addresses"]), "autoAssign": bool(pool["auto_assign"])}})
    for pool in lb.get("l2_pools") or []:
        spec = {"ipAddressPools": [pool["name"]]}
        # Only nodes on the pool's network can answer ARP for it.
        if not pool["announce_all"]:
            spec["nodeSelectors"] = [{"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                            "values": list(pool["announce_nodes"])}]}]
        out.append({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement",
                    "metadata": _meta(pool["name"], ns), "spec": spec})
    for pool in lb.get("bgp_pools") or []:
        # /32 per service: the routers accept exactly these (prefix le 32 ge 32).
        out.append({"apiVersion": "metallb.io/v1beta1", "kind": "BGPAdvertisement",
                    "metadata": _meta(pool["name"], ns),
                    "spec": {"ipAddressPools": [pool["name"]], "aggregationLength": 32}})
    bgp = lb.get("bgp")
    if bgp and cluster.get("routers"):
        bfd = bgp.get("bfd")
        if bfd:
            out.append({"apiVersion": "metallb.io/v1beta1", "kind": "BFDProfile",
                        "metadata": _meta(metallb_bfd_profile_name(cluster), ns),
                        "spec": {"receiveInterval": bfd["interval_ms"], "transmitInterval": bfd["interval_ms"],
                                 "detectMultiplier": bfd["multiplier"]}})
        for router in cluster["routers"]:
            spec = {"myASN": bgp["node_asn"], "peerASN": router["asn"], "peerAddress": router["address"],
                    "holdTime": _duration(bgp["hold_time"]), "keepaliveTime": _duration(bgp["keepalive_time"]),
                    # Off, and said so (the field is immutable): with BFD a speaker restart takes its
                    # bfdd down too, so GR keeps nothing; the routers cope with GR speakers either way
                    # (docs/bgp-routers.md, "Graceful restart").
                    "enableGracefulRestart": False}
            if bfd:
                spec["bfdProfile"] = metallb_bfd_profile_name(cluster)
            if with_password:
                spec["passwordSecret"] = {"name": password_secret, "namespace": ns}
            out.append({"apiVersion": "metallb.io/v1beta2", "kind": "BGPPeer",
                        "metadata": _meta(router["name"], ns, {"rackboot.io/router-platform": router["platform"]}),
                        "spec": spec})
    return out


def metallb_password_secret(password, namespace=None, name="rackboot-bgp-password"):
    """The MD5 password Secret MetalLB's BGPPeers reference (type basic-auth, key ``password``).

    ``password=None`` gives the render-mode placeholder: the Secret without
    its data, so the password never lands in the artifacts folder.
    """
    return _vaulted_secret(name, namespace or DEFAULT_NAMESPACES["metallb"], "kubernetes.io/basic-auth", "password",
                           password, "rackboot_bgp_password", "MetalLB's BGP sessions need the routers' password")


# ----------------------------------------------------------------------------
# Tenant VPCs (Kube-OVN, OVN-native NAT)
# ----------------------------------------------------------------------------
KUBEOVN_GROUP = "kubeovn.io/v1"


def _kubeovn(kind, name, spec, labels=None):
    return {"apiVersion": KUBEOVN_GROUP, "kind": kind, "metadata": _meta(name, labels=labels), "spec": spec}


def _address_name(address):
    return address.replace(".", "-")


def tenant_vpc_resources(cluster):
    """Kube-OVN resources of the tenant VPCs, in the order they depend on each other.

    Per external network: a ProviderNetwork on the node bridge rackboot's
    node_network builds, a Vlan with ID 0 (the host's VLAN link under the
    bridge tags already) and the underlay Subnet, which excludes what the
    fabric uses there. Per tenant: a Vpc (its namespace bound to it, the
    external subnet attached, a default route to its gateway) and its Subnet;
    the subnet's egress SNATed to the tenant's EIP (OvnEip + OvnSnatRule) and
    each floating IP a 1:1 dnat_and_snat (OvnEip + OvnFip). OVN NAT runs in the
    VPC's logical router, so there is no NAT-gateway pod per tenant
    (docs/network-stack.md, "Tenant VPCs")."""
    out = []
    for ext in cluster.get("external_networks") or []:
        name = ext["name"]
        labels = {"rackboot.io/external-network": name}
        pn = {"defaultInterface": ext["bridge"]}
        if not ext["all_nodes"]:
            pn["nodeSelector"] = {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In",
                                                        "values": list(ext["nodes"])}]}
        out.append(_kubeovn("ProviderNetwork", name, pn, labels))
        out.append(_kubeovn("Vlan", name, {"id": 0, "provider": name}, labels))
        subnet = {"protocol": "IPv4", "cidrBlock": ext["cidr"], "gateway": ext["gateway"], "vlan": name}
        if ext["exclude_ips"]:
            subnet["excludeIps"] = list(ext["exclude_ips"])
        out.append(_kubeovn("Subnet", name, subnet, labels))
    nat = []
    for tenant in cluster.get("tenants") or []:
        vpc, name = tenant.get("vpc"), tenant["name"]
        if not vpc:
            continue
        labels = {"rackboot.io/tenant": name}
        ext = vpc["external_network"]
        spec = {"namespaces": [name]}
        if ext:
            spec.update(enableExternal=True, extraExternalSubnets=[ext],
                        staticRoutes=[{"cidr": "0.0.0.0/0", "nextHopIP": _external(cluster, ext)["gateway"],
                                       "policy": "policyDst"}])
        out.append(_kubeovn("Vpc", name, spec, labels))
        out.append(_kubeovn("Subnet", name, {"vpc": name, "protocol": "IPv4", "cidrBlock": vpc["subnet"],
                                             "gateway": vpc["gateway"], "namespaces": [name]}, labels))
        if vpc["eip"]:
            eip = "%s-snat" % name
            nat.append(_kubeovn("OvnEip", eip, {"externalSubnet": ext, "type": "nat", "v4Ip": vpc["eip"]}, labels))
            nat.append(_kubeovn("OvnSnatRule", name, {"ovnEip": eip, "vpcSubnet": name}, labels))
        for fip in vpc["floating_ips"]:
            fname = "%s-fip-%s" % (name, _address_name(fip["address"]))
            nat.append(_kubeovn("OvnEip", fname, {"externalSubnet": ext, "type": "nat", "v4Ip": fip["address"]},
                                labels))
            nat.append(_kubeovn("OvnFip", fname, {"ovnEip": fname, "vpc": name, "v4Ip": fip["target"]}, labels))
    return out + nat


def _external(cluster, name):
    return next(e for e in cluster["external_networks"] if e["name"] == name)


# ----------------------------------------------------------------------------
# cozy-proxy
# ----------------------------------------------------------------------------
def cozy_proxy_values(cluster, version=None, image=COZY_PROXY_IMAGE):
    """cozy-proxy: hostNetwork DaemonSet doing 1:1 NAT for Services labelled for it."""
    values = {"daemonset": {"hostNetwork": True}, "rbac": {"create": True}}
    if version:
        values["image"] = {"repository": image, "tag": "v" + str(version).lstrip("v")}
    return _with_overrides(cluster, "cozy_proxy", values)


# ----------------------------------------------------------------------------
# Tenants
# ----------------------------------------------------------------------------
def _world(tenant, key, direction):
    """A VPC tenant with an EIP reaches the outside; with floating IPs the outside reaches it."""
    vpc = tenant.get("vpc") or {}
    return [{direction: ["world"]}] if vpc.get(key) else []


def _tenant_network_policy(cluster, tenant):
    """The same isolation as a Kubernetes NetworkPolicy, for variant ``none``:
    the CNI the cluster brings must enforce it. The API server is named by the
    addresses a Service connection to it reaches after DNAT (the control
    planes) and the VIP, since NetworkPolicy has no kube-apiserver entity."""
    api = sorted(set([cluster["api_vip"]] + [n["management_address"] for n in cluster["controlplane"]]))
    dns = [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": _meta(TENANT_POLICY, tenant["name"], {"rackboot.io/tenant": tenant["name"]}),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
            "egress": [
                {"to": [{"podSelector": {}}]},
                {"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                         "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}], "ports": dns},
                {"to": [{"ipBlock": {"cidr": a + "/32"}} for a in api],
                 "ports": [{"port": cluster["api_port"], "protocol": "TCP"}]},
            ],
        },
    }


def tenant_policies(cluster):
    """One default-deny policy per tenant: same namespace, DNS and the API server allowed.
    CiliumNetworkPolicy where Cilium runs, NetworkPolicy under variant ``none``."""
    out = []
    for tenant in cluster.get("tenants") or []:
        if variant(cluster) == "none":
            out.append(_tenant_network_policy(cluster, tenant))
            continue
        out.append({
            "apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
            "metadata": _meta(TENANT_POLICY, tenant["name"], {"rackboot.io/tenant": tenant["name"]}),
            "spec": {
                "description": "rackboot: tenant %s is isolated; only its own pods, cluster DNS and the "
                               "Kubernetes API are reachable" % tenant["name"],
                # An empty selector is every pod of the policy's namespace.
                "endpointSelector": {},
                "enableDefaultDeny": {"ingress": True, "egress": True},
                "ingress": [{"fromEndpoints": [{}]}] + _world(tenant, "floating_ips", "fromEntities"),
                "egress": _world(tenant, "eip", "toEntities") + [
                    {"toEndpoints": [{}]},
                    {"toEndpoints": [{"matchLabels": {"k8s:io.kubernetes.pod.namespace": "kube-system",
                                                      "k8s:k8s-app": "kube-dns"}}],
                     "toPorts": [{"ports": [{"port": "53", "protocol": "UDP"}, {"port": "53", "protocol": "TCP"}]}]},
                    {"toEntities": ["kube-apiserver"]},
                ],
            },
        })
    return out


def network_stack_summary(cluster):
    """What the variant installs, as text for render mode (``network-stack.txt``):
    under ``none`` it is where rackboot says it installs no CNI."""
    v = variant(cluster)
    comps = (cluster.get("network_stack") or {}).get("components") or []
    lines = ["network stack variant: %s" % v,
             "installs: %s" % (", ".join(comps) or "nothing"),
             "tenant isolation: %s per tenant" % (
                 "NetworkPolicy" if v == "none" else "CiliumNetworkPolicy")]
    if v == "none":
        lines.append("no CNI: rackboot installs none. Nodes stay NotReady until the CNI you bring runs; it "
                     "must replace kube-proxy (disabled on Talos and kubeadm alike) and enforce NetworkPolicy.")
    return "\n".join(lines) + "\n"


def tenant_resources(cluster):
    """Namespaces and isolation policies of every tenant, namespaces first."""
    namespaces = [{"apiVersion": "v1", "kind": "Namespace",
                   "metadata": _meta(t["name"], labels={"rackboot.io/tenant": t["name"]})}
                  for t in cluster.get("tenants") or []]
    return namespaces + tenant_policies(cluster)
