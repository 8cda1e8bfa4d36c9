# -*- coding: utf-8 -*-
"""The upstream router's config model (module_utils/bgp_router.py) and the two templates that format it.

Expectations are derived from the cluster specs (inventories/lab, inventories/example),
never from the implementation: the accept list must be exactly the BGP pools, the
neighbors exactly the nodes' addresses on the BGP network, and so on. The rendered files are
checked with the daemons' own parsers (`vtysh -C`, `bird -p`) when FRR/BIRD are installed.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
from pathlib import Path

import jinja2
import netaddr
import pytest
from conftest import REPO, load_yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from ansible_collections.rackboot.metal.plugins.filter.bgp_router import bgp_router_model
from ansible_collections.rackboot.metal.plugins.module_utils.bgp_router import MASK, router_config
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build

TEMPLATES = REPO / "roles" / "bgp_router" / "templates"
VTYSH = shutil.which("vtysh")
BIRD = shutil.which("bird") or ("/usr/sbin/bird" if os.path.exists("/usr/sbin/bird") else None)
PASSWORD = "Md5-Test-pw"

SPECS = {
    "lab": REPO / "inventories" / "lab" / "cluster.yml",
    "example": REPO / "inventories" / "example" / "cluster.yml",
    "molecule-frr": REPO / "roles" / "bgp_router" / "molecule" / "frr" / "inventory" / "cluster.yml",
    "molecule-bird": REPO / "roles" / "bgp_router" / "molecule" / "bird" / "inventory" / "cluster.yml",
}


def _spec(name):
    path = SPECS[name]
    if not path.exists():
        pytest.skip("%s not present" % path)
    return load_yaml(path)


def _routers(spec):
    """(spec, rackboot_router) for every router of a spec."""
    model = build(spec, source="cluster.yml")
    return [model.hostvars(r["name"])["rackboot_router"] for r in spec.get("routers") or []]


def _pool_cidrs(spec):
    """The BGP pools' exact CIDR cover, computed from the spec text with netaddr."""
    out = []
    for pool in spec["load_balancer"]["pools"]:
        if pool["mode"] != "bgp":
            continue
        if pool.get("cidr"):
            out.append(str(netaddr.IPNetwork(pool["cidr"]).cidr))
        else:
            first, last = pool["range"].split("-")
            out.extend(str(c) for c in netaddr.iprange_to_cidrs(first.strip(), last.strip()))
    return out


def _node_addresses(spec):
    net = spec["load_balancer"]["bgp"]["network"]
    return [n["addresses"][net] for n in spec["nodes"]]


def render(platform, router, password=PASSWORD, mask=False, hostname="rtr"):
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), trim_blocks=True,
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    env.filters["rackboot.metal.bgp_router_model"] = bgp_router_model
    return env.get_template(platform + ".conf.j2").render(
        rackboot_router=router, bgp_router_password=password, bgp_router_mask_password=mask,
        bgp_router_hostname=hostname)




def _cases():
    for name in SPECS:
        if not SPECS[name].exists():
            continue
        spec = load_yaml(SPECS[name])
        for router in _routers(spec):
            yield pytest.param(spec, router, id="%s-%s" % (name, router["name"]))


CASES = list(_cases())


# --- the model ----------------------------------------------------------------------------
@pytest.mark.parametrize("spec,router", CASES)
def test_accept_list_is_exactly_the_bgp_pools_as_32s(spec, router):
    model = router_config(router, PASSWORD)
    accept = model["import"]["accept"]
    assert [a["prefix"] for a in accept] == _pool_cidrs(spec)
    assert all(a["ge"] == 32 and a["le"] == 32 for a in accept)
    assert len({a["seq"] for a in accept}) == len(accept)


@pytest.mark.parametrize("spec,router", CASES)
def test_one_neighbor_per_node_with_the_node_asn(spec, router):
    model = router_config(router, PASSWORD)
    lb = spec["load_balancer"]["bgp"]
    assert model["peer_group"]["remote_asn"] == lb["node_asn"]
    spec_router = next(r for r in spec["routers"] if r["name"] == router["name"])
    if spec_router.get("listen_range"):
        assert model["neighbors"] == []
        assert model["listen_range"] == str(netaddr.IPNetwork(
            next(n["cidr"] for n in spec["networks"] if n["name"] == lb["network"])).cidr)
    else:
        assert [n["address"] for n in model["neighbors"]] == _node_addresses(spec)
        assert {n["asn"] for n in model["neighbors"]} == {lb["node_asn"]}
    assert model["asn"] == spec_router["asn"]
    assert model["peer_group"]["ebgp"] == (spec_router["asn"] != lb["node_asn"])
    assert model["multipath"]["ibgp"] == (spec_router["asn"] == lb["node_asn"])
    assert model["multipath"]["paths"] >= len(spec["nodes"])
    assert model["export"]["default_route"] == bool(spec_router.get("default_route"))


