# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""kube-vip: the static pod that holds a kubeadm cluster's API VIP on its control planes."""

from __future__ import annotations

from ansible_collections.rackboot.metal.plugins.plugin_utils import kubeadm as kb

__all__ = ["KUBE_VIP_IMAGE", "kube_vip_kubeconfig", "kube_vip_manifest"]

# From 1.29 kubeadm's admin.conf is no longer in system:masters and only works
# once init has bound it to cluster-admin; until then only super-admin.conf
# (written on the init node alone) can reach the API (kube-vip issue #684).
SUPER_ADMIN_SINCE = (1, 29)
KUBE_VIP_IMAGE = "ghcr.io/kube-vip/kube-vip"
# kube-vip 0.9 renamed the VIP prefix length variable vip_cidr -> vip_subnet.
KUBE_VIP_SUBNET_SINCE = (0, 9)


def kube_vip_kubeconfig(cluster, bootstrapping):
    """The kubeconfig kube-vip mounts: super-admin.conf while the bootstrap node runs ``kubeadm init``
    on Kubernetes >= 1.29 (admin.conf has no rights yet), admin.conf otherwise."""
    version = kb.version_tuple(cluster["kubernetes_version"])
    if bootstrapping and version[:2] >= SUPER_ADMIN_SINCE:
        return kb.SUPER_ADMIN_CONF
    return kb.ADMIN_CONF


def kube_vip_manifest(cluster, node, version, kubeconfig=kb.ADMIN_CONF, image=KUBE_VIP_IMAGE,
                      lease_duration=5, renew_deadline=3, retry_period=1):
    """The kube-vip static pod of a control-plane node: ARP mode, control plane VIP only
    (MetalLB announces Services), leader election on a Lease in kube-system."""
    node = kb.checked_node(cluster, node)
    if node["role"] != "controlplane":
        raise kb.KubeadmError("kube-vip runs on control-plane nodes only; %s is a %s" % (node["name"], node["role"]))
    link = (node.get("network") or {}).get("management_link")
    if not link:
        raise kb.KubeadmError("node %s has no management link to hold the API VIP" % node["name"])
    if not (renew_deadline < lease_duration and retry_period < renew_deadline):
        raise kb.KubeadmError("kube-vip leader election needs retry period < renew deadline < lease duration "
                           "(got %s < %s < %s)" % (retry_period, renew_deadline, lease_duration))
    vip_version = kb.version_tuple(version)
    subnet_key = "vip_subnet" if vip_version[:2] >= KUBE_VIP_SUBNET_SINCE else "vip_cidr"
    env = [
        ("vip_arp", "true"),
        ("port", str(cluster["api_port"])),
        ("vip_interface", link),
        (subnet_key, "32"),
        ("dns_mode", "first"),
        ("cp_enable", "true"),
        ("cp_namespace", "kube-system"),
        ("svc_enable", "false"),
        ("vip_leaderelection", "true"),
        ("vip_leasename", "plndr-cp-lock"),
        ("vip_leaseduration", str(lease_duration)),
        ("vip_renewdeadline", str(renew_deadline)),
        ("vip_retryperiod", str(retry_period)),
        ("address", cluster["api_vip"]),
    ]
    env_list = [{"name": k, "value": v} for k, v in env]
    env_list.insert(3, {"name": "vip_nodename", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "kube-vip", "namespace": "kube-system",
                     "labels": {"app.kubernetes.io/name": "kube-vip",
                                "app.kubernetes.io/managed-by": "rackboot"}},
        "spec": {
            "containers": [{
                "name": "kube-vip",
                "image": "%s:v%s" % (image, str(version).lstrip("v")),
                "imagePullPolicy": "IfNotPresent",
                "args": ["manager"],
                "env": env_list,
                "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}},
                "volumeMounts": [{"name": "kubeconfig", "mountPath": kb.ADMIN_CONF, "readOnly": True}],
            }],
            # kube-vip talks to the API server as https://kubernetes:<port> on the local node.
            "hostAliases": [{"ip": "127.0.0.1", "hostnames": ["kubernetes"]}],
            "hostNetwork": True,
            "priority": 2000001000,
            "priorityClassName": "system-node-critical",
            # type File: never let the kubelet create a directory where kubeadm writes the kubeconfig.
            "volumes": [{"name": "kubeconfig", "hostPath": {"path": kubeconfig, "type": "File"}}],
        },
    }
