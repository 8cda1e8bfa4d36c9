# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: cluster
short_description: Inventory from a rackboot cluster spec
version_added: 0.1.0
author: rackboot developers
description:
  - Reads a rackboot cluster spec (nodes, NICs, bonds, VLANs, networks, BGP,
    load-balancer pools, tenants), validates all of it before any host is
    touched, and computes everything that can be derived from it.
  - Any C(.yml)/C(.yaml) file whose top-level C(plugin) is
    C(rackboot.metal.cluster) is a spec, whatever its name.
  - A spec with problems is refused with one line per problem naming the
    file, line, field path and reason. Set C(unparsed_is_failed=true) in the
    C([inventory]) section of ansible.cfg (rackboot's does) so that a refused
    spec stops the run instead of leaving an empty inventory.
  - "Groups: C(k8s_nodes), C(controlplane), C(workers), C(routers), one per
    rack C(rack_<name>) (dashes become underscores), the distribution
    (C(talos) or C(kubeadm)), and one per router platform (C(frr), C(bird))."
  - "Variables: C(rackboot_cluster) (group C(all): the normalized cluster with
    defaults and computed values), C(rackboot_node) on nodes (role, addresses,
    resolved host network, BGP peers), C(rackboot_router) on routers (peer list,
    accepted prefixes, timers, BFD), C(ansible_host) (the management address),
    C(rackboot_inventory_dir) (the spec's folder), and overridable defaults
    C(rackboot_artifacts_dir) (C(<spec folder>/artifacts/<cluster name>)),
    C(rackboot_secrets_dir) (C(<spec folder>/secrets)) and
    C(rackboot_kubeconfig) (C(<artifacts dir>/kubeconfig))."
  - The full format is in docs/cluster-spec.md.
extends_documentation_fragment:
  - ansible.builtin.constructed
options:
  plugin:
    description: The name of this plugin.
    required: true
    type: str
    choices: [rackboot.metal.cluster]
  cluster:
    description: (required) Cluster-wide settings (name, distribution, Kubernetes version, CIDRs, API VIP).
    type: dict
  networks:
    description: (required) L2 segments of the fabric (name, cidr, vlan, gateway, mtu, routes).
    type: list
    elements: dict
  host_network:
    description: (required) Host networking of every node (bond or single interface, native network, bridges).
    type: dict
  nodes:
    description: (required) Cluster nodes (name, role, rack, install_disk, addresses, host_network override, macs, labels).
    type: list
    elements: dict
  routers:
    description: Upstream BGP routers (name, platform, asn, address, management_address).
    type: list
    elements: dict
    default: []
  load_balancer:
    description: MetalLB pools and BGP settings.
    type: dict
    default: {}
  tenants:
    description: Tenant namespaces isolated by default-deny policies.
    type: list
    elements: dict
    default: []
  components:
    description: Overrides of pinned component versions, chart sources and Helm values.
    type: dict
    default: {}
"""

EXAMPLES = r"""
# inventories/dc1/cluster.yml
plugin: rackboot.metal.cluster
cluster:
  name: dc1-prod
  distribution: talos
  kubernetes_version: "1.34.1"
  api_vip: 10.10.0.5
networks:
  - name: mgmt
    cidr: 10.10.0.0/24
    gateway: 10.10.0.1
host_network:
  interface: eno1
  native_network: mgmt
nodes:
  - name: cp1
    role: controlplane
    install_disk: /dev/sda
    addresses: {mgmt: 10.10.0.11}

# ansible-inventory -i inventories/dc1 --graph
"""

import os
import re
import time

import yaml

from ansible.errors import AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.template import trust_as_template
from ansible.utils.display import Display

from ansible_collections.rackboot.metal.plugins.module_utils.cluster_model import SpecError, build

display = Display()

_PLUGIN_LINE = re.compile(r"^plugin:\s*['\"]?rackboot\.metal\.cluster['\"]?\s*(#.*)?$", re.M)
_CONSTRUCTED = ("compose", "groups", "keyed_groups", "strict", "leading_separator", "use_extra_vars")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_spec(path):
    """Read and parse a spec file; return (text, data). Errors name the file and line."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise AnsibleParserError("%s: cannot read cluster spec: %s" % (path, e))
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = "%s:%d" % (path, mark.line + 1) if mark else path
        raise AnsibleParserError("%s: not valid YAML: %s" % (where, getattr(e, "problem", None) or e))
    return text, data


def _trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "rackboot.metal.cluster"

    def verify_file(self, path):
        if not path.endswith((".yml", ".yaml")) or not super(InventoryModule, self).verify_file(path):
            return False
        try:
            with open(path, "rb") as f:
                head = f.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            return False
        return bool(_PLUGIN_LINE.search(head))

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        t0 = time.perf_counter()
        text, data = load_spec(path)
        started = time.perf_counter()
        try:
            model = build(data, source=path, text=text)
        except SpecError as e:
            raise AnsibleParserError(e.render())
        if isinstance(data, dict):
            # Jinja2 expressions of `constructed` come from the engineer's own
            # file, as with any plugin config; the spec's values stay untrusted.
            self.set_options(direct={k: _trusted(data[k]) for k in ("plugin",) + _CONSTRUCTED if k in data})
        for warning in model.warnings:
            display.warning("%s: %s" % (path, warning))
        built = time.perf_counter()
        self.populate(model, os.path.dirname(os.path.abspath(path)))
        done = time.perf_counter()
        # Read by scripts/bench-inventory; shown with -vvv.
        self.timing = {"yaml_load": started - t0, "model": built - started, "publish": done - built}
        display.vvv("rackboot.metal.cluster: %s: %d nodes, %d routers; YAML %.3f s, model %.3f s, publish %.3f s"
                    % (path, len(model.nodes), len(model.routers), started - t0, built - started, done - built))

    def populate(self, model, inventory_dir):
        inv = self.inventory
        inv.set_variable("all", "rackboot_cluster", model.cluster)
        inv.set_variable("all", "rackboot_inventory_dir", inventory_dir)
        # Defaults for every playbook wherever it lives (playbook group_vars only
        # reach playbooks in one folder); group_vars or -e override them.
        inv.set_variable("all", "rackboot_artifacts_dir",
                         os.path.join(inventory_dir, "artifacts", model.cluster["name"]))
        inv.set_variable("all", "rackboot_secrets_dir", os.path.join(inventory_dir, "secrets"))
        inv.set_variable("all", "rackboot_kubeconfig", trust_as_template("{{ rackboot_artifacts_dir }}/kubeconfig"))
        for group, hosts in model.groups.items():
            inv.add_group(group)
        for name in list(model.nodes) + list(model.routers):
            inv.add_host(name)
            hostvars = model.hostvars(name)
            for key, value in hostvars.items():
                inv.set_variable(name, key, value)
            strict = self.get_option("strict")
            self._set_composite_vars(self.get_option("compose"), hostvars, name, strict=strict)
            self._add_host_to_composed_groups(self.get_option("groups"), hostvars, name, strict=strict)
            self._add_host_to_keyed_groups(self.get_option("keyed_groups"), hostvars, name, strict=strict)
        for group, hosts in model.groups.items():
            for host in hosts:
                inv.add_child(group, host)
