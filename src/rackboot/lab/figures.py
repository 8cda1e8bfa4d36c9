"""What `rackboot lab up` measures, read from the hosts' own state.

Nodes: ``ip -d -j link``, /proc/net/bonding and the LACP partner's view
(Open vSwitch ``lacp/show``), a don't-fragment ping at the network's MTU.
Routers: ``vtysh`` (FRR) or ``birdc`` (BIRD) for sessions and BFD, ``ss``
for TCP-MD5 on the BGP sockets, the kernel's route to the pool address.
Every check compares what the host reports with the spec's model.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time

from .common import run
from .rack import RackLab


def _nsenter(rl: RackLab, router: str) -> list[str]:
    pid = rl.router_pid(router)
    return ["nsenter", "-t", str(pid), "-m", "-u", "-n"]


def router_cmd(rl: RackLab, router: str, *cmd: str) -> str:
    """Run a command in a router container's namespaces (faster than podman exec)."""
    return run([*_nsenter(rl, router), *cmd]).stdout


# ------------------------------------------------------------------ nodes


def bonding_state(text: str) -> dict:
    """Parse /proc/net/bonding/BOND: mode, active aggregator ports, members with their aggregator ids."""
    out = {"mode": None, "active_ports": None, "active_aggregator": None, "members": {}}
    m = re.search(r"^Bonding Mode: (.*)$", text, re.M)
    out["mode"] = m and m.group(1).strip()
    agg = re.search(r"Active Aggregator Info:\s*\n\s*Aggregator ID: (\d+)\s*\n\s*Number of ports: (\d+)", text)
    if agg:
        out["active_aggregator"], out["active_ports"] = int(agg.group(1)), int(agg.group(2))
    for block in re.split(r"\n(?=Slave Interface: )", text)[1:]:
        name = re.match(r"Slave Interface: (\S+)", block).group(1)
        mii = re.search(r"MII Status: (\S+)", block)
        aid = re.search(r"Aggregator ID: (\d+)", block)
        out["members"][name] = {"mii": mii and mii.group(1), "aggregator": aid and int(aid.group(1))}
    return out


def node_links(rl: RackLab) -> list[dict]:
    """One row per node: bond, members, LACP, VLANs and MTU, as the node reports them vs the model."""
    rows = []
    names = list(rl.spec.nodes)
    for i, node in enumerate(names):
        model = rl.spec.nodes[node]["network"]["links"]
        links = {d["ifname"]: d for d in json.loads(rl.node_ssh(node, "ip -d -j link show"))}
        bond = rl.spec.bond(node)
        actual_bond = links.get(bond["name"], {})
        info = (actual_bond.get("linkinfo") or {}).get("info_data") or {}
        members = sorted(n for n, d in links.items() if d.get("master") == bond["name"])
        state = bonding_state(rl.node_ssh(node, f"cat /proc/net/bonding/{bond['name']}"))
        row = {"node": node, "bond": bond["name"], "mode": info.get("mode"), "model_mode": bond["mode"],
               "members": members, "model_members": sorted(bond["members"]), "mtu": actual_bond.get("mtu"),
               "model_mtu": bond["mtu"], "vlans": [], "lacp": None, "jumbo": []}
        if bond["mode"] == "802.3ad":
            aggs = {m["aggregator"] for m in state["members"].values()}
            switch = rl.lab.lacp(node)
            row["lacp"] = {
                "active_ports": state["active_ports"],
                "one_aggregator": len(aggs) == 1 and state["active_aggregator"] in aggs,
                "switch_status": switch["status"],
                "switch_members": {k: v["status"] for k, v in switch["members"].items()},
            }
        for link in model:
            if link["kind"] != "vlan":
                continue
            got = links.get(link["name"], {})
            vinfo = (got.get("linkinfo") or {}).get("info_data") or {}
            row["vlans"].append({"name": link["name"], "id": vinfo.get("id"), "model_id": link["vlan_id"],
                                 "mtu": got.get("mtu"), "model_mtu": link["mtu"]})
        # Jumbo frames end to end: a don't-fragment ping at the MTU to the next node, per network that sets it.
        peer = names[(i + 1) % len(names)]
        for net, cidr in rl.spec.nodes[node]["address_cidrs"].items():
            mtu = _network_mtu(rl, net)
            if mtu and mtu > 1500:
                dst = rl.spec.nodes[peer]["addresses"][net]
                proc = rl.node_ssh(node, f"ping -M do -s {mtu - 28} -c 2 -W 2 -q {dst} >/dev/null && echo ok || echo lost",
                                   check=False)
                row["jumbo"].append({"network": net, "mtu": mtu, "to": peer, "ok": proc.strip() == "ok"})
        rows.append(row)
    return rows


def _network_mtu(rl: RackLab, name: str) -> int | None:
    for n in rl.spec.cluster_model.get("networks") or []:
        if n.get("name") == name:
            return n.get("mtu")
    return None


def link_ok(row: dict) -> bool:
    ok = row["mode"] == row["model_mode"] and row["members"] == row["model_members"] and row["mtu"] == row["model_mtu"]
    ok = ok and all(v["id"] == v["model_id"] and v["mtu"] == v["model_mtu"] for v in row["vlans"])
    ok = ok and all(j["ok"] for j in row["jumbo"])
    if row["lacp"] is not None:
        lacp = row["lacp"]
        ok = ok and lacp["active_ports"] == len(row["model_members"]) and lacp["one_aggregator"]
        ok = ok and "negotiated" in lacp["switch_status"]
    return ok


