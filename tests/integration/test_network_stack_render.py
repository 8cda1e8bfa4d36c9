# -*- coding: utf-8 -*-
"""Render the network stack of both inventories with ansible-playbook and check what comes out.

No Kubernetes runs here, so every resource is validated against its CRD's
openAPIV3Schema (the pinned upstream CRDs, the served version named by
apiVersion), Cilium and MetalLB values against the charts' values schemas,
Kube-OVN values against the chart's values file, and the semantics against
the inventory's own spec. The install path runs in check mode against a
cluster that is not there and must stop with a clear message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build
from ansible_collections.rackboot.metal.plugins.plugin_utils import manifests as mf
from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "render" / "network_stack.yml"
INSTALL = REPO / "playbooks" / "network_stack.yml"
ANSIBLE_PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
INVENTORIES = ("example", "lab")
ROLES = ("kube_ovn", "cilium", "multus", "metallb", "cozy_proxy", "tenant_isolation")

# Cilium chart keys the templates read although values.yaml only mentions them in
# comments, so values.schema.json (generated from values.yaml) does not list them.
# Cozystack's kubeovn-cilium values set all three; see docs/network-stack.md.
CILIUM_TEMPLATE_ONLY_KEYS = {("devices",), ("enableIdentityMark",), ("loadBalancer", "algorithm")}
# Kinds built into Kubernetes (no CRD to validate against).
BUILTIN = {("v1", "Namespace"), ("v1", "ConfigMap"), ("v1", "Secret"), ("v1", "ServiceAccount"),
           ("apps/v1", "DaemonSet"), ("rbac.authorization.k8s.io/v1", "ClusterRole"),
           ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
           ("apiextensions.k8s.io/v1", "CustomResourceDefinition")}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")

pytestmark = pytest.mark.slow
PINS = yaml.safe_load((REPO / "roles/versions/defaults/main.yml").read_text())
KUBEPRISM = PINS["versions_talos_kubeprism_port"]
PINS_KUBE_OVN_PRIORITY = "10"     # Kube-OVN's CNI_CONFIG_PRIORITY: after Cilium's 05-cilium.conflist


def _env():
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PY_COLORS="0", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _run(inventory_dir, playbook, *extra, vault=None):
    """``vault`` is a --vault-id (default: the inventory's own password file); ``False`` for none."""
    if vault is None:
        vault = "%s@%s" % (Path(inventory_dir).name, Path(inventory_dir) / "vault-password.txt")
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(inventory_dir), str(playbook)] + (["--vault-id", vault] if vault else [])
    cmd += list(extra)
    return subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=600)


def _recap(out):
    m = re.search(r"localhost\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    assert m, out[-3000:]
    return dict(zip(("ok", "changed", "unreachable", "failed"), map(int, m.groups())))


def _tree(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(root).rglob("*")) if p.is_file()}


def _spec(inv):
    path = REPO / "inventories" / inv / "cluster.yml"
    return yaml.safe_load(path.read_text())


def _docs(path):
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d is not None]


def _load_crds():
    crds = {}
    for crd in upstream.crds():
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                schema = mf.crd_jsonschema(version["schema"]["openAPIV3Schema"])
                crds[("%s/%s" % (group, version["name"]), kind)] = (schema, crd["spec"]["scope"])
    return crds


CRDS = _load_crds()


def _validate_resource(doc, where):
    key = (doc.get("apiVersion"), doc.get("kind"))
    name = doc.get("metadata", {}).get("name", "")
    assert DNS1123.match(name), "%s: metadata.name %r is not a DNS-1123 name" % (where, name)
    if key in BUILTIN:
        return "builtin"
    assert key in CRDS, "%s: no served CRD version for %s %s in the pinned upstream CRDs" % (where, key[1], key[0])
    schema, scope = CRDS[key]
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "%s: %s %s invalid: %s" % (where, key[1], name, "; ".join(
        "%s: %s" % ("/".join(map(str, e.path)), e.message) for e in errors))
    if scope == "Namespaced":
        assert doc["metadata"].get("namespace"), "%s: %s %s needs a namespace" % (where, key[1], name)
    return "crd"


