# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""The rackboot cluster model: validate a cluster spec, compute what follows.

``build(data, source)`` takes a loaded cluster spec and returns a ``Model``
with the normalized cluster (defaults filled in), every node's resolved host
network, every node's BGP peers, every router's peer list, the pools split by
mode, and the Ansible groups. It raises ``SpecError`` listing *all* problems
it found, each with the file, line, field path and reason.

This is the one place where rackboot derives anything from the spec: the
inventory plugin publishes the result as host/group variables and the roles,
filters and modules consume it instead of re-deriving it.
"""

from __future__ import annotations

import json
import re

import netaddr

from ansible_collections.rackboot.metal.plugins.plugin_utils import spec_loader
from ansible_collections.rackboot.metal.plugins.plugin_utils.spec_schema import (
    SPEC, check, format_path, parse_ipv4, show)

__all__ = ["SpecError", "Model", "build", "locate_lines", "node_context", "read_spec", "resolve_node", "validate_file"]

RESERVED_NAMESPACES = frozenset(["default", "kube-system", "kube-public", "kube-node-lease",
                                 "cozy-cilium", "cozy-kubeovn", "cozy-multus", "cozy-metallb",
                                 "cozy-proxy", "metallb-system"])
# Group names the plugin creates (and Ansible's own): a host of the same name
# makes Ansible fail with "can't add group to itself".
RESERVED_HOST_NAMES = frozenset(["all", "ungrouped", "localhost", "k8s_nodes", "controlplane", "workers", "routers",
                                 "talos", "kubeadm", "frr", "bird"])
# Kernel names of physical NICs; a bridge named like one would take over a real device.
_NIC_NAME = re.compile(r"(?:eth|eno|ens|enp|enx|em|ib|wl|ww|p[0-9]+p)[0-9a-f]", re.ASCII)
BOND_DEFAULTS = {
    "802.3ad": {"lacp_rate": "fast", "xmit_hash_policy": "layer3+4"},
    "balance-xor": {"xmit_hash_policy": "layer3+4"},
    "active-backup": {},
}


# What each network-stack variant installs (docs/network-stack.md); MetalLB only
# when it announces something.
VARIANT_COMPONENTS = {
    "kubeovn-cilium": ("kube_ovn", "cilium", "multus", "metallb", "cozy_proxy"),
    "cilium": ("cilium", "multus", "metallb"),
    "none": ("metallb",),
}
# Kube-OVN's gateway-node label (util.ExGatewayLabel): the chassis of VPC external ports.
EXTERNAL_GW_LABEL = "ovn.kubernetes.io/external-gw"
# Kube-OVN's own Vpc and Subnets (chart values DEFAULT_VPC, DEFAULT_SUBNET, NODE_SUBNET).
KUBE_OVN_NAMES = frozenset(["ovn-cluster", "ovn-default", "join"])
COMPONENT_NAMES = ("kube_ovn", "cilium", "multus", "metallb", "cozy_proxy")
CILIUM_OPTIONS = ("pod_mask_size", "routing_mode", "tunnel_protocol", "encryption", "devices", "dsr", "lb_announcer")


def _variant(cluster):
    return ((cluster or {}).get("network_stack") or {}).get("variant") or "kubeovn-cilium"


class SpecError(Exception):
    """The spec is invalid. ``problems`` is a list of (path tuple, reason)."""

    def __init__(self, problems, source=None, lines=None, data=None):
        self.problems = problems
        self.source = source or "<cluster spec>"
        self.lines = lines or {}
        self.data = data
        super(SpecError, self).__init__(self.render())

    def items(self):
        """The problems as data: ``[{file, line, path, item, message}]`` (line may be None).

        ``item`` is the part of the spec the problem belongs to, for grouping:
        the list entry (``nodes[3] (w1)``) or the top-level key (``cluster``).
        """
        return [{"file": self.source, "line": self.lines.get(path), "path": format_path(path, self.data),
                 "item": format_path(_item_path(path), self.data), "message": reason}
                for path, reason in self.problems]

    def messages(self):
        """One line per problem: 'FILE:LINE: PATH: REASON'."""
        out = []
        for item in self.items():
            where = "%s:%d" % (item["file"], item["line"]) if item["line"] else item["file"]
            out.append("%s: %s: %s" % (where, item["path"], item["message"]))
        return out

    def render(self):
        msgs = self.messages()
        head = "%d problem%s in cluster spec %s" % (len(msgs), "" if len(msgs) == 1 else "s", self.source)
        return head + ":\n" + "\n".join("  - " + m for m in msgs)


def _item_path(path):
    """('nodes', 3, 'addresses', 'mgmt') -> ('nodes', 3); ('cluster', 'api_vip') -> ('cluster',)."""
    return tuple(path[:2]) if len(path) > 1 and isinstance(path[1], int) else tuple(path[:1])


class Model(object):
    """Result of ``build``: plain dicts/lists, ready to become Ansible variables."""

    def __init__(self, cluster, nodes, routers, groups, warnings, node_specs=None):
        self.cluster = cluster          # normalized cluster (rackboot_cluster)
        self.nodes = nodes              # name -> rackboot_node
        self.routers = routers          # name -> rackboot_router
        self.groups = groups            # group name -> [host names]
        self.warnings = warnings        # list of strings
        self.node_specs = node_specs or {}   # name -> rackboot_node_spec (what only this node has)
        self.source_data = None         # the spec as read (constructed options live there)

    def hostvars(self, name):
        """The variables the inventory plugin sets on one host.

        A node carries only what is its own (``rackboot_node_spec``); the
        plugin adds ``rackboot_node`` as a template of ``resolve_node``, so
        that no host holds data every other host has too.
        """
        if name in self.nodes:
            return {"ansible_host": self.nodes[name]["management_address"], "rackboot_node_spec": self.node_specs[name]}
        router = self.routers[name]
        return {"ansible_host": router["management_address"], "rackboot_router": router}


def _ip(text):
    # Strict dotted quad only (the schema checked it); building from the
    # integer also skips netaddr's slower string parser (5,000-node specs).
    value = parse_ipv4(text)
    if value is None:
        raise ValueError("not a strict IPv4 address")
    return netaddr.IPAddress(value, 4)


def _net(text):
    return netaddr.IPNetwork(text)


def _usable(net, ip):
    """``ip`` is inside ``net`` and a host may use it (not the network or broadcast address)."""
    v = ip.value
    first, last = net.first, net.last
    if net.prefixlen >= 31:
        return first <= v <= last
    return first < v < last


class _Builder(object):
    def __init__(self, problems=None):
        self.problems = list(problems or [])
        self.warnings = []
        self.owners = {}     # IPAddress -> (path, description) of every assigned address
        self.failed = set()  # every prefix of a path whose own check failed
        self.host_network_overrides = {}   # node name -> the keys of host_network it sets itself

    def broken(self, *path):
        """``path`` (or something inside it) failed its own check: later checks must not use it."""
        return tuple(path) in self.failed

    def err(self, path, reason):
        self.problems.append((tuple(path), reason))

    def claim(self, ip, path, what):
        """Record that ``what`` uses ``ip``; report a duplicate."""
        prev = self.owners.get(ip)
        if prev is not None:
            self.err(path, "address %s is already used by %s (%s)" % (ip, prev[1], format_path(prev[0])))
            return
        self.owners[ip] = (tuple(path), what)

    # ------------------------------------------------------------------
    def run(self, data):
        self.raw = data
        if not isinstance(data, dict):
            self.err((), "a cluster spec is a mapping that starts with 'plugin: rackboot.metal.cluster', not %s"
                     % ("a list" if isinstance(data, list) else "a single value"))
            return None
        spec = check(data, SPEC, (), self.problems)
        if spec is None:
            return None
        # Problems found so far are structural: see stage().
        self.structural_done = bool(self.problems)
        for path, _ in self.problems:
            for k in range(len(path) + 1):
                self.failed.add(tuple(path[:k]))
        cluster = spec["cluster"] or {}
        lb = spec["load_balancer"] or {}
        stage = self.stage
        nets = stage(("networks",), self.networks, {}, spec["networks"] or [])
        cidrs = stage(("cluster",), self.cluster_cidrs, [], cluster)
        mgmt = stage(("cluster",), self.management, None, cluster, spec["host_network"], nets)
        pools = stage(("load_balancer", "pools"), self.pools, [], lb, nets)
        stage(("networks",), self.overlaps, None, cidrs, nets, pools)
        bgp = stage(("load_balancer", "bgp"), self.bgp_settings, None, lb, nets, pools)
        nodes = stage(("nodes",), self.nodes, {}, spec, nets, mgmt, bgp)
        routers = stage(("routers",), self.routers, {}, spec["routers"] or [], nets, bgp, nodes)
        stage(("load_balancer", "pools"), self.pool_membership, None, pools, nets, nodes)
        stage(("load_balancer", "pools"), self.address_collisions, None, pools)
        self.stack = stage(("cluster", "network_stack"), self.network_stack, None, spec, pools, bgp, nodes)
        tenants = stage(("tenants",), self.tenants, [], spec["tenants"] or [])
        self.external_networks = stage(("tenants",), self.tenant_vpcs, [], spec, tenants, nets, cidrs, pools, nodes)
        stage(("load_balancer", "class"), self.lb_class, None, lb)
        self.attachment_list = stage(("attachments",), self.attachments, [], spec.get("attachments") or [], nets,
                                     nodes, pools)
        if self.problems:
            return None
        model = self.assemble(spec, cluster, nets, mgmt, pools, bgp, nodes, routers, tenants)
        model.source_data = data
        return model

    def stage(self, where, check_fn, fallback, *args):
        """Run one semantic stage.

        When the structural check already found problems, some values are None
        and a stage may trip over them: those problems are what gets reported,
        and the stage's own result is replaced by ``fallback``. On a spec
        without structural problems an exception is a bug, reported as a
        problem of the section (never a bare traceback).
        """
        try:
            return check_fn(*args)
        except Exception as e:  # noqa: BLE001 - every failure becomes a spec problem
            if not self.structural_done:
                self.err(where, "cannot be checked (%s in rackboot's %s check; please report it)"
                         % (type(e).__name__, check_fn.__name__))
            return fallback

    # ------------------------------------------------------------------
    def networks(self, items):
        nets = {}
        vlans = {}
        routed = {}
        for i, n in enumerate(items):
            if not n or n["name"] is None:
                continue
            path = ("networks", i)
            if n["name"] in nets:
                self.err(path + ("name",), "duplicate network name %r" % n["name"])
                continue
            net = self.canonical(n["cidr"], path + ("cidr",))
            # A network whose own fields failed is known by name (no "does not
            # exist" follow-ons) but not used by any later check.
            entry = dict(n, index=i, net=net, broken=self.broken(*path) or net is None)
            nets[n["name"]] = entry
            if n["vlan"] is not None:
                if n["vlan"] in vlans:
                    self.err(path + ("vlan",), "VLAN %d is already used by network %r" % (n["vlan"], vlans[n["vlan"]]))
                else:
                    vlans[n["vlan"]] = n["name"]
            if net is None:
                continue
            if n["gateway"] is not None:
                gw = _ip(n["gateway"])
                if not _usable(net, gw):
                    self.err(path + ("gateway",), "%s is outside network %s %s or not a usable host address"
                             % (gw, n["name"], net))
                else:
                    self.claim(gw, path + ("gateway",), "the gateway of network %s" % n["name"])
            for j, route in enumerate(n["routes"] or []):
                dest = self.canonical(route, path + ("routes", j))
                if dest is not None and dest.prefixlen == 0:
                    self.err(path + ("routes", j), "a default route; the management network's gateway is the "
                             "default route (a second one makes the path depend on metrics)")
                elif dest is not None and str(dest) in routed:
                    self.err(path + ("routes", j), "%s is already routed via network %s" % (dest, routed[str(dest)]))
                elif dest is not None:
                    routed[str(dest)] = n["name"]
            if n["routes"] and n["gateway"] is None:
                self.err(path + ("routes",), "routes need a gateway on network %s" % n["name"])
        return nets

    def canonical(self, text, path):
        """Parse a CIDR; report host bits set. Returns IPNetwork or None."""
        if text is None:
            return None
        try:
            net = _net(text)
        except (netaddr.AddrFormatError, ValueError, TypeError):
            self.err(path, "is not a CIDR")
            return None
        if net.ip != net.network:
            self.err(path, "%s has host bits set; the network is %s" % (text, net.cidr))
            return None
        return net

    def cluster_cidrs(self, cluster):
        out = []
        for key in ("pod_cidr", "service_cidr", "join_cidr"):
            if key == "join_cidr" and _variant(cluster) != "kubeovn-cilium":
                continue  # only Kube-OVN has a join network (network_stack refuses one written)
            net = self.canonical(cluster.get(key), ("cluster", key))
            if net is None:
                continue
            # .1 and .10 of the service CIDR are the API and DNS service IPs;
            # kube-apiserver refuses a service CIDR wider than /12.
            if key == "service_cidr" and not 12 <= net.prefixlen <= 28:
                self.err(("cluster", key), "%s must be between /12 and /28 (the API service is .1, DNS .10; "
                         "kube-apiserver refuses more than /12)" % net)
                continue
            if key in ("pod_cidr", "join_cidr") and net.prefixlen > 24:
                self.err(("cluster", key), "%s is too small: at most /24 (every node takes addresses from it)" % net)
                continue
            out.append((("cluster", key), key, net))
        return out

    def overlaps(self, cidrs, nets, pools):
        """Pod/service/join CIDRs, networks and BGP pools must not overlap; L2 pools
        live inside a network, so they are only checked against everything else."""
        ranges = [(path, what, n.first, n.last) for path, what, n in cidrs]
        ranges += [(("networks", n["index"], "cidr"), "network %s (%s)" % (name, n["net"]), n["net"].first, n["net"].last)
                   for name, n in nets.items() if n["net"] is not None]
        pool_ranges = [(p["path"], "pool %s (%s)" % (p["name"], p["text"]), p["first"], p["last"], p["mode"])
                       for p in pools if p.get("first") is not None]
        for i, a in enumerate(ranges):
            for b in ranges[i + 1:]:
                if a[2] <= b[3] and b[2] <= a[3]:
                    self.err(b[0], "%s overlaps %s" % (b[1], a[1]))
        for i, p in enumerate(pool_ranges):
            for a in ranges:
                if p[4] == "l2" and a[1].startswith("network"):
                    continue
                if a[2] <= p[3] and p[2] <= a[3]:
                    self.err(p[0], "%s overlaps %s" % (p[1], a[1]))
            for q in pool_ranges[:i]:
                if q[2] <= p[3] and p[2] <= q[3]:
                    self.err(p[0], "%s overlaps %s" % (p[1], q[1]))

    def management(self, cluster, hn, nets):
        hn = hn or {}
        name = cluster.get("management_network") or hn.get("native_network")
        path = ("cluster", "management_network") if cluster.get("management_network") else \
            ("host_network", "native_network")
        if name is None:
            self.err(("cluster", "management_network"),
                     "no management network: set cluster.management_network or host_network.native_network")
            return None
        mgmt = nets.get(name)
        if mgmt is None:
            self.err(path, "network %r does not exist (networks: %s)" % (name, ", ".join(nets) or "none"))
            return None
        if cluster.get("api_vip") and mgmt["net"] is not None:
            vip = _ip(cluster["api_vip"])
            if not _usable(mgmt["net"], vip):
                self.err(("cluster", "api_vip"), "%s is outside the management network %s %s"
                         % (vip, name, mgmt["net"]))
            else:
                self.claim(vip, ("cluster", "api_vip"), "the API VIP")
        return mgmt

    # ------------------------------------------------------------------
    def pools(self, lb, nets):
        out = []
        names = set()
        for i, p in enumerate(lb.get("pools") or []):
            if not p or p["name"] is None:
                continue
            path = ("load_balancer", "pools", i)
            if p["name"] in names:
                self.err(path + ("name",), "duplicate pool name %r" % p["name"])
            names.add(p["name"])
            entry = dict(p, path=path, first=None, last=None)
            out.append(entry)
            if (p["cidr"] is None) == (p["range"] is None):
                self.err(path, "set exactly one of cidr or range")
                continue
            if p["cidr"] is not None:
                net = self.canonical(p["cidr"], path + ("cidr",))
                if net is None:
                    continue
                entry.update(first=net.first, last=net.last, text=p["cidr"], cidrs=[str(net)],
                             addresses=[str(net)])
                continue
            start, sep, end = (s.strip(" ") for s in p["range"].partition("-"))
            if not sep or parse_ipv4(start) is None or parse_ipv4(end) is None:
                self.err(path + ("range",), "%s is not a range FIRST-LAST of IPv4 addresses (dotted quads, ASCII "
                         "digits, no leading zeros)" % show(p["range"]))
                continue
            lo, hi = _ip(start), _ip(end)
            if lo > hi:
                self.err(path + ("range",), "range start %s is after its end %s" % (lo, hi))
                continue
            cidrs = [str(c) for c in netaddr.iprange_to_cidrs(lo, hi)]
            entry.update(first=int(lo), last=int(hi), text=p["range"], cidrs=cidrs,
                         addresses=["%s-%s" % (lo, hi)])
        return out

    def bgp_settings(self, lb, nets, pools):
        bgp = lb.get("bgp")
        if any(p["mode"] == "bgp" for p in pools) and not bgp:
            self.err(("load_balancer", "bgp"), "is required because BGP-mode pools exist")
        if not bgp:
            return None
        path = ("load_balancer", "bgp")
        net = nets.get(bgp["network"]) if bgp["network"] else None
        if net is not None and net["broken"]:
            net = None  # its own problem is reported; nothing below may use it
        elif bgp["network"] and net is None:
            self.err(path + ("network",), "network %r does not exist (networks: %s)"
                     % (bgp["network"], ", ".join(nets)))
        if bgp["hold_time"] and bgp["keepalive_time"] and bgp["keepalive_time"] >= bgp["hold_time"]:
            self.err(path + ("keepalive_time",), "keepalive %d s must be below the hold time %d s (usually a third)"
                     % (bgp["keepalive_time"], bgp["hold_time"]))
        return dict(bgp, net=net)

    # ------------------------------------------------------------------
    def nodes(self, spec, nets, mgmt, bgp):
        base = spec["host_network"] or {}
        self.check_host_network(base, ("host_network",), nets, partial=False)
        # A cluster-wide bridge already reported is not reported again for each
        # node that inherits it: one root cause, one message.
        base_bad_bridges = {p[2] for p, _ in self.problems if p[:2] == ("host_network", "bridges") and len(p) > 2}
        is_talos = (spec["cluster"] or {}).get("distribution") == "talos"
        out = {}
        macs = {}
        for i, node in enumerate(spec["nodes"] or []):
            if not node or node["name"] is None:
                continue
            path = ("nodes", i)
            if node["name"] in out:
                self.err(path + ("name",), "duplicate node name %r" % node["name"])
                continue
            if node["name"] in RESERVED_HOST_NAMES:
                self.err(path + ("name",), "%r is also the name of a group (%s); a host cannot be named like one"
                         % (node["name"], ", ".join(sorted(RESERVED_HOST_NAMES))))
                continue
            hn = dict(base)
            if node["host_network"]:
                # Only the keys the engineer wrote override (``bond: null`` included);
                # the schema fills the others with None.
                written = self.raw["nodes"][i]["host_network"]
                override = {k: v for k, v in node["host_network"].items() if k in written}
                self.host_network_overrides[node["name"]] = override
                hn.update(override)
                self.check_host_network(hn, path + ("host_network",), nets, partial=True,
                                        skip_bridges=set() if "bridges" in written else base_bad_bridges)
            if is_talos and not node["install_disk"]:
                self.err(path + ("install_disk",), "is required with distribution talos")
            bond = hn.get("bond")
            nics = set((bond["interfaces"] or []) + [bond["name"]]) if bond else {hn.get("interface")}
            for ifname, mac in (node["macs"] or {}).items():
                if mac is None:
                    continue
                if ifname not in nics and not self.broken(*path, "host_network") and not self.broken("host_network"):
                    self.err(path + ("macs", ifname), "the node has no NIC %s (its uplink: %s)"
                             % (ifname, ", ".join(sorted(n for n in nics if n)) or "none"))
                    continue
                low = mac.lower()
                if low in macs:
                    self.err(path + ("macs", ifname), "MAC %s is already used by %s" % (mac, macs[low]))
                macs[low] = "node %s %s" % (node["name"], ifname)
            out[node["name"]] = self.node(node, path, hn, nets, mgmt, bgp)
        roles_known = not any(self.broken("nodes", i, "role") for i in range(len(spec["nodes"] or [])))
        if out and roles_known and not any(n["role"] == "controlplane" for n in out.values()):
            self.err(("nodes",), "no node has role controlplane; a cluster needs at least one")
        cps = sum(1 for n in out.values() if n["role"] == "controlplane")
        if cps and cps % 2 == 0:
            self.warnings.append("%d control-plane nodes: etcd tolerates no more failures with an even count "
                                 "than with one less; use an odd number (1, 3, 5)" % cps)
        return out

    def check_host_network(self, hn, path, nets, partial, skip_bridges=()):
        bond, iface = hn.get("bond"), hn.get("interface")
        if bond and iface:
            self.err(path, "set either bond or interface, not both%s"
                     % (" (set bond: null to use a single NIC)" if partial else ""))
        elif not bond and not iface:
            self.err(path, "needs a bond or an interface")
        if bond:
            members = bond["interfaces"] or []
            if len(set(members)) != len(members):
                self.err(path + ("bond", "interfaces"), "lists a NIC twice")
            if bond["name"] in members:
                self.err(path + ("bond", "interfaces"), "lists the bond %s itself" % bond["name"])
            if bond["name"] and "." in bond["name"]:
                self.err(path + ("bond", "name"), "%r is named like a VLAN link (NAME.VLAN)" % bond["name"])
            opts = bond["options"] or {}
            if opts.get("primary") and opts["primary"] not in members:
                self.err(path + ("bond", "options", "primary"), "%r is not a member of the bond" % opts["primary"])
            if opts.get("primary") and bond["mode"] != "active-backup":
                self.err(path + ("bond", "options", "primary"), "only applies to mode active-backup")
            if opts.get("lacp_rate") and bond["mode"] != "802.3ad":
                self.err(path + ("bond", "options", "lacp_rate"), "only applies to mode 802.3ad")
            if opts.get("xmit_hash_policy") and bond["mode"] == "active-backup":
                self.err(path + ("bond", "options", "xmit_hash_policy"), "does not apply to mode active-backup")
        native = hn.get("native_network")
        if native is not None and native not in nets:
            self.err(path + ("native_network",), "network %r does not exist (networks: %s)"
                     % (native, ", ".join(nets)))
        elif native is not None and nets[native]["vlan"] is not None:
            self.err(path + ("native_network",), "network %r is tagged (VLAN %d); the native network "
                     "is carried untagged" % (native, nets[native]["vlan"]))
        seen = {}
        for j, br in enumerate(hn.get("bridges") or []):
            if not br or j in skip_bridges:
                continue
            bpath = path + ("bridges", j)
            if br["network"] not in nets:
                self.err(bpath + ("network",), "network %r does not exist (networks: %s)"
                         % (br["network"], ", ".join(nets)))
            if br["name"] in seen:
                self.err(bpath + ("name",), "duplicate bridge name %r" % br["name"])
            if br["network"] in seen.values():
                self.err(bpath + ("network",), "network %r already has a bridge" % br["network"])
            if br["name"] in (iface, bond and bond["name"]):
                self.err(bpath + ("name",), "%r is also the name of the uplink" % br["name"])
            elif bond and br["name"] in (bond["interfaces"] or []):
                self.err(bpath + ("name",), "%r is also a member NIC of the bond" % br["name"])
            elif br["name"] and "." in br["name"]:
                self.err(bpath + ("name",), "%r is named like a VLAN link (NAME.VLAN); name bridges br-..."
                         % br["name"])
            elif br["name"] and _NIC_NAME.match(br["name"]):
                self.err(bpath + ("name",), "%r is named like a kernel NIC; name bridges br-..." % br["name"])
            seen[br["name"]] = br["network"]

    def node(self, node, path, hn, nets, mgmt, bgp):
        addrs = {}
        cidrs = {}
        for net_name, text in (node["addresses"] or {}).items():
            apath = path + ("addresses", net_name)
            net = nets.get(net_name)
            if net is None:
                self.err(apath, "network %r does not exist (networks: %s)" % (net_name, ", ".join(nets)))
                continue
            if net["net"] is None or net["broken"] or text is None:
                continue
            ip = _ip(text)
            if not _usable(net["net"], ip):
                self.err(apath, "%s is outside network %s %s or not a usable host address" % (ip, net_name, net["net"]))
                continue
            self.claim(ip, apath, "node %s" % node["name"])
            addrs[net_name] = text
            cidrs[net_name] = "%s/%d" % (text, net["net"].prefixlen)
        if mgmt is not None and mgmt["name"] not in (node["addresses"] or {}):
            self.err(path + ("addresses",), "has no address on the management network %s" % mgmt["name"])
        if bgp and bgp["network"] and bgp["network"] not in (node["addresses"] or {}):
            self.err(path + ("addresses",), "has no address on the BGP network %s" % bgp["network"])
        network = self.node_network(node, path, hn, nets, addrs, cidrs, mgmt)
        return _node_record(node, addrs, cidrs, mgmt["name"] if mgmt else None, network)

    def node_network(self, node, path, hn, nets, addrs, cidrs, mgmt):
        """Resolve one node's links: uplink (bond or NIC), VLANs, bridges, routes."""
        bond = hn.get("bond")
        uplink = bond["name"] if bond else hn.get("interface")
        if not uplink:
            return None
        native = hn.get("native_network")
        bridges = {b["network"]: b for b in (hn.get("bridges") or []) if b}
        attached = []
        for name in list(addrs) + [n for n in bridges if n not in addrs]:
            net = nets.get(name)
            if net is None or net["broken"]:
                continue
            if net["vlan"] is None and name != native:
                self.err(path + ("addresses", name), "network %s is untagged but the node's native network is %s; "
                         "a node carries one untagged network" % (name, native or "not set"))
                continue
            attached.append(net)
        # native first, then VLANs in ID order: parents before children.
        attached.sort(key=lambda n: -1 if n["vlan"] is None else n["vlan"])
        links = []
        macs = node.get("macs") or {}
        vlan_links = []
        by_net = {}
        for net in attached:
            if net["vlan"] is None:
                by_net[net["name"]] = uplink
                continue
            name = "%s.%d" % (uplink, net["vlan"])
            if len(name) > 15:
                self.err(path, "VLAN interface name %s is longer than 15 characters; shorten the uplink name" % name)
            vlan_links.append(_link(name, "vlan", net["mtu"], network=net["name"], parent=uplink,
                                    vlan_id=net["vlan"]))
            by_net[net["name"]] = name
        uplink_mtu = max([n["mtu"] for n in attached] or [1500])
        members = bond["interfaces"] if bond else []
        for m in members:
            links.append(_link(m, "ethernet", uplink_mtu, bond=uplink, mac=macs.get(m)))
        up = _link(uplink, "bond" if bond else "ethernet", uplink_mtu,
                   network=native if native in by_net else None, members=list(members),
                   mac=macs.get(uplink))
        if bond:
            opts = dict(BOND_DEFAULTS[bond["mode"]])
            opts.update({k: v for k, v in (bond["options"] or {}).items() if v is not None})
            up.update(mode=bond["mode"], options=opts)
        links.append(up)
        links.extend(vlan_links)
        by_name = {lk["name"]: lk for lk in links}
        for net_name, br in bridges.items():
            if net_name not in by_net:
                continue
            port = by_name[by_net[net_name]]
            port["bridge"] = br["name"]
            links.append(_link(br["name"], "bridge", nets[net_name]["mtu"], network=net_name,
                               ports=[port["name"]], stp=br["stp"]))
            by_net[net_name] = br["name"]
            by_name[br["name"]] = links[-1]
        for net_name, cidr in cidrs.items():
            if net_name in by_net:
                by_name[by_net[net_name]]["addresses"].append(cidr)
        routes = []
        for net in attached:
            dev = by_net[net["name"]]
            if net["name"] not in addrs or not net["gateway"]:
                continue
            if mgmt and net["name"] == mgmt["name"]:
                routes.append({"to": "0.0.0.0/0", "via": net["gateway"], "dev": dev, "network": net["name"]})
            for dest in net["routes"] or []:
                routes.append({"to": dest, "via": net["gateway"], "dev": dev, "network": net["name"]})
        return {
            "uplink": uplink,
            "native_network": native if native in by_net else None,
            "links": links,
            "routes": routes,
            "management_link": by_net.get(mgmt["name"]) if mgmt else None,
            "networks": {n: by_net[n] for n in by_net},
        }

    # ------------------------------------------------------------------
    def routers(self, items, nets, bgp, nodes):
        out = {}
        if items and bgp is None:
            self.err(("routers",), "routers peer over BGP: load_balancer.bgp is required")
        for i, r in enumerate(items):
            if not r or r["name"] is None:
                continue
            path = ("routers", i)
            if r["name"] in RESERVED_HOST_NAMES:
                self.err(path + ("name",), "%r is also the name of a group (%s); a host cannot be named like one"
                         % (r["name"], ", ".join(sorted(RESERVED_HOST_NAMES))))
                continue
            if r["name"] in out or r["name"] in nodes:
                self.err(path + ("name",), "duplicate host name %r (node and router names share one namespace)"
                         % r["name"])
                continue
            out[r["name"]] = r
            if bgp and bgp["net"] is not None and r["address"]:
                ip = _ip(r["address"])
                if not _usable(bgp["net"]["net"], ip):
                    self.err(path + ("address",), "%s is outside the BGP network %s %s"
                             % (ip, bgp["network"], bgp["net"]["net"]))
                else:
                    self.claim(ip, path + ("address",), "router %s" % r["name"])
            if r["management_address"] and r["management_address"] != r["address"]:
                self.claim(_ip(r["management_address"]), path + ("management_address",),
                           "router %s (management)" % r["name"])
        return out

    def pool_membership(self, pools, nets, nodes):
        for p in pools:
            if p["first"] is None:
                continue
            p["network"] = None
            p["announce_nodes"] = []
            if p["mode"] != "l2":
                continue
            for name, net in nets.items():
                if net["net"] is not None and net["net"].first <= p["first"] and p["last"] <= net["net"].last:
                    p["network"] = name
                    break
            if p["network"] is None:
                if not any(n["broken"] for n in nets.values()):
                    self.err(p["path"], "L2 pool %s is not inside any network; ARP only answers on a "
                             "network the nodes are attached to" % p["text"])
                continue
            p["announce_nodes"] = [n["name"] for n in nodes.values() if p["network"] in n["addresses"]]
            # Nodes whose address failed its own check would have counted.
            if not p["announce_nodes"] and not nets[p["network"]]["broken"] and not self.broken("nodes"):
                self.err(p["path"], "L2 pool %s is inside network %s, which no node is attached to"
                         % (p["text"], p["network"]))

    def address_collisions(self, pools):
        """Pool addresses must not be a node, router, gateway or the API VIP."""
        if not pools:
            return
        for ip, (opath, what) in self.owners.items():
            value = int(ip)
            for p in pools:
                if p["first"] is not None and p["first"] <= value <= p["last"]:
                    self.err(p["path"], "pool %s includes %s, the address of %s (%s)"
                             % (p["text"], ip, what, format_path(opath)))

    def network_stack(self, spec, pools, bgp, nodes):
        """The variant, its options with defaults, and what it installs; options of
        another variant (and settings of components it does not install) are refused."""
        cluster = spec["cluster"] or {}
        opts = cluster.get("network_stack") or {}
        variant = _variant(cluster)
        path = ("cluster", "network_stack")
        raw = self.raw.get("cluster") if isinstance(self.raw.get("cluster"), dict) else {}
        if variant != "cilium":
            for key in CILIUM_OPTIONS:
                if opts.get(key) is not None:
                    self.err(path + (key,), "only applies to variant cilium (variant %s%s)" % (
                        variant, ", which announces with MetalLB" if key == "lb_announcer" else ""))
        if variant != "kubeovn-cilium" and "join_cidr" in raw:
            self.err(("cluster", "join_cidr"), "is Kube-OVN's join network; variant %s has no Kube-OVN" % variant)
        out = {"variant": variant}
        if variant == "cilium":
            out.update(self.cilium_options(opts, path, cluster, pools, bgp, nodes))
        installs = list(VARIANT_COMPONENTS[variant])
        if out.get("lb_announcer") == "cilium" or (variant == "none" and not pools):
            installs.remove("metallb")
        raw_components = self.raw.get("components") if isinstance(self.raw.get("components"), dict) else {}
        for name in raw_components:
            if name in COMPONENT_NAMES and name not in installs and raw_components[name]:
                self.err(("components", name), "variant %s does not install %s%s" % (
                    variant, name, " (lb_announcer is cilium)" if name == "metallb" and variant == "cilium" else ""))
        if "multus" not in installs:
            for i, _ in enumerate(spec.get("attachments") or []):
                self.err(("attachments", i), "Multus attachments need a CNI rackboot installs; variant %s has none"
                         % variant)
        out["components"] = installs
        # How tenants are isolated: Cilium's policy where Cilium runs, else the
        # Kubernetes NetworkPolicy the CNI brought along must enforce.
        out["tenant_policy"] = "NetworkPolicy" if variant == "none" else "CiliumNetworkPolicy"
        return out

    def cilium_options(self, opts, path, cluster, pools, bgp, nodes):
        mode = opts.get("routing_mode") or "tunnel"
        proto = opts.get("tunnel_protocol")
        if proto and mode != "tunnel":
            self.err(path + ("tunnel_protocol",), "only applies to routing_mode tunnel")
        proto = (proto or "geneve") if mode == "tunnel" else None
        dsr = bool(opts.get("dsr"))
        if dsr and proto == "vxlan":
            self.err(path + ("dsr",), "DSR in tunnel mode carries the service address in a Geneve option: set "
                     "tunnel_protocol geneve (or routing_mode native)")
        mask = opts.get("pod_mask_size") or 24
        pod = cluster.get("pod_cidr")
        if pod and not self.broken("cluster", "pod_cidr") and not self.broken(*path, "pod_mask_size"):
            plen = _net(pod).prefixlen
            if mask < plen:
                self.err(path + ("pod_mask_size",), "/%d is wider than cluster.pod_cidr %s" % (mask, pod))
            elif 2 ** (mask - plen) < len(nodes):
                self.err(path + ("pod_mask_size",), "cluster.pod_cidr %s holds %d blocks of /%d, fewer than the %d "
                         "nodes (each node takes one)" % (pod, 2 ** (mask - plen), mask, len(nodes)))
        devices = opts.get("devices") or []
        announcer = opts.get("lb_announcer") or "metallb"
        l2 = []
        if announcer == "cilium":
            if bgp:
                self.err(path + ("lb_announcer",), "Cilium announces L2 pools only here; load_balancer.bgp (MetalLB's "
                         "BGP sessions with the routers) needs lb_announcer metallb")
            for p in pools:
                if p.get("first") is None or p["mode"] != "l2" or not p.get("network"):
                    continue
                links = sorted({n["network"]["networks"][p["network"]] for n in nodes.values()
                                if n["network"] and p["network"] in n["network"]["networks"]})
                missing = [lk for lk in links if devices and lk not in devices]
                if missing:
                    self.err(path + ("devices",), "L2 pool %s is announced on %s, which devices does not list "
                             "(Cilium answers ARP only on its devices)" % (p["name"], ", ".join(missing)))
                l2.append({"pool": p["name"], "interfaces": links})
        return {"routing_mode": mode, "tunnel_protocol": proto, "encryption": opts.get("encryption") or "none",
                "devices": list(devices), "dsr": dsr, "pod_mask_size": mask, "lb_announcer": announcer,
                "l2_announcements": l2}

    def tenants(self, items):
        names = []
        for i, t in enumerate(items):
            if not t or t["name"] is None:
                continue
            if t["name"] in names:
                self.err(("tenants", i, "name"), "duplicate tenant %r" % t["name"])
            elif t["name"] in RESERVED_NAMESPACES:
                self.err(("tenants", i, "name"), "%r is a system namespace" % t["name"])
            else:
                names.append(t["name"])
        return [{"name": n, "vpc": None} for n in names]

    def lb_class(self, lb):
        if lb.get("class") and self.stack and "metallb" not in self.stack["components"]:
            self.err(("load_balancer", "class"), "is MetalLB's loadBalancerClass; variant %s installs no MetalLB%s"
                     % (self.stack["variant"], " (lb_announcer is cilium)" if self.stack["variant"] == "cilium" else ""))

    def tenant_vpcs(self, spec, tenants, nets, cidrs, pools, nodes):
        """Tenant VPCs: subnets apart from each other and everything else; EIPs and
        floating IPs inside their external network and free; the external networks
        carried by a node bridge. Fills tenants[].vpc; returns the external networks."""
        by_name = {t["name"]: t for t in tenants}
        taken = [(path, what, n.first, n.last) for path, what, n in cidrs]
        taken += [(("networks", n["index"], "cidr"), "network %s (%s)" % (name, n["net"]), n["net"].first,
                   n["net"].last) for name, n in nets.items() if n["net"] is not None]
        taken += [(p["path"], "pool %s (%s)" % (p["name"], p["text"]), p["first"], p["last"])
                  for p in pools if p.get("first") is not None]
        variant = self.stack["variant"] if self.stack else None
        externals = {}
        for i, t in enumerate(spec["tenants"] or []):
            if not t or not t.get("vpc") or t["name"] not in by_name:
                continue
            path, vpc = ("tenants", i, "vpc"), t["vpc"]
            by_name[t["name"]]["vpc"] = None
            if variant and variant != "kubeovn-cilium":
                self.err(path, "tenant VPCs are Kube-OVN's; variant %s has no Kube-OVN" % variant)
                continue
            subnet = self.canonical(vpc["subnet"], path + ("subnet",))
            if subnet is None:
                continue
            if subnet.prefixlen > 29:
                self.err(path + ("subnet",), "%s is too small: at most /29 (gateway and pods)" % subnet)
                continue
            clash = next((o for o in taken if o[2] <= subnet.last and subnet.first <= o[3]), None)
            if clash:
                self.err(path + ("subnet",), "%s overlaps %s (%s)" % (subnet, clash[1], format_path(clash[0])))
                continue
            taken.append((path + ("subnet",), "tenant %s's subnet (%s)" % (t["name"], subnet), subnet.first,
                          subnet.last))
            out = {"subnet": str(subnet), "gateway": str(subnet[1]), "external_network": None, "eip": None,
                   "floating_ips": []}
            by_name[t["name"]]["vpc"] = out
            ext_name = vpc.get("external_network")
            if ext_name is None:
                for key in ("eip", "floating_ips"):
                    if vpc.get(key):
                        self.err(path + (key,), "needs external_network (the network it lives in)")
                continue
            ext = self.external_network(ext_name, path + ("external_network",), nets, nodes, pools, externals)
            if ext is None:
                continue
            out["external_network"] = ext_name
            net = nets[ext_name]["net"]
            if vpc.get("eip"):
                if self.external_address(vpc["eip"], path + ("eip",), ext_name, net, pools,
                                         "the EIP of tenant %s" % t["name"]):
                    out["eip"] = vpc["eip"]
            targets = set()
            for j, fip in enumerate(vpc.get("floating_ips") or []):
                if not fip or not fip["address"] or not fip["target"]:
                    continue
                fpath = path + ("floating_ips", j)
                target = _ip(fip["target"])
                if not _usable(subnet, target) or target == subnet[1]:
                    self.err(fpath + ("target",), "%s is not a pod or VM address of the subnet %s (its gateway is "
                             "%s)" % (target, subnet, subnet[1]))
                    continue
                if target in targets:
                    self.err(fpath + ("target",), "%s already has a floating IP" % target)
                    continue
                if self.external_address(fip["address"], fpath + ("address",), ext_name, net, pools,
                                         "a floating IP of tenant %s" % t["name"]):
                    targets.add(target)
                    out["floating_ips"].append({"address": fip["address"], "target": fip["target"]})
        for ext in externals.values():
            # Kube-OVN must not hand out (for the VPCs' router ports) what the
            # fabric already uses there: node, router, gateway and VIP addresses, pools.
            net = nets[ext["name"]]["net"]
            # Tenants' own EIPs and floating IPs are claimed by address, so not excluded.
            used = sorted(ip for ip, (opath, _) in self.owners.items() if ip in net and opath[0] != "tenants")
            ext["exclude_ips"] = [str(ip) for ip in used] + [
                "%s..%s" % (netaddr.IPAddress(max(p["first"], net.first)), netaddr.IPAddress(min(p["last"], net.last)))
                for p in pools if p.get("first") is not None and p["first"] <= net.last and net.first <= p["last"]]
        for i, t in enumerate(spec["tenants"] or []):
            if t and by_name.get(t["name"], {}).get("vpc") and (t["name"] in externals or t["name"] in KUBE_OVN_NAMES):
                self.err(("tenants", i, "name"), "%r is also the name of %s; a tenant VPC's Vpc and Subnet take the "
                         "tenant's name" % (t["name"], "an external network's Subnet" if t["name"] in externals
                                            else "one of Kube-OVN's own Vpc/Subnets"))
        return sorted(externals.values(), key=lambda e: e["name"])

    def external_network(self, name, path, nets, nodes, pools, externals):
        """The external network of a tenant VPC: a spec network with a gateway,
        reached through a bridge of the same name on every node that has one."""
        if name in externals:
            return externals[name]
        net = nets.get(name)
        if net is None:
            self.err(path, "network %r does not exist (networks: %s)" % (name, ", ".join(nets)))
            return None
        if net["broken"] or net["net"] is None:
            return None
        if len(name) > 12:
            self.err(path, "%r is longer than 12 characters: Kube-OVN names its provider network after it and "
                     "refuses longer names" % name)
            return None
        if not net["gateway"]:
            self.err(path, "network %s has no gateway; the VPCs route their egress to it" % name)
            return None
        if self.broken("nodes") or self.broken("host_network"):
            return None
        bridges = {}
        for node in nodes.values():
            nn = node["network"]
            link = nn and nn["networks"].get(name)
            if link and any(lk["name"] == link and lk["kind"] == "bridge" for lk in nn["links"]):
                bridges.setdefault(link, []).append(node["name"])
        if not bridges:
            self.err(path, "no node has a bridge on network %s; add one to host_network.bridges (Kube-OVN's "
                     "provider network takes it as its interface)" % name)
            return None
        if len(bridges) > 1:
            self.err(path, "nodes reach network %s through different bridges (%s); name them alike" % (name, "; ".join(
                "%s on %s" % (b, ", ".join(ns)) for b, ns in sorted(bridges.items()))))
            return None
        bridge, members = next(iter(bridges.items()))
        if not any(nodes[n]["labels"].get(EXTERNAL_GW_LABEL) == "true" for n in members):
            self.err(path, "no node with the bridge %s is labelled %s: \"true\" (Kube-OVN puts the VPCs' external "
                     "router ports on those nodes); add it to nodes[].labels" % (bridge, EXTERNAL_GW_LABEL))
            return None
        externals[name] = {"name": name, "cidr": str(net["net"]), "gateway": net["gateway"], "vlan": net["vlan"],
                           "bridge": bridge, "all_nodes": len(members) == len(nodes),
                           # the subset only (nothing on group all grows with the nodes otherwise)
                           "nodes": [] if len(members) == len(nodes) else members}
        return externals[name]

    def external_address(self, text, path, ext_name, net, pools, what):
        ip = _ip(text)
        if not _usable(net, ip):
            self.err(path, "%s is outside the external network %s %s or not a usable host address"
                     % (ip, ext_name, net))
            return False
        pool = next((p for p in pools if p.get("first") is not None and p["first"] <= int(ip) <= p["last"]), None)
        if pool:
            self.err(path, "%s is inside load-balancer pool %s (%s)" % (ip, pool["name"], pool["text"]))
            return False
        before = len(self.problems)
        self.claim(ip, path, what)
        return len(self.problems) == before

    def attachments(self, items, nets, nodes, pools):
        """Multus attachments: resolve each one's master link on the nodes; check IPAM ranges."""
        out = []
        seen = set()
        for i, a in enumerate(items):
            if not a or a["name"] is None or a["network"] is None:
                continue
            path = ("attachments", i)
            key = (a["namespace"], a["name"])
            if key in seen:
                self.err(path + ("name",), "duplicate attachment %s/%s" % key)
                continue
            seen.add(key)
            net = nets.get(a["network"])
            if net is None:
                self.err(path + ("network",), "network %r does not exist (networks: %s)"
                         % (a["network"], ", ".join(nets)))
                continue
            if net["broken"] or self.broken("nodes") or self.broken("host_network"):
                continue  # the root cause is reported where it is
            masters = {}     # link name -> [node names]
            no_bridge = []
            for node in nodes.values():
                nn = node["network"]
                if not nn or a["network"] not in nn["networks"]:
                    continue
                link = nn["networks"][a["network"]]
                kinds = {lk["name"]: lk["kind"] for lk in nn["links"]}
                if a["type"] == "bridge" and kinds.get(link) != "bridge":
                    no_bridge.append("%s (%s)" % (node["name"], link))
                    continue
                masters.setdefault(link, []).append(node["name"])
            if no_bridge:
                self.err(path + ("type",), "type bridge needs a bridge on network %s, but these nodes have none: %s; "
                         "add it to host_network.bridges" % (a["network"], ", ".join(no_bridge)))
                continue
            if not masters:
                self.err(path + ("network",), "no node is attached to network %s (give nodes an address or a bridge "
                         "on it)" % a["network"])
                continue
            if len(masters) > 1:
                self.err(path + ("network",), "nodes reach network %s through different links (%s); a "
                         "NetworkAttachmentDefinition names one interface for every node" % (a["network"], "; ".join(
                             "%s on %s" % (link, ", ".join(names)) for link, names in sorted(masters.items()))))
                continue
            master, members = next(iter(masters.items()))
            ipam = self.attachment_ipam(a["ipam"] or {"type": "none"}, path + ("ipam",), net, pools)
            out.append({"name": a["name"], "namespace": a["namespace"], "type": a["type"], "network": a["network"],
                        "master": master, "mtu": net["mtu"], "vlan": net["vlan"], "ipam": ipam,
                        # nodes: the subset on the network; empty when all_nodes (no O(n) list on group all)
                        "all_nodes": len(members) == len(nodes), "nodes": [] if len(members) == len(nodes) else members})
        return out

    def attachment_ipam(self, ipam, path, net, pools):
        out = dict(ipam)
        ranged = ipam["type"] in ("whereabouts", "host-local")
        if ipam.get("gateway") and net["net"] is not None and _ip(ipam["gateway"]) not in net["net"]:
            self.err(path + ("gateway",), "%s is outside network %s %s" % (ipam["gateway"], net["name"], net["net"]))
        if not ranged:
            for key in ("range", "range_start", "range_end"):
                if ipam.get(key):
                    self.err(path + (key,), "only applies to ipam types whereabouts and host-local")
            return out
        if not ipam.get("range"):
            self.err(path + ("range",), "is required for ipam type %s" % ipam["type"])
            return out
        rng = self.canonical(ipam["range"], path + ("range",))
        if rng is None or net["net"] is None:
            return out
        if rng not in net["net"]:
            self.err(path + ("range",), "%s is outside network %s %s" % (rng, net["name"], net["net"]))
            return out
        lo = _ip(ipam["range_start"]) if ipam.get("range_start") else rng[1 if rng.prefixlen < 31 else 0]
        hi = _ip(ipam["range_end"]) if ipam.get("range_end") else rng[-2 if rng.prefixlen < 31 else -1]
        for key, ip in (("range_start", lo), ("range_end", hi)):
            if ip not in rng:
                self.err(path + (key,), "%s is outside the range %s" % (ip, rng))
                return out
        if lo > hi:
            self.err(path + ("range_start",), "%s is after range_end %s" % (lo, hi))
            return out
        for ip, (opath, what) in sorted(self.owners.items()):
            if lo <= ip <= hi:
                self.err(path + ("range",), "%s-%s includes %s, the address of %s (%s); narrow it with "
                         "range_start/range_end" % (lo, hi, ip, what, format_path(opath)))
        for p in pools:
            if p.get("first") is not None and int(lo) <= p["last"] and p["first"] <= int(hi):
                self.err(path + ("range",), "%s-%s overlaps load-balancer pool %s (%s)" % (lo, hi, p["name"], p["text"]))
        out.update(range=str(rng), range_start=str(lo), range_end=str(hi))
        return out

    # ------------------------------------------------------------------
    def assemble(self, spec, cluster, nets, mgmt, pools, bgp, nodes, routers, tenants):
        svc = _net(cluster["service_cidr"])
        pod = _net(cluster["pod_cidr"])
        networks = [{k: v for k, v in n.items() if k not in ("index", "net")}
                    for n in nets.values()]
        for n, src in zip(networks, nets.values()):
            n["prefixlen"] = src["net"].prefixlen
            n["netmask"] = str(src["net"].netmask)
        pool_out = []
        for p in pools:
            pool_out.append({
                "name": p["name"], "mode": p["mode"], "auto_assign": p["auto_assign"],
                "cidr": p["cidr"], "range": p["range"], "addresses": p["addresses"], "cidrs": p["cidrs"],
                "size": p["last"] - p["first"] + 1, "network": p["network"],
                # announce_nodes only lists a subset (empty when every node announces).
                "announce_all": len(p["announce_nodes"]) == len(nodes),
                "announce_nodes": [] if len(p["announce_nodes"]) == len(nodes) else p["announce_nodes"],
            })
        bgp_pools = [p for p in pool_out if p["mode"] == "bgp"]
        cp = [n for n in nodes.values() if n["role"] == "controlplane"]
        bgp_out = None
        if bgp:
            bnet = bgp["net"]
            bgp_out = {
                "node_asn": bgp["node_asn"], "network": bgp["network"], "cidr": str(bnet["net"]),
                "vlan": bnet["vlan"], "hold_time": bgp["hold_time"], "keepalive_time": bgp["keepalive_time"],
                "bfd": bgp["bfd"],
                "max_prefixes": bgp["max_prefixes"] or max(1, sum(p["size"] for p in bgp_pools)),
                "accept": [{"prefix": c, "ge": 32, "le": 32} for p in bgp_pools for c in p["cidrs"]],
            }
        router_list = [{
            "name": r["name"], "platform": r["platform"], "asn": r["asn"], "address": r["address"],
            "management_address": r["management_address"] or r["address"],
            "listen_range": r["listen_range"], "default_route": r["default_route"],
        } for r in routers.values()]
        out_cluster = dict(cluster)
        out_cluster.update({
            "management_network": mgmt["name"],
            "api_endpoint": "https://%s:%d" % (cluster["api_vip"], cluster["api_port"]),
            "pod_gateway": str(pod[1]),
            "kubernetes_service_ip": str(svc[1]),
            "dns_service_ip": str(svc[10]),
            "bootstrap_node": cp[0]["name"],
            "controlplane_nodes": [n["name"] for n in cp],
            "networks": networks,
            "host_network": spec["host_network"],
            # Group `all` holds nothing that grows with the number of nodes:
            # `ansible-inventory --list` copies it into every host. Per-node
            # data is on each host (rackboot_node), the node list is groups.
            "node_count": len(nodes),
            "controlplane": [{"name": n["name"], "role": n["role"], "rack": n["rack"], "addresses": n["addresses"],
                              "management_address": n["management_address"]} for n in cp],
            "routers": router_list,
            "load_balancer": {"pools": pool_out, "bgp_pools": bgp_pools,
                              "l2_pools": [p for p in pool_out if p["mode"] == "l2"], "bgp": bgp_out,
                              "class": (spec["load_balancer"] or {}).get("class")},
            "tenants": tenants,
            "attachments": self.attachment_list,
            "components": spec["components"],
            "network_stack": self.stack,
            "external_networks": self.external_networks,
        })
        node_vars = {}
        node_specs = {}
        for n in nodes.values():
            n = dict(n, bgp=_node_bgp(bgp_out, router_list, n["addresses"]))
            node_vars[n["name"]] = n
            own = {k: n[k] for k in _NODE_OWN if n[k] != {}}   # empty labels/macs: 10,000 values at 5,000 nodes
            if n["name"] in self.host_network_overrides:
                own["host_network"] = self.host_network_overrides[n["name"]]
            node_specs[n["name"]] = own
        router_vars = {}
        for r in router_list:
            peers = [{"name": n["name"], "address": n["addresses"][bgp["network"]], "asn": bgp_out["node_asn"],
                      "rack": n["rack"]} for n in nodes.values()]
            router_vars[r["name"]] = dict(
                r, router_id=r["address"], cluster=cluster["name"],
                network={"name": bgp["network"], "cidr": bgp_out["cidr"], "vlan": bgp_out["vlan"],
                         "prefixlen": bgp["net"]["net"].prefixlen},
                address_cidr="%s/%d" % (r["address"], bgp["net"]["net"].prefixlen),
                peers=peers,
                node_asn=bgp_out["node_asn"],
                ebgp=bgp_out["node_asn"] != r["asn"],
                listen_range=bgp_out["cidr"] if r["listen_range"] else None,
                accept=bgp_out["accept"], max_prefixes=bgp_out["max_prefixes"],
                hold_time=bgp_out["hold_time"], keepalive_time=bgp_out["keepalive_time"], bfd=bgp_out["bfd"],
            )
        groups = {"k8s_nodes": list(node_vars), "controlplane": [n["name"] for n in cp],
                  "workers": [n for n, v in node_vars.items() if v["role"] == "worker"],
                  "routers": list(router_vars), cluster["distribution"]: list(node_vars)}
        for n in node_vars.values():
            if n["rack"]:
                groups.setdefault("rack_" + n["rack"].replace("-", "_"), []).append(n["name"])
        for r in router_vars.values():
            groups.setdefault(r["platform"], []).append(r["name"])
        return Model(out_cluster, node_vars, router_vars, groups, self.warnings, node_specs)


