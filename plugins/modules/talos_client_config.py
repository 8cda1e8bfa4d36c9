#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_client_config
short_description: Write the talosconfig (admin client credentials) of a Talos cluster
version_added: 0.1.0
author: rackboot developers (@rackboot)
description:
  - Writes the talosctl client configuration of a cluster with one context,
    the Talos API CA from the secrets bundle and an Ed25519 admin client
    certificate signed by it (Organization = the roles, e.g. C(os:admin)), as
    C(talosctl gen config) does, made with Python's cryptography.
  - An existing file is kept as long as its certificate is signed by the
    bundle's CA, carries the roles of O(roles) and is valid for more than
    O(renew_before_days); only the endpoints and nodes are updated. Otherwise
    a new certificate is issued and the result (C(renew_reason)) and the diff
    say why (none yet, issued by another CA, expiring, other roles). The file is written with mode 0600 from
    its first byte and no key material is returned or shown in diffs; the
    common file options (O(owner), O(group), O(mode), SELinux) are applied
    after, and the mode stays 0600 when O(mode) is not set.
  - "Runs on the controller (C(delegate_to: localhost))."
options:
  path:
    description: The talosconfig file.
    type: path
    required: true
  secrets_path:
    description: The secrets bundle made by M(rackboot.metal.talos_secrets).
    type: path
    required: true
  context:
    description: Context name (rackboot uses the cluster name).
    type: str
    required: true
  endpoints:
    description: Talos API endpoints (control-plane addresses; not the API VIP, which moves with etcd).
    type: list
    elements: str
    required: true
  nodes:
    description: Default target nodes of the context.
    type: list
    elements: str
    default: []
  roles:
    description: Talos API roles of the client certificate.
    type: list
    elements: str
    default: [os:admin]
  renew_before_days:
    description: Issue a new client certificate when the current one expires within this many days.
    type: int
    default: 30
extends_documentation_fragment:
  - ansible.builtin.files
requirements:
  - cryptography
  - PyYAML
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Talosconfig for the admin
  rackboot.metal.talos_client_config:
    path: "{{ rackboot_artifacts_dir }}/talosconfig"
    secrets_path: "{{ rackboot_secrets_dir }}/talos-secrets.yaml"
    context: "{{ rackboot_cluster.name }}"
    endpoints: "{{ groups['controlplane'] | map('extract', hostvars, ['rackboot_node', 'management_address']) | list }}"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
path:
  description: The talosconfig file.
  returned: always
  type: str
certificate_renewed:
  description: Whether a new client certificate was issued.
  returned: success
  type: bool
renew_reason:
  description: Why a new client certificate was issued (or would be, in check mode).
  returned: when certificate_renewed is true
  type: str
  sample: the client certificate expires within 30 days (2027-01-01T00:00:00+00:00)
not_after:
  description: Expiry of the client certificate (ISO 8601).
  returned: success, unless check mode had to issue a certificate
  type: str
