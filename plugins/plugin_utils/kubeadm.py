# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""kubeadm clusters: configuration documents, init/join plan, command lines.

Pure functions of the model the inventory plugin publishes (``rackboot_cluster``
and ``rackboot_node``): the roles format their results with ``to_nice_yaml``
and run the command lines they return, so that what rackboot writes and runs
on a node is unit-tested here rather than spread over Jinja.

Secrets (bootstrap token, discovery CA hash, certificate key) only enter the
join documents when the caller passes them; without them the documents are
the reviewable, secret-free form that render mode writes.
"""

from __future__ import annotations

import re

__all__ = [
    "KUBEADM_API", "KUBELET_API", "CONFIG_PATH", "JOIN_CONFIG_PATH", "CRI_SOCKET",
    "MANIFESTS_PREFLIGHT", "ADMIN_CONF", "SUPER_ADMIN_CONF", "KubeadmError", "version_tuple", "checked_node",
    "cert_sans", "cluster_configuration", "init_configuration", "kubelet_configuration", "join_configuration",
    "node_documents", "state_from_stats", "join_plan", "parse_join_command", "parse_certificate_key", "commands",
]

KUBEADM_API = "kubeadm.k8s.io/v1beta4"
KUBELET_API = "kubelet.config.k8s.io/v1beta1"
CONFIG_PATH = "/etc/kubernetes/kubeadm-config.yaml"
# Holds the bootstrap token (and certificate key) only while a node joins.
JOIN_CONFIG_PATH = "/etc/kubernetes/kubeadm-join.yaml"
ADMIN_CONF = "/etc/kubernetes/admin.conf"
SUPER_ADMIN_CONF = "/etc/kubernetes/super-admin.conf"
CRI_SOCKET = "unix:///run/containerd/containerd.sock"
# kube-vip's manifest is in /etc/kubernetes/manifests before a control plane
# joins; kubeadm's join preflight wants that folder empty.
MANIFESTS_PREFLIGHT = "DirAvailable--etc-kubernetes-manifests"
KUBE_PROXY_PHASE = "addon/kube-proxy"
# kubeadm config v1beta4 is read by kubeadm 1.31 and later.
MIN_KUBERNETES = (1, 31)

_TOKEN_RE = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")
_HASH_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_CERT_KEY_RE = re.compile(r"^[a-f0-9]{64}$")


class KubeadmError(ValueError):
    """The model cannot produce a valid kubeadm setup; the message says why."""


def version_tuple(text):
    """'1.34.1' / 'v1.34.1' -> (1, 34, 1)."""
    parts = str(text).lstrip("v").split("-")[0].split(".")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        raise KubeadmError("%r is not a version like 1.34.1" % (text,))


def _check_version(cluster):
    version = version_tuple(cluster["kubernetes_version"])
    if version[:2] < MIN_KUBERNETES:
        raise KubeadmError("cluster.kubernetes_version %s: rackboot writes kubeadm config %s, which needs "
                           "Kubernetes %d.%d or later" % ((cluster["kubernetes_version"], KUBEADM_API) + MIN_KUBERNETES))
    return version


def checked_node(cluster, node):
    """The node's model, or why it cannot carry a kubeadm node."""
    if node is None or "name" not in node:
        raise KubeadmError("no rackboot_node for this host: is it a node of the cluster spec?")
    if not node.get("management_address"):
        raise KubeadmError("node %s has no management address" % node["name"])
    return node


def _endpoint(cluster):
    return "%s:%d" % (cluster["api_vip"], cluster["api_port"])


def _dedupe(items):
    out = []
    for item in items:
        if item and item not in out:
            out.append(item)
    return out


def cert_sans(cluster):
    """API server certificate names: the VIP, the spec's extras, every control plane's name and address."""
    cps = cluster["controlplane"]
    return _dedupe([cluster["api_vip"]] + list(cluster.get("cert_sans") or [])
                   + [n["name"] for n in cps] + [n["management_address"] for n in cps])


def _registration(cluster, node, controlplane):
    """nodeRegistration shared by init and join."""
    args = [{"name": "node-ip", "value": node["management_address"]}]
    labels = node.get("labels") or {}
    if labels:
        args.append({"name": "node-labels", "value": ",".join("%s=%s" % kv for kv in sorted(labels.items()))})
    reg = {
        "name": node["name"],
        "criSocket": CRI_SOCKET,
        "kubeletExtraArgs": args,
    }
    if controlplane:
        reg["ignorePreflightErrors"] = [MANIFESTS_PREFLIGHT]
    return reg


