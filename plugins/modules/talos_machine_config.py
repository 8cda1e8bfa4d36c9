#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_machine_config
short_description: Render one node's Talos machine configuration from the rackboot model
version_added: 0.1.0
author: rackboot developers (@rackboot)
description:
  - Writes the multi-document Talos (v1.12+) machine configuration of one
    node, built from C(rackboot_node) and C(rackboot_cluster) (the inventory
    plugin's model) and the cluster secrets bundle made by
    M(rackboot.metal.talos_secrets).
  - "The first document is the v1alpha1 config: machine type, install disk and
    image, kubelet image of the spec's Kubernetes version, KubePrism, the
    openvswitch kernel module Kube-OVN needs, cluster name, DNS domain, pod and
    service subnets, CNI C(none), kube-proxy disabled (Cilium replaces it),
    the control-plane endpoint on the API VIP and the API server cert SANs.
    Then C(HostnameConfig) and the network documents (C(LinkAliasConfig),
    C(LinkConfig), C(BondConfig), C(VLANConfig), C(BridgeConfig), and
    C(Layer2VIPConfig) for the API VIP on control-plane nodes)."
  - The same model and secrets give a byte-identical file; an unchanged file
    is not rewritten. The file holds cluster secrets and is written with mode
    0600 from its first byte; O(owner), O(group), O(mode) and the SELinux options
    (the common file options) are applied after, and the mode stays 0600 when
    O(mode) is not set. The diff shows the configuration with keys and tokens replaced by
    short fingerprints.
  - "Runs on the controller (C(delegate_to: localhost))."
options:
  path:
    description: The machine configuration file to write.
    type: path
    required: true
  node:
    description: The node's C(rackboot_node).
    type: dict
    required: true
  cluster:
    description: C(rackboot_cluster).
    type: dict
    required: true
  secrets_path:
    description: The secrets bundle (read only; made by M(rackboot.metal.talos_secrets)).
    type: path
    required: true
  talos_version:
    description: Talos version; selects the default installer image (the talos role passes C(versions_talos)).
    type: str
    required: true
  install_image:
    description: Installer image, e.g. an Image Factory image with system extensions.
    type: str
  install_wipe:
    description: Wipe the install disk on installation.
    type: bool
    default: false
  kubeprism_port:
    description: KubePrism port (Cilium's C(k8sServiceHost/Port) on Talos is C(localhost:<port>)).
    type: int
    default: 7445
  allow_scheduling_on_controlplanes:
    description: Let workloads run on control-plane nodes.
    type: bool
    default: false
  kernel_modules:
    description: Kernel modules Talos loads (C(name), optional C(parameters)).
    type: list
    elements: dict
    default: [{name: openvswitch}]
  sysctls:
    description: Kernel parameters (string values; the talos role passes C(versions_neighbour_sysctls)).
    type: dict
  discovery:
    description: Talos cluster discovery (needs the discovery service or the Kubernetes registry).
    type: bool
    default: false
  schema:
    description: Optional path of Talos' C(config.schema.json); every document is validated against it and
      the module fails, naming the document and field, when one does not.
    type: path
extends_documentation_fragment:
  - ansible.builtin.files
requirements:
  - PyYAML
  - netaddr
  - jsonschema (only with I(schema))
notes:
  - Supports check mode and diff mode.
"""

EXAMPLES = r"""
- name: Machine configuration of every node
  rackboot.metal.talos_machine_config:
    path: "{{ rackboot_artifacts_dir }}/talos/{{ item }}.yaml"
    node: "{{ hostvars[item].rackboot_node }}"
    cluster: "{{ rackboot_cluster }}"
    secrets_path: "{{ rackboot_secrets_dir }}/talos-secrets.yaml"
    talos_version: "{{ versions_talos }}"
  loop: "{{ groups['k8s_nodes'] }}"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The file written.
  returned: always
  type: str
documents:
  description: Kinds of the documents in the file, in order (C(v1alpha1) for the main config).
  returned: success
  type: list
  elements: str
sha256:
  description: SHA-256 of the rendered file.
  returned: success
  type: str
"""

import hashlib
import json
import os

import yaml

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rackboot.metal.plugins.module_utils import config_apply, talos_config, talos_secrets


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            node=dict(type="dict", required=True),
            cluster=dict(type="dict", required=True),
            secrets_path=dict(type="path", required=True),
            talos_version=dict(type="str", required=True),
            install_image=dict(type="str"),
            install_wipe=dict(type="bool", default=False),
            kubeprism_port=dict(type="int", default=7445),
            allow_scheduling_on_controlplanes=dict(type="bool", default=False),
            kernel_modules=dict(type="list", elements="dict", default=[{"name": "openvswitch"}]),
            sysctls=dict(type="dict"),
            discovery=dict(type="bool", default=False),
            schema=dict(type="path"),
        ),
        supports_check_mode=True,
        add_file_common_args=True,
    )
    p = module.params
    node = p["node"]
    result = dict(changed=False, path=p["path"])
    if module.check_mode and not os.path.exists(p["secrets_path"]):
        # First check-mode run: talos_secrets would create the bundle; this file follows from it.
        result.update(changed=True, msg="would be written once the secrets bundle %s exists" % p["secrets_path"])
        module.exit_json(**result)
    try:
        with open(p["secrets_path"]) as f:
            bundle = talos_secrets.load(f.read(), source=p["secrets_path"])
    except OSError as e:
        module.fail_json(msg="cannot read the Talos secrets bundle %s: %s (create it with "
                             "rackboot.metal.talos_secrets)" % (p["secrets_path"], e), **result)
    except talos_secrets.SecretsError as e:
        module.fail_json(msg=str(e), **result)
    options = {k: p[k] for k in ("talos_version", "install_image", "install_wipe", "kubeprism_port",
                                 "allow_scheduling_on_controlplanes", "kernel_modules", "sysctls", "discovery")}
    try:
        docs = talos_config.render(node, p["cluster"], bundle, options)
    except talos_config.ConfigError as e:
        module.fail_json(msg=str(e), **result)
    except (KeyError, TypeError) as e:
        module.fail_json(msg="node %s: rackboot_node/rackboot_cluster lack %s; pass the inventory plugin's "
                             "variables unchanged" % (node.get("name"), e), **result)
    if p["schema"]:
        try:
            with open(p["schema"]) as f:
                schema = json.load(f)
        except (OSError, ValueError) as e:
            module.fail_json(msg="cannot read the Talos schema %s: %s" % (p["schema"], e), **result)
        errors = talos_config.schema_errors(docs, schema)
        if errors:
            module.fail_json(msg="node %s: the generated configuration does not match %s:\n%s"
                                 % (node.get("name"), p["schema"], "\n".join(errors)), **result)
    text = talos_config.dump(docs, node.get("name"), node.get("role"))
    result["documents"] = [d.get("kind", "v1alpha1") for d in docs]
    result["sha256"] = hashlib.sha256(text.encode("utf-8")).hexdigest()

    before_text = None
    if os.path.exists(p["path"]):
        with open(p["path"]) as f:
            before_text = f.read()
    if before_text != text:
        result["changed"] = True
        if module._diff:
            before = ""
            if before_text is not None:
                try:
                    before = talos_config.dump(talos_config.redact([d for d in yaml.safe_load_all(before_text) if d]))
                except Exception:  # an unparsable old file: show that it is replaced
                    before = "(unparsable previous file)\n"
            result["diff"] = dict(before_header=p["path"], after_header=p["path"], before=before,
                                  after=talos_config.dump(talos_config.redact(docs)))
        if not module.check_mode:
            talos_secrets.write_private(p["path"], text)
    result["changed"] = config_apply.file_attributes(module, p["path"], 0o600, result["changed"], result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
