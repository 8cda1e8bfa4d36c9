#!/usr/bin/python3
"""Lab probe, run inside a router or node container: the BGP/BFD state as JSON.

  bgpstate.py frr|bird [PREFIX [OTHER_PREFIX...]]
  -> {"sessions": {PEER_IP: {"state": "Established", "since": EPOCH|TEXT, "generation": N|TEXT}},
      "bfd": {PEER_IP: "up"|"down"...},
      "route": {"prefix", "protocol", "nexthops": [IP...]},       # PREFIX in the kernel
      "present": {PREFIX: bool, OTHER_PREFIX: bool},              # in the daemon's table or the kernel
      "rib": {PREFIX: [NEXTHOP...], ...},                         # the daemon's usable paths' next hops
      "kernel": {PREFIX: [NEXTHOP...], ...}}                      # the kernel route's next hops

Both platforms answer in the same shape so that one verify playbook checks both.
"""
import json
import re
import subprocess
import sys


def sh(*args):
    return subprocess.run(args, capture_output=True, text=True, check=False).stdout


def frr():
    sessions, bfd = {}, {}
    for ip, n in json.loads(sh("vtysh", "-c", "show bgp neighbors json") or "{}").items():
        if not re.match(r"^\d+\.\d+\.\d+\.\d+$", ip):
            continue
        # generation: changes exactly when the session is (re)established.
        sessions[ip] = {"state": n.get("bgpState"), "since": n.get("bgpTimerUpEstablishedEpoch"),
                        "generation": n.get("connectionsEstablished"),
                        "established": n.get("connectionsEstablished"), "dropped": n.get("connectionsDropped"),
                        "reason": n.get("lastResetDueTo")}
    for p in json.loads(sh("vtysh", "-c", "show bfd peers json") or "[]"):
        bfd[p["peer"]] = p.get("status")
    return sessions, bfd


def bird():
    sessions, bfd = {}, {}
    name = None
    for line in sh("birdc", "show", "protocols", "all").splitlines():
        m = re.match(r"^(\S+)\s+BGP\s+\S+\s+(\S+)\s+(\S+ \S+|\S+)\s*(.*)$", line)
        if m:
            # `up` + info `Established`; otherwise the BGP state (Active, Connect, ...) or the reason.
            info = m.group(4).strip()
            name = {"proto": m.group(1), "state": info.split()[0] if info else m.group(2),
                    "since": m.group(3), "generation": m.group(3), "info": info}
            continue
        m = re.match(r"^\s+Neighbor address:\s+(\S+)", line)
        if m and name:
            sessions[m.group(1).split("%")[0]] = name
            name = None
    for line in sh("birdc", "show", "bfd", "sessions").splitlines():
        m = re.match(r"^(\d+\.\d+\.\d+\.\d+)\s+\S+\s+(\S+)", line)
        if m:
            bfd[m.group(1)] = m.group(2).lower()
    return sessions, bfd


def route(prefix):
    out = json.loads(sh("ip", "-j", "route", "show", prefix) or "[]")
    if not out:
        return {"prefix": prefix, "protocol": None, "nexthops": []}
    r = out[0]
    hops = [h["gateway"] for h in r.get("nexthops", []) if "gateway" in h] or (
        [r["gateway"]] if "gateway" in r else [])
    return {"prefix": prefix, "protocol": r.get("protocol"), "nexthops": sorted(hops)}


def rib(platform, prefix):
    """Next hops of the daemon's (not filtered) paths to exactly ``prefix``."""
    if platform == "frr":
        out = json.loads(sh("vtysh", "-c", "show bgp ipv4 unicast %s json" % prefix) or "{}")
        if out.get("prefix") != prefix:
            return []
        return sorted(h["ip"] for p in out.get("paths", []) for h in p.get("nexthops", []) if "ip" in h)
    hops, mine = [], False
    for line in sh("birdc", "show", "route", prefix).splitlines():
        # A route's first line names the prefix; its paths' `via` lines follow.
        if re.match(r"^\d", line):
            mine = line.startswith(prefix + " ")
        m = re.match(r"^\s+via (\S+)", line)
        if m and mine:
            hops.append(m.group(1))
    return sorted(hops)


def present(platform, prefix):
    if platform == "frr":
        rib = json.loads(sh("vtysh", "-c", "show bgp ipv4 unicast %s json" % prefix) or "{}")
        in_daemon = bool(rib.get("paths")) and rib.get("prefix") == prefix
    else:
        in_daemon = any(line.startswith(prefix + " ") for line in sh("birdc", "show", "route", prefix).splitlines())
    in_kernel = bool(json.loads(sh("ip", "-j", "route", "show", "exact", prefix) or "[]"))
    return in_daemon or in_kernel


if __name__ == "__main__":
    s, b = frr() if sys.argv[1] == "frr" else bird()
    res = {"sessions": s, "bfd": b}
    if len(sys.argv) > 2:
        res["route"] = route(sys.argv[2])
        res["present"] = {p: present(sys.argv[1], p) for p in sys.argv[2:]}
        res["rib"] = {p: rib(sys.argv[1], p) for p in sys.argv[2:]}
        res["kernel"] = {p: route(p)["nexthops"] for p in sys.argv[2:]}
    print(json.dumps(res))
