# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Structural schema of the rackboot cluster spec, and the checker for it.

The schema is plain data (see ``SPEC``) so that it documents the format in one
place: ``docs/cluster-spec.md`` is written from it and a test keeps the two in
step. The checker walks a loaded YAML document, fills in defaults and collects
*every* structural problem (unknown key, wrong type, bad choice, malformed
address) with the path of the offending field, instead of stopping at the
first one. Semantic rules (overlaps, membership, duplicates) live in
``cluster_model``.
"""

from __future__ import annotations

import difflib
import re

__all__ = ["Field", "SPEC", "check", "format_path", "NAME_RE", "IFNAME_RE"]

NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# Linux interface names: 1-15 bytes, no '/', ':', whitespace (IFNAMSIZ - 1).
IFNAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}$")
DNS_NAME_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$")
IPV4_RE = re.compile(r"^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$")
VERSION_RE = re.compile(r"^v?\d+\.\d+\.\d+$")
MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
ASN_MAX = 4294967295


class Field(object):
    """One field of the spec.

    kind: str | int | bool | dict | list | map | any | name | ifname |
          dnsname | ipv4 | cidr | version | mac | asn
    """

    __slots__ = ("kind", "required", "default", "choices", "fields", "item", "min", "max",
                 "nullable", "doc", "min_items")

    def __init__(self, kind, required=False, default=None, choices=None, fields=None, item=None,
                 min=None, max=None, nullable=False, doc="", min_items=0):
        self.kind = kind
        self.required = required
        self.default = default
        self.choices = choices
        self.fields = fields
        self.item = item
        self.min = min
        self.max = max
        self.nullable = nullable
        self.doc = doc
        self.min_items = min_items


def format_path(path):
    """('nodes', 2, 'addresses', 'mgmt') -> 'nodes[2].addresses.mgmt'."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


_TYPE_WORDS = {
    dict: "a mapping", list: "a list", str: "a string", int: "an integer", bool: "true or false",
    float: "a number", type(None): "empty (null)",
}


def _describe(value):
    for typ, word in _TYPE_WORDS.items():
        if type(value) is typ:
            return word
    return type(value).__name__


# --------------------------------------------------------------------------
# The spec format. Everything a datacenter engineer may write, with defaults.
# --------------------------------------------------------------------------
BOND_MODES = ["802.3ad", "active-backup", "balance-xor"]

_BOND_OPTIONS = {
    "miimon": Field("int", default=100, min=0, max=60000, doc="link monitoring interval in ms"),
    "lacp_rate": Field("str", choices=["slow", "fast"], doc="802.3ad only; default fast"),
    "xmit_hash_policy": Field("str", choices=["layer2", "layer2+3", "layer3+4", "encap2+3", "encap3+4"],
                              doc="802.3ad and balance-xor; default layer3+4"),
    "primary": Field("ifname", doc="active-backup only: the preferred member"),
}

_BOND = {
    "name": Field("ifname", default="bond0", doc="bond interface name"),
    "mode": Field("str", required=True, choices=BOND_MODES, doc="bonding mode"),
    "interfaces": Field("list", required=True, item=Field("ifname"), min_items=1,
                        doc="member NICs (kernel names)"),
    "options": Field("dict", fields=_BOND_OPTIONS, default={}, doc="bonding driver options"),
}

_BRIDGE = {
    "name": Field("ifname", required=True, doc="bridge interface name"),
    "network": Field("name", required=True, doc="network the bridge sits on (its VLAN becomes a bridge port)"),
    "stp": Field("bool", default=False, doc="spanning tree on the bridge"),
}


def _host_network_fields(partial):
    """host_network at the top level, or as a per-node override (all optional, nullable)."""
    return {
        "bond": Field("dict", fields=_BOND, nullable=True,
                      doc="bond carrying all networks; null for a single NIC"),
        "interface": Field("ifname", nullable=partial,
                           doc="single NIC carrying all networks, when there is no bond"),
        "native_network": Field("name", nullable=partial,
                                doc="the untagged network on the bond/NIC (usually the management network)"),
        "bridges": Field("list", item=Field("dict", fields=_BRIDGE), default=None if partial else [],
                         nullable=partial, doc="Linux bridges on top of networks"),
    }