# --------------------------------------------------------------------------
# Fixtures: render once per inventory
# --------------------------------------------------------------------------
@pytest.fixture(scope="module", params=INVENTORIES)
def rendered(request, tmp_path_factory):
    inv = request.param
    out = tmp_path_factory.mktemp("ns-" + inv) / "artifacts"
    first = _run(REPO / "inventories" / inv, PLAYBOOK, "-e", "rackboot_artifacts_dir=%s" % out)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    tree = _tree(out)
    second = _run(REPO / "inventories" / inv, PLAYBOOK, "-e", "rackboot_artifacts_dir=%s" % out)
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    spec = _spec(inv)
    return {"inv": inv, "dir": out, "tree": tree, "first": first, "second": second, "spec": spec,
            "model": build(spec, inv)}


EXPECTED_FILES = {
    "kube-ovn/values.yaml", "kube-ovn/chart.yaml", "kube-ovn/manifests.yaml",
    "cilium/values.yaml", "cilium/chart.yaml", "cilium/cni-configuration.yaml", "cilium/manifests.yaml",
    "multus/manifests.yaml", "multus/network-attachment-definitions.yaml",
    "metallb/values.yaml", "metallb/chart.yaml", "metallb/manifests.yaml", "metallb/resources.yaml",
    "metallb/bgp-password-secret.yaml", "cozy-proxy/values.yaml", "cozy-proxy/chart.yaml", "cozy-proxy/manifests.yaml",
    "tenants/tenants.yaml", "images.txt", "images.json",
}
MANIFESTS = ("kube-ovn/manifests.yaml", "cilium/manifests.yaml", "multus/manifests.yaml", "metallb/manifests.yaml",
             "cozy-proxy/manifests.yaml")
RESOURCE_FILES = ("cilium/cni-configuration.yaml", "multus/manifests.yaml", "multus/network-attachment-definitions.yaml",
                  "metallb/resources.yaml", "metallb/bgp-password-secret.yaml", "tenants/tenants.yaml")


def test_render_writes_the_complete_stack(rendered):
    assert set(rendered["tree"]) == EXPECTED_FILES
    assert _recap(rendered["first"].stdout)["failed"] == 0
    assert "Traceback" not in rendered["first"].stdout + rendered["first"].stderr


def test_rerender_is_idempotent_and_byte_identical(rendered):
    assert _recap(rendered["second"].stdout)["changed"] == 0
    assert _tree(rendered["dir"]) == rendered["tree"]


def test_every_resource_validates(rendered):
    seen = {"crd": 0, "builtin": 0}
    for rel in RESOURCE_FILES:
        for i, doc in enumerate(_docs(rendered["dir"] / rel)):
            seen[_validate_resource(doc, "%s[%d]" % (rel, i))] += 1
    assert seen["crd"] > 0 and seen["builtin"] > 0


def _schema_paths(schema, path=()):
    """Every key path the values schema describes."""
    props = schema.get("properties") or {}
    for key, sub in props.items():
        yield path + (key,)
        yield from _schema_paths(sub, path + (key,))
    for part in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(part) or []:
            yield from _schema_paths(sub, path)


def _leaf_paths(d, prefix=()):
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _leaf_paths(v, prefix + (k,))
        else:
            yield prefix + (k,)