@pytest.mark.parametrize("spec,router", CASES)
def test_timers_bfd_and_limit_come_from_the_spec(spec, router):
    lb = spec["load_balancer"]["bgp"]
    model = router_config(router, PASSWORD)
    pg = model["peer_group"]
    assert pg["hold_time"] == lb.get("hold_time", 9)
    assert pg["keepalive_time"] == lb.get("keepalive_time", 3)
    bfd = lb.get("bfd", {"interval_ms": 100, "multiplier": 3})
    if bfd is None:
        assert model["bfd_profile"] is None and not pg["bfd"]
    else:
        assert pg["bfd"]
        assert model["bfd_profile"]["interval_ms"] == bfd.get("interval_ms", 100)
        assert model["bfd_profile"]["multiplier"] == bfd.get("multiplier", 3)
    pool_size = sum(netaddr.IPNetwork(c).size for c in _pool_cidrs(spec))
    assert pg["max_prefixes"] == (lb.get("max_prefixes") or pool_size)


def test_multipath_relax_only_when_node_asns_differ(lab_spec):
    router = _routers(lab_spec)[0]
    assert router_config(router)["multipath"]["relax"] is False
    mixed = copy.deepcopy(router)
    mixed["peers"][1]["asn"] = router["node_asn"] + 1
    assert router_config(mixed)["multipath"]["relax"] is True


def test_default_route_only_when_asked(lab_spec):
    lab_spec["routers"][0]["default_route"] = True
    with_default, without = _routers(lab_spec)[:2]
    assert router_config(with_default)["export"]["default_route"] is True
    assert router_config(without)["export"]["default_route"] is False
    frr_on = render("frr", with_default)
    assert "default-originate" in frr_on and "permit 0.0.0.0/0" in frr_on
    frr_off = render("frr", without)
    assert "default-originate" not in frr_off and "0.0.0.0/0" not in frr_off
    # The same router on BIRD: a default route source only when asked.
    assert "0.0.0.0/0" in render("bird", with_default)
    assert "0.0.0.0/0" not in render("bird", without)


def test_password_masked_or_absent(lab_spec):
    router = _routers(lab_spec)[0]
    assert router_config(router, PASSWORD)["peer_group"]["password"] == PASSWORD
    assert router_config(router, PASSWORD, mask=True)["peer_group"]["password"] == MASK
    assert router_config(router, None)["peer_group"]["password"] is None
    for platform in ("frr", "bird"):
        assert PASSWORD not in render(platform, router, mask=True)
        assert "password" not in render(platform, router, password="")


def test_missing_router_key_is_a_clear_error():
    with pytest.raises(ValueError, match="rackboot_router has no 'peers'"):
        router_config({"name": "x"})