"""

import base64
import datetime
import os

import yaml

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rackboot.metal.plugins.module_utils import config_apply

try:
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    from ansible_collections.rackboot.metal.plugins.module_utils import talos_secrets
    IMPORT_ERROR = None
except ImportError as e:
    IMPORT_ERROR = e


def certificate_status(old, context, bundle, renew_before, roles):
    """((crt, key, not_after) or None, why): the existing context's client
    certificate when still usable, else None and the reason to issue a new one."""
    try:
        ctx = old["contexts"][context]
    except (KeyError, TypeError):
        return None, "no client certificate for context %s yet" % context
    try:
        if not ctx.get("crt") or not ctx.get("key"):
            return None, "no client certificate for context %s yet" % context
        crt = x509.load_pem_x509_certificate(base64.b64decode(ctx["crt"]))
    except (TypeError, ValueError, AttributeError):
        return None, "the client certificate cannot be read"
    ca = x509.load_pem_x509_certificate(base64.b64decode(bundle["certs"]["os"]["crt"]))
    try:
        if ctx.get("ca") != bundle["certs"]["os"]["crt"]:
            raise ValueError("another CA")
        crt.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, wrong issuer, another key type: not ours
        return None, "the client certificate was issued by another CA than the cluster's"
    now = datetime.datetime.now(datetime.timezone.utc)
    if crt.not_valid_after_utc - now < datetime.timedelta(days=renew_before):
        return None, "the client certificate expires within %d days (%s)" % (
            renew_before, crt.not_valid_after_utc.isoformat())
    have = sorted(a.value for a in crt.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    if have != sorted(roles):
        return None, "the client certificate has roles %s, not %s" % (", ".join(have), ", ".join(sorted(roles)))
    return (ctx["crt"], ctx["key"], crt.not_valid_after_utc), None


def public_view(cfg, context, certificate=None):
    """The parts of a talosconfig safe to show in a diff; ``certificate`` says
    what happened to the client certificate (its key is never shown)."""
    if not isinstance(cfg, dict):
        return {}
    ctx = (cfg.get("contexts") or {}).get(context) or {}
    if certificate is None and ctx.get("crt"):
        try:
            expiry = x509.load_pem_x509_certificate(base64.b64decode(ctx["crt"])).not_valid_after_utc
            certificate = "valid until %s" % expiry.isoformat()
        except (TypeError, ValueError):
            certificate = "unreadable"
    return {"context": cfg.get("context"), "endpoints": ctx.get("endpoints"), "nodes": ctx.get("nodes"),
            "client certificate": certificate}


def _show(view):
    return yaml.safe_dump(view, sort_keys=False, width=1 << 20)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            secrets_path=dict(type="path", required=True),
            context=dict(type="str", required=True),
            endpoints=dict(type="list", elements="str", required=True),
            nodes=dict(type="list", elements="str", default=[]),
            roles=dict(type="list", elements="str", default=["os:admin"]),
            renew_before_days=dict(type="int", default=30),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    if IMPORT_ERROR is not None:
        module.fail_json(msg="talos_client_config needs cryptography and PyYAML on the controller: %s" % IMPORT_ERROR)
    p = module.params
    result = dict(changed=False, path=p["path"], certificate_renewed=False)
    if module.check_mode and not os.path.exists(p["secrets_path"]):
        # First check-mode run: talos_secrets would create the bundle; this file follows from it.
        result.update(changed=True, msg="would be written once the secrets bundle %s exists" % p["secrets_path"])
        module.exit_json(**result)
    try:
        with open(p["secrets_path"]) as f:
            bundle = talos_secrets.load(f.read(), source=p["secrets_path"])
    except (OSError, talos_secrets.SecretsError) as e:
        module.fail_json(msg="cannot use the Talos secrets bundle: %s" % e, **result)
    old, old_text = None, None
    if os.path.exists(p["path"]):
        with open(p["path"]) as f:
            old_text = f.read()
        try:
            old = yaml.safe_load(old_text)
        except yaml.YAMLError:
            old = None
    current, why = certificate_status(old, p["context"], bundle, p["renew_before_days"], p["roles"])
    if current:
        crt, key, not_after = current
    elif module.check_mode:
        crt = key = not_after = None
    else:
        crt, key = talos_secrets.client_certificate(bundle, roles=tuple(p["roles"]))
        not_after = x509.load_pem_x509_certificate(base64.b64decode(crt)).not_valid_after_utc
    result["certificate_renewed"] = current is None
    if why:
        result["renew_reason"] = why
    if not_after is not None:
        result["not_after"] = not_after.isoformat()
    after_crt = None
    if why:
        after_crt = "issued anew%s, because %s" % (", valid until %s" % not_after.isoformat() if not_after else "", why)
    new = talos_secrets.talosconfig(p["context"], p["endpoints"], p["nodes"], bundle, crt, key)
    text = yaml.safe_dump(new, sort_keys=False, default_flow_style=False, width=1 << 20)
    if not (current and text == old_text):
        result["changed"] = True
        result["diff"] = dict(before_header=p["path"], after_header=p["path"],
                              before=_show(public_view(old, p["context"])) if old else "",
                              after=_show(public_view(new, p["context"], after_crt)))
        if not module.check_mode:
            talos_secrets.write_private(p["path"], text)
    result["changed"] = config_apply.file_attributes(module, p["path"], 0o600, result["changed"], result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
