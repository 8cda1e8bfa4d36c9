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
import ipaddress
import re
import unicodedata

from ansible_collections.rackboot.metal.plugins.plugin_utils.spec_loader import BadNumber, Refused

__all__ = ["Field", "SPEC", "check", "format_path", "parse_ipv4", "show", "NAME_RE", "IFNAME_RE", "IPV4_RE"]

# Every pattern is matched whole (fullmatch) and ASCII-only: "$" would accept a
# trailing newline and "\d" Arabic-Indic or fullwidth digits.
_A = re.ASCII
NAME_RE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?", _A)
# Linux interface names: 1-15 bytes, no '/', ':', whitespace (IFNAMSIZ - 1).
IFNAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}", _A)
DNS_NAME_RE = re.compile(r"(?=.{1,253}\Z)[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*", _A)
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_RE = re.compile(r"%s(?:\.%s){3}" % (_OCTET, _OCTET), _A)
VERSION_RE = re.compile(r"v?[0-9]+\.[0-9]+\.[0-9]+", _A)
# Component versions (chart and image tags): 1.2.3, v1.2.3, 1.2.3-rc.1, 1.2.3+build.
COMPONENT_VERSION_RE = re.compile(r"v?[0-9]+(?:\.[0-9]+){1,3}(?:[-+][0-9A-Za-z][0-9A-Za-z.-]{0,63})?", _A)
MAC_RE = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}", _A)
PATH_RE = re.compile(r"/[A-Za-z0-9._/+:@-]{1,254}", _A)
# Chart references: a URL, oci:// or a local path; no whitespace or shell characters.
CHART_RE = re.compile(r"[A-Za-z0-9._/:@%+=~-]{1,512}", _A)
# Kubernetes label keys ([prefix/]name) and values (apimachinery validation).
_LABEL_NAME = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
LABEL_KEY_RE = re.compile(r"(?:(?=[^/]{1,253}/)[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*/)?"
                          + _LABEL_NAME, _A)
LABEL_VALUE_RE = re.compile(r"(?:%s)?" % _LABEL_NAME, _A)
# Certificate SANs: a DNS name (wildcard allowed in the first label) or an IPv4 address.
SAN_RE = re.compile(r"(?=.{1,253}\Z)(?:\*|[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*", _A)
MAX_DEPTH = 64
MAX_STRING = 4096      # characters in a structured string field
ASN_MAX = 4294967295


class Field(object):
    """One field of the spec.

    kind: str | int | bool | dict | list | map | any | name | ifname |
          dnsname | ipv4 | cidr | version | mac | asn
    """

    __slots__ = ("kind", "required", "default", "choices", "fields", "item", "min", "max",
                 "nullable", "doc", "min_items", "key_kind")

    def __init__(self, kind, required=False, default=None, choices=None, fields=None, item=None,
                 min=None, max=None, nullable=False, doc="", min_items=0, key_kind=None):
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
        self.key_kind = key_kind


_KEY_RE = re.compile(r"[A-Za-z0-9_./@-]{1,64}", re.ASCII)


def format_path(path, data=None):
    """('nodes', 2, 'addresses', 'mgmt') -> 'nodes[2] (w1).addresses.mgmt'.

    With ``data`` (the spec as read) a list item with a valid ``name`` is
    named after its index. Keys that are not plain ASCII are escaped, so an
    unknown key cannot carry control characters into a terminal.
    """
    out = ""
    node = data
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
            node = node[part] if isinstance(node, list) and 0 <= part < len(node) else None
            name = node.get("name") if isinstance(node, dict) else None
            if isinstance(name, str) and NAME_RE.fullmatch(name):
                out += " (%s)" % name
        else:
            text = str(part)
            if not _KEY_RE.fullmatch(text):
                text = repr(text[:64])
            out += ("." if out else "") + text
            node = node.get(part) if isinstance(node, dict) else None
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


