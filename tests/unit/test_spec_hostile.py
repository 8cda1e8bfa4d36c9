"""Hostile cluster specs: what a tired engineer types or a broken generator emits.

Each case edits the lab spec's text (the YAML itself, not the loaded data, so
that duplicate keys, number forms, aliases and control characters are real),
writes it to a file and asserts that ``read_spec`` refuses it with the file,
the line, the field path and the reason, in bounded time and with its own
error (never a Python exception). ``one=True`` cases must produce exactly one
problem: one root cause, one message.
"""
import re
import time

import pytest

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import SpecError, read_spec, validate_file
from conftest import REPO

LAB = (REPO / "inventories/lab/cluster.yml").read_text()
END = LAB.count("\n") + 1   # the line of text appended to the spec


def edit(*pairs):
    text = LAB
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


# (id, spec text, expected line, expected path, fragment of the reason, exactly one problem)
CASES = [
    # --- duplicate keys: YAML keeps the last, a spec must not ---------------
    ("duplicate-nodes", LAB + "nodes:\n  - name: x\n", END, "nodes", "duplicate key (first on line 35)", True),
    ("duplicate-node-asn", edit(("    node_asn: 65001\n", "    node_asn: 65001\n    node_asn: 65000\n")), 76,
     "load_balancer.bgp.node_asn", "duplicate key", True),
    ("duplicate-networks", LAB + "networks: []\n", END, "networks", "duplicate key", True),
    ("duplicate-rack", edit(("    rack: lab1\n", "    rack: lab1\n    rack: lab2\n")), 39, "nodes[0] (node1).rack",
     "duplicate key", True),
    ("duplicate-api-vip", edit(("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  api_vip: 10.77.0.6\n")), 12,
     "cluster.api_vip", "duplicate key", True),
    ("duplicate-flow-mgmt", edit(("{mgmt: 10.77.0.12,", "{mgmt: 10.77.0.12, mgmt: 10.77.0.99,")), 50,
     "nodes[1] (node2).addresses.mgmt", "duplicate key", True),
    ("duplicate-role", edit(("    role: worker\n", "    role: worker\n    role: controlplane\n")), 49,
     "nodes[1] (node2).role", "duplicate key", True),
    # --- YAML 1.1 number forms ---------------------------------------------
    ("octal-vlan", edit(("vlan: 200", "vlan: 0200")), 21, "networks[2] (storage).vlan", "not a plain decimal", True),
    ("octal-port", edit(("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  api_port: 06443\n")), 12,
     "cluster.api_port", "not a plain decimal", True),
    ("sexagesimal-hold", edit(("    max_prefixes: 20\n", "    max_prefixes: 20\n    hold_time: 1:30\n")), 78,
     "load_balancer.bgp.hold_time", "base 60", True),
    ("hex-asn", edit(("    asn: 65000\n", "    asn: 0xFDE8\n")), 59, "routers[0] (rtr-frr).asn", "not a plain decimal",
     True),
    ("underscore-mtu", edit(("mtu: 9000", "mtu: 9_000")), 23, "networks[2] (storage).mtu", "not a plain decimal", True),
    ("octal-label", edit(("    rack: lab1\n", "    rack: lab1\n    labels: {zone: 0755}\n")), 39,
     "nodes[0] (node1).labels.zone", "quote '0755'", True),
    # --- addresses: strict dotted quads ------------------------------------
    ("zero-padded-pool", edit(("range: 10.77.0.200-10.77.0.220", "range: 198.051.100.001-198.051.100.009")), 72,
     "load_balancer.pools[1] (lan).range", "no leading zeros", True),
    ("zero-padded-address", edit(("mgmt: 10.77.0.11,", "mgmt: 10.77.0.011,")), 39, "nodes[0] (node1).addresses.mgmt",
     "zero-padded", True),
    ("bad-range", edit(("range: 10.77.0.200-10.77.0.220", "range: 10.77.0.200-10.77.0.2x0")), 72,
     "load_balancer.pools[1] (lan).range", "not a range FIRST-LAST", True),
    ("fullwidth-range", edit(("range: 10.77.0.200-10.77.0.220", "range: 10.77.0.200-10.77.0.２２０")), 72,
     "load_balancer.pools[1] (lan).range", "not a range FIRST-LAST", True),
    ("fullwidth-prefix", edit(("cidr: 10.77.200.0/24", "cidr: 10.77.200.0/２４")), 22, "networks[2] (storage).cidr",
     "ASCII digits", True),
    ("arabic-indic-vlan", edit(("vlan: 200", "vlan: ٢٠٠")), 21, "networks[2] (storage).vlan",
     "must be an integer, got a string", True),
    ("address-with-port", edit(("api_vip: 10.77.0.5", "api_vip: '10.77.0.5:6443'")), 11, "cluster.api_vip",
     "without a port", True),
    ("ipv6", edit(("api_vip: 10.77.0.5", "api_vip: 'fd00::5'")), 11, "cluster.api_vip", "IPv6 is not supported", True),
    ("bgp-host-bits", edit(("cidr: 10.77.100.0/24", "cidr: 10.77.100.1/24")), 19, "networks[1] (peering).cidr",
     "host bits set", True),
    ("tiny-service-cidr", edit(("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  service_cidr: 10.96.0.0/29\n")),
     12, "cluster.service_cidr", "between /12 and /28", True),
    ("tiny-pod-cidr", edit(("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  pod_cidr: 10.244.0.0/32\n")), 12,
     "cluster.pod_cidr", "too small", True),
    # --- control characters, trailing newlines -----------------------------
    ("name-with-newline", edit(("  - name: node3\n", "  - name: |\n      node3\n")), 51, "nodes[2].name",
     "control character U+000A", True),
    ("vip-with-newline", edit(("api_vip: 10.77.0.5", 'api_vip: "10.77.0.5\\n"')), 11, "cluster.api_vip",
     "control character", True),
    ("escape-in-rack", edit(("rack: lab2", 'rack: "lab2\\e[31m"')), 53, "nodes[2] (node3).rack", "control character",
     True),
    ("tab-in-version", edit(('"1.34.1"', '"1.34.1\\t"')), 10, "cluster.kubernetes_version", "U+0009", True),
    ("non-ascii-name", edit(("  - name: node3\n", "  - name: nodé3\n")), 51, "nodes[2].name", "DNS-1123", True),
    # --- interface names, MACs, routes --------------------------------------
    ("bond-lists-itself", edit(("interfaces: [eth1, eth2]", "interfaces: [eth1, bond0]")), 29,
     "host_network.bond.interfaces", "the bond bond0 itself", True),
    ("bridge-named-nic", edit(("    - name: br-storage\n", "    - name: eth1\n")), 32,
     "host_network.bridges[0] (eth1).name", "member NIC", True),
    ("bridge-named-vlan", edit(("    - name: br-storage\n", "    - name: bond0.200\n")), 32,
     "host_network.bridges[0].name", "named like a VLAN link", True),
    ("bridge-named-kernel-nic", edit(("    - name: br-storage\n", "    - name: eno7\n")), 32,
     "host_network.bridges[0] (eno7).name", "named like a kernel NIC", True),
    ("mac-of-missing-nic", edit(("    rack: lab1\n", "    rack: lab1\n    macs: {eth9: '52:54:00:00:00:01'}\n")), 39,
     "nodes[0] (node1).macs.eth9", "has no NIC eth9", True),
    ("two-default-routes", edit(("    mtu: 9000\n", "    mtu: 9000\n    gateway: 10.77.200.1\n    routes: [0.0.0.0/0]\n")),
     25, "networks[2] (storage).routes[0]", "a default route", True),
    ("bad-label-key", edit(("    rack: lab1\n", "    rack: lab1\n    labels: {'-bad': x}\n")), 39,
     "nodes[0] (node1).labels.-bad", "not a Kubernetes label key", True),
    ("bad-label-value", edit(("    rack: lab1\n", "    rack: lab1\n    labels: {zone: 'a b'}\n")), 39,
     "nodes[0] (node1).labels.zone", "not a Kubernetes label value", True),
    ("bad-cert-san", edit(("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  cert_sans: ['api lab']\n")), 12,
     "cluster.cert_sans[0]", "certificate", True),
    ("zero-padded-cert-san", edit(("  api_vip: 10.77.0.5\n", "  api_vip: 10.77.0.5\n  cert_sans: [10.77.0.05]\n")), 12,
     "cluster.cert_sans[0]", "zero-padded", True),
    ("shell-in-version", LAB + "components:\n  cilium:\n    version: 'latest; rm -rf /'\n", END + 2,
     "components.cilium.version", "is not a version", True),
    # --- names that clash with groups ---------------------------------------
    ("node-named-workers", edit(("  - name: node3\n", "  - name: workers\n")), 51, "nodes[2] (workers).name",
     "name of a group", True),
    ("router-named-bird", edit(("  - name: rtr-bird\n", "  - name: bird\n")), 61, "routers[1] (bird).name",
     "name of a group", True),
    # --- YAML structure: aliases, nesting, tags, documents -----------------
    ("self-alias", LAB + "compose: &loop {x: *loop}\n", END, "compose.x", "refers to the node it is inside", True),
    ("deep-nesting", LAB + "compose: " + "[" * 300 + "]" * 300 + "\n", END, "compose[0][0]", "nested deeper than 64", True),
    ("deep-helm-values", LAB + "components:\n  cilium:\n    values: " + "{a: " * 100 + "1" + "}" * 100 + "\n", END + 2,
     "components.cilium.values", "nested deeper than 64", True),
    ("billion-laughs", LAB + "components:\n  cilium:\n    values:\n" + "".join(
        "      l%d: &l%d [%s]\n" % (i, i, ", ".join(["*l%d" % (i - 1)] * 9) if i else "lol") for i in range(10)), END + 10,
     "components.cilium.values.l7[0]", "alias bomb", True),
    ("python-tag", edit(("name: lab\n", "name: !!python/object/apply:os.system [id]\n")), 8, "cluster.name",
     "YAML tag", True),
    ("two-documents", LAB + "---\nplugin: rackboot.metal.cluster\n", END, "(top level)", "second YAML document", True),
    ("complex-key", LAB + "? [a, b]\n: c\n", END, "(top level)", "plain string", True),
    ("syntax-error", edit(("interfaces: [eth1, eth2]", "interfaces: [eth1, eth2")), 30, "(top level)",
     "not valid YAML", True),
    # --- the file as a whole ------------------------------------------------
    ("empty-file", "", None, "(top level)", "is empty", True),
    ("comments-only", "# nothing yet\n", None, "(top level)", "is empty", True),
    ("top-level-list", "- plugin: rackboot.metal.cluster\n", 1, "(top level)", "not a list", True),
    ("misspelled-plugin", edit(("plugin: rackboot.metal.cluster", "plugin: rackboot.metal.clustr")), 5, "plugin",
     "did you mean 'rackboot.metal.cluster'", True),
    ("missing-plugin", edit(("plugin: rackboot.metal.cluster\n", "")), None, "plugin", "is required", True),
    # --- one root cause, one message ---------------------------------------
    ("vlan-5000", edit(("vlan: 100", "vlan: 5000")), 18, "networks[1] (peering).vlan", "outside 1-4094", True),
    ("bad-mgmt-address", edit(("mgmt: 10.77.0.12,", "mgmt: 10.77.0.300,")), 50, "nodes[1] (node2).addresses.mgmt",
     "octet is above 255", True),
]


