# Copyright: rackboot contributors
# Apache License 2.0 (see LICENSE)
DOCUMENTATION = r"""
name: upstream
author: rackboot developers (@rackboot)
short_description: Path of a pinned upstream file (chart, schema, CRD) in the verified cache
version_added: "0.1.0"
description:
  - Returns the local path of a source named in C(roles/versions/files/upstream.yml),
    after filling the cache from C(RACKBOOT_UPSTREAM_MIRROR) (default C(../shared)
    beside the checkout) or the upstream URL and checking every sha256.
  - Runs on the controller only.
options:
  _terms:
    description: Source names, for example C(cilium_chart).
    required: true
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Render Cilium from the pinned chart
  ansible.builtin.command: helm template cilium {{ lookup('rackboot.metal.upstream', 'cilium_chart') }}
  changed_when: false
"""

RETURN = r"""
_raw:
  description: One path per term.
  type: list
  elements: path
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        try:
            return [upstream.path(term) for term in terms]
        except upstream.UpstreamError as exc:
            raise AnsibleLookupError(str(exc))
