# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: undecryptable
author: rackboot developers (@rackboot)
short_description: Names of the variables whose vaulted values cannot be decrypted
version_added: "0.1.0"
description:
  - Walks the variables of the current host (nested mappings and lists too)
    and tries to decrypt every vaulted value with the vault secrets of the
    run. Returns the path of each value that does not decrypt, never a value.
  - Lets a preflight check report every missing vault password at once,
    instead of Ansible's error at the first task that uses one.
options:
  _terms:
    description: Variable names to look at; none means every variable.
    required: false
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Every vaulted value decrypts
  ansible.builtin.assert:
    that: query('rackboot.metal.undecryptable') | length == 0
    fail_msg: "no vault password for {{ query('rackboot.metal.undecryptable') | join(', ') }}"
"""

RETURN = r"""
_raw:
  description: Paths such as C(rackboot_bgp_password) or C(tenants[0].key) of values that do not decrypt.
  type: list
  elements: str
"""

from collections.abc import Mapping

from ansible.errors import AnsibleError
from ansible.parsing.vault import EncryptedString
from ansible.plugins.lookup import LookupBase

# Magic and connection variables hold no user secrets; hostvars would walk every host.
_SKIP = frozenset(("hostvars", "groups", "group_names", "omit", "vars", "environment", "playbook_dir",
                   "inventory_dir", "inventory_file", "inventory_hostname", "inventory_hostname_short"))
_MAX_DEPTH = 64


def _walk(value, path, bad, depth=0):
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, EncryptedString):
        try:
            str(value)
        except Exception:  # AnsibleVaultError and friends: no secret for its vault id, or a wrong one
            bad.append(path)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _walk(item, "%s.%s" % (path, key), bad, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _walk(item, "%s[%d]" % (path, index), bad, depth + 1)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        variables = variables or {}
        names = terms or sorted(n for n in variables if n not in _SKIP and not n.startswith("ansible_"))
        bad = []
        for name in names:
            if name not in variables:
                raise AnsibleError("undecryptable: no variable named %s" % name)
            _walk(variables[name], name, bad)
        return bad