def _optional(schema):
    """The schema without ``required``: Helm validates our values merged over the chart's own
    defaults (which supply the required keys), and the defaults file is not pinned."""
    if isinstance(schema, dict):
        return {k: _optional(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_optional(v) for v in schema]
    return schema


def test_cilium_values_validate_against_the_chart_schema(rendered):
    values = yaml.safe_load((rendered["dir"] / "cilium/values.yaml").read_text())
    schema = json.loads(Path(upstream.path("cilium_values_schema")).read_text())
    jsonschema.validate(values, _optional(schema), cls=jsonschema.Draft7Validator)
    known = set(_schema_paths(schema))
    unknown = {p for p in _leaf_paths(values) if p not in known} - CILIUM_TEMPLATE_ONLY_KEYS
    assert not unknown, "Cilium keys not in the 1.19.4 values schema: %s" % sorted(".".join(p) for p in unknown)


def test_metallb_values_validate_against_the_chart_schema(rendered):
    values = yaml.safe_load((rendered["dir"] / "metallb/values.yaml").read_text())
    schema = json.loads((Path(upstream.path("metallb_chart")) / "values.schema.json").read_text())
    jsonschema.validate(values, _optional(schema), cls=jsonschema.Draft7Validator)
    known = set(_schema_paths(schema))
    assert {p for p in _leaf_paths(values)} <= known


def test_every_kube_ovn_value_key_exists_upstream(rendered):
    values = yaml.safe_load((rendered["dir"] / "kube-ovn/values.yaml").read_text())
    chart_values = yaml.safe_load((Path(upstream.path("kube_ovn_chart")) / "values.yaml").read_text())
    for path in _leaf_paths(values):
        node = chart_values
        for part in path:
            assert isinstance(node, dict) and part in node, "kube-ovn key %s is not in the chart" % ".".join(path)
            node = node[part]
        assert type(values_at(values, path)) is type(node) or node is None, \
            "kube-ovn %s: %r has another type than upstream's %r" % (".".join(path), values_at(values, path), node)


def values_at(d, path):
    for part in path:
        d = d[part]
    return d


def test_semantics_follow_the_spec(rendered):
    spec, out = rendered["spec"], rendered["dir"]
    c = spec["cluster"]
    kovn = yaml.safe_load((out / "kube-ovn/values.yaml").read_text())
    assert kovn["ipv4"]["POD_CIDR"] == c.get("pod_cidr", "10.244.0.0/16")
    assert kovn["ipv4"]["SVC_CIDR"] == c.get("service_cidr", "10.96.0.0/16")
    assert kovn["ipv4"]["JOIN_CIDR"] == c.get("join_cidr", "100.64.0.0/16")
    assert kovn["func"] == {"ENABLE_LB": False, "ENABLE_NP": False}

    cil = yaml.safe_load((out / "cilium/values.yaml").read_text())
    assert cil["kubeProxyReplacement"] is True and cil["cni"]["chainingMode"] == "generic-veth"
    if c["distribution"] == "talos":
        assert (cil["k8sServiceHost"], cil["k8sServicePort"]) == ("localhost", KUBEPRISM)
    else:
        assert (cil["k8sServiceHost"], cil["k8sServicePort"]) == (c["api_vip"], c.get("api_port", 6443))
    (cm,) = _docs(out / "cilium/cni-configuration.yaml")
    chart = yaml.safe_load((out / "cilium/chart.yaml").read_text())
    assert cm["metadata"]["name"] == cil["cni"]["configMap"]
    assert cm["metadata"]["namespace"] == chart["release_namespace"]   # Cilium reads it from its own namespace

    resources = _docs(out / "metallb/resources.yaml")
    peers = [d for d in resources if d["kind"] == "BGPPeer"]
    assert sorted((p["spec"]["peerAddress"], p["spec"]["peerASN"], p["spec"]["myASN"]) for p in peers) == \
        sorted((r["address"], r["asn"], spec["load_balancer"]["bgp"]["node_asn"]) for r in spec["routers"])
    pools = {d["metadata"]["name"]: d["spec"]["addresses"] for d in resources if d["kind"] == "IPAddressPool"}
    assert pools == {p["name"]: [p.get("cidr") or p["range"]] for p in spec["load_balancer"]["pools"]}

    tenants = _docs(out / "tenants/tenants.yaml")
    policies = [d for d in tenants if d["kind"] == "CiliumNetworkPolicy"]
    assert sorted(p["metadata"]["namespace"] for p in policies) == sorted(t["name"] for t in spec["tenants"])
    assert all(p["spec"]["enableDefaultDeny"] == {"ingress": True, "egress": True} for p in policies)


def test_password_is_never_rendered(rendered):
    out = rendered["dir"]
    (secret,) = _docs(out / "metallb/bgp-password-secret.yaml")
    assert secret["type"] == "kubernetes.io/basic-auth" and "data" not in secret and "stringData" not in secret
    # The decrypted vault value appears nowhere under the artifacts folder.
    password = _vault_password(rendered["inv"])
    assert len(password) >= 8
    for path in out.rglob("*"):
        if path.is_file():
            assert password not in path.read_text(), path


def _vault_password(inv):
    from ansible.parsing.vault import VaultLib, VaultSecret
    secret = (REPO / "inventories" / inv / "vault-password.txt").read_bytes().strip()
    text = (REPO / "inventories" / inv / "group_vars/all/vault.yml").read_text()
    block = text.split("!vault |", 1)[1]
    lines = [ln.strip() for ln in block.splitlines() if ln.strip()]
    vault = VaultLib([(inv, VaultSecret(secret))])
    return vault.decrypt("\n".join(lines)).decode()


# --------------------------------------------------------------------------
# Attachments through the inventory plugin (a copy of the example inventory)
# --------------------------------------------------------------------------
def test_attachments_render_as_valid_network_attachment_definitions(tmp_path):
    inv = tmp_path / "example"
    shutil.copytree(REPO / "inventories" / "example", inv, ignore=shutil.ignore_patterns("artifacts", "secrets"))
    spec = _spec("example")
    spec["attachments"] = [
        {"name": "storage", "namespace": "tenant-a", "type": "bridge", "network": "storage",
         "ipam": {"type": "whereabouts", "range": "10.200.0.0/24", "range_start": "10.200.0.100",
                  "range_end": "10.200.0.199"}},
        {"name": "backup", "type": "macvlan", "network": "backup"},
    ]
    (inv / "cluster.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "artifacts"
    # Only Multus' render tasks: the rest of the stack is covered by the fixtures above.
    play = tmp_path / "multus.yml"
    play.write_text(yaml.safe_dump([{"name": "t", "hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": [{"name": "Render Multus", "ansible.builtin.include_role": {
                                         "name": "multus", "tasks_from": "render.yml"}}]}]))
    got = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(inv), str(play), "-e", "rackboot_artifacts_dir=%s" % out,
                          "--vault-id", "example@%s" % (inv / "vault-password.txt")],
                         cwd=REPO, env=dict(_env(), ANSIBLE_ROLES_PATH=str(REPO / "roles")), capture_output=True,
                         text=True, timeout=300)
    assert got.returncode == 0, got.stdout[-4000:]
    nads = _docs(out / "multus/network-attachment-definitions.yaml")
    model = build(spec, "example")
    assert [(n["metadata"]["namespace"], n["metadata"]["name"]) for n in nads] == [
        (a.get("namespace", "default"), a["name"]) for a in spec["attachments"]]
    for i, nad in enumerate(nads):
        assert _validate_resource(nad, "nad[%d]" % i) == "crd"
        conf = json.loads(nad["spec"]["config"])
        att = spec["attachments"][i]
        links = {n["network"]["networks"][att["network"]] for n in model.nodes.values()
                 if att["network"] in n["network"]["networks"]}
        assert conf[{"bridge": "bridge", "macvlan": "master"}[att["type"]]] in links
        assert conf["type"] == att["type"]


