# -*- coding: utf-8 -*-
"""Render the example inventory of every network design with ansible-playbook.

The examples are inventories/cilium (Cilium alone, Talos), inventories/no-cni
(variant none, kubeadm) and inventories/tenant-vpcs (Kube-OVN tenant VPCs,
Talos), each rendered as it is and for the other distribution, through the
whole render playbook (playbooks/render.yml: machine or kubeadm configs too),
plus the lab spec switched to Cilium alone with native routing, IPsec and
MetalLB over BGP (the network-stack render only). What each one renders is
checked against the spec (never against the builders): which components are
there, the cilium-config the real chart makes from the values (a setting the
chart ignores fails), the LB-IPAM pools and L2 policies, the tenant policies.
The roles validate every resource against the strict Kubernetes schemas and
the pinned CRDs while rendering; this test validates them again, and the
Talos machine configs against Talos' schema. Nothing here has run against a
real cluster.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.module_utils import talos_config
from ansible_collections.rackboot.metal.plugins.plugin_utils import manifests as mf
from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream
from test_network_stack_render import (  # noqa: I100 - the sibling test module's helpers
    INSTALL, PLAYBOOK, REPO, _docs, _leaf_paths, _optional, _recap, _run, _schema_paths, _tree)

pytestmark = pytest.mark.slow

# Chart keys the templates read that values.schema.json (made from values.yaml)
# only has in comments; see cilium's templates/cilium-configmap.yaml.
CILIUM_TEMPLATE_ONLY_KEYS = {("devices",), ("loadBalancer", "algorithm"), ("loadBalancer", "mode"),
                             ("loadBalancer", "dsrDispatch")}
RENDER = REPO / "playbooks" / "render.yml"
# The network stack's folders of the artifacts (the rest is the distribution's, the routers' and the nodes').
STACK_DIRS = {"kube-ovn", "cilium", "multus", "metallb", "cozy-proxy", "tenants"}


def _example(name, distribution=None):
    """(inventory folder, spec, playbook) of an example inventory, as the user copies it."""
    spec = yaml.safe_load((REPO / "inventories" / name / "cluster.yml").read_text())
    if distribution:
        spec["cluster"]["distribution"] = distribution
    return name, spec, RENDER


def _lab_cilium():
    spec = yaml.safe_load((REPO / "inventories/lab/cluster.yml").read_text())
    spec["cluster"]["network_stack"] = {"variant": "cilium", "routing_mode": "native", "encryption": "ipsec",
                                        "pod_mask_size": 26}
    return "lab", spec, PLAYBOOK


CASES = {
    "cilium-talos": lambda: _example("cilium"),
    "cilium-kubeadm": lambda: _example("cilium", "kubeadm"),
    "cilium-lab-bgp": _lab_cilium,
    "no-cni-kubeadm": lambda: _example("no-cni"),
    "no-cni-talos": lambda: _example("no-cni", "talos"),
    "tenant-vpcs-talos": lambda: _example("tenant-vpcs"),
    "tenant-vpcs-kubeadm": lambda: _example("tenant-vpcs", "kubeadm"),
}
# One case per variant, both distributions among them: these are rendered a
# second time (it must change nothing) and run the install path in check mode;
# every playbook run costs about a minute of CPU.
ONE_PER_VARIANT = {"cilium-talos", "no-cni-kubeadm", "tenant-vpcs-kubeadm"}


def _inventory(tmp, name, spec):
    """A copy of inventories/NAME (never its artifacts, secrets or runs) holding ``spec``; its --vault-id or False."""
    inv = tmp / name
    shutil.copytree(REPO / "inventories" / name, inv, ignore=shutil.ignore_patterns("artifacts", "secrets", "runs"))
    (inv / "cluster.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    password = inv / "vault-password.txt"
    if not password.exists():
        return inv, False       # the examples without BGP need no vault
    password.chmod(0o600)
    return inv, "%s@%s" % (name, password)


@pytest.fixture(scope="module", params=sorted(CASES))
def rendered(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp(request.param)
    name, spec, playbook = CASES[request.param]()
    inv, vault = _inventory(tmp, name, spec)
    out = tmp / "artifacts"
    first = _run(inv, playbook, "-e", "rackboot_artifacts_dir=%s" % out, vault=vault)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    tree = _tree(out)
    second = None
    if request.param in ONE_PER_VARIANT:
        second = _run(inv, playbook, "-e", "rackboot_artifacts_dir=%s" % out, vault=vault)
        assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    return {"case": request.param, "spec": spec, "dir": out, "tree": tree, "second": second, "inv": inv,
            "vault": vault, "full": playbook == RENDER}


def _variant(spec):
    return _opts(spec).get("variant", "kubeovn-cilium")


def _opts(spec):
    return spec["cluster"].get("network_stack") or {}


def _announcer(spec):
    return _opts(spec).get("lb_announcer", "metallb")


def _pod_cidr(spec):
    return spec["cluster"].get("pod_cidr", "10.244.0.0/16")     # the schema's default


def _cilium_config(out):
    docs = _docs(out / "cilium/manifests.yaml")
    return next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "cilium-config")["data"]


def _expected_dirs(spec):
    if _variant(spec) == "kubeovn-cilium":
        return {"kube-ovn", "cilium", "multus", "metallb", "cozy-proxy", "tenants"}
    if _variant(spec) == "none":
        return {"metallb", "tenants"} if spec.get("load_balancer", {}).get("pools") else {"tenants"}
    dirs = {"cilium", "multus", "tenants"}
    if _announcer(spec) == "metallb":
        dirs.add("metallb")
    return dirs


def test_only_the_variants_components_are_rendered(rendered):
    dirs = {p.split("/")[0] for p in rendered["tree"] if "/" in p} & STACK_DIRS
    assert dirs == _expected_dirs(rendered["spec"])
    # Never Kube-OVN or cozy-proxy outside kubeovn-cilium; the default variant's files as before.
    assert bool(dirs & {"kube-ovn", "cozy-proxy"}) == (_variant(rendered["spec"]) == "kubeovn-cilium")
    assert ("network-stack.txt" in rendered["tree"]) == (_variant(rendered["spec"]) != "kubeovn-cilium")


def test_rerender_is_idempotent(rendered):
    if rendered["second"] is None:
        pytest.skip("re-rendered in %s only" % ", ".join(sorted(ONE_PER_VARIANT)))
    assert _recap(rendered["second"].stdout)["changed"] == 0
    assert _tree(rendered["dir"]) == rendered["tree"]


def test_the_distributions_node_configs_are_rendered(rendered):
    """The whole render: Talos machine configs that validate against Talos' schema, or kubeadm's configs."""
    if not rendered["full"]:
        pytest.skip("the network-stack render only")
    spec = rendered["spec"]
    nodes = sorted(n["name"] for n in spec["nodes"])
    if spec["cluster"]["distribution"] == "talos":
        assert sorted(p.name for p in (rendered["dir"] / "talos").iterdir()) == ["%s.yaml" % n for n in nodes]
        schema = json.loads(Path(upstream.path("talos_schema")).read_text())
        for n in nodes:
            assert talos_config.schema_errors(_docs(rendered["dir"] / "talos" / ("%s.yaml" % n)), schema) == [], n
        assert not (rendered["dir"] / "kubeadm").exists()
    else:
        got = sorted(p.name for p in (rendered["dir"] / "kubeadm").iterdir())
        assert got == ["%s-kubeadm-config.yaml" % n for n in nodes]
        assert not (rendered["dir"] / "talos").exists()


def test_every_resource_validates_against_the_schemas_and_crds(rendered):
    validator = mf.validator()
    count = 0
    for path in sorted(rendered["dir"].rglob("*.yaml")):
        if path.name in ("values.yaml", "chart.yaml") or path.relative_to(rendered["dir"]).parts[0] not in (
                STACK_DIRS | {"kube-vip"}):
            continue
        docs = _docs(path)
        validator.add_crds([d for d in docs if d.get("kind") == "CustomResourceDefinition"])
        assert validator.problems(docs, path.name) == []
        count += len(docs)
    assert count > 0


def test_none_says_it_installs_no_cni(rendered):
    if _variant(rendered["spec"]) == "kubeovn-cilium":
        pytest.skip("the default variant writes no network-stack.txt")
    text = (rendered["dir"] / "network-stack.txt").read_text()
    assert text.startswith("network stack variant: %s\n" % _variant(rendered["spec"]))
    assert ("no CNI" in text) == (_variant(rendered["spec"]) == "none")


def test_cilium_config_follows_the_spec(rendered):
    spec = rendered["spec"]
    if _variant(spec) != "cilium":
        pytest.skip("variant %s has no Cilium" % _variant(spec))
    opts, cm = _opts(spec), _cilium_config(rendered["dir"])
    mode = opts.get("routing_mode", "tunnel")
    assert cm["routing-mode"] == mode
    if mode == "tunnel":
        assert cm["tunnel-protocol"] == opts.get("tunnel_protocol", "geneve")
    else:
        assert cm["ipv4-native-routing-cidr"] == _pod_cidr(spec)
        assert cm["auto-direct-node-routes"] == "true"
    assert cm["ipam"] == "cluster-pool"
    assert cm["cluster-pool-ipv4-cidr"] == _pod_cidr(spec)
    assert cm["cluster-pool-ipv4-mask-size"] == str(opts.get("pod_mask_size", 24))
    encryption = opts.get("encryption", "none")
    assert cm.get("enable-wireguard", "false") == ("true" if encryption == "wireguard" else "false")
    assert cm.get("enable-ipsec", "false") == ("true" if encryption == "ipsec" else "false")
    assert cm["bpf-lb-mode"] == ("dsr" if opts.get("dsr") else "snat")
    assert cm["bpf-lb-algorithm"] == "maglev"
    if opts.get("dsr") and mode == "tunnel":
        assert cm["bpf-lb-dsr-dispatch"] == "geneve"
    assert cm["kube-proxy-replacement"] == "true"
    assert cm.get("enable-l2-announcements", "false") == ("true" if _announcer(spec) == "cilium" else "false")
    assert cm["cni-exclusive"] == "false"          # Multus keeps its config
    assert cm.get("cni-chaining-mode", "none") == "none"
    if opts.get("devices"):
        assert cm["devices"] == " ".join(opts["devices"])
    daemon = json.loads(next(d for d in _docs(rendered["dir"] / "multus/manifests.yaml")
                             if d["kind"] == "ConfigMap")["data"]["daemon-config.json"])
    assert daemon["multusMasterCNI"] == "05-cilium.conflist"


def test_the_cni_dhcp_daemon_runs_where_attachments_use_dhcp(rendered):
    """One CNI dhcp daemon on every node when an attachment takes DHCP, none otherwise."""
    spec = rendered["spec"]
    if "multus" not in _expected_dirs(spec):
        pytest.skip("no Multus")
    dhcp = [a for a in spec.get("attachments") or [] if (a.get("ipam") or {}).get("type") == "dhcp"]
    daemonsets = {d["metadata"]["name"]: d for d in _docs(rendered["dir"] / "multus/manifests.yaml")
                  if d["kind"] == "DaemonSet"}
    assert ("cni-dhcp-daemon" in daemonsets) == bool(dhcp)
    nads = {d["metadata"]["name"]: json.loads(d["spec"]["config"])
            for d in _docs(rendered["dir"] / "multus/network-attachment-definitions.yaml")}
    assert sorted(n for n, conf in nads.items() if conf["ipam"].get("type") == "dhcp") == sorted(a["name"] for a in dhcp)
    if not dhcp:
        return
    pod = daemonsets["cni-dhcp-daemon"]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["command"] == ["/opt/cni/bin/dhcp", "daemon"]
    assert pod["hostNetwork"] and c["securityContext"]["privileged"]
    assert {"operator": "Exists"} in pod["tolerations"]       # control planes too


def test_cilium_values_validate_against_the_chart_schema(rendered):
    if _variant(rendered["spec"]) != "cilium":
        pytest.skip("no Cilium")
    values = yaml.safe_load((rendered["dir"] / "cilium/values.yaml").read_text())
    schema = json.loads(Path(upstream.path("cilium_values_schema")).read_text())
    jsonschema.validate(values, _optional(schema), cls=jsonschema.Draft7Validator)
    unknown = {p for p in _leaf_paths(values) if p not in set(_schema_paths(schema))} - CILIUM_TEMPLATE_ONLY_KEYS
    assert not unknown, sorted(".".join(p) for p in unknown)


def _uplink_link(spec, network):
    """The node link of a network, from the spec: the uplink, or its VLAN subinterface."""
    net = next(n for n in spec["networks"] if n["name"] == network)
    hn = spec["host_network"]
    uplink = hn["bond"]["name"] if hn.get("bond") else hn["interface"]
    return uplink if net.get("vlan") is None else "%s.%d" % (uplink, net["vlan"])


def test_cilium_announces_the_spec_pools(rendered):
    spec = rendered["spec"]
    path = rendered["dir"] / "cilium/lb-resources.yaml"
    if _variant(spec) != "cilium":
        assert not path.exists()       # the chained variant leaves announcing to MetalLB
        return
    docs = _docs(path)
    if _announcer(spec) != "cilium":
        assert docs == []
        return
    pools = spec["load_balancer"]["pools"]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d["spec"]
    assert set(by_kind["CiliumLoadBalancerIPPool"]) == {p["name"] for p in pools}
    for p in pools:
        got = by_kind["CiliumLoadBalancerIPPool"][p["name"]]
        want = [{"cidr": p["cidr"]}] if "cidr" in p else [dict(zip(("start", "stop"), p["range"].split("-")))]
        assert got["blocks"] == want
        assert (got["serviceSelector"] == {}) == p.get("auto_assign", True)
    l2 = [p for p in pools if p["mode"] == "l2"]
    assert set(by_kind["CiliumL2AnnouncementPolicy"]) == {p["name"] for p in l2}
    nets = {n["name"]: n for n in spec["networks"]}
    import ipaddress
    for p in l2:
        first = ipaddress.ip_address((p.get("range") or p["cidr"]).split("-")[0].split("/")[0])
        network = next(name for name, n in nets.items() if first in ipaddress.ip_network(n["cidr"]))
        policy = by_kind["CiliumL2AnnouncementPolicy"][p["name"]]
        assert policy["interfaces"] == ["^%s$" % _uplink_link(spec, network).replace(".", "\\.")]
        assert policy["loadBalancerIPs"] is True
        on_net = sorted(n["name"] for n in spec["nodes"] if network in n["addresses"])
        if len(on_net) < len(spec["nodes"]):
            assert policy["nodeSelector"]["matchExpressions"][0]["values"] == on_net
        else:
            assert "nodeSelector" not in policy


def test_ipsec_key_is_never_rendered(rendered):
    spec = rendered["spec"]
    path = rendered["dir"] / "cilium/ipsec-keys-secret.yaml"
    if _variant(spec) != "cilium":
        assert not path.exists()
        return
    docs = _docs(path)
    if _opts(spec).get("encryption") == "ipsec":
        assert [d["metadata"]["name"] for d in docs] == ["cilium-ipsec-keys"]
        assert "stringData" not in docs[0] and "data" not in docs[0]
    else:
        assert docs == []


def test_tenants_are_isolated_in_every_variant(rendered):
    spec = rendered["spec"]
    docs = _docs(rendered["dir"] / "tenants/tenants.yaml")
    tenants = [t["name"] for t in spec["tenants"]]
    kind = "NetworkPolicy" if _variant(spec) == "none" else "CiliumNetworkPolicy"
    policies = [d for d in docs if d["kind"] == kind]
    assert sorted(d["metadata"]["namespace"] for d in policies) == sorted(tenants)
    assert not [d for d in docs if d["kind"] not in (kind, "Namespace")]
    vpcs = {t["name"]: t.get("vpc") or {} for t in spec["tenants"]}
    for pol in policies if kind == "CiliumNetworkPolicy" else []:
        vpc = vpcs[pol["metadata"]["namespace"]]
        assert ({"toEntities": ["world"]} in pol["spec"]["egress"]) == bool(vpc.get("eip"))
        assert ({"fromEntities": ["world"]} in pol["spec"]["ingress"]) == bool(vpc.get("floating_ips"))
    if kind == "NetworkPolicy":
        for pol in policies:
            assert pol["spec"]["podSelector"] == {} and pol["spec"]["policyTypes"] == ["Ingress", "Egress"]
            api = {b["ipBlock"]["cidr"] for rule in pol["spec"]["egress"] for b in rule["to"] if "ipBlock" in b}
            cps = {n["addresses"]["mgmt"] + "/32" for n in spec["nodes"] if n["role"] == "controlplane"}
            assert api == cps | {spec["cluster"]["api_vip"] + "/32"}


def test_install_in_check_mode_stops_cleanly_without_a_cluster(rendered):
    """The install path starts with the variant's first component and stops at its cluster check."""
    if rendered["case"] not in ONE_PER_VARIANT:
        pytest.skip("one install run per variant")
    inv, kubeconfig = rendered["inv"], rendered["dir"] / "absent.kubeconfig"
    got = _run(inv, INSTALL, "--check", "-e", "rackboot_kubeconfig=%s" % kubeconfig,
               "-e", "rackboot_artifacts_dir=%s" % (rendered["dir"].parent / "install"), vault=rendered["vault"])
    text = got.stdout + got.stderr
    assert got.returncode == 2, text[-3000:]
    assert "Traceback" not in text
    first = "MetalLB" if _variant(rendered["spec"]) == "none" else "Cilium"
    assert "%s: the Kubernetes API of cluster %s is not reachable with kubeconfig %s" % (
        first, rendered["spec"]["cluster"]["name"], kubeconfig) in text
    assert "Kube-OVN |" not in text      # the first component stops the run
    assert _recap(got.stdout)["changed"] == 0


