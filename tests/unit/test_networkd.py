"""Rendering of the node host network (networkd files and netplan YAML).

Expectations come from the cluster specs (inventories/*/cluster.yml) read
directly, not from the renderer: VLAN IDs, addresses, MTUs, bond modes and
gateways as the engineer wrote them. The netplan output is also fed to the
real ``netplan generate`` (Debian package netplan.io) and the networkd files
it produces are compared with ours: both backends must give the same state.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.rackboot.metal.plugins.plugin_utils import cluster_model
from ansible_collections.rackboot.metal.plugins.module_utils.netplan import netplan_document, render_netplan
from ansible_collections.rackboot.metal.plugins.module_utils.networkd import (
    PREFIX, ModelError, check_links, comment_out_stanzas, delete_order, ifupdown_stanzas, render_networkd,
    rollback_script, shadowing_files)

REPO = Path(__file__).resolve().parents[2]
SPECS = sorted(REPO.glob("inventories/*/cluster.yml"))


def ini(text):
    """Test-local reader of a networkd file: {section: {key: [values]}} (repeated keys kept)."""
    out, sec = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            sec = out.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        sec.setdefault(key, []).append(value)
    return out


def load(spec_path):
    data = yaml.safe_load(spec_path.read_text())
    return data, cluster_model.build(data, str(spec_path))


def spec_nodes():
    for path in SPECS:
        data, model = load(path)
        for node in data["nodes"]:
            yield pytest.param(path, data, model, node, id="%s-%s" % (path.parent.name, node["name"]))


def host_network(data, node):
    hn = dict(data["host_network"])
    hn.update(node.get("host_network") or {})
    return hn


@pytest.mark.parametrize("path,data,model,node", list(spec_nodes()))
def test_networkd_files_follow_the_spec(path, data, model, node):
    net = model.nodes[node["name"]]["network"]
    files = render_networkd(net["links"], net["routes"])
    parsed = {name: ini(text) for name, text in files.items()}
    assert all(name.startswith(PREFIX) for name in files)

    hn = host_network(data, node)
    nets = {n["name"]: n for n in data["networks"]}
    bond = hn.get("bond")
    uplink = bond["name"] if bond else hn["interface"]
    bridges = {b["network"]: b["name"] for b in hn.get("bridges") or []}

    # The uplink: a bond netdev with the spec's mode and members, or a plain NIC.
    if bond:
        nd = parsed["%s%s.netdev" % (PREFIX, uplink)]
        assert nd["NetDev"]["Kind"] == ["bond"]
        assert nd["Bond"]["Mode"] == [bond["mode"]]
        for member in bond["interfaces"]:
            nw = parsed["%s%s.network" % (PREFIX, member)]
            assert nw["Match"]["Name"] == [member]
            assert nw["Network"]["Bond"] == [uplink]
            mac = (node.get("macs") or {}).get(member)
            if mac:
                assert nw["Match"]["PermanentMACAddress"] == [mac.lower()]
        primary = (bond.get("options") or {}).get("primary")
        for member in bond["interfaces"]:
            flag = parsed["%s%s.network" % (PREFIX, member)]["Network"].get("PrimarySlave")
            assert flag == (["yes"] if member == primary else None)
    else:
        assert "%s%s.netdev" % (PREFIX, uplink) not in parsed
        assert "%s%s.network" % (PREFIX, uplink) in parsed

    # One VLAN netdev per tagged network the node has an address on, Id from the spec;
    # each address on the link the spec says (the bridge when there is one).
    tagged_mtus = []
    for net_name, addr in node["addresses"].items():
        spec_net = nets[net_name]
        prefixlen = spec_net["cidr"].split("/")[1]
        mtu = spec_net.get("mtu", 1500)
        if spec_net.get("vlan"):
            vname = "%s.%d" % (uplink, spec_net["vlan"])
            nd = parsed["%s%s.netdev" % (PREFIX, vname)]
            assert nd["NetDev"]["Kind"] == ["vlan"]
            assert nd["VLAN"]["Id"] == [str(spec_net["vlan"])]
            assert nd["NetDev"]["MTUBytes"] == [str(mtu)]
            assert vname in parsed["%s%s.network" % (PREFIX, uplink)]["Network"]["VLAN"]
            holder = vname
            tagged_mtus.append(mtu)
        else:
            holder = uplink
            tagged_mtus.append(mtu)
        if net_name in bridges:
            br = bridges[net_name]
            assert parsed["%s%s.netdev" % (PREFIX, br)]["NetDev"]["Kind"] == ["bridge"]
            assert parsed["%s%s.network" % (PREFIX, holder)]["Network"]["Bridge"] == [br]
            assert "Address" not in parsed["%s%s.network" % (PREFIX, holder)]["Network"]
            holder = br
        addresses = parsed["%s%s.network" % (PREFIX, holder)]["Network"]["Address"]
        assert "%s/%s" % (addr, prefixlen) in addresses
        # No address appears on any other link.
        others = [f for f, p in parsed.items() if f.endswith(".network") and f != "%s%s.network" % (PREFIX, holder)
                  and "%s/%s" % (addr, prefixlen) in p.get("Network", {}).get("Address", [])]
        assert others == []

    # The uplink carries the largest MTU of its networks.
    up = parsed["%s%s.network" % (PREFIX, uplink)]
    assert up["Link"]["MTUBytes"] == [str(max(tagged_mtus))]

    # The default route goes via the management gateway on the management link, and only there.
    mgmt = data["cluster"].get("management_network") or hn["native_network"]
    gw = nets[mgmt].get("gateway")
    routes = [(f, r) for f, p in parsed.items() if f.endswith(".network") for r in p.get("Route", {}).get("Gateway", [])]
    defaults = [(f, p["Route"]) for f, p in parsed.items() if "Route" in p and "Destination" not in p["Route"]]
    if gw:
        assert len(defaults) == 1
        assert defaults[0][1]["Gateway"] == [gw]
        holder = bridges.get(mgmt, uplink)
        assert defaults[0][0] == "%s%s.network" % (PREFIX, holder)
    # Extra routes of networks the node is on go via that network's gateway.
    for net_name in node["addresses"]:
        for dest in nets[net_name].get("routes") or []:
            assert any(f for f, p in parsed.items() if p.get("Route", {}).get("Destination") == [dest]
                       and p["Route"]["Gateway"] == [nets[net_name]["gateway"]])
    assert len(routes) == (1 if gw else 0) + sum(len(nets[n].get("routes") or []) for n in node["addresses"])


@pytest.mark.parametrize("path,data,model,node", list(spec_nodes()))
def test_netplan_document_follows_the_spec(path, data, model, node):
    net = model.nodes[node["name"]]["network"]
    text = render_netplan(net["links"], net["routes"])
    doc = yaml.safe_load(text)
    assert doc == netplan_document(net["links"], net["routes"])  # our emitter writes what we mean
    nw = doc["network"]
    assert nw["renderer"] == "networkd" and nw["version"] == 2
    hn = host_network(data, node)
    nets = {n["name"]: n for n in data["networks"]}
    bond = hn.get("bond")
    uplink = bond["name"] if bond else hn["interface"]
    if bond:
        assert nw["bonds"][uplink]["interfaces"] == bond["interfaces"]
        assert nw["bonds"][uplink]["parameters"]["mode"] == bond["mode"]
    for net_name, addr in node["addresses"].items():
        vlan = nets[net_name].get("vlan")
        if vlan:
            entry = nw["vlans"]["%s.%d" % (uplink, vlan)]
            assert entry["id"] == vlan and entry["link"] == uplink
    all_addrs = [a for sec in ("ethernets", "bonds", "vlans", "bridges") for e in nw.get(sec, {}).values()
                 for a in e.get("addresses", [])]
    assert sorted(all_addrs) == sorted("%s/%s" % (a, nets[n]["cidr"].split("/")[1])
                                       for n, a in node["addresses"].items())


NETPLAN = shutil.which("netplan")


def _semantic(files):
    """The networkd state that matters, from a set of networkd files, by link name."""
    out = {}
    for name, text in files.items():
        p = ini(text)
        if name.endswith(".netdev"):
            link = p["NetDev"]["Name"][0]
            e = out.setdefault(link, {})
            e["kind"] = p["NetDev"]["Kind"][0]
            e["netdev_mtu"] = p["NetDev"].get("MTUBytes")
            e["vlan_id"] = p.get("VLAN", {}).get("Id")
            e["bond_mode"] = p.get("Bond", {}).get("Mode")
            e["lacp"] = p.get("Bond", {}).get("LACPTransmitRate")
            e["hash"] = p.get("Bond", {}).get("TransmitHashPolicy")
            e["stp"] = [{"true": "yes", "false": "no"}.get(v, v) for v in p.get("Bridge", {}).get("STP", [])] or None
        elif name.endswith(".network"):
            link = p["Match"]["Name"][0]
            e = out.setdefault(link, {})
            n = p.get("Network", {})
            e["addresses"] = sorted(n.get("Address", []))
            e["vlans"] = sorted(n.get("VLAN", []))
            e["bond"] = n.get("Bond")
            e["bridge"] = n.get("Bridge")
            e["mtu"] = p.get("Link", {}).get("MTUBytes")
            routes = []
            # netplan writes one [Route] section per route; our reader merges them, so pair up.
            r = p.get("Route", {})
            for i, gw in enumerate(r.get("Gateway", [])):
                dest = r.get("Destination", [])
                routes.append((dest[i] if len(dest) == len(r["Gateway"]) else "0.0.0.0/0", gw))
            e["routes"] = sorted(routes)
    return out


def _routes_normalized(sem):
    for e in sem.values():
        if "routes" in e:
            e["routes"] = sorted(("0.0.0.0/0" if d in ("default", "0.0.0.0/0") else d, g) for d, g in e["routes"])
    return sem


@pytest.mark.skipif(NETPLAN is None, reason="netplan (Debian package netplan.io) is not installed")
@pytest.mark.parametrize("path,data,model,node", list(spec_nodes()))
def test_netplan_generates_the_same_networkd_state(tmp_path, path, data, model, node):
    net = model.nodes[node["name"]]["network"]
    (tmp_path / "etc/netplan").mkdir(parents=True)
    target = tmp_path / "etc/netplan/60-rackboot.yaml"
    target.write_text(render_netplan(net["links"], net["routes"]))
    target.chmod(0o600)
    proc = subprocess.run([NETPLAN, "generate", "--root-dir", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    gen_dir = tmp_path / "run/systemd/network"
    theirs = {f.name: f.read_text() for f in gen_dir.iterdir() if f.suffix in (".netdev", ".network")}
    ours = render_networkd(net["links"], net["routes"])
    # Our routes: a default route is written without Destination (networkd's default).
    assert _routes_normalized(_semantic(theirs)) == _routes_normalized(_semantic(ours))


# ----------------------------------------------------------------------------
# Property: any valid host_network the model accepts renders consistently.

_NETS = [("mgmt", None, 1500), ("a", 100, 1500), ("b", 200, 9000), ("c", 4094, 1400)]


@st.composite
def specs(draw):
    bonded = draw(st.booleans())
    members = ["eth1", "eth2"]
    hn = {"native_network": "mgmt"}
    if bonded:
        mode = draw(st.sampled_from(["802.3ad", "active-backup", "balance-xor"]))
        hn["bond"] = {"name": "bond0", "mode": mode, "interfaces": members}
    else:
        hn["interface"] = "eth1"
    picked = draw(st.lists(st.sampled_from(_NETS[1:]), unique=True))
    bridged = draw(st.lists(st.sampled_from([n[0] for n in [_NETS[0]] + picked]), unique=True))
    hn["bridges"] = [{"name": "br-" + n, "network": n} for n in bridged]
    networks = [{"name": n, "cidr": "10.%d.0.0/24" % i, **({"vlan": v} if v else {}), "mtu": m,
                 **({"gateway": "10.0.0.1"} if n == "mgmt" else {})}
                for i, (n, v, m) in enumerate(_NETS) if n == "mgmt" or (n, v, m) in picked]
    addrs = {n["name"]: n["cidr"].replace("0/24", "11") for n in networks}
    return {
        "plugin": "rackboot.metal.cluster",
        "cluster": {"name": "p", "distribution": "kubeadm", "kubernetes_version": "1.34.1", "api_vip": "10.0.0.5"},
        "networks": networks, "host_network": hn,
        "nodes": [{"name": "n1", "role": "controlplane", "addresses": addrs}],
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs())
def test_any_valid_model_renders_consistently(spec):
    node = cluster_model.build(spec, "<hypothesis>").nodes["n1"]
    net = node["network"]
    files = {k: ini(v) for k, v in render_networkd(net["links"], net["routes"]).items()}
    mtus = {}
    for name, p in files.items():
        if name.endswith(".network"):
            mtus[p["Match"]["Name"][0]] = int(p["Link"]["MTUBytes"][0])
    # every address of the spec exactly once
    written = [a for p in files.values() for a in p.get("Network", {}).get("Address", [])]
    assert sorted(written) == sorted(a + "/24" for a in spec["nodes"][0]["addresses"].values())
    # VLAN netdevs: Id = the suffix of the name; MTU not above the parent's
    for name, p in files.items():
        if p.get("NetDev", {}).get("Kind") == ["vlan"]:
            ifname = p["NetDev"]["Name"][0]
            assert ifname.rsplit(".", 1)[1] == p["VLAN"]["Id"][0]
            assert mtus[ifname] <= mtus[ifname.rsplit(".", 1)[0]]
    # a bridge's port has no address and names the bridge
    for lk in net["links"]:
        if lk["kind"] == "bridge":
            for port in lk["ports"]:
                pp = files["%s%s.network" % (PREFIX, port)]["Network"]
                assert pp["Bridge"] == [lk["name"]] and "Address" not in pp


# ----------------------------------------------------------------------------
# Bad input, shadowing files, ifupdown, rollback script

def _eth(name, **kw):
    base = {"name": name, "kind": "ethernet", "mtu": 1500, "addresses": [], "network": None, "parent": None,
            "vlan_id": None, "members": [], "ports": [], "bond": None, "bridge": None, "mode": None,
            "options": {}, "mac": None, "stp": None}
    base.update(kw)
    return base


@pytest.mark.parametrize("links,routes,needle", [
    ([_eth("eth1", kind="wifi")], [], "links[0] (eth1).kind: 'wifi'"),
    ([_eth("eth1"), _eth("eth1.5000", kind="vlan", parent="eth1", vlan_id=5000)], [], "vlan_id: 5000"),
    ([_eth("eth1"), _eth("eth1.10", kind="vlan", parent="eth1", vlan_id=10, mtu=9000)], [],
     "mtu: 9000 is larger than the MTU 1500 of its parent eth1"),
    ([_eth("eth1.10", kind="vlan", parent="eth9", vlan_id=10)], [], "parent: link 'eth9' is not in the model"),
    ([_eth("averyveryverylongname")], [], "is not a Linux interface name"),
    ([_eth("eth1")], [{"to": "0.0.0.0/0", "via": "10.0.0.1", "dev": "bond0"}], "routes[0].dev"),
    ([_eth("bond0", kind="bond")], [], "a bond needs a mode"),
])
def test_bad_link_models_are_refused_with_the_field(links, routes, needle):
    with pytest.raises(ModelError) as exc:
        check_links(links, routes)
    assert needle in str(exc.value)


def test_shadowing_files_sort_before_ours_and_match_by_name():
    files = {
        "05-all.network": "[Match]\nName=eth*\n[Network]\nDHCP=yes\n",
        "05-typed.network": "[Match]\nName=eth*\nType=wlan\n",       # other conditions: not judged
        "99-late.network": "[Match]\nName=eth1\n",                   # sorts after ours
        "10-mgmt.network": "[Match]\nName=eth0\n",                   # another link
        PREFIX + "eth1.network": "[Match]\nName=eth1\n",             # ours
    }
    assert shadowing_files(files, ["eth1", "bond0"]) == [("05-all.network", "eth1")]


DEBIAN_INTERFACES = """\
# The loopback network interface
auto lo
iface lo inet loopback

