"""Property-based: random mutations of valid specs never crash the model.

Whatever an engineer (or a bad merge) does to a spec, the inventory plugin
must either accept it or refuse it with its own SpecError, whose every line
names the file and a field path. Any other exception is a bug.
"""
import copy
import os
import re

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import (
    Model, SpecError, build, read_spec, resolve_node)
from conftest import REPO, load_yaml

SPECS = [load_yaml(REPO / "inventories/lab/cluster.yml"), load_yaml(REPO / "inventories/example/cluster.yml")]


def paths(value, prefix=()):
    """Every path into a nested dict/list, the root excluded."""
    out = []
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return out
    for key, child in items:
        out.append(prefix + (key,))
        out.extend(paths(child, prefix + (key,)))
    return out


def get(value, path):
    for part in path:
        value = value[part]
    return value


ip_text = st.builds(lambda a, b, c, d: "%d.%d.%d.%d" % (a, b, c, d),
                    *[st.integers(0, 255)] * 4)
cidr_text = st.builds(lambda ip, p: "%s/%d" % (ip, p), ip_text, st.integers(0, 33))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5000), st.integers(4294967290, 4294967300),
    st.floats(allow_nan=True), st.text(max_size=12), ip_text, cidr_text,
    st.sampled_from(["", "-", "10.77.0.1-10.77.0.0", "bond0", "eth1", "mgmt", "peering", "storage",
                     "controlplane", "worker", "bgp", "l2", "frr", "bird", "talos", "802.3ad", "fd00::1",
                     "aa:bb:cc:dd:ee:ff", "1.34.1", "10.77.0.5", "10.77.100.1"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                      max_leaves=6)


@st.composite
def mutated_specs(draw):
    spec = copy.deepcopy(draw(st.sampled_from(SPECS)))
    for _ in range(draw(st.integers(1, 4))):
        all_paths = paths(spec)
        if not all_paths:
            break
        path = draw(st.sampled_from(all_paths))
        parent = get(spec, path[:-1])
        key = path[-1]
        action = draw(st.sampled_from(["replace", "delete", "duplicate", "unknown_key", "swap"]))
        if action == "replace":
            parent[key] = draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        elif action == "unknown_key" and isinstance(parent[key], dict):
            parent[key][draw(st.text(min_size=1, max_size=8))] = draw(scalars)
        elif action == "swap":
            other = draw(st.sampled_from(all_paths))
            try:
                parent[key] = copy.deepcopy(get(spec, other))
            except (KeyError, IndexError, TypeError):
                pass
    return spec


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_specs())
def test_mutated_specs_are_accepted_or_refused_clearly(spec):
    try:
        model = build(spec, source="fuzz.yml")
    except SpecError as e:
        messages = e.messages()
        assert messages, "SpecError without problems"
        for m in messages:
            assert m.startswith("fuzz.yml: "), m
            assert len(m.split(": ", 2)) == 3 and m.split(": ", 2)[2], m
    else:
        assert isinstance(model, Model)
        for name in list(model.nodes) + list(model.routers):
            assert model.hostvars(name)["ansible_host"]
        for name, own in model.node_specs.items():   # what plays resolve is what the model computed
            assert resolve_node(own, model.cluster) == model.nodes[name]


@settings(max_examples=200, deadline=None)
@given(values)
def test_any_document_is_refused_clearly(doc):
    try:
        build(doc, source="fuzz.yml")
    except SpecError as e:
        assert e.messages()


# --- YAML-level mutations: what the loaded-data fuzzer above cannot produce -----
LAB_TEXT = (REPO / "inventories/lab/cluster.yml").read_text()
LAB_LINES = LAB_TEXT.splitlines(keepends=True)
UNICODE_DIGITS = "０１２３４５６７８９٠١٢٣٤٥٦٧٨٩०१२३"
NUMBER_FORMS = ["0200", "06443", "1:30", "0x1F", "0b101", "0o17", "1_000", "99999999999999999999999999999999999",
                "-0", "+5", ".inf", "1e3", "0.5"]
CONTROL = ["\\n", "\\t", "\\r", "\\0", "\\e", "\\x7f", "\\u200b", "\\u2028"]


@st.composite
def mutated_texts(draw):
    lines = list(LAB_LINES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        line = lines[i]
        action = draw(st.sampled_from(["duplicate_line", "number_form", "control_char", "unicode_digit", "alias",
                                       "self_alias", "anchor_swap", "flow_duplicate", "garbage"]))
        if action == "duplicate_line":
            lines.insert(i, line)
        elif action == "number_form":
            lines[i] = re.sub(r"(?<=: )\d+\b", draw(st.sampled_from(NUMBER_FORMS)), line, count=1)
        elif action == "control_char" and ": " in line:
            key, _, value = line.rstrip("\n").partition(": ")
            pos = draw(st.integers(0, len(value)))
            value = value.replace('"', "")
            lines[i] = '%s: "%s%s%s"\n' % (key, value[:pos], draw(st.sampled_from(CONTROL)), value[pos:])
        elif action == "unicode_digit":
            digits = [m.start() for m in re.finditer(r"\d", line)]
            if digits:
                pos = draw(st.sampled_from(digits))
                lines[i] = line[:pos] + draw(st.sampled_from(UNICODE_DIGITS)) + line[pos + 1:]
        elif action == "alias" and line.rstrip().endswith(":"):
            lines[i] = line.rstrip("\n") + " &x\n"
            j = draw(st.integers(0, len(lines) - 1))
            lines[j] = re.sub(r"(?<=: ).*$", "*x", lines[j], count=1)
        elif action == "self_alias" and line.rstrip().endswith(":"):
            lines[i] = line.rstrip("\n") + " &me\n"
            lines.insert(i + 1, line[:len(line) - len(line.lstrip())] + "  loop: *me\n")
        elif action == "anchor_swap":
            lines[i] = re.sub(r"(?<=: )(\S+)$", r"&a \1", line.rstrip("\n"), count=1) + "\n"
            lines.append("extra: [*a, *a, *a]\n")
        elif action == "flow_duplicate" and "{" in line:
            lines[i] = re.sub(r"\{(\w+): ([^,}]+)", r"{\1: \2, \1: \2", line, count=1)
        elif action == "garbage":
            lines[i] = line[:draw(st.integers(0, len(line)))] + draw(st.text(max_size=6)) + "\n"
    return "".join(lines)


@settings(max_examples=300, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_texts())
def test_yaml_mutations_are_accepted_or_refused_with_a_location(text):
    import tempfile
    import time

    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False, encoding="utf-8") as f:
        f.write(text)
    try:
        started = time.perf_counter()
        try:
            read_spec(f.name)
        except SpecError as e:
            messages = e.messages()
            assert messages, "SpecError without problems"
            for m in messages:
                assert re.match(re.escape(f.name) + r"(:\d+)?: \S.*: \S", m), m
                assert not any(ch in m for ch in "\n\r\x1b\x00"), m
        assert time.perf_counter() - started < 5
    finally:
        os.unlink(f.name)