def cluster_configuration(cluster):
    """ClusterConfiguration: uploaded to the cluster (kubeadm-config ConfigMap) and read again by
    ``kubeadm upgrade``, which is why kube-proxy is disabled here and not only skipped at init."""
    _check_version(cluster)
    return {
        "apiVersion": KUBEADM_API,
        "kind": "ClusterConfiguration",
        "clusterName": cluster["name"],
        "kubernetesVersion": "v" + str(cluster["kubernetes_version"]).lstrip("v"),
        "controlPlaneEndpoint": _endpoint(cluster),
        "networking": {
            "podSubnet": cluster["pod_cidr"],
            "serviceSubnet": cluster["service_cidr"],
            "dnsDomain": cluster["domain"],
        },
        "apiServer": {"certSANs": cert_sans(cluster)},
        # Cilium replaces kube-proxy; ClusterConfiguration is stored, so upgrades keep it off.
        "proxy": {"disabled": True},
    }


def init_configuration(cluster, node):
    """InitConfiguration of the bootstrap node."""
    _check_version(cluster)
    node = checked_node(cluster, node)
    if node["name"] != cluster["bootstrap_node"]:
        raise KubeadmError("InitConfiguration is only for the bootstrap node %s, not %s"
                           % (cluster["bootstrap_node"], node["name"]))
    return {
        "apiVersion": KUBEADM_API,
        "kind": "InitConfiguration",
        "localAPIEndpoint": {"advertiseAddress": node["management_address"], "bindPort": cluster["api_port"]},
        "nodeRegistration": _registration(cluster, node, True),
        # Belt and braces with proxy.disabled: an init without kube-proxy even if the field were dropped.
        "skipPhases": [KUBE_PROXY_PHASE],
    }


def kubelet_configuration(cluster):
    """KubeletConfiguration (cluster-wide, uploaded at init): the systemd cgroup driver, as containerd."""
    return {
        "apiVersion": KUBELET_API,
        "kind": "KubeletConfiguration",
        "cgroupDriver": "systemd",
        "clusterDomain": cluster["domain"],
        "clusterDNS": [cluster["dns_service_ip"]],
    }


def join_configuration(cluster, node, token=None, ca_cert_hashes=None, certificate_key=None):
    """JoinConfiguration of a non-bootstrap node; secrets only when given (and then all required)."""
    _check_version(cluster)
    node = checked_node(cluster, node)
    controlplane = node["role"] == "controlplane"
    discovery = {"apiServerEndpoint": _endpoint(cluster)}
    if token is not None or ca_cert_hashes is not None:
        if not token or not _TOKEN_RE.match(token):
            raise KubeadmError("the bootstrap token is not of the form [a-z0-9]{6}.[a-z0-9]{16}")
        hashes = list(ca_cert_hashes or [])
        if not hashes or not all(_HASH_RE.match(h) for h in hashes):
            raise KubeadmError("the discovery CA hashes must be sha256:<64 hex digits>")
        discovery.update(token=token, caCertHashes=hashes)
    doc = {
        "apiVersion": KUBEADM_API,
        "kind": "JoinConfiguration",
        "discovery": {"bootstrapToken": discovery},
        "nodeRegistration": _registration(cluster, node, controlplane),
    }
    if controlplane:
        plane = {"localAPIEndpoint": {"advertiseAddress": node["management_address"],
                                      "bindPort": cluster["api_port"]}}
        if certificate_key is not None:
            if not _CERT_KEY_RE.match(certificate_key or ""):
                raise KubeadmError("the certificate key must be 64 hex digits")
            plane["certificateKey"] = certificate_key
        elif token is not None:
            raise KubeadmError("control plane %s joins with the certificate key of the uploaded certificates"
                               % node["name"])
        doc["controlPlane"] = plane
    return doc


def node_documents(cluster, node, token=None, ca_cert_hashes=None, certificate_key=None):
    """Everything /etc/kubernetes/kubeadm-config.yaml holds for one node, as a list of documents."""
    node = checked_node(cluster, node)
    if node["name"] == cluster["bootstrap_node"]:
        return [init_configuration(cluster, node), cluster_configuration(cluster), kubelet_configuration(cluster)]
    return [join_configuration(cluster, node, token, ca_cert_hashes, certificate_key)]


def state_from_stats(results):
    """{host: {"admin_conf": bool, "kubelet_conf": bool}} from the registered results of an Ansible
    ``stat`` loop over ``[host, file name]`` pairs (file names admin.conf / kubelet.conf)."""
    out = {}
    for res in results:
        host, fname = res["item"]
        key = {"admin.conf": "admin_conf", "kubelet.conf": "kubelet_conf"}.get(fname)
        if key is None:
            raise KubeadmError("unexpected file %r in the node state" % fname)
        out.setdefault(host, {"admin_conf": False, "kubelet_conf": False})
        out[host][key] = bool((res.get("stat") or {}).get("exists"))
    return out


