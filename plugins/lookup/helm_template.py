# Copyright: rackboot contributors
# Apache License 2.0 (see LICENSE)
DOCUMENTATION = r"""
name: helm_template
author: rackboot developers (@rackboot)
version_added: 0.1.0
short_description: Full, validated manifests of a Helm release (helm template)
description:
  - Runs C(helm template) on the chart with the release name, namespace, Kubernetes
    version and values the install uses, validates every object (built-in kinds against
    the pinned strict Kubernetes schemas, custom resources against the pinned and rendered
    CRDs) and returns the objects as one multi-document YAML text, keys sorted.
  - Secrets the chart generates are returned with empty values (see docs/network-stack.md).
  - Fails with one line per invalid object (component, kind, name, field path, reason).
options:
  _terms:
    description: The component (C(cilium), C(kube_ovn), ...), used in messages.
    required: true
    type: list
    elements: str
  chart:
    description: Local chart directory or archive, C(oci://) reference, or chart name in I(repo_url).
    type: str
    required: true
  repo_url:
    description: Chart repository URL (online sites only).
    type: str
  version:
    description: Chart version, for I(repo_url) and C(oci://) charts.
    type: str
  release:
    description: Helm release name.
    type: str
    required: true
  namespace:
    description: Release namespace.
    type: str
    required: true
  kube_version:
    description: Kubernetes version the chart renders for (the spec's).
    type: str
    required: true
  values:
    description: Helm values.
    type: dict
    default: {}
  helm:
    description: helm binary; default the installed one (scripts/install-helm) or helm on PATH.
    type: str
"""

EXAMPLES = r"""
- name: Render Cilium
  ansible.builtin.copy:
    dest: /tmp/cilium.yaml
    mode: "0644"
    content: >-
      {{ lookup('rackboot.metal.helm_template', 'cilium', chart=lookup('rackboot.metal.upstream', 'cilium_chart'),
         release='cilium', namespace='kube-system', kube_version=rackboot_cluster.kubernetes_version, values={}) }}
"""

RETURN = r"""
_raw:
  description: The validated manifest text.
  type: list
  elements: str
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.rackboot.metal.plugins.plugin_utils import manifests, upstream


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        opt = self.get_option
        out = []
        try:
            validator = manifests.validator()
            for component in terms:
                text = manifests.helm_template(opt("chart"), opt("release"), opt("namespace"), opt("kube_version"),
                                               opt("values") or {}, helm=opt("helm") or None,
                                               repo_url=opt("repo_url") or None, version=opt("version") or None)
                docs = manifests.documents(text)
                validator.add_crds([d for d in docs if d.get("kind") == "CustomResourceDefinition"])
                manifests.check(validator, docs, component)
                out.append(manifests.dump(manifests.redact_secrets(docs)))
        except (manifests.RenderError, upstream.UpstreamError) as exc:
            raise AnsibleLookupError(str(exc))
        return out
