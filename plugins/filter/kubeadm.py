# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Filters for kubeadm clusters; the logic lives in plugins/plugin_utils/{kubeadm,kube_vip,node_os}.py."""

from __future__ import annotations

# Each filter is documented in plugins/filter/<filter name>.yml (ansible-doc -t filter).

from ansible.errors import AnsibleFilterError

from ansible_collections.rackboot.metal.plugins.plugin_utils import kube_vip as kv
from ansible_collections.rackboot.metal.plugins.plugin_utils import kubeadm as kb
from ansible_collections.rackboot.metal.plugins.plugin_utils import node_os as nos


def _wrap(name, func):
    def filt(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (kb.KubeadmError, nos.NodeOsError, KeyError, TypeError) as exc:
            if isinstance(exc, KeyError):
                exc = "missing key %s (is this the rackboot_cluster/rackboot_node of a rackboot inventory?)" % exc
            raise AnsibleFilterError("%s: %s" % (name, exc))
    filt.__name__ = name
    return filt


def _documents(cluster, node, token=None, ca_cert_hashes=None, certificate_key=None):
    return kb.node_documents(cluster, node, token=token, ca_cert_hashes=ca_cert_hashes,
                             certificate_key=certificate_key)


def _join(cluster, node, token=None, ca_cert_hashes=None, certificate_key=None):
    return kb.join_configuration(cluster, node, token=token, ca_cert_hashes=ca_cert_hashes,
                                 certificate_key=certificate_key)


def _manifest(cluster, node, version, kubeconfig=kb.ADMIN_CONF, image=kv.KUBE_VIP_IMAGE, lease_duration=5,
              renew_deadline=3, retry_period=1):
    return kv.kube_vip_manifest(cluster, node, version, kubeconfig=kubeconfig, image=image,
                                lease_duration=int(lease_duration), renew_deadline=int(renew_deadline),
                                retry_period=int(retry_period))


def _check(node, cluster):
    """Everything rackboot will render for a node, computed once so that a bad spec fails before any
    host is touched. Returns the node name."""
    node = kb.checked_node(cluster, node)
    kb.node_documents(cluster, node)
    if node["role"] == "controlplane":
        kv.kube_vip_manifest(cluster, node, "0.0.0")
    return node["name"]


def _commands(config_path=kb.CONFIG_PATH, join_config_path=kb.JOIN_CONFIG_PATH, token_ttl="30m"):
    return kb.commands(config_path, join_config_path, token_ttl)


class FilterModule(object):
    def filters(self):
        return {
            "kubeadm_documents": _wrap("kubeadm_documents", _documents),
            "kube_vip_manifest": _wrap("kube_vip_manifest", _manifest),
            "kube_vip_kubeconfig": _wrap("kube_vip_kubeconfig", kv.kube_vip_kubeconfig),
            "kubeadm_check": _wrap("kubeadm_check", _check),
            "kubeadm_join_configuration": _wrap("kubeadm_join_configuration", _join),
            "kubeadm_state_from_stats": _wrap("kubeadm_state_from_stats", kb.state_from_stats),
            "kubeadm_join_plan": _wrap("kubeadm_join_plan", kb.join_plan),
            "kubeadm_parse_join_command": _wrap("kubeadm_parse_join_command", kb.parse_join_command),
            "kubeadm_parse_certificate_key": _wrap("kubeadm_parse_certificate_key", kb.parse_certificate_key),
            "kubeadm_commands": _wrap("kubeadm_commands", _commands),
            "node_os_containerd_major": _wrap("node_os_containerd_major", nos.containerd_major),
            "node_os_containerd_config": _wrap("node_os_containerd_config", nos.containerd_config),
            "node_os_kubernetes_apt_repo": _wrap("node_os_kubernetes_apt_repo", nos.kubernetes_apt_repo),
            "node_os_offline_debs": _wrap("node_os_offline_debs", nos.offline_debs),
            "node_os_debs_to_install": _wrap("node_os_debs_to_install", nos.debs_to_install),
            "node_os_package_problems": _wrap("node_os_package_problems", nos.package_problems),
        }