# --------------------------------------------------------------------------
# Tenant VPCs (inventories/tenant-vpcs)
# --------------------------------------------------------------------------
def test_tenant_vpcs_follow_the_spec(rendered):
    spec = rendered["spec"]
    path = rendered["dir"] / "kube-ovn/tenant-vpcs.yaml"
    vpcs = {t["name"]: t["vpc"] for t in spec.get("tenants", []) if t.get("vpc")}
    if not vpcs:
        assert not path.exists()
        return
    docs = _docs(path)
    got = {(d["kind"], d["metadata"]["name"]): d["spec"] for d in docs}
    nets = {n["name"]: n for n in spec["networks"]}
    bridges = {b["network"]: b["name"] for b in spec["host_network"]["bridges"]}
    externals = {v["external_network"] for v in vpcs.values() if v.get("external_network")}
    for name in externals:
        assert got[("ProviderNetwork", name)]["defaultInterface"] == bridges[name]
        assert got[("Vlan", name)] == {"id": 0, "provider": name}       # the host's VLAN link tags
        sub = got[("Subnet", name)]
        assert (sub["cidrBlock"], sub["gateway"], sub["vlan"]) == (nets[name]["cidr"], nets[name]["gateway"], name)
        # What the fabric uses there is not Kube-OVN's to hand out.
        on_net = {n["addresses"][name] for n in spec["nodes"] if name in n["addresses"]}
        assert on_net <= set(sub.get("excludeIps", []))
    for tenant, vpc in vpcs.items():
        ext = vpc.get("external_network")
        v = got[("Vpc", tenant)]
        assert v["namespaces"] == [tenant]
        if ext:
            assert v["extraExternalSubnets"] == [ext] and v["enableExternal"] is True
            assert v["staticRoutes"] == [{"cidr": "0.0.0.0/0", "nextHopIP": nets[ext]["gateway"], "policy": "policyDst"}]
        assert got[("Subnet", tenant)]["cidrBlock"] == vpc["subnet"] and got[("Subnet", tenant)]["vpc"] == tenant
        eips = {s_["v4Ip"]: (n, s_) for (k, n), s_ in got.items() if k == "OvnEip" and n.startswith(tenant + "-")}
        if vpc.get("eip"):
            name, eip = eips[vpc["eip"]]
            assert eip["externalSubnet"] == ext
            assert got[("OvnSnatRule", tenant)] == {"ovnEip": name, "vpcSubnet": tenant}
        for fip in vpc.get("floating_ips", []):
            name, eip = eips[fip["address"]]
            assert eip["externalSubnet"] == ext
            assert got[("OvnFip", name)] == {"ovnEip": name, "vpc": tenant, "v4Ip": fip["target"]}
    # Dependencies first: networks before VPCs before NAT.
    order = [d["kind"] for d in docs]
    assert order.index("Vpc") > max(i for i, k in enumerate(order) if k in ("ProviderNetwork", "Vlan"))
    assert min(i for i, k in enumerate(order) if k.startswith("Ovn")) > max(i for i, k in enumerate(order)
                                                                            if k in ("Vpc", "Subnet"))