# What a node has of its own (rackboot_node_spec); the rest of rackboot_node
# follows from rackboot_cluster (resolve_node).
_NODE_OWN = ("name", "role", "rack", "install_disk", "labels", "macs", "addresses")


def _node_record(node, addrs, cidrs, mgmt_name, network):
    return {
        "name": node["name"],
        "role": node["role"],
        "rack": node["rack"],
        "install_disk": node["install_disk"],
        "labels": node.get("labels") or {},
        "macs": node.get("macs") or {},
        "addresses": addrs,
        "address_cidrs": cidrs,
        "management_address": addrs.get(mgmt_name) if mgmt_name else None,
        "network": network,
    }


def _node_bgp(bgp, routers, addrs):
    """A node's BGP session settings from the cluster's (``load_balancer.bgp`` as published)."""
    if not bgp:
        return None
    return {
        "asn": bgp["node_asn"], "address": addrs[bgp["network"]], "network": bgp["network"],
        "hold_time": bgp["hold_time"], "keepalive_time": bgp["keepalive_time"], "bfd": bgp["bfd"],
        "peers": [{"name": r["name"], "address": r["address"], "asn": r["asn"], "platform": r["platform"]}
                  for r in routers],
    }


def cluster_json(cluster):
    """``rackboot_cluster`` as the one JSON string group ``all`` carries (``rackboot_cluster_json``),
    and the routers' shared peer list as group ``routers``' ``rackboot_router_peers_json``.

    ``ansible-inventory --list`` copies group ``all`` into every host and
    encodes each value in Python: one string costs what one value does, the
    structure ~600 (docs/development.md, "Scale").
    """
    return json.dumps(cluster, sort_keys=True, separators=(",", ":"))


