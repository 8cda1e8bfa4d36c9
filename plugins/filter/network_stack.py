# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Filters exposing plugins/plugin_utils/network_stack.py to the network-stack roles."""

from __future__ import annotations

DOCUMENTATION = r"""
name: network_stack
short_description: Helm values and Kubernetes resources of the rackboot network stack
version_added: 0.1.0
author: rackboot developers
description:
  - Filters over C(rackboot_cluster) that return the Helm values and Kubernetes
    resources of Kube-OVN, Cilium, Multus, MetalLB, cozy-proxy and tenant
    isolation. They are thin wrappers of
    C(plugins/plugin_utils/network_stack.py); see docs/network-stack.md.
  - "C(kube_ovn_values(namespace, version)), C(cilium_values),
    C(cilium_cni_configmap(namespace)), C(multus_resources(manifest, namespace, version, image,
    memory_request, memory_limit, cpu_request, registry)), C(nad_resources), C(metallb_values),
    C(metallb_resources(namespace, password_secret, with_password)),
    C(metallb_password_secret(namespace, name)) (input is the password, or
    C(none) for the render placeholder), C(cozy_proxy_values(version, image)),
    C(tenant_resources), C(tenant_policies),
    C(k8s_validate(component)) (the resources unchanged, or an error per invalid object),
    C(with_image_registry(chart, registry)) (Helm values with the chart's image repositories
    on the mirror), C(air_gap_list(platform, chart_names, registry)) (input the rendered
    C(<component>/manifests.yaml) paths), C(platform_images(kubernetes_version, pins)) (input the distribution),
    C(images_txt), C(mirror_image(registry)), C(helm_binary) (input rackboot_helm_binary or empty),
    C(chart_source(component, chart_ref, repo_url, version)),
    C(k8s_documents(what)) (a list of resources as one multi-document YAML text,
    keys sorted; a comment naming C(what) when the list is empty)."
options:
  _input:
    description: C(rackboot_cluster) (for C(metallb_password_secret), the BGP password).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Cilium values
  ansible.builtin.copy:
    content: "{{ rackboot_cluster | rackboot.metal.cilium_values | to_nice_yaml }}"
    dest: /tmp/cilium-values.yaml
    mode: "0644"
"""

RETURN = r"""
_value:
  description: A mapping (Helm values, one resource) or a list of Kubernetes resources.
  type: raw
"""

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
        for func in (k8s_validate, with_image_registry, air_gap_list):
            out[func.__name__] = _wrap(func)
        out["platform_images"] = _wrap(mf.platform_images)
        out["images_txt"] = _wrap(mf.images_txt)
        out["helm_binary"] = _wrap(mf.helm_binary)
        out["mirror_image"] = _wrap(mf.mirror_image)
        return out