NETWORK_STACK_VARIANTS = ["kubeovn-cilium", "cilium", "none"]
NETWORK_STACK_FIELDS = {
    "variant": Field("str", default="kubeovn-cilium", choices=NETWORK_STACK_VARIANTS,
                     doc="kubeovn-cilium: Kube-OVN with Cilium chained; cilium: Cilium alone; "
                         "none: no CNI (bring your own)"),
    "pod_mask_size": Field("int", min=16, max=28, doc="cilium: prefix length of each node's block of "
                                                      "cluster.pod_cidr (cluster-pool IPAM); default 24"),
    "routing_mode": Field("str", choices=["native", "tunnel"], doc="cilium: pod traffic between nodes routed "
                                                                   "natively (nodes share L2) or tunnelled; "
                                                                   "default tunnel"),
    "tunnel_protocol": Field("str", choices=["vxlan", "geneve"], doc="cilium with routing_mode tunnel; "
                                                                     "default geneve"),
    "encryption": Field("str", choices=["none", "wireguard", "ipsec"],
                        doc="cilium: transparent encryption of pod traffic; default none (ipsec needs the "
                            "vaulted rackboot_cilium_ipsec_keys)"),
    "devices": Field("list", item=Field("ifname"), min_items=1,
                     doc="cilium: node interfaces Cilium attaches to (NodePort, L2 announcements); "
                         "default: Cilium detects them"),
    "dsr": Field("bool", doc="cilium: direct server return for load-balanced traffic (Maglev backend "
                             "selection either way); default false"),
    "lb_announcer": Field("str", choices=["metallb", "cilium"],
                          doc="cilium: who announces LoadBalancer addresses: MetalLB, or Cilium's LB-IPAM "
                              "and L2 announcements (L2 pools only); default metallb"),
}


