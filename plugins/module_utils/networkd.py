# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Render a node's resolved host network (``rackboot_node.network``) as
systemd-networkd files, and the small helpers the node_network modules share.

Pure functions only (no I/O besides what the callers pass in), so the unit
tests can check every file the role would write.

Input: ``links`` and ``routes`` exactly as the inventory plugin publishes
them (docs/development.md): links carry ``name kind mtu addresses network
parent vlan_id members ports bond bridge mode options mac stp``; routes
carry ``to via dev network``.

Output of ``render_networkd``: ``{file name: content}``, every name starting
with ``PREFIX`` so that the module manages exactly these files and nothing
else in /etc/systemd/network.
"""

from __future__ import annotations

import fnmatch
import re

__all__ = ["PREFIX", "KINDS", "NETDEV_KINDS", "ModelError", "check_links", "render_networkd",
           "parse_ini", "shadowing_files", "ifupdown_stanzas", "comment_out_stanzas",
           "managed_names", "delete_order"]

PREFIX = "10-rackboot-"
KINDS = ("ethernet", "bond", "vlan", "bridge")
# Kinds that are virtual devices (a .netdev file creates them; removal deletes them).
NETDEV_KINDS = ("bond", "vlan", "bridge")
_IFNAME = re.compile(r"^[^/:\s]{1,15}$")


class ModelError(ValueError):
    """The links/routes given to the renderer are inconsistent."""


def _bool(value):
    return "yes" if value else "no"


def check_links(links, routes):
    """Validate the link model before anything is rendered; raise ModelError
    naming the link and field. The inventory plugin already validated the
    spec: this guards the module against hand-written input."""
    problems = []
    names = {}
    for i, lk in enumerate(links):
        where = "links[%d]" % i
        name = lk.get("name")
        if not isinstance(name, str) or not _IFNAME.match(name):
            problems.append("%s.name: %r is not a Linux interface name" % (where, name))
            continue
        where = "links[%d] (%s)" % (i, name)
        if name in names:
            problems.append("%s: duplicate link name" % where)
        names[name] = lk
        if lk.get("kind") not in KINDS:
            problems.append("%s.kind: %r is not one of %s" % (where, lk.get("kind"), ", ".join(KINDS)))
        mtu = lk.get("mtu")
        if mtu is not None and (not isinstance(mtu, int) or not 68 <= mtu <= 65535):
            problems.append("%s.mtu: %r is not an MTU" % (where, mtu))
        if lk.get("kind") == "vlan":
            vid = lk.get("vlan_id")
            if not isinstance(vid, int) or not 1 <= vid <= 4094:
                problems.append("%s.vlan_id: %r is outside 1-4094" % (where, vid))
            if not lk.get("parent"):
                problems.append("%s.parent: a VLAN needs a parent link" % where)
        if lk.get("kind") == "bond" and not lk.get("mode"):
            problems.append("%s.mode: a bond needs a mode" % where)
    for i, lk in enumerate(links):
        name = lk.get("name")
        where = "links[%d] (%s)" % (i, name)
        for key in ("parent", "bond", "bridge"):
            ref = lk.get(key)
            if ref and ref not in names:
                problems.append("%s.%s: link %r is not in the model" % (where, key, ref))
        for key in ("members", "ports"):
            for ref in lk.get(key) or []:
                if ref not in names:
                    problems.append("%s.%s: link %r is not in the model" % (where, key, ref))
        parent = names.get(lk.get("parent"))
        if parent and lk.get("mtu") and parent.get("mtu") and parent["mtu"] < lk["mtu"]:
            problems.append("%s.mtu: %d is larger than the MTU %d of its parent %s"
                            % (where, lk["mtu"], parent["mtu"], parent["name"]))
    for i, rt in enumerate(routes):
        if rt.get("dev") not in names:
            problems.append("routes[%d].dev: link %r is not in the model" % (i, rt.get("dev")))
        if not rt.get("to") or not rt.get("via"):
            problems.append("routes[%d]: needs to and via" % i)
    if problems:
        raise ModelError("; ".join(problems))


def managed_names(links):
    """Names of every link the model manages."""
    return [lk["name"] for lk in links]


def delete_order(kinds):
    """Order virtual devices for deletion: bridges, then VLANs, then bonds
    (children before their parents). ``kinds``: {name: kind}."""
    rank = {"bridge": 0, "vlan": 1, "bond": 2}
    return sorted(kinds, key=lambda n: (rank.get(kinds[n], 3), n))


def _section(name, pairs):
    lines = ["[%s]" % name]
    for key, value in pairs:
        if value is None:
            continue
        lines.append("%s=%s" % (key, value))
    return "\n".join(lines) + "\n"


_HEADER = "# Managed by rackboot (node_network role); changes here are overwritten.\n"


def _netdev(lk):
    out = [_HEADER, _section("NetDev", [("Name", lk["name"]), ("Kind", lk["kind"]),
                                        ("MTUBytes", lk.get("mtu")),
                                        ("MACAddress", lk.get("mac") if lk["kind"] != "ethernet" else None)])]
    if lk["kind"] == "bond":
        opts = lk.get("options") or {}
        pairs = [("Mode", lk["mode"])]
        if opts.get("miimon") is not None:
            pairs.append(("MIIMonitorSec", "%dms" % opts["miimon"]))
        if lk["mode"] == "802.3ad" and opts.get("lacp_rate"):
            pairs.append(("LACPTransmitRate", opts["lacp_rate"]))
        if lk["mode"] != "active-backup" and opts.get("xmit_hash_policy"):
            pairs.append(("TransmitHashPolicy", opts["xmit_hash_policy"]))
        out.append(_section("Bond", pairs))
    elif lk["kind"] == "vlan":
        out.append(_section("VLAN", [("Id", lk["vlan_id"])]))
    elif lk["kind"] == "bridge":
        out.append(_section("Bridge", [("STP", _bool(lk.get("stp")))]))
    return "\n".join(out)


def _network(lk, links, routes):
    match = [("Name", lk["name"])]
    if lk["kind"] == "ethernet" and lk.get("mac"):
        # The permanent MAC: a bond member's current MAC becomes the bond's.
        match.append(("PermanentMACAddress", lk["mac"].lower()))
    children = [c for c in links if c.get("parent") == lk["name"] and c["kind"] == "vlan"]
    net = [
        ("Description", "rackboot %s%s" % (lk["kind"], (" network " + lk["network"]) if lk.get("network") else "")),
        # IPv4 only: no SLAAC, no link-local addresses on fabric links.
        ("LinkLocalAddressing", "no"),
        ("IPv6AcceptRA", "no"),
    ]
    if lk.get("bond"):
        net.append(("Bond", lk["bond"]))
        bond = next((b for b in links if b["name"] == lk["bond"]), None)
        if bond and (bond.get("options") or {}).get("primary") == lk["name"]:
            net.append(("PrimarySlave", "yes"))
    if lk.get("bridge"):
        net.append(("Bridge", lk["bridge"]))
    for addr in lk.get("addresses") or []:
        net.append(("Address", addr))
    for child in children:
        net.append(("VLAN", child["name"]))
    if lk["kind"] in NETDEV_KINDS:
        # A bond, VLAN or bridge keeps its addresses while its carrier flaps
        # (e.g. a bond waiting for LACP), so routes stay in place.
        net.append(("ConfigureWithoutCarrier", "yes"))
    out = [_HEADER, _section("Match", match)]
    if lk.get("mtu"):
        out.append(_section("Link", [("MTUBytes", lk["mtu"])]))
    out.append(_section("Network", net))
    for rt in routes:
        if rt["dev"] != lk["name"]:
            continue
        dest = None if rt["to"] in ("0.0.0.0/0", "default") else rt["to"]
        out.append(_section("Route", [("Destination", dest), ("Gateway", rt["via"])]))
    return "\n".join(out)


def render_networkd(links, routes):
    """Return {file name: content} for the whole link model."""
    check_links(links, routes)
    files = {}
    for lk in links:
        if lk["kind"] in NETDEV_KINDS:
            files["%s%s.netdev" % (PREFIX, lk["name"])] = _netdev(lk)
        files["%s%s.network" % (PREFIX, lk["name"])] = _network(lk, links, routes)
    return files


# --------------------------------------------------------------------------
# Reading what is on a node


def parse_ini(text):
    """Parse a systemd unit-style file into [(section, key, value)]."""
    out = []
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        if sep and section:
            out.append((section, key.strip(), value.strip()))
    return out


def netdev_of(text):
    """(name, kind) declared by a .netdev file's [NetDev] section, or (None, None)."""
    name = kind = None
    for section, key, value in parse_ini(text):
        if section == "NetDev" and key == "Name":
            name = value
        elif section == "NetDev" and key == "Kind":
            kind = value
    return name, kind


