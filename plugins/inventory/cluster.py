# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
name: cluster
short_description: Inventory from a rackboot cluster spec
version_added: 0.1.0
author: rackboot developers (@rackboot)
description:
  - Reads a rackboot cluster spec (nodes, NICs, bonds, VLANs, networks, BGP,
    load-balancer pools, tenants), validates all of it before any host is
    touched, and computes everything that can be derived from it.
  - Any C(.yml)/C(.yaml) file whose top-level C(plugin) is
    C(rackboot.metal.cluster) is a spec, whatever its name.
  - A spec with problems is refused with one line per problem naming the
    file, line, field path and reason, printed once. The spec is read by a
    strict reader that refuses duplicate keys, non-decimal numbers (C(0200),
    C(1:30)), control characters, oversized or too deeply nested files and
    alias bombs (docs/cluster-spec.md, "What the reader refuses").
  - The plugin also claims C(.yml) files whose C(plugin) is a misspelled
    rackboot name, files without C(plugin) that have C(cluster) and C(nodes),
    and empty files, so that their problem is reported by this plugin.
  - One spec per inventory; a second spec in the same inventory is refused. Set C(unparsed_is_failed=true) in the
    C([inventory]) section of ansible.cfg (rackboot's does) so that a refused
    spec stops the run instead of leaving an empty inventory.
  - "Groups: C(k8s_nodes), C(controlplane), C(workers), C(routers), one per
    rack C(rack_<name>) (dashes become underscores), the distribution
    (C(talos) or C(kubeadm)), and one per router platform (C(frr), C(bird))."
  - "Variables: C(rackboot_cluster_json) (group C(all): the normalized cluster with
    defaults and computed values, as one JSON string, since C(ansible-inventory --list)
    copies group C(all) into every host and encodes it value by value), C(rackboot_cluster)
    (group C(all): a template that decodes it when read, filter C(rackboot.metal.cluster_from_json)),
    C(rackboot_node_spec) on nodes (the node's own
    part of the spec), C(rackboot_node) on group C(k8s_nodes) (role, addresses, resolved host
    network, BGP peers; a template that resolves it from C(rackboot_node_spec) and
    C(rackboot_cluster_json) when read, so that no host copies the cluster),
    C(rackboot_router) on routers (peer list, accepted prefixes, timers, BFD; the
    peer list is C(rackboot_router_peers) of group C(routers), a template decoding the one JSON
    string C(rackboot_router_peers_json)), C(ansible_host) (the management address),
    C(rackboot_inventory_dir) (the spec's folder), C(rackboot_inventory_file), and overridable defaults
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
import time

from ansible.errors import AnsibleError, AnsibleParserError
from ansible.plugins.inventory import BaseInventoryPlugin, Constructable
from ansible.template import trust_as_template
from ansible.utils.display import Display

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import SpecError, cluster_json, read_spec
from ansible_collections.rackboot.metal.plugins.plugin_utils.spec_loader import claims, no_collection

display = Display()

_CLUSTER = "{{ rackboot_cluster_json | rackboot.metal.cluster_from_json }}"
_RESOLVE_NODE = "{{ rackboot_node_spec | rackboot.metal.cluster_node(rackboot_cluster_json) }}"
_PEERS = "{{ rackboot_router_peers_json | from_json }}"
_CONSTRUCTED = ("compose", "groups", "keyed_groups", "strict", "leading_separator", "use_extra_vars")


def _trusted(value):
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def _refuse(message):
    """The problem list is shown once, here; Ansible's own report of the failure then carries one line."""
    display.display(message, stderr=True, color="bright red")
    first = message.splitlines()[0].rstrip(":")
    return AnsibleParserError("%s (listed above)" % first if "\n" in message else message)


class InventoryModule(BaseInventoryPlugin, Constructable):
    NAME = "rackboot.metal.cluster"

    def verify_file(self, path):
        return super(InventoryModule, self).verify_file(path) and claims(path)

    def parse(self, inventory, loader, path, cache=True):
        super(InventoryModule, self).parse(inventory, loader, path, cache)
        try:
            # Publishing copies the model into Ansible's variables: no cycles either.
            with no_collection():
                self._parse(path)
        except SpecError as e:
            raise _refuse(e.render())
        except AnsibleParserError:
            raise
        except Exception as e:  # noqa: BLE001 - a bug must still name the file
            raise _refuse("%s: cannot be turned into an inventory (%s: %s; please report it)"
                          % (path, type(e).__name__, e))

    def _parse(self, path):
        t0 = time.perf_counter()
        # One spec, one cluster: a second spec in the same inventory would
        # mix two clusters' hosts, groups and artifacts folders.
        first = self.inventory.groups["all"].vars.get("rackboot_inventory_file")
        if first is not None and str(first) != os.path.abspath(path):
            raise SpecError([((), "a second cluster spec in one inventory (the first is %s); give each cluster "
                                  "its own inventory folder" % first)], path)
        model = read_spec(path)
        built = time.perf_counter()
        data = model.source_data
        # Jinja2 expressions of `constructed` come from the engineer's own
        # file, as with any plugin config; the spec's values stay untrusted.
        self.set_options(direct={k: _trusted(data[k]) for k in ("plugin",) + _CONSTRUCTED if k in data})
        for warning in model.warnings:
            display.warning("%s: %s" % (path, warning))
        try:
            self.populate(model, os.path.dirname(os.path.abspath(path)), os.path.abspath(path))
        except AnsibleError as e:
            # compose/groups/keyed_groups expressions, or a group they create
            raise SpecError([(("compose",), "cannot be applied: %s" % e.message)], path)
        done = time.perf_counter()
        # Shown with -vvv.
        self.timing = {"read_and_model": built - t0, "publish": done - built}
        display.vvv("rackboot.metal.cluster: %s: %d nodes, %d routers; read + model %.3f s, publish %.3f s"
                    % (path, len(model.nodes), len(model.routers), built - t0, done - built))

    def populate(self, model, inventory_dir, spec_file):
        inv = self.inventory
        # One string, not ~600 values: `ansible-inventory --list` copies group
        # all into every host and encodes value by value (docs/development.md).
        inv.set_variable("all", "rackboot_cluster_json", cluster_json(model.cluster))
        inv.set_variable("all", "rackboot_cluster", trust_as_template(_CLUSTER))
        inv.set_variable("all", "rackboot_inventory_dir", inventory_dir)
        inv.set_variable("all", "rackboot_inventory_file", spec_file)
        # Defaults for every playbook wherever it lives (playbook group_vars only
        # reach playbooks in one folder); group_vars or -e override them.
        inv.set_variable("all", "rackboot_artifacts_dir",
                         os.path.join(inventory_dir, "artifacts", model.cluster["name"]))
        inv.set_variable("all", "rackboot_secrets_dir", os.path.join(inventory_dir, "secrets"))
        inv.set_variable("all", "rackboot_kubeconfig", trust_as_template("{{ rackboot_artifacts_dir }}/kubeconfig"))
        for group, hosts in model.groups.items():
            inv.add_group(group)
        # A node carries only its own part of the spec; rackboot_node is
        # resolved from it and rackboot_cluster when a play reads it, so that
        # neither the inventory nor its export copies the cluster per host.
        # The template is the same for every node: group k8s_nodes holds it.
        inv.set_variable("k8s_nodes", "rackboot_node", trust_as_template(_RESOLVE_NODE))
        compose, groups, keyed = (self.get_option(o) for o in ("compose", "groups", "keyed_groups"))
        strict = self.get_option("strict")
        # Every router peers with every node: the list is held once, by group
        # routers, and each rackboot_router.peers refers to it.
        peer_lists = [r["peers"] for r in model.routers.values()]
        shared = bool(peer_lists) and all(p == peer_lists[0] for p in peer_lists)
        if shared:
            # One string, as the cluster: one value per node in --export (what
            # AWX imports) instead of a dozen, encoded by the C encoder.
            inv.set_variable("routers", "rackboot_router_peers_json", cluster_json(peer_lists[0]))
            inv.set_variable("routers", "rackboot_router_peers", trust_as_template(_PEERS))
            peers_ref = trust_as_template("{{ rackboot_router_peers }}")
        for name in list(model.nodes) + list(model.routers):
            inv.add_host(name)
            hostvars = model.hostvars(name)
            for key, value in hostvars.items():
                if key == "rackboot_router" and shared:
                    value = dict(value, peers=peers_ref)
                inv.set_variable(name, key, value)
            if compose or groups or keyed:
                # Expressions see rackboot_node resolved, as plays do (the
                # template is set after them: they also read the host's vars).
                seen = dict(hostvars, rackboot_node=model.nodes[name]) if name in model.nodes else hostvars
                self._set_composite_vars(compose, seen, name, strict=strict)
                self._add_host_to_composed_groups(groups, seen, name, strict=strict)
                self._add_host_to_keyed_groups(keyed, seen, name, strict=strict)
        for group, hosts in model.groups.items():
            for host in hosts:
                inv.add_child(group, host)