def join_plan(cluster, controlplane_state, play_hosts, node_state):
    """Decide what each node does.

    ``controlplane_state``: {cp name: {"admin_conf": bool, "kubelet_conf": bool}} for every control
    plane of the spec (rackboot looks at all of them, even outside ``--limit``).
    ``play_hosts``: the nodes of this run. ``node_state``: {name: bool} whether each of them has
    /etc/kubernetes/kubelet.conf (it has joined).

    Returns {init, source, join_controlplanes, join_workers, joined, needs_token, needs_certificate_key}:
    ``init`` is the bootstrap node when no control plane has been set up yet (else None); ``source`` is
    the control plane that hands out join material and the kubeconfig.
    """
    cps = list(cluster["controlplane_nodes"])
    missing = [c for c in cps if c not in controlplane_state]
    if missing:
        raise KubeadmError("no state for control plane(s) %s" % ", ".join(missing))
    bootstrap = cluster["bootstrap_node"]
    set_up = [c for c in cps if controlplane_state[c].get("admin_conf") or controlplane_state[c].get("kubelet_conf")]
    ready = [c for c in cps if controlplane_state[c].get("admin_conf")]
    in_play = set(play_hosts)
    init = None
    if not set_up:
        if bootstrap not in in_play:
            raise KubeadmError("no control plane is set up yet: the bootstrap node %s must be part of the run "
                               "(check --limit)" % bootstrap)
        init = bootstrap
        source = bootstrap
    else:
        # A set-up cluster is never initialized again: a reinstalled bootstrap node joins like the others.
        source = bootstrap if bootstrap in ready else (ready[0] if ready else None)

    def needs_join(name):
        if name == init:
            return False
        if name in cps:
            return not (controlplane_state[name].get("kubelet_conf") or controlplane_state[name].get("admin_conf"))
        return not node_state.get(name)

    # The play's hosts come in inventory order, which is spec order.
    ordered = list(play_hosts)
    join_cps = [n for n in ordered if n in cps and needs_join(n)]
    join_workers = [n for n in ordered if n not in cps and needs_join(n)]
    joined = [n for n in ordered if n != init and not needs_join(n)]
    if (join_cps or join_workers) and source is None:
        raise KubeadmError("control plane(s) %s are set up (kubelet.conf present) but none has %s: rackboot "
                           "cannot issue join tokens; restore admin.conf or reset those nodes"
                           % (", ".join(set_up), ADMIN_CONF))
    return {
        "init": init,
        "source": source,
        "join_controlplanes": join_cps,
        "join_workers": join_workers,
        "joined": joined,
        "needs_token": bool(join_cps or join_workers),
        "needs_certificate_key": bool(join_cps),
    }


def parse_join_command(text):
    """Token and CA hash from ``kubeadm token create --print-join-command`` output."""
    words = str(text).split()
    if "join" not in words:
        raise KubeadmError("kubeadm token create printed no join command")
    out = {"token": None, "ca_cert_hashes": []}
    for i, word in enumerate(words):
        if word.startswith("--token"):
            out["token"] = word.split("=", 1)[1] if "=" in word else (words[i + 1] if i + 1 < len(words) else None)
        elif word.startswith("--discovery-token-ca-cert-hash"):
            value = word.split("=", 1)[1] if "=" in word else (words[i + 1] if i + 1 < len(words) else None)
            if value:
                out["ca_cert_hashes"].append(value)
    if not out["token"] or not _TOKEN_RE.match(out["token"]):
        raise KubeadmError("the join command holds no valid bootstrap token")
    if not out["ca_cert_hashes"] or not all(_HASH_RE.match(h) for h in out["ca_cert_hashes"]):
        raise KubeadmError("the join command holds no valid --discovery-token-ca-cert-hash")
    return out


def parse_certificate_key(text):
    """The key printed by ``kubeadm init phase upload-certs --upload-certs`` (its last 64-hex line)."""
    keys = [line.strip() for line in str(text).splitlines() if _CERT_KEY_RE.match(line.strip())]
    if not keys:
        raise KubeadmError("kubeadm init phase upload-certs printed no certificate key")
    return keys[-1]


def commands(config_path=CONFIG_PATH, join_config_path=JOIN_CONFIG_PATH, token_ttl="30m"):
    """The command lines (argv lists) the kubeadm role runs. Secrets never appear in them:
    they travel in the 0600 join file."""
    return {
        "init": ["kubeadm", "init", "--config", config_path, "--skip-phases=" + KUBE_PROXY_PHASE],
        "token": ["kubeadm", "token", "create", "--kubeconfig", ADMIN_CONF, "--ttl", token_ttl,
                  "--description", "rackboot join", "--print-join-command"],
        "upload_certs": ["kubeadm", "init", "phase", "upload-certs", "--upload-certs", "--kubeconfig", ADMIN_CONF],
        "join_node": ["kubeadm", "join", "--config", join_config_path],
        "readyz": ["kubectl", "--kubeconfig", ADMIN_CONF, "get", "--raw=/readyz"],
        "kube_proxy": ["kubectl", "--kubeconfig", ADMIN_CONF, "-n", "kube-system", "get", "daemonset",
                       "--ignore-not-found", "-o", "name", "kube-proxy"],
    }