def refuse(tmp_path, text):
    path = tmp_path / "cluster.yml"
    path.write_text(text, encoding="utf-8")
    started = time.perf_counter()
    with pytest.raises(SpecError) as exc:
        read_spec(str(path))
    assert time.perf_counter() - started < 5, "took too long"
    return str(path), exc.value


@pytest.mark.parametrize("text,line,path,fragment,one", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_spec_is_refused(tmp_path, text, line, path, fragment, one):
    source, err = refuse(tmp_path, text)
    msgs = err.messages()
    where = "%s:%d" % (source, line) if line else source
    wanted = "%s: %s: " % (where, path)
    hits = [m for m in msgs if m.startswith(wanted) and fragment in m]
    assert hits, "expected %r with %r, got:\n%s" % (wanted, fragment, "\n".join(msgs))
    if one:
        assert len(msgs) == 1, "one root cause, one message; got:\n%s" % "\n".join(msgs)


def test_item_names_follow_the_index(tmp_path):
    _, err = refuse(tmp_path, edit(("mgmt: 10.77.0.12,", "mgmt: 10.77.0.300,")))
    assert err.items()[0]["path"] == "nodes[1] (node2).addresses.mgmt"


def test_values_are_not_echoed_when_they_may_be_secrets(tmp_path):
    secret = "Sup3r-S3cret-bgp-passw0rd-that-someone-pasted-into-the-wrong-field-oops"
    _, err = refuse(tmp_path, edit(("    network: peering\n", "    network: %s\n    password: %s\n" % (secret, "hunter2"))))
    text = err.render()
    assert secret not in text and "hunter2" not in text, text
    assert "load_balancer.bgp.password: unknown key" in text


def test_unknown_key_with_control_characters_is_escaped(tmp_path):
    _, err = refuse(tmp_path, LAB + '"evil\\e[2J": 1\n')
    assert "\x1b" not in err.render()


def test_validate_file_returns_structured_problems(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text(edit(("vlan: 100", "vlan: 0100")))
    model, problems = validate_file(str(path))
    assert model is None
    assert problems == [{"file": str(path), "line": 18, "path": "networks[1] (peering).vlan",
                         "item": "networks[1] (peering)", "message": problems[0]["message"]}]
    assert "not a plain decimal" in problems[0]["message"]
    path.write_text(LAB)
    model, problems = validate_file(str(path))
    assert problems == [] and sorted(model.nodes) == ["node1", "node2", "node3"]


def test_file_size_limit(tmp_path):
    _, err = refuse(tmp_path, LAB + "#" * (9 * 1024 * 1024) + "\n")
    assert re.search(r"at most \d+", err.render())


def test_not_utf8(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_bytes(LAB.encode() + b"\xff\xfe\n")
    with pytest.raises(SpecError) as exc:
        read_spec(str(path))
    assert "is not UTF-8" in exc.value.render()


def test_the_strict_reader_reads_what_pyyaml_reads_for_a_valid_spec():
    import yaml

    from ansible_collections.rackboot.metal.plugins.plugin_utils.spec_loader import read
    for name in ("lab", "example"):
        text = (REPO / "inventories" / name / "cluster.yml").read_text()
        data, problems, _ = read(text)
        assert problems == [] and data == yaml.safe_load(text)