source /etc/network/interfaces.d/*

auto eno1 eno3
iface eno1 inet static
    address 10.10.0.11/24
    gateway 10.10.0.1

allow-hotplug eno3
iface eno3 inet dhcp
"""


def test_ifupdown_stanzas_of_managed_links_are_found_and_taken_over():
    hits = ifupdown_stanzas(DEBIAN_INTERFACES, ["eno1", "eno2"])
    assert {n for _, n in hits} == {"eno1"}
    assert [no for no, _ in hits] == [7, 8, 9, 10]
    new = comment_out_stanzas(DEBIAN_INTERFACES, ["eno1"])
    assert ifupdown_stanzas(new, ["eno1"]) == []
    # eno3 and lo stay with ifupdown, untouched
    assert "auto eno3\n" in new and "iface eno3 inet dhcp" in new and "iface lo inet loopback" in new
    assert new.count("# rackboot: moved to systemd-networkd:") == 4


def test_delete_order_children_first():
    assert delete_order({"bond0": "bond", "br-x": "bridge", "bond0.100": "vlan"}) == ["br-x", "bond0.100", "bond0"]


def test_rollback_script_restores_files_and_records_why(tmp_path):
    """Run the generated script with ip/networkctl replaced by recorders."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    calls = tmp_path / "calls"
    for tool in ("ip", "networkctl", "netplan"):
        (bindir / tool).write_text("#!/bin/sh\necho %s \"$@\" >> %s\n" % (tool, calls))
        (bindir / tool).chmod(0o755)
    state = tmp_path / "state"
    conf = tmp_path / "conf"
    (state / "snapshot").mkdir(parents=True)
    conf.mkdir()
    (conf / "10-rackboot-bond0.network").write_text("new\n")
    (conf / "10-rackboot-bond0.300.netdev").write_text("added\n")
    (state / "snapshot" / "000-x").write_text("old\n")
    (state / "pending.json").write_text("{}")
    script = rollback_script(str(state), [(str(conf / "10-rackboot-bond0.network"), str(state / "snapshot/000-x"))],
                             [str(conf / "10-rackboot-bond0.300.netdev")], ["bond0.300"], ["bond0"], "networkd")
    (state / "rollback.sh").write_text(script)
    env = dict(os.environ, PATH="%s:%s" % (bindir, os.environ["PATH"]))
    proc = subprocess.run(["/bin/sh", str(state / "rollback.sh"), "probe failed"], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert (conf / "10-rackboot-bond0.network").read_text() == "old\n"
    assert not (conf / "10-rackboot-bond0.300.netdev").exists()
    log = calls.read_text().splitlines()
    assert log[0] == "ip link del dev bond0.300"
    assert "networkctl reload" in log
    assert (state / "rolled-back.reason").read_text().strip() == "probe failed"
    assert (state / "rolled-back.json").exists() and not (state / "pending.json").exists()
    # a second run (timer after a manual rollback) does nothing
    calls.unlink()
    subprocess.run(["/bin/sh", str(state / "rollback.sh")], env=env, check=True)
    assert not calls.exists()