def shadowing_files(files, names):
    """Foreign .network files that systemd-networkd would pick before ours.

    networkd applies the first .network file (in lexical order of the file
    name) whose [Match] fits a link. ``files``: {file name: content} of
    /etc/systemd/network and /run/systemd/network without ours. Only files
    whose [Match] has nothing but Name= are judged (other conditions may not
    fit); returns [(file name, link name)].
    """
    out = []
    for fname in sorted(files):
        if not fname.endswith(".network") or fname.startswith(PREFIX):
            continue
        for name in names:
            ours = "%s%s.network" % (PREFIX, name)
            if fname >= ours:
                continue
            entries = parse_ini(files[fname])
            match = [(k, v) for s, k, v in entries if s == "Match"]
            if not match or any(k != "Name" for k, _ in match):
                continue
            patterns = " ".join(v for _, v in match).split()
            if any(fnmatch.fnmatchcase(name, p) for p in patterns):
                out.append((fname, name))
    return out


_STANZA = re.compile(r"^(iface|mapping|auto|allow-[\w-]+|source|source-directory|rename|no-auto-down|no-scripts)\b")


def ifupdown_stanzas(text, names):
    """Lines of an /etc/network/interfaces file that configure one of ``names``.

    Returns [(line number (1-based), interface)]: ``auto``/``allow-*`` lines
    naming it and its ``iface`` stanza with the option lines that follow.
    """
    hits = []
    names = set(names)
    in_iface = None
    for no, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = line.split()
        if _STANZA.match(line):
            in_iface = None
            if words[0] == "iface" and len(words) > 1:
                base = words[1].split(":")[0]  # eth0:1 aliases belong to eth0
                if base in names:
                    in_iface = base
                    hits.append((no, base))
            elif words[0] == "auto" or words[0].startswith("allow-"):
                for w in words[1:]:
                    if w.split(":")[0] in names:
                        hits.append((no, w.split(":")[0]))
            continue
        if in_iface:
            hits.append((no, in_iface))
    return hits