def test_bad_attachment_stops_before_anything_runs(tmp_path):
    inv = tmp_path / "example"
    shutil.copytree(REPO / "inventories" / "example", inv, ignore=shutil.ignore_patterns("artifacts", "secrets"))
    spec = _spec("example")
    spec["attachments"] = [{"name": "p", "type": "bridge", "network": "peering"}]
    (inv / "cluster.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    got = _run(inv, PLAYBOOK, "-e", "rackboot_artifacts_dir=%s" % (tmp_path / "a"),
               vault="example@%s" % (inv / "vault-password.txt"))
    text = got.stdout + got.stderr
    assert got.returncode != 0
    assert "attachments[0] (p).type: type bridge needs a bridge on network peering" in text
    assert "Traceback" not in text
    assert not (tmp_path / "a").exists()


# --------------------------------------------------------------------------
# Install path without a cluster
# --------------------------------------------------------------------------
def _closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _kubeconfig(tmp_path):
    """A kubeconfig whose API server is a closed loopback port."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "t",
        "clusters": [{"name": "t", "cluster": {"server": "https://127.0.0.1:%d" % _closed_port(),
                                               "insecure-skip-tls-verify": True}}],
        "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}],
        "users": [{"name": "t", "user": {"token": "x"}}],
    }))
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("kind", ["missing", "unreachable"])
def test_install_in_check_mode_without_a_cluster_fails_cleanly(tmp_path, kind):
    kubeconfig = tmp_path / "nope" if kind == "missing" else _kubeconfig(tmp_path)
    got = _run(REPO / "inventories" / "lab", INSTALL, "--check", "-e", "rackboot_kubeconfig=%s" % kubeconfig,
               "-e", "rackboot_artifacts_dir=%s" % (tmp_path / "a"))
    text = got.stdout + got.stderr
    assert got.returncode == 2, text[-3000:]
    assert "Traceback" not in text
    # The first role in the install order stops the run; nothing after it ran.
    assert "Cilium: the Kubernetes API of cluster lab is not reachable with kubeconfig %s" % kubeconfig in text
    assert "Bootstrap the cluster first" in text
    assert _recap(got.stdout)["changed"] == 0
    assert "Install the chart" not in text


def test_each_role_checks_the_cluster_first(tmp_path):
    """Every role used on its own stops at its preflight (one playbook, a rescue per role)."""
    tasks = []
    for role in ROLES:
        tasks.append({"name": "Try " + role, "block": [
            {"name": "Run " + role, "ansible.builtin.include_role": {"name": role}},
            {"name": "Not reached", "ansible.builtin.set_fact": {"reached": "{{ reached | default([]) + ['%s'] }}" % role}},
        ], "rescue": [
            {"name": "Record", "ansible.builtin.set_fact": {
                "msgs": "{{ msgs | default({}) | combine({'%s': ansible_failed_result.msg}) }}" % role}},
        ]})
    tasks.append({"name": "Report", "ansible.builtin.debug": {
        "msg": "RESULT {{ {'msgs': msgs | default({}), 'reached': reached | default([])} | to_json }} END"}})
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{"name": "t", "hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": tasks}], sort_keys=False))
    missing = tmp_path / "missing"
    got = subprocess.run([ANSIBLE_PLAYBOOK, "-i", str(REPO / "inventories" / "lab"), str(play), "--check",
                          "--vault-id", "lab@%s" % (REPO / "inventories/lab/vault-password.txt"),
                          "-e", "rackboot_kubeconfig=%s" % missing, "-e", "rackboot_artifacts_dir=%s" % tmp_path],
                         cwd=REPO, env=dict(_env(), ANSIBLE_ROLES_PATH=str(REPO / "roles")), capture_output=True,
                         text=True, timeout=300)
    text = got.stdout + got.stderr
    assert "Traceback" not in text
    m = re.search(r"RESULT (\{.*\}) END", text)
    assert m, text[-3000:]
    result = json.loads(m.group(1).replace("\\\"", "\""))
    assert result["reached"] == []
    assert sorted(result["msgs"]) == sorted(ROLES)
    for role, msg in result["msgs"].items():
        assert "the Kubernetes API of cluster lab is not reachable with kubeconfig %s" % missing in msg, (role, msg)
        assert "%s_kubeconfig" % role in msg


# --------------------------------------------------------------------------
# Full manifests (helm template of the pinned charts, the Multus overlay)
# --------------------------------------------------------------------------
def _objects(rendered, rel=None):
    files = [rel] if rel else MANIFESTS
    return [d for f in files for d in _docs(rendered["dir"] / f)]


def _one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, "%s %s: %d found" % (kind, name, len(found))
    return found[0]


def _pod(doc):
    return doc["spec"]["template"]["spec"]


def _env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env") or []}


@pytest.fixture(scope="module")
def validator():
    return mf.validator()


def test_every_rendered_object_is_valid_against_the_api_and_the_crds(rendered, validator):
    counts = {}
    for rel in MANIFESTS:
        docs = _docs(rendered["dir"] / rel)
        validator.add_crds([d for d in docs if d["kind"] == "CustomResourceDefinition"])
        assert validator.problems(docs, rel) == []
        counts[rel] = len(docs)
    # Full charts, not fragments: each has its workloads and more.
    assert all(n >= 4 for n in counts.values()), counts
    kinds = {d["kind"] for d in _objects(rendered)}
    assert {"DaemonSet", "Deployment", "ConfigMap", "ClusterRole", "CustomResourceDefinition", "CronJob"} <= kinds


def test_no_kube_proxy_anywhere(rendered):
    for d in _objects(rendered):
        assert "kube-proxy" != d["metadata"]["name"], d["kind"]
    listing = json.loads((rendered["dir"] / "images.json").read_text())
    assert not [i for i in listing["images"] if "kube-proxy" in i["repository"]]


def test_cilium_agent_config_is_what_the_chain_needs(rendered):
    c = rendered["spec"]["cluster"]
    docs = _objects(rendered, "cilium/manifests.yaml")
    conf = _one(docs, "ConfigMap", "cilium-config")["data"]
    assert conf["kube-proxy-replacement"] == "true"
    assert conf["cni-chaining-mode"] == "generic-veth" and conf["custom-cni-conf"] == "true"
    # Native routing: the agent refuses masquerading without a native-routing CIDR.
    assert conf["routing-mode"] == "native"
    if conf.get("enable-ipv4-masquerade") != "false" or conf.get("enable-bpf-masquerade") != "false":
        assert conf.get("ipv4-native-routing-cidr")
    assert conf["ipv4-native-routing-cidr"] == c.get("pod_cidr", "10.244.0.0/16")
    # The chained conflist comes from the cni-configuration ConfigMap rackboot creates.
    agent = _one(docs, "DaemonSet", "cilium")
    volumes = {v["name"]: v for v in _pod(agent)["volumes"]}
    cm_name = volumes["cni-configuration"]["configMap"]["name"]
    (cm,) = _docs(rendered["dir"] / "cilium/cni-configuration.yaml")
    assert cm["metadata"]["name"] == cm_name and cm["metadata"]["namespace"] == agent["metadata"]["namespace"]
    key = conf["read-cni-conf"].rsplit("/", 1)[1]
    chain = json.loads(cm["data"][key])
    assert [p["type"] for p in chain["plugins"]] == ["kube-ovn", "portmap", "cilium-cni"]
    # The API server Cilium dials without kube-proxy, in every agent container.
    want = ("localhost", str(KUBEPRISM)) if c["distribution"] == "talos" else (c["api_vip"], str(c.get("api_port", 6443)))
    for container in _pod(agent)["containers"] + _pod(agent)["initContainers"]:
        env = _env_of(container)
        if "KUBERNETES_SERVICE_HOST" in env:
            assert (env["KUBERNETES_SERVICE_HOST"], env["KUBERNETES_SERVICE_PORT"]) == want
    operator = _one(docs, "Deployment", "cilium-operator")
    assert (_env_of(_pod(operator)["containers"][0])["KUBERNETES_SERVICE_HOST"],
            _env_of(_pod(operator)["containers"][0])["KUBERNETES_SERVICE_PORT"]) == want
    # Hubble TLS from certgen in the cluster: no key in the render.
    assert any(d["kind"] == "CronJob" and d["metadata"]["name"] == "hubble-generate-certs" for d in docs)
    assert not [d for d in docs if d["kind"] == "Secret" and "hubble" in d["metadata"]["name"]]


def _args(container):
    return dict(a.split("=", 1) for a in container.get("args") or container.get("command") or [] if "=" in a)


def test_kube_ovn_cidrs_and_cni_priority(rendered):
    c = rendered["spec"]["cluster"]
    docs = _objects(rendered, "kube-ovn/manifests.yaml")
    ctrl = _args(_pod(_one(docs, "Deployment", "kube-ovn-controller"))["containers"][0])
    assert ctrl["--default-cidr"] == c.get("pod_cidr", "10.244.0.0/16")
    assert ctrl["--node-switch-cidr"] == c.get("join_cidr", "100.64.0.0/16")
    assert ctrl["--service-cluster-ip-range"] == c.get("service_cidr", "10.96.0.0/16")
    cni = _pod(_one(docs, "DaemonSet", "kube-ovn-cni"))
    args = {}
    for container in cni.get("initContainers", []) + cni["containers"]:
        args.update(_args(container))
    conf_name = args["--cni-conf-name"]
    assert conf_name.startswith(PINS_KUBE_OVN_PRIORITY + "-")
    cilium = _one(_objects(rendered, "cilium/manifests.yaml"), "ConfigMap", "cilium-config")["data"]
    cilium_file = cilium["write-cni-conf-when-ready"].rsplit("/", 1)[1]
    # The kubelet (and Multus) take the first file: Cilium's chain, not Kube-OVN's own.
    assert sorted([conf_name, cilium_file])[0] == cilium_file
    multus = _one(_objects(rendered, "multus/manifests.yaml"), "ConfigMap", "multus-daemon-config")
    assert json.loads(multus["data"]["daemon-config.json"])["multusMasterCNI"] == cilium_file


def test_multus_runs_the_release_image(rendered):
    ds = _one(_objects(rendered, "multus/manifests.yaml"), "DaemonSet", "kube-multus-ds")
    tags = {c["image"].rsplit(":", 1)[1] for c in _pod(ds)["containers"] + _pod(ds)["initContainers"]}
    assert tags == {"v%s-thick" % PINS["versions_multus"]}


def _runs_on_every_node(ds, nodes):
    """A DaemonSet that every node admits: no selector beyond the OS, control-plane taints tolerated."""
    pod = _pod(ds)
    assert set((pod.get("nodeSelector") or {}).items()) <= {("kubernetes.io/os", "linux")}, pod.get("nodeSelector")
    assert "nodeAffinity" not in (pod.get("affinity") or {})
    tol = pod.get("tolerations") or []
    tolerated = any(t.get("operator") == "Exists" and not t.get("key") for t in tol) or any(
        t.get("key") == "node-role.kubernetes.io/control-plane" for t in tol)
    assert tolerated or not any(n["role"] == "controlplane" for n in nodes), tol


def test_metallb_speakers_and_frr_k8s_on_every_peering_node(rendered):
    model = rendered["model"]
    peering = [n for n in model.nodes.values() if n.get("bgp")]
    assert peering, "the inventory has BGP peering nodes"
    docs = _objects(rendered, "metallb/manifests.yaml")
    daemonsets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "DaemonSet"}
    speaker = next(d for n, d in daemonsets.items() if n.endswith("speaker") and "frr" not in n)
    frr = next(d for n, d in daemonsets.items() if n.endswith("frr-k8s"))
    for ds in (speaker, frr):
        _runs_on_every_node(ds, list(model.nodes.values()))


def test_cozy_proxy_on_every_node(rendered):
    ds = _one(_objects(rendered, "cozy-proxy/manifests.yaml"), "DaemonSet", "cozy-proxy")
    _runs_on_every_node(ds, list(rendered["model"].nodes.values()))
    assert _pod(ds)["hostNetwork"] is True


IMAGE_LINE = re.compile(r"""(?m)^[ \t]*(?:-[ \t]+)?image:[ \t]*['"]?([^\s'"]+)""")