@settings(max_examples=60, deadline=None)
@given(asns=st.lists(st.integers(1, 4294967294), min_size=1, max_size=80), node_asn=st.integers(1, 4294967294))
def test_multipath_properties(asns, node_asn):
    router = {"name": "r", "asn": 65000, "address": "10.0.0.1", "node_asn": node_asn, "hold_time": 9,
              "keepalive_time": 3, "bfd": None, "max_prefixes": 5, "accept": [],
              "peers": [{"name": "n%d" % i, "address": "10.0.%d.%d" % (i // 250, i % 250 + 2), "asn": a}
                        for i, a in enumerate(asns)]}
    mp = router_config(router)["multipath"]
    assert mp["relax"] == (len(set(asns) | {node_asn}) > 1)
    assert mp["paths"] == min(64, max(2, len(asns)))
    assert mp["ibgp"] == (node_asn == 65000)


# --- the rendered files -------------------------------------------------------------------
def _frr_prefix_lines(text):
    return re.findall(r"^ip prefix-list (\S+) seq \d+ permit (\S+) ge 32$", text, re.M)


@pytest.mark.parametrize("spec,router", CASES)
def test_frr_conf_formats_the_model(spec, router):
    text = render("frr", router)
    model = router_config(router, PASSWORD)
    assert [p for _, p in _frr_prefix_lines(text)] == _pool_cidrs(spec)
    for n in model["neighbors"]:
        assert " neighbor %s peer-group %s\n" % (n["address"], model["peer_group"]["name"]) in text
    assert " neighbor %s maximum-prefix %d\n" % (model["peer_group"]["name"], model["peer_group"]["max_prefixes"]) in text
    assert " route-map %s in\n" % model["import"]["route_map"] in text
    # Nothing is announced: no network statements, no redistribution.
    assert not re.search(r"^\s*(network|redistribute) ", text, re.M)


@pytest.mark.parametrize("spec,router", CASES)
def test_bird_conf_formats_the_model(spec, router):
    text = render("bird", router)
    sets = re.findall(r"net ~ \[ (.*) \]", text)
    assert len(sets) == 1
    assert re.findall(r"(\S+)\{(\d+),(\d+)\}", sets[0]) == [(c, "32", "32") for c in _pool_cidrs(spec)]
    model = router_config(router, PASSWORD)
    for n in model["neighbors"]:
        assert "neighbor %s as %d;" % (n["address"], n["asn"]) in text
    assert "receive limit %d action disable;" % model["peer_group"]["max_prefixes"] in text
    assert not re.search(r"^\s*protocol static", text, re.M) or model["export"]["default_route"]


def _variants(lab_spec):
    """Router variants the specs may produce: listen range, default route, iBGP, no BFD, odd BFD."""
    base = _routers(lab_spec)[0]
    out = [base]
    for change in ({"listen_range": base["network"]["cidr"], "default_route": True},
                   {"asn": base["node_asn"], "ebgp": False, "bfd": None},
                   {"bfd": {"interval_ms": 50, "multiplier": 5}, "hold_time": 30, "keepalive_time": 10}):
        r = copy.deepcopy(base)
        r.update(change)
        out.append(r)
    return out


@pytest.mark.skipif(not VTYSH, reason="vtysh not installed (apt-get install frr)")
@pytest.mark.parametrize("variant", range(4))
def test_frr_conf_passes_vtysh_dry_run(tmp_path, lab_spec, variant):
    path = tmp_path / "frr.conf"
    path.write_text(render("frr", _variants(lab_spec)[variant]))
    proc = subprocess.run([VTYSH, "-C", "-f", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not VTYSH, reason="vtysh not installed (apt-get install frr)")
def test_vtysh_dry_run_rejects_a_broken_frr_conf(tmp_path, lab_spec):
    """The check the module relies on really fails on a bad line."""
    path = tmp_path / "frr.conf"
    path.write_text(render("frr", _routers(lab_spec)[0]).replace("maximum-prefix", "maximum-prefixes"))
    assert subprocess.run([VTYSH, "-C", "-f", str(path)], capture_output=True).returncode != 0


@pytest.mark.skipif(not VTYSH, reason="vtysh not installed (apt-get install frr)")
def test_other_specs_frr_confs_pass_vtysh(tmp_path):
    for router in _routers(_spec("example")):
        path = tmp_path / ("%s.conf" % router["name"])
        path.write_text(render("frr", router))
        proc = subprocess.run([VTYSH, "-C", "-f", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not BIRD, reason="bird not installed (apt-get install bird2)")
@pytest.mark.parametrize("variant", range(4))
def test_bird_conf_passes_bird_parser(tmp_path, lab_spec, variant):
    path = tmp_path / "bird.conf"
    path.write_text(render("bird", _variants(lab_spec)[variant]))
    proc = subprocess.run([BIRD, "-p", "-c", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(not BIRD, reason="bird not installed (apt-get install bird2)")
def test_bird_parser_rejects_a_broken_bird_conf(tmp_path, lab_spec):
    path = tmp_path / "bird.conf"
    path.write_text(render("bird", _routers(lab_spec)[1]).replace("receive limit", "receive limits"))
    assert subprocess.run([BIRD, "-p", "-c", str(path)], capture_output=True).returncode != 0


@pytest.mark.skipif(not BIRD, reason="bird not installed (apt-get install bird2)")
def test_other_specs_bird_confs_pass_bird_parser(tmp_path):
    for router in _routers(_spec("example")):
        path = tmp_path / ("%s.conf" % router["name"])
        path.write_text(render("bird", router))
        proc = subprocess.run([BIRD, "-p", "-c", str(path)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr


# --- what a node says is not trusted (issue: next hop, AS path, limits, graceful restart) -----
@pytest.mark.parametrize("spec,router", CASES)
def test_frr_conf_pins_as_path_and_next_hop(spec, router):
    text = render("frr", router)
    node_asn = spec["load_balancer"]["bgp"]["node_asn"]
    ebgp = node_asn != router["asn"]
    # The whole AS path: exactly the node's ASN (eBGP), empty (iBGP); nothing else is permitted.
    paths = re.findall(r"^bgp as-path access-list RACKBOOT-NODE-PATH seq \d+ (\S+) (.*)$", text, re.M)
    assert paths == [("permit", "^%d$" % node_asn if ebgp else "^$")]
    route_map = re.search(r"^route-map RACKBOOT-NODES-IN permit 10\n(.*?)^exit", text, re.M | re.S).group(1)
    assert " match as-path RACKBOOT-NODE-PATH\n" in route_map
    assert " match ip address prefix-list RACKBOOT-LB-IN\n" in route_map
    assert " set ip next-hop peer-address\n" in route_map
    # No other permit entry in the inbound route-map could bypass the matches.
    assert re.findall(r"^route-map RACKBOOT-NODES-IN (\S+) (\d+)$", text, re.M) == [("permit", "10")]
    # A session the router ends itself (hold timer) must not keep a GR speaker's routes.
    assert re.search(r"^router bgp \d+\n bgp router-id \S+\n no bgp graceful-restart notification\n", text, re.M)


def test_frr_as_path_for_ibgp_is_empty(lab_spec):
    ibgp = _variants(lab_spec)[2]
    assert "bgp as-path access-list RACKBOOT-NODE-PATH seq 5 permit ^$\n" in render("frr", ibgp)
    assert "bgp_path ~ [=  =]" in render("bird", ibgp)


@pytest.mark.parametrize("spec,router", CASES)
def test_bird_conf_pins_as_path_next_hop_and_counts_filtered_routes(spec, router):
    text = render("bird", router)
    node_asn = spec["load_balancer"]["bgp"]["node_asn"]
    body = re.search(r"^filter rackboot_nodes_in \{\n(.*?)^\}", text, re.M | re.S).group(1)
    if node_asn != router["asn"]:
        assert "  if !(bgp_path ~ [= %d =]) then reject;\n" % node_asn in body
    # The path check comes before any accept, and the accepted route's gateway is the sender.
    assert body.index("bgp_path") < body.index("accept;")
    assert "    gw = from;\n    accept;\n" in body
    assert body.count("accept;") == 1
    # receive limit counts filtered routes only when they are kept.
    assert "    import keep filtered on;\n" in text
    assert "import limit" not in text
    assert "  long lived graceful restart off;\n" in text
    assert "  bfd on;\n" in text and not re.search(r"^\s*bfd graceful", text, re.M)


def test_limit_is_the_spec_value_and_bounded_by_what_a_node_may_send(lab_spec):
    """The default limit (pool size) is the most a correct node sends; a received-routes limit can trip."""
    spec = copy.deepcopy(lab_spec)
    spec["load_balancer"]["bgp"].pop("max_prefixes", None)
    router = _routers(spec)[0]
    size = sum(netaddr.IPNetwork(c).size for c in _pool_cidrs(spec))
    model = router_config(router, PASSWORD)
    assert model["peer_group"]["max_prefixes"] == size
    assert "receive limit %d action disable;" % size in render("bird", router)


def test_metallb_bgppeers_match_the_routers(lab_spec):
    """What the routers expect of the speakers: hold/keepalive, the BFD profile, GR stated (off)."""
    from ansible_collections.rackboot.metal.plugins.plugin_utils import network_stack

    model = build(lab_spec, source="cluster.yml")
    docs = network_stack.metallb_resources(model.cluster)
    peers = [d for d in docs if d["kind"] == "BGPPeer"]
    (profile,) = [d for d in docs if d["kind"] == "BFDProfile"]
    assert peers
    for peer in peers:
        router = model.hostvars(peer["metadata"]["name"])["rackboot_router"]
        assert peer["spec"]["holdTime"] == "%ds" % router["hold_time"]
        assert peer["spec"]["keepaliveTime"] == "%ds" % router["keepalive_time"]
        assert peer["spec"]["bfdProfile"] == profile["metadata"]["name"]
        assert peer["spec"]["enableGracefulRestart"] is False
    assert profile["spec"]["detectMultiplier"] == router["bfd"]["multiplier"]
    assert profile["spec"]["receiveInterval"] == profile["spec"]["transmitInterval"] == router["bfd"]["interval_ms"]