def node_context(cluster):
    """What ``resolve_node`` needs of ``rackboot_cluster``, read once (networks, host network, BGP, routers)."""
    bgp = cluster["load_balancer"]["bgp"]
    return {
        "nets": {n["name"]: dict(n) for n in cluster["networks"]},
        "mgmt": cluster["management_network"],
        "host_network": dict(cluster["host_network"]),
        "bgp": dict(bgp) if bgp else None,
        "routers": [dict(r) for r in cluster["routers"]],
    }


def resolve_node(spec, cluster=None, context=None):
    """``rackboot_node`` of one node from its ``rackboot_node_spec`` and ``rackboot_cluster``.

    The same computation as ``build`` (the link model is ``_Builder.node_network``),
    on data that is already valid: this runs when a play reads ``rackboot_node``.
    ``context`` (``node_context(cluster)``) spares reading the cluster again per node.
    """
    ctx = context or node_context(cluster)
    nets, mgmt = ctx["nets"], ctx["mgmt"]
    hn = dict(ctx["host_network"])
    hn.update(spec.get("host_network") or {})
    addrs = dict(spec["addresses"])
    cidrs = {k: "%s/%d" % (v, nets[k]["prefixlen"]) for k, v in addrs.items()}
    network = _Builder().node_network(spec, (), hn, nets, addrs, cidrs, {"name": mgmt})
    out = _node_record(spec, addrs, cidrs, mgmt, network)
    out["bgp"] = _node_bgp(ctx["bgp"], ctx["routers"], addrs)
    return out