# ---------------------------------------------------------------- routers


def md5_peers(rl: RackLab, router: str) -> dict[str, bool]:
    """{peer address: the established BGP socket carries TCP-MD5} from ``ss -tni``."""
    out = router_cmd(rl, router, "ss", "-tniH", "state", "established", "( sport = :179 or dport = :179 )")
    peers, current = {}, None
    for line in out.splitlines():
        if not line[:1].isspace():
            fields = line.split()
            # ADDR:PORT, or ADDR%IFACE:PORT for a socket bound to a device (BIRD's outgoing sessions)
            addrs = [m.group(1) for m in (re.match(r"^([\d.]+)(?:%\S+)?:\d+$", f) for f in fields) if m]
            current = addrs[1] if len(addrs) >= 2 else None
            if current:
                peers[current] = "md5" in line
        elif current:
            peers[current] = peers[current] or "md5" in line
    return peers


def sessions(rl: RackLab, router: str) -> dict[str, dict]:
    """{peer address: {"state": ..., "bfd": "up"/...}} as the router's daemon reports them."""
    platform = rl.spec.routers[router]["platform"]
    out: dict[str, dict] = {}
    if platform == "frr":
        summary = json.loads(router_cmd(rl, router, "vtysh", "-c", "show bgp summary json"))
        for addr, p in ((summary.get("ipv4Unicast") or {}).get("peers") or {}).items():
            out[addr] = {"state": p.get("state"), "bfd": None}
        for b in json.loads(router_cmd(rl, router, "vtysh", "-c", "show bfd peers json")):
            if b.get("peer") in out:
                out[b["peer"]]["bfd"] = b.get("status")
    else:
        text = router_cmd(rl, router, "birdc", "-r", "show", "protocols", "all")
        for block in re.split(r"\n(?=\S)", text):
            nb = re.search(r"Neighbor address:\s+(\S+)", block)
            st = re.search(r"BGP state:\s+(\S+)", block)
            if nb and st and not re.search(r"Neighbor range", block):
                out[nb.group(1)] = {"state": st.group(1), "bfd": None}
        for line in router_cmd(rl, router, "birdc", "-r", "show", "bfd", "sessions").splitlines():
            f = line.split()
            if f and f[0] in out and len(f) >= 3:
                out[f[0]]["bfd"] = f[2].lower()
    md5 = md5_peers(rl, router)
    for addr, s in out.items():
        s["md5"] = md5.get(addr, False)
    return out


def route_nexthops(rl: RackLab, router: str, prefix: str) -> list[str]:
    """The gateways of the router's kernel route to ``prefix``."""
    routes = json.loads(run([*_nsenter(rl, router), "ip", "-j", "route", "show", prefix]).stdout or "[]")
    hops = []
    for r in routes:
        if r.get("nexthops"):
            hops += [h.get("gateway") for h in r["nexthops"] if h.get("gateway")]
        elif r.get("gateway"):
            hops.append(r["gateway"])
    return sorted(hops, key=ipaddress.ip_address)


def routers(rl: RackLab) -> list[dict]:
    """One row per router: its sessions to the nodes and the pool address's route."""
    vip = f"{rl.spec.vip}/32"
    node_addrs = {n["bgp"]["address"]: name for name, n in rl.spec.nodes.items()}
    rows = []
    for router in rl.spec.routers:
        s = sessions(rl, router)
        rows.append({"router": router, "platform": rl.spec.routers[router]["platform"],
                     "sessions": {node_addrs.get(a, a): v for a, v in s.items()},
                     "route": vip, "nexthops": [node_addrs.get(h, h) for h in route_nexthops(rl, router, vip)],
                     "nodes": sorted(node_addrs.values())})
    return rows


def router_ok(row: dict) -> bool:
    s = row["sessions"]
    return (sorted(s) == row["nodes"] and all(v["state"] == "Established" and v["md5"] and v["bfd"] == "up"
                                               for v in s.values()) and sorted(row["nexthops"]) == row["nodes"])


def wait_converged(rl: RackLab, timeout: float = 180) -> float:
    """Seconds until every router has every node as a nexthop of the pool address, sessions with BFD up."""
    t0 = time.monotonic()
    while True:
        try:
            if all(router_ok(r) for r in routers(rl)):
                return time.monotonic() - t0
        except (RuntimeError, json.JSONDecodeError, subprocess.SubprocessError):
            pass
        if time.monotonic() - t0 > timeout:
            return -1.0
        time.sleep(1)


def failover(rl: RackLab, node: str, timeout: float = 30) -> dict:
    """Cut every link of ``node``; seconds until each router drops it from the route; restore it."""
    vip = f"{rl.spec.vip}/32"
    addr = rl.spec.nodes[node]["bgp"]["address"]
    pending = dict.fromkeys(rl.spec.routers)
    rl.cut(node, up=False)
    t0 = time.monotonic()
    while any(v is None for v in pending.values()) and time.monotonic() - t0 < timeout:
        for router, done in pending.items():
            if done is None and addr not in route_nexthops(rl, router, vip):
                pending[router] = round(time.monotonic() - t0, 2)
        time.sleep(0.02)
    rl.cut(node, up=True)
    back = wait_converged(rl, timeout=120)
    return {"node": node, "dropped_after_s": pending, "back_after_s": round(back, 1)}
