# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Talos (>= 1.12) network documents from a node's network model.

``documents(node, api_vip=None)`` turns ``rackboot_node`` (its ``network``
section: links and routes, as computed by cluster_model) into the
multi-document network configuration of Talos: ``LinkAliasConfig`` for NICs
pinned by MAC, ``LinkConfig`` for a single-NIC uplink, ``BondConfig``,
``VLANConfig``, ``BridgeConfig`` and, on control-plane nodes, a
``Layer2VIPConfig`` for the API VIP on the management link. Pure functions:
nothing is derived from the spec here, only translated.
"""

from __future__ import annotations

__all__ = ["documents", "link_ref", "alias_name", "routes_by_link", "NetworkError"]

API = "v1alpha1"
BOND_OPTION_KEYS = (("miimon", "miimon"), ("lacp_rate", "lacpRate"), ("xmit_hash_policy", "xmitHashPolicy"))


class NetworkError(Exception):
    """The node network model cannot be expressed as Talos documents."""


def alias_name(nic):
    """Talos link alias for a NIC pinned by MAC.

    Talos warns against aliases that look like kernel names (eno1, enp65s0):
    they may clash with the physical interface names, so the alias is prefixed.
    """
    return "nic-" + nic


def link_ref(node, name):
    """How Talos documents refer to link ``name``: its alias when the NIC is pinned by MAC."""
    return alias_name(name) if (node.get("macs") or {}).get(name) else name


def routes_by_link(network):
    """Routes of the model grouped by the link they leave through, in model order."""
    out = {}
    for route in network.get("routes") or []:
        entry = {}
        if route["to"] != "0.0.0.0/0":       # Talos: no destination = default route
            entry["destination"] = route["to"]
        entry["gateway"] = route["via"]
        out.setdefault(route["dev"], []).append(entry)
    return out


def _common(link, routes):
    """Fields every link kind shares, in a fixed order."""
    out = {"mtu": link["mtu"]}
    if link["addresses"]:
        out["addresses"] = [{"address": a} for a in link["addresses"]]
    if routes:
        out["routes"] = routes
    return out


def documents(node, api_vip=None):
    """The node's network documents, parents before children, deterministic order."""
    net = node.get("network")
    if not net or not net.get("links"):
        raise NetworkError("node %s has no host network (rackboot_node.network is empty)" % node.get("name"))
    routes = routes_by_link(net)
    docs = []
    macs = node.get("macs") or {}
    for link in net["links"]:
        if link["kind"] == "ethernet" and macs.get(link["name"]):
            docs.append({"apiVersion": API, "kind": "LinkAliasConfig", "name": alias_name(link["name"]),
                         "selector": {"match": 'mac(link.permanent_addr) == "%s"' % macs[link["name"]].lower()}})
    for link in net["links"]:
        name = link_ref(node, link["name"])
        kind = link["kind"]
        if kind == "ethernet":
            if link["bond"]:
                # A bond member: the bond sets its MTU and state; it only needs to exist.
                continue
            doc = {"apiVersion": API, "kind": "LinkConfig", "name": name, "up": True}
        elif kind == "bond":
            members = [link_ref(node, m) for m in link["members"]]
            primary = (link["options"] or {}).get("primary")
            if primary:
                # BondConfig has no `primary`: the first enslaved link becomes the active one.
                members.sort(key=lambda m: m != link_ref(node, primary))
            doc = {"apiVersion": API, "kind": "BondConfig", "name": name, "links": members, "bondMode": link["mode"]}
            for ours, theirs in BOND_OPTION_KEYS:
                value = (link["options"] or {}).get(ours)
                if value is not None:
                    doc[theirs] = value
            doc["up"] = True
        elif kind == "vlan":
            doc = {"apiVersion": API, "kind": "VLANConfig", "name": name, "vlanID": link["vlan_id"],
                   "vlanMode": "802.1q", "parent": link_ref(node, link["parent"]), "up": True}
        elif kind == "bridge":
            doc = {"apiVersion": API, "kind": "BridgeConfig", "name": name,
                   "links": [link_ref(node, p) for p in link["ports"]],
                   "stp": {"enabled": bool(link["stp"])}, "up": True}
        else:
            raise NetworkError("node %s: link %s has unknown kind %r" % (node.get("name"), link["name"], kind))
        doc.update(_common(link, routes.get(link["name"])))
        docs.append(doc)
    if api_vip and node.get("role") == "controlplane":
        mgmt = net.get("management_link")
        if not mgmt:
            raise NetworkError("node %s has no management link for the API VIP" % node.get("name"))
        docs.append({"apiVersion": API, "kind": "Layer2VIPConfig", "name": api_vip, "link": link_ref(node, mgmt)})
    return docs
