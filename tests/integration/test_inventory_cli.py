"""ansible-inventory against the real plugin, as engineers and AWX run it."""
import json
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import REPO, ansible_env
from rackboot.collection import plain

VAULT = {
    "example": "example@%s" % (REPO / "inventories/example/vault-password.txt"),
    "lab": "lab@%s" % (REPO / "inventories/lab/vault-password.txt"),
}


def inventory(*args):
    return subprocess.run(["ansible-inventory"] + list(args), cwd=REPO, env=ansible_env(),
                          capture_output=True, text=True, timeout=120)


unwrap = plain


@pytest.mark.parametrize("name", ["example", "lab"])
def test_graph_lists_every_host_in_its_groups(name):
    spec = yaml.safe_load((REPO / "inventories" / name / "cluster.yml").read_text())
    res = inventory("-i", "inventories/%s" % name, "--graph")
    assert res.returncode == 0, res.stderr
    for node in spec["nodes"]:
        assert "|--%s\n" % node["name"] in res.stdout
    assert "@controlplane:" in res.stdout and "@routers:" in res.stdout
    assert "@%s:" % spec["cluster"]["distribution"] in res.stdout


@pytest.mark.parametrize("name", ["example", "lab"])
def test_list_carries_the_computed_model(name):
    spec = yaml.safe_load((REPO / "inventories" / name / "cluster.yml").read_text())
    res = inventory("-i", "inventories/%s" % name, "--list", "--export", "--vault-id", VAULT[name])
    assert res.returncode == 0, res.stderr
    data = unwrap(json.loads(res.stdout))
    hostvars = data["_meta"]["hostvars"]
    # group all holds the cluster as one string; rackboot_cluster decodes it when read
    assert "rackboot.metal.cluster_from_json" in data["all"]["vars"]["rackboot_cluster"]
    cluster = json.loads(data["all"]["vars"]["rackboot_cluster_json"])
    assert cluster["name"] == spec["cluster"]["name"]
    mgmt = spec["host_network"]["native_network"]
    for node in spec["nodes"]:
        hv = hostvars[node["name"]]
        assert hv["ansible_host"] == node["addresses"][mgmt]
        # a node holds its own part; rackboot_node resolves from it (test below)
        assert hv["rackboot_node_spec"]["role"] == node["role"]
        assert hv["rackboot_node_spec"]["addresses"] == node["addresses"]
        assert "rackboot_node" not in hv
    # one template for all nodes, held by their group
    assert "rackboot.metal.cluster_node" in data["k8s_nodes"]["vars"]["rackboot_node"]
    # the routers' shared peer list is one string too, decoded when read
    assert "from_json" in data["routers"]["vars"]["rackboot_router_peers"]
    peers = json.loads(data["routers"]["vars"]["rackboot_router_peers_json"])
    assert sorted(p["name"] for p in peers) == sorted(n["name"] for n in spec["nodes"])
    for router in spec["routers"]:
        assert hostvars[router["name"]]["rackboot_router"]["peers"] == "{{ rackboot_router_peers }}"
    # the vaulted BGP password stays encrypted in the listing
    assert "__ansible_vault" in json.dumps(data["all"]["vars"]["rackboot_bgp_password"])
    assert sorted(data["controlplane"]["hosts"]) == sorted(n["name"] for n in spec["nodes"] if n["role"] == "controlplane")


def _values(v):
    return 1 + (sum(1 + _values(x) for x in v.values()) if isinstance(v, dict)
                else sum(_values(x) for x in v) if isinstance(v, list) else 0)