TENANT_VPC_FIELDS = {
    "subnet": Field("cidr", required=True, doc="the tenant's subnet (Kube-OVN Subnet in the tenant's Vpc); its "
                                               "first address is the gateway"),
    "external_network": Field("name", doc="spec network the VPC reaches the outside through (a node bridge on "
                                          "it carries the Kube-OVN provider network)"),
    "eip": Field("ipv4", doc="address in external_network the subnet's egress is SNATed to"),
    "floating_ips": Field("list", default=[], doc="1:1 NAT of an external address to a pod or VM address",
                          item=Field("dict", fields={
                              "address": Field("ipv4", required=True, doc="address in external_network"),
                              "target": Field("ipv4", required=True, doc="pod or VM address in the subnet"),
                          })),
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
        "pod_cidr": Field("cidr", default="10.244.0.0/16", doc="pod CIDR: Kube-OVN's shared subnet, or "
                                                                "Cilium's cluster-pool under variant cilium"),
        "service_cidr": Field("cidr", default="10.96.0.0/16", doc="service CIDR"),
        "join_cidr": Field("cidr", default="100.64.0.0/16", doc="Kube-OVN node-to-pod join CIDR (variant "
                                                                 "kubeovn-cilium only)"),
        "api_vip": Field("ipv4", required=True, doc="floating Kubernetes API address on the management network"),
        "api_port": Field("int", default=6443, min=1, max=65535, doc="Kubernetes API port"),
        "management_network": Field("name", doc="network of node addresses, SSH and the API VIP; "
                                               "default: host_network.native_network"),
        "cert_sans": Field("list", item=Field("san"), default=[],
                           doc="extra names/addresses for the API server certificate"),
        "image_registry": Field("str", doc="local registry (host[:port][/prefix]) every network-stack image is "
                                           "pulled from, same path/tag/digest; default: the upstream registries"),
        # The variant and its options; cluster_model refuses options of another variant
        # (docs/network-stack.md). Options without a schema default are None when not
        # written, so the model can tell what the engineer asked for.
        "network_stack": Field("dict", default={}, doc="CNI design: variant and the options of that variant",
                               fields=NETWORK_STACK_FIELDS),
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
                       "install_disk": Field("path", doc="Talos install disk (required for talos)"),
                       "addresses": Field("map", required=True, item=Field("ipv4"), key_kind="name",
                                          doc="network name -> the node's address on it"),
                       "host_network": Field("dict", fields=_host_network_fields(True),
                                             doc="override of host_network keys for this node"),
                       "macs": Field("map", item=Field("mac"), default={}, key_kind="ifname",
                                     doc="NIC name -> MAC address (pins NICs by hardware address)"),
                       "labels": Field("map", item=Field("label_value"), default={}, key_kind="label_key",
                                       doc="extra Kubernetes node labels"),
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
        "class": Field("label_key", doc="MetalLB serves only Services with this spec.loadBalancerClass "
                                        "(so it does not fight another LB controller); default: every Service "
                                        "without a class"),
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
                         "vpc": Field("dict", fields=TENANT_VPC_FIELDS,
                                      doc="kubeovn-cilium only: the tenant's own Kube-OVN VPC and subnet, with "
                                          "egress and floating IPs on an external network"),
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
                            "version": Field("component_version", doc="version override (default: pinned)"),
                            "chart": Field("chart", doc="chart reference: repo URL, oci:// or local path"),
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
_STRING_KINDS = frozenset(["str", "name", "ifname", "dnsname", "ipv4", "cidr", "version", "mac", "path", "chart",
                           "component_version", "san", "label_key", "label_value"])
_KIND_PATTERNS = {
    "name": (NAME_RE, "is not a DNS-1123 label (lowercase letters, digits and '-', starting and ending with a "
                      "letter or digit, at most 63 characters)"),
    "ifname": (IFNAME_RE, "is not a valid Linux interface name (1-15 ASCII letters, digits, '_', '.', '@', '-')"),
    "dnsname": (DNS_NAME_RE, "is not a valid DNS domain name"),
    "version": (VERSION_RE, 'is not a version like "1.34.1"'),
    "component_version": (COMPONENT_VERSION_RE, 'is not a version like "1.2.3" or "v1.2.3-rc.1"'),
    "mac": (MAC_RE, "is not a MAC address (like 52:54:00:12:34:56)"),
    "path": (PATH_RE, "is not an absolute device path like /dev/sda"),
    "chart": (CHART_RE, "is not a chart reference (a URL, oci://... or a path, without spaces)"),
    "san": (SAN_RE, "is not a DNS name or IPv4 address the API server certificate can carry"),
    "label_key": (LABEL_KEY_RE, "is not a Kubernetes label key ([DNS-subdomain/]name, the name at most 63 "
                                "letters, digits, '-', '_', '.', starting and ending with a letter or digit)"),
    "label_value": (LABEL_VALUE_RE, "is not a Kubernetes label value (at most 63 letters, digits, '-', '_', '.', "
                                    "starting and ending with a letter or digit)"),
}


def show(value):
    """A value as it may appear in an error: short printable ASCII only.

    Anything else (long, non-ASCII, control characters) is described, not
    echoed, so that a secret pasted into the wrong field or a terminal escape
    sequence does not end up in logs.
    """
    if isinstance(value, BadNumber):
        value = value.text
    if isinstance(value, str):
        if len(value) <= 64 and value.isascii() and value.isprintable():
            return repr(value)
        return "the value (%d characters)" % len(value)
    if isinstance(value, (bool, int, float)) or value is None:
        text = repr(value)
        return text if len(text) <= 32 else "a %d-digit number" % len(text)
    return _describe(value)


def _control_char(value):
    for ch in value:
        if ch < " " or ch == "\x7f" or unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            return ch
    return None


def parse_ipv4(text):
    """Strict dotted quad (ASCII digits, no leading zeros) -> int, else None."""
    if not isinstance(text, str) or not IPV4_RE.fullmatch(text):
        return None
    a, b, c, d = text.split(".")
    return (int(a) << 24) | (int(b) << 16) | (int(c) << 8) | int(d)


def _ipv4_reason(value, what="an IPv4 address"):
    host, sep, port = value.rpartition(":")
    if sep and IPV4_RE.fullmatch(host) and port.isascii() and port.isdigit():
        return "%s must be %s without a port" % (show(value), what)
    if ":" in value:
        try:
            ipaddress.IPv6Address(value.split("/")[0])
            return "%s: IPv6 is not supported yet, use %s" % (show(value), what)
        except ValueError:
            pass
    parts = value.split(".")
    if len(parts) == 4 and all(p.isascii() and p.isdigit() for p in parts):
        if any(len(p) > 1 and p[0] == "0" for p in parts):
            return ("%s is not %s: an octet is zero-padded; write it without leading zeros (tools disagree "
                    "whether 010 is 10 or octal 8)" % (show(value), what))
        return "%s is not %s: an octet is above 255" % (show(value), what)
    if any(not ch.isascii() for ch in value):
        return "%s is not %s (only ASCII digits and dots)" % (show(value), what)
    return "%s is not %s" % (show(value), what)


def _scalar_check(field, value):
    """Return an error reason or None for scalar kinds."""
    kind = field.kind
    if isinstance(value, BadNumber):
        if kind in ("int", "asn"):
            return ("%s is not a plain decimal integer: YAML 1.1 reads leading zeros as octal, 0x/0b as hex/binary, "
                    "'_' as a separator and 1:30 as base 60; write the number in decimal" % value.text)
        return "must be a string; quote %s (YAML 1.1 would read it as a number)" % show(value.text)
    if kind in _STRING_KINDS:
        if not isinstance(value, str):
            if kind == "version" and isinstance(value, (int, float)) and not isinstance(value, bool):
                return 'must be a quoted string like "1.34.1", got %s' % show(value)
            return "must be a string, got %s" % _describe(value)
        if len(value) > MAX_STRING:
            return "is %d characters long; at most %d are allowed" % (len(value), MAX_STRING)
        bad = _control_char(value)
        if bad is not None:
            return ("contains the control character U+%04X%s; write it on one line without it"
                    % (ord(bad), " (a trailing newline: use a plain or quoted scalar, not '|')"
                       if value.endswith("\n") and bad == "\n" else ""))
        pattern = _KIND_PATTERNS.get(kind)
        if pattern and not pattern[0].fullmatch(value):
            return "%s %s" % (show(value), pattern[1])
        if kind == "ipv4" and not IPV4_RE.fullmatch(value):
            if "/" in value and IPV4_RE.fullmatch(value.split("/")[0]):
                return "%s must be a plain address without a prefix length" % show(value)
            return _ipv4_reason(value)
        if kind == "cidr":
            addr, sep, plen = value.partition("/")
            if not sep:
                return "%s is not a CIDR (expected ADDRESS/PREFIX, like 10.0.0.0/24)" % show(value)
            if not IPV4_RE.fullmatch(addr):
                return _ipv4_reason(addr, "an IPv4 CIDR") if ":" not in value else _ipv4_reason(value, "an IPv4 CIDR")
            if not (plen.isascii() and plen.isdigit()) or int(plen) > 32 or (len(plen) > 1 and plen[0] == "0"):
                return "%s is not a CIDR: the prefix length must be 0-32 in ASCII digits" % show(value)
        if kind == "san" and value[:1].isdigit() and not IPV4_RE.fullmatch(value) and \
                all(p.isdigit() for p in value.split(".")):
            return _ipv4_reason(value)
        if field.choices and value not in field.choices:
            return _choice_error(value, field.choices)
        return None
    if kind in ("int", "asn"):
        if isinstance(value, bool) or not isinstance(value, int):
            return "must be an integer, got %s" % _describe(value)
        lo, hi = (1, ASN_MAX) if kind == "asn" else (field.min, field.max)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            what = "ASN" if kind == "asn" else "value"
            return "%s %s is outside %d-%d" % (what, show(value), lo, hi)
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
    msg = "%s is not one of: %s" % (show(value), ", ".join(choices))
    return msg + ("; did you mean %r?" % hint[0] if hint else "")


def _free_form(value, path, problems, depth=0):
    """Helm values and constructed options: any YAML, but no refused numbers or tags, bounded depth."""
    if depth > MAX_DEPTH:
        problems.append((path, "nested deeper than %d levels" % MAX_DEPTH))
        return False
    if isinstance(value, BadNumber):
        problems.append((path, "%s is not a plain decimal number; quote it to keep it a string, or write it in "
                               "decimal (YAML 1.1 and Helm read leading zeros as octal)" % value.text))
        return False
    if isinstance(value, Refused):
        return False
    ok = True
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                problems.append((path + (str(k),), "keys must be strings"))
                ok = False
            ok = _free_form(v, path + (k,), problems, depth + 1) and ok
    elif isinstance(value, list):
        for i, v in enumerate(value):
            ok = _free_form(v, path + (i,), problems, depth + 1) and ok
    return ok


def check(value, field, path, problems):
    """Check ``value`` against ``field``; return the normalized value.

    Problems are appended to ``problems`` as ``(path_tuple, reason)``. A field
    with a problem comes back as ``None`` while its siblings are kept, so the
    semantic checks still run on everything that is well-formed and one run
    reports as many problems as it can. (The model skips checks that would use
    a field that failed here: one root cause, one message.)
    """
    if isinstance(value, Refused):  # the reader reported it
        return None
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
            return value if _free_form(value, path, problems) else None
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
        key_field = Field(field.key_kind) if field.key_kind else None
        for key, item in value.items():
            if not isinstance(key, str):
                problems.append((path + (str(key),), "keys must be strings"))
                continue
            if key_field is not None:
                reason = _scalar_check(key_field, key)
                if reason:
                    problems.append((path + (key,), "the key " + reason))
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
    "any": "any", "path": "device path", "chart": "chart reference", "component_version": "version string",
    "san": "DNS name or IPv4 address", "label_key": "label key", "label_value": "label value",
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