SPEC = Field("dict", required=True, fields={
    "plugin": Field("str", required=True, choices=["rackboot.metal.cluster"],
                    doc="must be rackboot.metal.cluster"),
    "cluster": Field("dict", required=True, doc="cluster-wide settings", fields={
        "name": Field("name", required=True, doc="cluster name (DNS-1123 label)"),
        "distribution": Field("str", required=True, choices=["talos", "kubeadm"],
                              doc="node operating system / bootstrapper"),
        "kubernetes_version": Field("version", required=True, doc='Kubernetes version, quoted ("1.34.1")'),
        "domain": Field("dnsname", default="cozy.local", doc="cluster DNS domain"),
        "pod_cidr": Field("cidr", default="10.244.0.0/16", doc="shared pod CIDR (Kube-OVN)"),
        "service_cidr": Field("cidr", default="10.96.0.0/16", doc="service CIDR"),
        "join_cidr": Field("cidr", default="100.64.0.0/16", doc="Kube-OVN node-to-pod join CIDR"),
        "api_vip": Field("ipv4", required=True, doc="floating Kubernetes API address on the management network"),
        "api_port": Field("int", default=6443, min=1, max=65535, doc="Kubernetes API port"),
        "management_network": Field("name", doc="network of node addresses, SSH and the API VIP; "
                                               "default: host_network.native_network"),
        "cert_sans": Field("list", item=Field("str"), default=[],
                           doc="extra names/addresses for the API server certificate"),
        "image_registry": Field("str", doc="local registry (host[:port][/prefix]) every network-stack image is "
                                           "pulled from, same path/tag/digest; default: the upstream registries"),
    }),
    "networks": Field("list", required=True, min_items=1, doc="L2 segments of the fabric",
                      item=Field("dict", fields={
                          "name": Field("name", required=True, doc="network name"),
                          "cidr": Field("cidr", required=True, doc="IPv4 subnet"),
                          "vlan": Field("int", min=1, max=4094, doc="802.1Q VLAN ID; absent = untagged"),
                          "gateway": Field("ipv4", doc="gateway on this network (the management network's "
                                                       "becomes the default route)"),
                          "mtu": Field("int", default=1500, min=1280, max=9216, doc="MTU"),
                          "routes": Field("list", item=Field("cidr"), default=[],
                                          doc="extra destinations routed via this network's gateway"),
                      })),
    "host_network": Field("dict", required=True, fields=_host_network_fields(False),
                          doc="host networking of every node; a node may override any key"),
    "nodes": Field("list", required=True, min_items=1, doc="cluster nodes",
                   item=Field("dict", fields={
                       "name": Field("name", required=True, doc="node host name"),
                       "role": Field("str", required=True, choices=["controlplane", "worker"], doc="node role"),
                       "rack": Field("name", doc="rack (becomes group rack_<name>)"),
                       "install_disk": Field("str", doc="Talos install disk (required for talos)"),
                       "addresses": Field("map", required=True, item=Field("ipv4"),
                                          doc="network name -> the node's address on it"),
                       "host_network": Field("dict", fields=_host_network_fields(True),
                                             doc="override of host_network keys for this node"),
                       "macs": Field("map", item=Field("mac"), default={},
                                     doc="NIC name -> MAC address (pins NICs by hardware address)"),
                       "labels": Field("map", item=Field("str"), default={}, doc="extra Kubernetes node labels"),
                   })),
    "routers": Field("list", default=[], doc="upstream BGP routers that peer with every node",
                     item=Field("dict", fields={
                         "name": Field("name", required=True, doc="router host name"),
                         "platform": Field("str", required=True, choices=["frr", "bird"], doc="routing daemon"),
                         "asn": Field("asn", required=True, doc="router ASN"),
                         "address": Field("ipv4", required=True, doc="router address on the BGP network"),
                         "management_address": Field("ipv4", doc="address Ansible connects to "
                                                                 "(default: address)"),
                         "listen_range": Field("bool", default=False,
                                               doc="accept sessions from the whole BGP network "
                                                   "instead of one neighbor per node"),
                         "default_route": Field("bool", default=False,
                                                doc="announce a default route to the nodes"),
                     })),
    "load_balancer": Field("dict", default={}, doc="MetalLB pools and BGP", fields={
        "pools": Field("list", default=[], doc="LoadBalancer address pools",
                       item=Field("dict", fields={
                           "name": Field("name", required=True, doc="pool name"),
                           "cidr": Field("cidr", doc="pool as a CIDR (one of cidr/range)"),
                           "range": Field("str", doc="pool as FIRST-LAST (one of cidr/range)"),
                           "mode": Field("str", required=True, choices=["bgp", "l2"],
                                         doc="bgp: /32 per service, ECMP; l2: ARP from one node"),
                           "auto_assign": Field("bool", default=True, doc="MetalLB autoAssign"),
                       })),
        "bgp": Field("dict", doc="BGP between node speakers and routers", fields={
            "node_asn": Field("asn", required=True, doc="ASN of every node's speaker"),
            "network": Field("name", required=True, doc="network the BGP sessions run on"),
            "hold_time": Field("int", default=9, min=3, max=65535, doc="BGP hold time, s"),
            "keepalive_time": Field("int", default=3, min=1, max=21845, doc="BGP keepalive, s"),
            "bfd": Field("dict", nullable=True, default={"interval_ms": 100, "multiplier": 3},
                         doc="BFD on every session; null disables", fields={
                             "interval_ms": Field("int", default=100, min=10, max=60000,
                                                  doc="BFD transmit/receive interval, ms"),
                             "multiplier": Field("int", default=3, min=2, max=255, doc="BFD detect multiplier"),
                         }),
            "max_prefixes": Field("int", min=1, max=4294967295,
                                  doc="routers cut a node off above this many prefixes "
                                      "(default: the number of addresses in the BGP pools)"),
        }),
    }),
    "tenants": Field("list", default=[], doc="namespaces isolated by default-deny policies",
                     item=Field("dict", fields={
                         "name": Field("name", required=True, doc="namespace name"),
                     })),
    # Multus secondary networks (NetworkAttachmentDefinitions); see docs/network-stack.md.
    "attachments": Field("list", default=[], doc="Multus secondary networks for pods (NetworkAttachmentDefinitions)",
                         item=Field("dict", fields={
                             "name": Field("name", required=True, doc="NetworkAttachmentDefinition name"),
                             "namespace": Field("name", default="default",
                                                doc="namespace of the definition (a tenant or an existing one)"),
                             "type": Field("str", required=True, choices=["macvlan", "bridge"],
                                           doc="macvlan on the network's node link, or a port on the node's bridge"),
                             "network": Field("name", required=True, doc="spec network the pods attach to"),
                             "ipam": Field("dict", default={"type": "none"}, doc="address management", fields={
                                 "type": Field("str", default="none",
                                               choices=["whereabouts", "host-local", "static", "dhcp", "none"],
                                               doc="CNI IPAM plugin; none = no address"),
                                 "range": Field("cidr", doc="whereabouts/host-local: CIDR inside the network"),
                                 "range_start": Field("ipv4", doc="first address handed out (default: range start)"),
                                 "range_end": Field("ipv4", doc="last address handed out (default: range end)"),
                                 "gateway": Field("ipv4", doc="gateway given to pods (default: none)"),
                             }),
                         })),
    "components": Field("dict", default={}, doc="overrides of pinned versions and chart sources",
                        fields={name: Field("dict", default={}, fields=dict({
                            "version": Field("str", doc="version override (default: pinned)"),
                            "chart": Field("str", doc="chart reference: repo URL, oci:// or local path"),
                            "values": Field("dict", default={}, doc="extra Helm values merged last"),
                        }, **extra)) for name, extra in (
                            ("kube_ovn", {}),
                            ("cilium", {"hubble": Field("bool", default=True, doc="Hubble relay"),
                                        "hubble_ui": Field("bool", default=False, doc="Hubble UI")}),
                            ("multus", {}),
                            ("metallb", {}),
                            ("cozy_proxy", {}),
                            ("kube_vip", {}),
                        )}),
    # Options of Ansible's `constructed` feature, accepted as in any inventory plugin.
    "compose": Field("dict", default={}, doc="Ansible constructed: variables from Jinja2 expressions"),
    "groups": Field("dict", default={}, doc="Ansible constructed: groups from conditionals"),
    "keyed_groups": Field("list", default=[], item=Field("dict"), doc="Ansible constructed: keyed groups"),
    "strict": Field("bool", default=False, doc="Ansible constructed: fail on bad expressions"),
    "leading_separator": Field("bool", default=True, doc="Ansible constructed"),
    "use_extra_vars": Field("bool", default=False, doc="Ansible constructed"),
})


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------
def _scalar_check(field, value):
    """Return an error reason or None for scalar kinds."""
    kind = field.kind
    if kind in ("str", "name", "ifname", "dnsname", "ipv4", "cidr", "version", "mac"):
        if not isinstance(value, str):
            if kind == "version" and isinstance(value, (int, float)):
                return 'must be a quoted string like "1.34.1", got %r' % (value,)
            return "must be a string, got %s" % _describe(value)
        if kind == "name" and not NAME_RE.match(value):
            return ("%r is not a DNS-1123 label (lowercase letters, digits and '-', "
                    "starting and ending with a letter or digit, at most 63 characters)" % value)
        if kind == "ifname" and not IFNAME_RE.match(value):
            return "%r is not a valid Linux interface name (1-15 characters, no '/', ':' or spaces)" % value
        if kind == "dnsname" and not DNS_NAME_RE.match(value):
            return "%r is not a valid DNS domain name" % value
        if kind == "ipv4" and not IPV4_RE.match(value):
            if ":" in value:
                return "%r: IPv6 is not supported yet, use an IPv4 address" % value
            if "/" in value:
                return "%r must be a plain address without a prefix length" % value
            return "%r is not an IPv4 address" % value
        if kind == "cidr":
            addr, sep, plen = value.partition("/")
            if ":" in value:
                return "%r: IPv6 is not supported yet, use an IPv4 CIDR" % value
            if not sep or not IPV4_RE.match(addr) or not plen.isdigit() or int(plen) > 32:
                return "%r is not a CIDR (expected ADDRESS/PREFIX, like 10.0.0.0/24)" % value
        if kind == "version" and not VERSION_RE.match(value):
            return '%r is not a version like "1.34.1"' % value
        if kind == "mac" and not MAC_RE.match(value):
            return "%r is not a MAC address (like 52:54:00:12:34:56)" % value
        if field.choices and value not in field.choices:
            return _choice_error(value, field.choices)
        return None
    if kind in ("int", "asn"):
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer, got %s" % _describe(value)
        lo, hi = (1, ASN_MAX) if kind == "asn" else (field.min, field.max)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            what = "ASN" if kind == "asn" else "value"
            return "%s %d is outside %d-%d" % (what, value, lo, hi)
        return None
    if kind == "bool":
        if not isinstance(value, bool):
            return "must be true or false, got %s" % _describe(value)
        return None
    if kind == "any":
        return None
    raise ValueError("unknown field kind %r" % kind)  # pragma: no cover - schema bug