def comment_out_stanzas(text, names):
    """Take ``names`` away from ifupdown: comment out their iface stanzas and
    drop them from auto/allow-* lines. Returns the new text."""
    hit_lines = {no for no, _ in ifupdown_stanzas(text, names)}
    names = set(names)
    out = []
    for no, raw in enumerate(text.splitlines(), 1):
        if no not in hit_lines:
            out.append(raw)
            continue
        words = raw.split()
        if words and (words[0] == "auto" or words[0].startswith("allow-")):
            keep = [w for w in words[1:] if w.split(":")[0] not in names]
            out.append("# rackboot: moved to systemd-networkd: " + raw.strip())
            if keep:
                out.append("%s %s" % (words[0], " ".join(keep)))
            continue
        out.append("# rackboot: moved to systemd-networkd: " + raw)
    return "\n".join(out) + ("\n" if text.endswith("\n") or not text else "")


# --------------------------------------------------------------------------
# Commit-confirmed: the rollback the node runs by itself

STATE_DIR = "/var/lib/rackboot/network"
ROLLBACK_UNIT = "rackboot-network-rollback"


def _q(text):
    """Quote for /bin/sh."""
    return "'" + str(text).replace("'", "'\"'\"'") + "'"


def rollback_script(state_dir, restore, remove, delete_links, reconfigure, backend, reload_cmds=None):
    """The shell script that undoes one change on the node.

    ``restore``: [(destination path, snapshot path)] files to put back;
    ``remove``: paths the change created; ``delete_links``: virtual devices
    the change created or altered (networkd only creates a netdev, so an
    altered one must be deleted for the old definition to come back);
    ``reconfigure``: links networkd must reconfigure afterwards. The script
    records what it did in ``rolled-back.json`` (the pending change record)
    and its reason (first argument) in ``rolled-back.reason``.
    """
    lines = [
        "#!/bin/sh",
        "# rackboot node_network: restore the network configuration saved before the last change.",
        "# Armed by rackboot.metal.networkd_config, disarmed by rackboot.metal.network_rollback (confirmed).",
        "set -u",
        "STATE=%s" % _q(state_dir),
        '[ -f "$STATE/pending.json" ] || exit 0',
        'REASON="${1:-the confirmation timer expired}"',
    ]
    for name in delete_links:
        lines.append("ip link del dev %s 2>/dev/null || true" % _q(name))
    for path in remove:
        lines.append("rm -f %s" % _q(path))
    for dest, snap in restore:
        lines.append("cp -p %s %s" % (_q(snap), _q(dest)))
    if backend == "netplan":
        lines.append("netplan apply")
    else:
        lines.append("networkctl reload")
        for name in reconfigure:
            lines.append("[ -e /sys/class/net/%s ] && networkctl reconfigure %s" % (name, _q(name)))
    for cmd in reload_cmds or []:
        lines.append(cmd)
    lines += [
        'echo "$REASON" > "$STATE/rolled-back.reason"',
        'date -u +%Y-%m-%dT%H:%M:%SZ > "$STATE/rolled-back.time"',
        'mv -f "$STATE/pending.json" "$STATE/rolled-back.json"',
        "exit 0",
    ]
    return "\n".join(lines) + "\n"