def test_list_copies_the_cluster_into_each_host_as_one_string():
    # --list copies group all into every host and JSON-encodes it value by
    # value in Python: the cluster (~600 values structured) must stay one.
    res = inventory("-i", "inventories/lab", "--list", "--vault-id", VAULT["lab"])
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    hostvars = data["_meta"]["hostvars"]
    cluster = json.loads(unwrap(hostvars["node1"]["rackboot_cluster_json"]))
    assert _values(cluster) > 300
    for host in data["k8s_nodes"]["hosts"]:
        assert isinstance(unwrap(hostvars[host]["rackboot_cluster_json"]), str)
        assert "rackboot.metal.cluster_from_json" in hostvars[host]["rackboot_cluster"]
        assert _values(hostvars[host]) < 150, host


@pytest.mark.parametrize("name", ["example", "lab"])
def test_plays_resolve_the_exported_inventory_as_the_model_computed_it(tmp_path, name):
    # AWX imports `--list --export` and hands jobs the stored data as a script
    # inventory: a play there reads every node's rackboot_node and every
    # router's rackboot_router as the model computed them.
    from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import read_spec

    res = inventory("-i", "inventories/%s" % name, "--list", "--export")
    assert res.returncode == 0, res.stderr
    export = tmp_path / "export.json"
    export.write_text(res.stdout)
    script = tmp_path / "awx_inventory.py"
    script.write_text("#!%s\nimport sys\nprint(open(%r).read() if '--list' in sys.argv else '{}')\n"
                      % (sys.executable, str(export)))
    script.chmod(0o755)
    out = tmp_path / "resolved.json"
    play = tmp_path / "play.yml"
    play.write_text(
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - ansible.builtin.copy:\n"
        "        dest: %s\n        mode: '0600'\n        content: >-\n"
        "          {{ {'nodes': groups['k8s_nodes'] | map('extract', hostvars, 'rackboot_node') | list,\n"
        "              'routers': groups['routers'] | map('extract', hostvars, 'rackboot_router') | list,\n"
        "              'cluster': rackboot_cluster} | to_json }}\n" % out)
    run = subprocess.run(["ansible-playbook", "-i", str(script), str(play)], cwd=REPO, env=ansible_env(),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    model = json.loads(json.dumps({"nodes": list(m.nodes.values()), "routers": list(m.routers.values()),
                                   "cluster": m.cluster}) if (m := read_spec(str(
                                       REPO / "inventories" / name / "cluster.yml"))) else "{}")
    assert json.loads(out.read_text()) == model


def test_the_vault_password_decrypts(tmp_path):
    res = subprocess.run(["ansible", "-i", "inventories/lab", "localhost", "-m", "ansible.builtin.assert",
                          "-a", "that='rackboot_bgp_password | length >= 8'", "--vault-id", VAULT["lab"]],
                         cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def test_any_yaml_file_with_the_plugin_key_is_a_spec(tmp_path):
    shutil.copy(REPO / "inventories" / "example" / "cluster.yml", tmp_path / "rack-42.yaml")
    (tmp_path / "notes.yml").write_text("just: a file\n")  # not a spec: another plugin's business
    res = inventory("-i", str(tmp_path / "rack-42.yaml"), "--graph")
    assert res.returncode == 0, res.stderr
    assert "|--cp1" in res.stdout


def test_a_bad_spec_fails_with_clear_messages_and_no_traceback(tmp_path):
    spec = yaml.safe_load((REPO / "inventories/lab/cluster.yml").read_text())
    spec["nodes"][2]["addresses"]["mgmt"] = "192.168.101.5"
    spec["networks"][1]["vlan"] = 4095
    spec["nodes"][0]["rol"] = "controlplane"
    path = tmp_path / "cluster.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    res = inventory("-i", str(path), "--list")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "Traceback" not in out
    assert "nodes[2] (node3).addresses.mgmt: 192.168.101.5 is outside network mgmt 10.77.0.0/24" in out
    assert "networks[1] (peering).vlan: value 4095 is outside 1-4094" in out
    assert "nodes[0] (node1).rol: unknown key; did you mean 'role'?" in out
    # file and line of each problem
    lines = path.read_text().splitlines()
    vlan_line = next(i + 1 for i, line in enumerate(lines) if "vlan: 4095" in line)
    assert "%s:%d: networks[1] (peering).vlan" % (path, vlan_line) in out
    # the list once, one problem per root cause, nothing from other plugins
    assert out.count("value 4095 is outside") == 1, out
    assert "3 problems in cluster spec" in out
    assert "not YAML inventory" not in out


def test_invalid_yaml_is_reported_with_its_line(tmp_path):
    path = tmp_path / "cluster.yml"
    path.write_text("plugin: rackboot.metal.cluster\ncluster:\n  name: x\n   bad: indent\n")
    res = inventory("-i", str(path), "--list")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and "Traceback" not in out
    assert "%s:4: (top level): not valid YAML" % path in out


@pytest.mark.parametrize("text,reason", [
    ("", "is empty"),
    ("plugin: rackboot.metal.clustr\ncluster: {}\n", "did you mean 'rackboot.metal.cluster'"),
    ("cluster: {name: x}\nnodes: []\n", "plugin: is required"),
])
def test_broken_files_get_the_plugins_own_message(tmp_path, text, reason):
    path = tmp_path / "cluster.yml"
    path.write_text(text)
    res = inventory("-i", str(path), "--list")
    out = res.stdout + res.stderr
    assert res.returncode != 0 and reason in out, out
    assert "not YAML inventory" not in out and "Traceback" not in out


def test_two_specs_in_one_inventory_are_refused(tmp_path):
    for name in ("a.yml", "b.yml"):
        shutil.copy(REPO / "inventories/lab/cluster.yml", tmp_path / name)
    res = inventory("-i", str(tmp_path), "--list")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "a second cluster spec in one inventory (the first is %s)" % (tmp_path / "a.yml") in out
    assert str(tmp_path / "b.yml") in out


def test_playbook_stops_before_touching_hosts_on_a_bad_spec(tmp_path):
    spec = yaml.safe_load((REPO / "inventories/lab/cluster.yml").read_text())
    spec["load_balancer"]["pools"][1]["range"] = "10.77.0.220-10.77.0.200"
    path = tmp_path / "cluster.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    marker = tmp_path / "touched"
    play = tmp_path / "play.yml"
    play.write_text("- hosts: all\n  gather_facts: false\n  tasks:\n"
                    "    - ansible.builtin.file: {path: %s, state: touch}\n      delegate_to: localhost\n" % marker)
    res = subprocess.run(["ansible-playbook", "-i", str(path), str(play)], cwd=REPO, env=ansible_env(),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "range start 10.77.0.220 is after its end 10.77.0.200" in res.stdout + res.stderr
    assert not marker.exists()


def test_constructed_options_work(tmp_path):
    spec = yaml.safe_load((REPO / "inventories/lab/cluster.yml").read_text())
    spec["keyed_groups"] = [{"key": "rackboot_node.role", "prefix": "role", "default_value": "router"}]
    spec["compose"] = {"rack_name": "rackboot_node.rack | default('none')"}
    path = tmp_path / "cluster.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    res = inventory("-i", str(path), "--list")
    assert res.returncode == 0, res.stderr
    data = unwrap(json.loads(res.stdout))
    assert sorted(data["role_worker"]["hosts"]) == ["node2", "node3"]
    assert data["_meta"]["hostvars"]["node3"]["rack_name"] == "lab2"


def test_artifacts_and_secrets_in_the_inventory_folder_are_not_read_as_inventory(tmp_path):
    shutil.copy(REPO / "inventories/lab/cluster.yml", tmp_path / "cluster.yml")
    (tmp_path / "artifacts/lab").mkdir(parents=True)
    (tmp_path / "artifacts/lab/resources.yaml").write_text("kind: A\n---\nkind: B\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets/talos-secrets.yaml").write_text("cluster: {id: x}\n")
    res = inventory("-i", str(tmp_path), "--graph")
    assert res.returncode == 0, res.stderr
    assert "|--node1" in res.stdout