def _link(name, kind, mtu, network=None, parent=None, vlan_id=None, members=None, ports=None, bond=None,
          mac=None, stp=None):
    return {"name": name, "kind": kind, "mtu": mtu, "addresses": [], "network": network, "parent": parent,
            "vlan_id": vlan_id, "members": members or [], "ports": ports or [], "bond": bond, "bridge": None,
            "mode": None, "options": {}, "mac": mac, "stp": stp}


def _lines_for(paths, lines):
    """The line of each path, or of its deepest part that is in the file ("is required" has no line of its own)."""
    out = {}
    for path in paths:
        for k in range(len(path), 0 if path else -1, -1):
            line = lines.get(tuple(path[:k]))
            if line:
                out[path] = line
                break
    return out


def locate_lines(text, paths):
    """Map spec paths to 1-based line numbers by reading the YAML again, with line tracking.

    Only called on the error path, so a valid spec is read once, without.
    """
    try:
        _, _, lines = spec_loader.read(text, track_lines=True)
    except spec_loader.LoadProblem:
        return {}
    return _lines_for(paths, lines)


def read_spec(path):
    """Read, check and compute one cluster spec file: the API of ``rackboot validate``.

    Returns the ``Model``; raises ``SpecError`` whose ``items()`` are
    ``[{file, line, path, message}]``. Never raises anything else for a bad
    file: unreadable, not UTF-8, not YAML, over a limit, empty, or a bug.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(spec_loader.MAX_BYTES + 1)
        text = raw.decode("utf-8")
    except OSError as e:
        raise SpecError([((), "cannot be read: %s" % (e.strerror or e))], path)
    except UnicodeDecodeError as e:
        raise SpecError([((), "is not UTF-8 text (byte %d)" % e.start)], path)
    with spec_loader.no_collection():
        return _read_text(path, text)


def _read_text(path, text):
    try:
        data, problems, lines = spec_loader.read(text)
        if problems:  # read again for line numbers
            data, problems, lines = spec_loader.read(text, track_lines=True)
    except spec_loader.LoadProblem as e:
        raise SpecError([(e.path, e.reason)], path, {e.path: e.line} if e.line else {})
    except Exception as e:  # noqa: BLE001 - whatever the reader trips over is a spec problem
        raise SpecError([((), "cannot be read (%s in rackboot's reader; please report it)" % type(e).__name__)], path)
    if data is None:
        raise SpecError([((), "is empty; a cluster spec starts with 'plugin: rackboot.metal.cluster'")], path)
    own_lines = {p: line for p, _, line in problems if line}   # a duplicate key's own line, not the first's
    problems = [(p, reason) for p, reason, _ in problems]
    if lines:
        lines = _lines_for([p for p, _ in problems], lines)
        lines.update(own_lines)
    return build(data, path, text, problems=problems, lines=lines or None)


def validate_file(path):
    """``(model, [])`` for a valid spec, ``(None, [{file, line, path, message}, ...])`` otherwise."""
    try:
        return read_spec(path), []
    except SpecError as e:
        return None, e.items()


def build(data, source=None, text=None, problems=None, lines=None):
    """Validate a loaded spec and compute the model; raise SpecError with every problem.

    ``problems`` are ``(path, reason)`` found while reading the file (see
    spec_loader); ``lines`` maps paths to lines, or ``text`` (the spec's YAML
    source) is composed again to find them, only when there is a problem.
    """
    builder = _Builder(problems)
    try:
        model = builder.run(data)
    except Exception as e:  # noqa: BLE001 - a bug must still name the file, never a bare traceback
        if not builder.problems:
            builder.err((), "cannot be checked (%s in rackboot's model; please report it)" % type(e).__name__)
        model = None
    if model is None or builder.problems:
        problems = builder.problems
        paths = [p for p, _ in problems]
        lines = dict(lines or {})
        missing = [p for p in paths if p not in lines]
        if missing and text:
            lines.update(locate_lines(text, missing))
        problems.sort(key=lambda pr: lines.get(pr[0]) or 10 ** 9)
        raise SpecError(problems, source, lines, data)
    return model
