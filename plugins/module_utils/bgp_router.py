# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""The platform-neutral configuration of an upstream BGP router.

``router_config(router, password)`` turns ``rackboot_router`` (published by the
inventory plugin, see docs/development.md) into the one model that both
router templates (FRR's frr.conf and BIRD's bird.conf) format: one peer group
for the nodes, its neighbors or a listen range, the inbound prefix filter,
the BFD profile, the multipath flags and what is announced to the nodes.
Every policy decision lives here so the two templates only differ in syntax.

Nothing a node says is trusted beyond what the spec allows it to say
(RFC 7454): only pool /32s, only the node's own ASN as the whole AS path,
the next hop always the node's own address, a bounded number of routes, and
no stale routes kept for a node the router itself found dead (graceful
restart). See docs/bgp-routers.md for why each choice was made.
"""

from __future__ import annotations

import re

__all__ = ["router_config", "MASK", "PEER_GROUP", "BFD_PROFILE", "MAX_PATHS"]

# What a masked password is rendered as (render mode, diffs, logs).
MASK = "********"
# Names the router configuration uses; stable so an applied config diffs cleanly.
PEER_GROUP = "K8S-NODES"
BFD_PROFILE = "rackboot"
PREFIX_LIST_IN = "RACKBOOT-LB-IN"
PREFIX_LIST_DEFAULT = "RACKBOOT-DEFAULT"
ROUTE_MAP_IN = "RACKBOOT-NODES-IN"
ROUTE_MAP_OUT = "RACKBOOT-NODES-OUT"
AS_PATH_LIST = "RACKBOOT-NODE-PATH"
# ECMP width cap: FRR's Debian build and the Linux kernel both take 64 nexthops.
MAX_PATHS = 64


def _ident(name):
    """A node name as a config identifier (BIRD protocol names: letters, digits, _)."""
    return "node_" + re.sub(r"[^A-Za-z0-9_]", "_", str(name))


def _require(router, key):
    if not isinstance(router, dict) or key not in router:
        raise ValueError("rackboot_router has no %r: pass the variable the rackboot.metal.cluster "
                         "inventory plugin publishes for a router host" % key)
    return router[key]


def router_config(router, password=None, mask=False):
    """Return the router's BGP configuration model.

    ``password`` is the MD5 password of every session (``rackboot_bgp_password``);
    ``None`` or empty disables MD5. ``mask=True`` keeps the password out of the
    result (``MASK`` instead), for artifacts that are reviewed, not applied.
    """
    peers = list(_require(router, "peers"))
    asn = _require(router, "asn")
    node_asn = _require(router, "node_asn")
    listen_range = router.get("listen_range")
    ebgp = node_asn != asn
    peer_asns = sorted({p["asn"] for p in peers} | {node_asn})
    bfd = router.get("bfd")
    secret = None
    if password:
        secret = MASK if mask else str(password)
    # ECMP across every node: one path per node (at least 2 so a listen range
    # that learns more nodes later still spreads), capped at the platform limit.
    paths = min(MAX_PATHS, max(2, len(peers)))
    accept = [dict(seq=5 * (i + 1), prefix=a["prefix"], ge=a["ge"], le=a["le"])
              for i, a in enumerate(_require(router, "accept"))]
    # The whole AS path a node may send: its own ASN alone (eBGP), nothing (iBGP). A node
    # prepending, or relaying someone else's path, is refused.
    node_asns = sorted({p["asn"] for p in peers} | {node_asn})
    as_paths = [[]] if not ebgp else [[a] for a in node_asns if a != asn]
    return {
        "name": _require(router, "name"),
        "cluster": router.get("cluster"),
        "asn": asn,
        "router_id": router.get("router_id") or _require(router, "address"),
        "address": _require(router, "address"),
        "peer_group": {
            "name": PEER_GROUP,
            "remote_asn": node_asn,
            "ebgp": ebgp,
            "password": secret,
            "hold_time": _require(router, "hold_time"),
            "keepalive_time": _require(router, "keepalive_time"),
            "bfd": bool(bfd),
            # Routes a node may send (BIRD: received, filtered or not; FRR 8.4: accepted, see
            # docs/bgp-routers.md); above it the session is torn down and stays down until an
            # operator lets the node back in (a flooding node is broken, not briefly busy).
            "max_prefixes": _require(router, "max_prefixes"),
            "max_prefixes_action": "disable",
        },
        # Graceful restart: the router stays a helper (a speaker that restarts with its
        # forwarding state kept does not leave ECMP), but does not negotiate RFC 8538's N-bit:
        # with it a session the router ends itself (hold timer expired) keeps the dead node's
        # routes as stale for the speaker's restart time (120 s). BFD down and hold-timer expiry
        # then drop the node at once on both platforms; BIRD has no N-bit and no LLGR here.
        "graceful_restart": {"helper": True, "notification": False, "long_lived": False},
        # A listen range replaces the per-node neighbors (any node address in
        # the BGP network may connect); otherwise one neighbor per node.
        "listen_range": listen_range,
        "neighbors": [] if listen_range else [
            {"name": p["name"], "id": _ident(p["name"]), "address": p["address"], "asn": p["asn"]}
            for p in peers],
        # The profile's name carries its values: FRR 8.4 has no `no transmit-interval` (or
        # receive-interval, detect-multiplier), so frr-reload cannot take a profile back to
        # FRR's defaults, which its running-config omits; a new value is a new profile.
        "bfd_profile": None if not bfd else {
            "name": "%s_%dx%d" % (BFD_PROFILE, bfd["interval_ms"], bfd["multiplier"]),
            "interval_ms": bfd["interval_ms"], "multiplier": bfd["multiplier"]},
        "import": {
            "prefix_list": PREFIX_LIST_IN,
            "route_map": ROUTE_MAP_IN,
            # Only /32s inside BGP-mode pools; an empty list rejects everything.
            "accept": accept,
            "as_path_list": AS_PATH_LIST,
            "as_paths": as_paths,
            # The next hop of every accepted route is rewritten to the address of the node that
            # sent it: a node can draw traffic only to itself (not to another node or a third
            # party on the segment), and this needs no per-node policy (listen ranges, O(1)).
            "next_hop": "peer-address",
        },
        "export": {
            "route_map": ROUTE_MAP_OUT,
            "prefix_list": PREFIX_LIST_DEFAULT,
            # Nothing is announced to the nodes unless the spec asks for a default route.
            "default_route": bool(router.get("default_route")),
        },
        "multipath": {
            "paths": paths,
            "ibgp": not ebgp,
            # Nodes in different ASNs still share one ECMP route.
            "relax": len(peer_asns) > 1,
        },
    }
