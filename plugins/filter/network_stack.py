# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Filters exposing plugins/plugin_utils/network_stack.py to the network-stack roles."""

from __future__ import annotations

# Each filter is documented in plugins/filter/<filter name>.yml (ansible-doc -t filter).

import yaml

from ansible.errors import AnsibleFilterError
from ansible.parsing.yaml.dumper import AnsibleDumper

from ansible_collections.rackboot.metal.plugins.plugin_utils import manifests as mf
from ansible_collections.rackboot.metal.plugins.plugin_utils import network_stack as ns
from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream


def _wrap(func):
    def run(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (ns.NetworkStackError, mf.RenderError, upstream.UpstreamError) as e:
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


def k8s_validate(docs, component):
    """``docs`` unchanged when every object is valid (strict Kubernetes schemas, CRDs); else an error per problem."""
    validator = mf.validator()
    validator.add_crds([d for d in docs if d.get("kind") == "CustomResourceDefinition"])
    return mf.check(validator, list(docs), component)


def with_image_registry(values, chart, registry):
    """Helm values with every image repository of ``chart`` (a local chart) moved to ``registry``."""
    if not registry:
        return values
    return ns.with_image_registry(values, mf.chart_defaults(chart), registry)


def air_gap_list(manifest_paths, platform, chart_names, registry=None):
    """The air-gap list of rendered manifest files (``<artifacts>/<component>/manifests.yaml``)."""
    import os
    texts = {}
    for path in sorted(manifest_paths):
        with open(path, encoding="utf-8") as f:
            texts[os.path.basename(os.path.dirname(path))] = f.read()
    return mf.air_gap_list(texts, platform, mf.chart_pins(chart_names), registry)


class FilterModule(object):
    """rackboot network-stack filters."""

    def filters(self):
        funcs = {
            "kube_ovn_values": ns.kube_ovn_values,
            "cilium_values": ns.cilium_values,
            "cilium_cni_configmap": ns.cilium_cni_configmap,
            "multus_resources": ns.multus_resources,
            "nad_resources": ns.nad_resources,
            "cni_dhcp_daemon": ns.cni_dhcp_daemon,
            "metallb_values": ns.metallb_values,
            "metallb_resources": ns.metallb_resources,
            "metallb_password_secret": _password_secret,
            "cozy_proxy_values": ns.cozy_proxy_values,
            "tenant_resources": ns.tenant_resources,
            "tenant_policies": ns.tenant_policies,
            "chart_source": ns.chart_source,
            "cilium_lb_resources": ns.cilium_lb_resources,
            "cilium_ipsec_secret": ns.cilium_ipsec_secret,
            "network_stack_summary": ns.network_stack_summary,
            "tenant_vpc_resources": ns.tenant_vpc_resources,
        }
        out = {name: _wrap(func) for name, func in funcs.items()}
        out["k8s_documents"] = k8s_documents
        for func in (k8s_validate, with_image_registry, air_gap_list):
            out[func.__name__] = _wrap(func)
        out["platform_images"] = _wrap(mf.platform_images)
        out["images_txt"] = _wrap(mf.images_txt)
        out["helm_binary"] = _wrap(mf.helm_binary)
        out["mirror_image"] = _wrap(mf.mirror_image)
        return out