def _choice_error(value, choices):
    hint = difflib.get_close_matches(str(value), choices, n=1)
    msg = "%r is not one of: %s" % (value, ", ".join(choices))
    return msg + ("; did you mean %r?" % hint[0] if hint else "")


def check(value, field, path, problems):
    """Check ``value`` against ``field``; return the normalized value.

    Problems are appended to ``problems`` as ``(path_tuple, reason)``. A field
    with a problem comes back as ``None`` while its siblings are kept, so the
    semantic checks still run on everything that is well-formed and one run
    reports as many problems as it can.
    """
    if value is None:
        if field.nullable:
            return None
        problems.append((path, "must not be empty"))
        return None
    kind = field.kind
    if kind == "dict":
        if not isinstance(value, dict):
            problems.append((path, "must be a mapping, got %s" % _describe(value)))
            return None
        if field.fields is None:  # free-form mapping (Helm values, constructed options)
            return value
        out = {}
        for key in value:
            if key not in field.fields:
                hint = difflib.get_close_matches(str(key), list(field.fields), n=1, cutoff=0.6)
                problems.append((path + (key,), "unknown key%s; allowed: %s" % (
                    "; did you mean %r?" % hint[0] if hint else "", ", ".join(field.fields))))
        for key, sub in field.fields.items():
            if key in value:
                out[key] = check(value[key], sub, path + (key,), problems)
            elif sub.required:
                problems.append((path + (key,), "is required"))
                out[key] = None
            elif sub.default is not None:
                out[key] = check(_copy(sub.default), sub, path + (key,), problems)
            else:
                out[key] = None
        return out
    if kind == "list":
        if not isinstance(value, list):
            problems.append((path, "must be a list, got %s" % _describe(value)))
            return None
        if len(value) < field.min_items:
            problems.append((path, "must have at least %d item%s" % (field.min_items, "" if field.min_items == 1 else "s")))
            return None
        return [check(item, field.item, path + (i,), problems) for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            problems.append((path, "must be a mapping, got %s" % _describe(value)))
            return None
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path + (str(key),), "keys must be strings"))
                continue
            out[key] = check(item, field.item, path + (key,), problems)
        return out
    reason = _scalar_check(field, value)
    if reason:
        problems.append((path, reason))
        return None
    return value


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# --------------------------------------------------------------------------
# Reference documentation, generated from SPEC (docs/cluster-spec.md embeds it;
# tests/unit/test_spec_docs.py keeps the two in step).
# --------------------------------------------------------------------------
_KIND_WORDS = {
    "str": "string", "int": "integer", "bool": "boolean", "dict": "mapping", "list": "list", "map": "mapping",
    "name": "DNS-1123 label", "ifname": "interface name", "dnsname": "DNS name", "ipv4": "IPv4 address",
    "cidr": "IPv4 CIDR", "version": "version string", "mac": "MAC address", "asn": "ASN (1-4294967295)",
    "any": "any",
}