def _image_strings(root):
    """Every `image:` value in every rendered file, read as text (not through the code under test)."""
    out = set()
    for path in Path(root).rglob("*.yaml"):
        out.update(IMAGE_LINE.findall(path.read_text()))
    return out


def test_image_list_is_complete(rendered):
    listing = json.loads((rendered["dir"] / "images.json").read_text())
    from_manifests = {i["image"] for i in listing["images"] if i["used_by"] != ["platform"]}
    assert from_manifests == _image_strings(rendered["dir"])
    txt = [ln for ln in (rendered["dir"] / "images.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert txt == sorted({i["image"] for i in listing["images"]})
    assert len(txt) == len(set(txt))
    # Kube-OVN's NAT gateway is named only in a ConfigMap.
    assert any("vpc-nat-gateway" in i for i in txt)
    k8s = "v" + str(rendered["spec"]["cluster"]["kubernetes_version"])
    pause = PINS["versions_pause"][".".join(k8s.lstrip("v").split(".")[:2])]   # per Kubernetes minor
    assert "registry.k8s.io/kube-apiserver:%s" % k8s in txt and "registry.k8s.io/pause:%s" % pause in txt
    if rendered["spec"]["cluster"]["distribution"] == "talos":
        assert "ghcr.io/siderolabs/installer:v%s" % PINS["versions_talos"] in txt
    else:
        assert any(i.startswith("ghcr.io/kube-vip/kube-vip:") for i in txt)
    charts = {c["name"]: c for c in listing["charts"]}
    assert charts["cilium_chart"]["sha256"] == upstream.manifest()["cilium_chart"]["sha256"]
    assert {str(c["version"]).lstrip("v") for c in charts.values()} >= {PINS["versions_cilium"], PINS["versions_metallb"]}


# --------------------------------------------------------------------------
# Mirror registry, local charts, invalid manifests, chart pins
# --------------------------------------------------------------------------
def _inventory_copy(tmp_path, inv, change):
    dest = tmp_path / inv
    shutil.copytree(REPO / "inventories" / inv, dest, ignore=shutil.ignore_patterns("artifacts", "secrets"))
    spec = _spec(inv)
    change(spec)
    (dest / "cluster.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return dest


def test_mirror_registry_leaves_no_upstream_image(tmp_path):
    mirror = "registry.dc1.example:5000"
    inv = _inventory_copy(tmp_path, "lab", lambda s: s["cluster"].update(image_registry=mirror))
    out = tmp_path / "artifacts"
    got = _run(inv, PLAYBOOK, "-e", "rackboot_artifacts_dir=%s" % out, vault="lab@%s" % (inv / "vault-password.txt"))
    assert got.returncode == 0, got.stdout[-4000:]
    strings = _image_strings(out)
    assert strings and all(s.startswith(mirror + "/") for s in strings), sorted(strings)
    listing = json.loads((out / "images.json").read_text())
    assert listing["registry"] == mirror
    assert all(i["registry"] == mirror for i in listing["images"])
    assert {i["image"] for i in listing["images"] if i["used_by"] != ["platform"]} >= strings


def _role_play(tmp_path, role, tasks_from=None):
    play = tmp_path / ("%s.yml" % role)
    inc = {"name": role}
    if tasks_from:
        inc["tasks_from"] = tasks_from
    play.write_text(yaml.safe_dump([{"name": "t", "hosts": "localhost", "connection": "local", "gather_facts": False,
                                     "tasks": [{"name": "Run " + role, "ansible.builtin.include_role": inc}]}]))
    return play


def _run_role(inv, play, *extra, env=None):
    cmd = [ANSIBLE_PLAYBOOK, "-i", str(inv), str(play), "--vault-id", "%s@%s" % (inv.name, inv / "vault-password.txt")]
    return subprocess.run(cmd + list(extra), cwd=REPO, env=dict(_env(), ANSIBLE_ROLES_PATH=str(REPO / "roles"),
                                                                **(env or {})),
                          capture_output=True, text=True, timeout=300)


def test_local_chart_directory_and_archive_render_the_same(tmp_path):
    chart = tmp_path / "charts" / "cozy-proxy"
    shutil.copytree(upstream.path("cozy_proxy_chart"), chart)
    subprocess.run([mf.helm_binary(), "package", str(chart), "-d", str(tmp_path / "charts")], check=True,
                   capture_output=True)
    (archive,) = (tmp_path / "charts").glob("*.tgz")
    outputs = []
    for source in (None, str(chart), str(archive)):
        def change(spec, source=source):
            if source:
                spec.setdefault("components", {}).setdefault("cozy_proxy", {})["chart"] = source
        inv = _inventory_copy(tmp_path / ("i%d" % len(outputs)), "lab", change)
        out = tmp_path / ("out%d" % len(outputs))
        got = _run_role(inv, _role_play(tmp_path, "cozy_proxy", "render.yml"), "-e", "rackboot_artifacts_dir=%s" % out)
        assert got.returncode == 0, got.stdout[-3000:]
        chart_file = yaml.safe_load((out / "cozy-proxy/chart.yaml").read_text())
        assert chart_file["chart_ref"] == (source or upstream.path("cozy_proxy_chart"))
        outputs.append((out / "cozy-proxy/manifests.yaml").read_text())
    assert outputs[0] == outputs[1] == outputs[2]


def test_invalid_manifest_stops_the_render_with_its_field_path(tmp_path):
    inv = _inventory_copy(tmp_path, "lab", lambda s: s.setdefault("components", {}).setdefault(
        "cozy_proxy", {}).update(values={"daemonset": {"hostNetwork": "maybe"}}))
    out = tmp_path / "out"
    got = _run_role(inv, _role_play(tmp_path, "cozy_proxy", "render.yml"), "-e", "rackboot_artifacts_dir=%s" % out)
    text = got.stdout + got.stderr
    assert got.returncode != 0
    assert "cozy_proxy: DaemonSet cozy-proxy: spec.template.spec.hostNetwork: 'maybe' is not of type 'boolean'" in text
    assert not (out / "cozy-proxy/manifests.yaml").exists()


def test_tampered_chart_stops_the_install_before_any_cluster_call(tmp_path):
    """A chart whose sha256 differs from the pin: the error names the file and both hashes."""
    src = upstream.manifest()["cozy_proxy_chart"]
    mirror = tmp_path / "mirror"
    shutil.copytree(upstream.path("cozy_proxy_chart"), mirror / src["path"])
    values = mirror / src["path"] / "values.yaml"
    values.write_text(values.read_text().replace("hostNetwork: true", "hostNetwork: false"))
    pinned_sha = src["files"]["values.yaml"]
    got_sha = hashlib.sha256(values.read_bytes()).hexdigest()
    env = {"RACKBOOT_UPSTREAM_MIRROR": str(mirror), "RACKBOOT_UPSTREAM_CACHE": str(tmp_path / "cache"),
           "RACKBOOT_UPSTREAM_OFFLINE": "1"}
    inv = REPO / "inventories" / "lab"
    got = _run_role(inv, _role_play(tmp_path, "cozy_proxy"), "--check", "-e",
                    "rackboot_kubeconfig=%s" % _kubeconfig(tmp_path), "-e", "rackboot_artifacts_dir=%s" % tmp_path,
                    env=env)
    text = got.stdout + got.stderr
    assert got.returncode != 0
    assert "%s/values.yaml" % src["path"] in text and pinned_sha in text and got_sha in text, text[-3000:]
    assert "Check the cluster" not in text and "Traceback" not in text