def test_metallb_load_balancer_class_reaches_controller_and_speakers(rendered):
    lb_class = rendered["spec"].get("load_balancer", {}).get("class")
    if "metallb" not in _expected_dirs(rendered["spec"]):
        pytest.skip("no MetalLB")
    pods = [d for d in _docs(rendered["dir"] / "metallb/manifests.yaml") if d["kind"] in ("Deployment", "DaemonSet")
            and d["metadata"]["name"] in ("metallb-controller", "metallb-speaker")]
    assert len(pods) == 2
    for d in pods:
        args = [a for c in d["spec"]["template"]["spec"]["containers"] for a in c.get("args", [])]
        assert ("--lb-class=%s" % lb_class in args) if lb_class else not [a for a in args if a.startswith("--lb-class")]


@pytest.mark.parametrize("name", ["example", "cilium", "no-cni", "tenant-vpcs"])
def test_summary_shows_only_what_applies_to_the_variant(name):
    """playbooks/summary.yml: Kube-OVN's join network and pod gateway only under kubeovn-cilium."""
    inv = REPO / "inventories" / name
    spec = yaml.safe_load((inv / "cluster.yml").read_text())
    got = _run(inv, REPO / "playbooks" / "summary.yml", vault=None if (inv / "vault-password.txt").exists() else False)
    assert got.returncode == 0, got.stdout[-3000:] + got.stderr[-2000:]
    text = " ".join(got.stdout.split())          # the debug output wraps long lines
    kube_ovn = _variant(spec) == "kubeovn-cilium"
    assert ("join %s" % spec["cluster"].get("join_cidr", "100.64.0.0/16") in text) == kube_ovn
    assert ("(gateway " in text) == kube_ovn
    assert "network stack %s: installs " % _variant(spec) in text
    if _variant(spec) == "cilium":
        assert "pods %s (/%d per node)" % (_pod_cidr(spec), _opts(spec).get("pod_mask_size", 24)) in text