def _type_words(field):
    words = _KIND_WORDS[field.kind]
    if field.kind == "list" and field.item is not None:
        words = "list of %s" % _KIND_WORDS[field.item.kind]
        if field.item.kind == "dict" and field.item.fields:
            words = "list of mappings"
    if field.kind == "map" and field.item is not None:
        words = "mapping of %s" % _KIND_WORDS[field.item.kind]
    if field.choices:
        words += ": " + " \\| ".join("`%s`" % c for c in field.choices)
    if field.kind == "int" and (field.min is not None or field.max is not None):
        words += " (%s-%s)" % (field.min, field.max)
    if field.nullable:
        words += ", or null"
    return words


def _default_words(field):
    if field.required:
        return "**required**"
    if field.default in (None, [], {}):
        return ""
    import json
    return "`%s`" % json.dumps(field.default)


def reference_markdown():
    """One table row per field path, in schema order."""
    rows = ["| Field | Type | Default | Meaning |", "| --- | --- | --- | --- |"]

    def walk(field, prefix):
        subfields = field.fields
        if field.kind == "list" and field.item is not None and field.item.fields:
            subfields, prefix = field.item.fields, prefix + "[]"
        if not subfields:
            return
        for key, sub in subfields.items():
            path = "%s.%s" % (prefix, key) if prefix else key
            rows.append("| `%s` | %s | %s | %s |" % (path, _type_words(sub), _default_words(sub), sub.doc))
            walk(sub, path)

    walk(SPEC, "")
    return "\n".join(rows) + "\n"
