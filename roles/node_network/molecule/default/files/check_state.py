#!/usr/bin/env python3
"""Compare a node's running kernel network state with its link model.

Usage: check_state.py MODEL.json   (MODEL: rackboot_node.network)
Prints one line per mismatch and exits 1 if there is any. Reads only
``ip -j -d link``, ``ip -j addr``, ``ip -j route`` and /proc/net/bonding.
"""

import json
import subprocess
import sys


def ip(*args):
    return json.loads(subprocess.run(["ip", "-j", *args], capture_output=True, text=True, check=True).stdout or "[]")


def main():
    with open(sys.argv[1]) as f:
        model = json.load(f)
    links = {lk["ifname"]: lk for lk in ip("-d", "link", "show")}
    addrs = {a["ifname"]: sorted("%s/%d" % (i["local"], i["prefixlen"]) for i in a.get("addr_info", [])
                                 if i.get("family") == "inet") for a in ip("addr", "show")}
    bad = []
    for lk in model["links"]:
        name = lk["name"]
        cur = links.get(name)
        if cur is None:
            bad.append("%s: missing" % name)
            continue
        info = cur.get("linkinfo", {})
        if cur.get("mtu") != lk["mtu"]:
            bad.append("%s: mtu %s, model %s" % (name, cur.get("mtu"), lk["mtu"]))
        if "UP" not in cur.get("flags", []):
            bad.append("%s: not up" % name)
        if lk["kind"] in ("bond", "vlan", "bridge") and info.get("info_kind") != lk["kind"]:
            bad.append("%s: kind %s, model %s" % (name, info.get("info_kind"), lk["kind"]))
        if lk["kind"] == "vlan":
            if info.get("info_data", {}).get("id") != lk["vlan_id"]:
                bad.append("%s: VLAN id %s, model %s" % (name, info.get("info_data", {}).get("id"), lk["vlan_id"]))
            if cur.get("link") != lk["parent"]:
                bad.append("%s: parent %s, model %s" % (name, cur.get("link"), lk["parent"]))
        if lk["kind"] == "bond":
            mode = info.get("info_data", {}).get("mode")
            if mode != lk["mode"]:
                bad.append("%s: bond mode %s, model %s" % (name, mode, lk["mode"]))
        master = lk["bond"] or lk["bridge"]
        if cur.get("master") != master:
            bad.append("%s: master %s, model %s" % (name, cur.get("master"), master))
        if addrs.get(name, []) != sorted(lk["addresses"]):
            bad.append("%s: addresses %s, model %s" % (name, addrs.get(name, []), sorted(lk["addresses"])))
    for rt in model["routes"]:
        dst = "default" if rt["to"] == "0.0.0.0/0" else rt["to"]
        found = [r for r in ip("route", "show") if r.get("dst") == dst and r.get("gateway") == rt["via"]
                 and r.get("dev") == rt["dev"]]
        if not found:
            bad.append("route %s via %s dev %s: missing" % (dst, rt["via"], rt["dev"]))
    for line in bad:
        print(line)
    print(json.dumps({"mismatches": len(bad), "links": [lk["name"] for lk in model["links"]]}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
