# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Filters exposing plugins/module_utils/network_stack.py to the network-stack roles."""

from __future__ import annotations

# Each filter is documented in plugins/filter/<filter name>.yml (ansible-doc -t filter).

import yaml

from ansible.errors import AnsibleFilterError
from ansible.parsing.yaml.dumper import AnsibleDumper

from ansible_collections.rackboot.metal.plugins.module_utils import network_stack as ns


def _wrap(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ns.NetworkStackError as e:
            raise AnsibleFilterError(str(e))
        except (KeyError, TypeError) as e:
            # Usually a rackboot_cluster that did not come from the inventory plugin.
            raise AnsibleFilterError("%s: input is not a rackboot_cluster from the rackboot.metal.cluster inventory "
                                     "(%s: %s)" % (func.__name__, type(e).__name__, e))
    run.__name__ = func.__name__
    run.__doc__ = func.__doc__
    return run


def _password_secret(password, namespace=None, name="rackboot-bgp-password"):
    return ns.metallb_password_secret(password, namespace=namespace, name=name)


def k8s_documents(docs, what="resources"):
    """Resources as one multi-document YAML text (stable: sorted keys), for render mode."""
    if not docs:
        return "# Nothing: the spec has no %s.\n" % what
    return "".join("---\n" + yaml.dump(doc, Dumper=AnsibleDumper, sort_keys=True, default_flow_style=False,
                                       indent=2, width=120, allow_unicode=True) for doc in docs)


class FilterModule(object):
    """rackboot network-stack filters."""

    def filters(self):
        funcs = {
            "kube_ovn_values": ns.kube_ovn_values,
            "cilium_values": ns.cilium_values,
            "cilium_cni_configmap": ns.cilium_cni_configmap,
            "multus_resources": ns.multus_resources,
            "nad_resources": ns.nad_resources,
            "metallb_values": ns.metallb_values,
            "metallb_resources": ns.metallb_resources,
            "metallb_password_secret": _password_secret,
            "cozy_proxy_values": ns.cozy_proxy_values,
            "tenant_resources": ns.tenant_resources,
            "tenant_policies": ns.tenant_policies,
            "chart_source": ns.chart_source,
        }
        out = {name: _wrap(func) for name, func in funcs.items()}
        out["k8s_documents"] = k8s_documents
        return out
