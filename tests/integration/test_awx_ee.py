"""The execution environment, built for real and used the way AWX uses it.

scripts/build-ee builds the image (or reuses it when no input changed);
everything below runs inside it through ansible-runner with podman process
isolation, as AWX's receptor worker does (tests/integration/awx_job.py):

* the inventory update of a "Sourced from a Project" source on both
  inventories, with AWX's command line and environment, then the checks AWX's
  import relies on: groups, the variables the roles read, vault-encrypted
  values kept encrypted;
* a bad spec: the update fails with the plugin's message and nothing to import;
* the render playbook as a job, on AWX's inventory script of the imported data;
* the routers stage as a job over SSH against an FRR test host, twice (the
  second run changes nothing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.integration import awx_job

# Builds the EE with podman (test hosts): the full suite, not --quick.
pytestmark = [pytest.mark.slow, pytest.mark.hosts]
REPO = awx_job.REPO
INVENTORIES = {"example": "inventories/example/cluster.yml", "lab": "inventories/lab/cluster.yml"}


@pytest.fixture(scope="module")
def image():
    return awx_job.ee_image()


@pytest.fixture(scope="module")
def updates(image, tmp_path_factory):
    """One AWX inventory update per inventory: {name: (pdd, runner, data)}."""
    out = {}
    for name, source in INVENTORIES.items():
        pdd = awx_job.private_data_dir(tmp_path_factory.mktemp(name))
        runner, data = awx_job.inventory_update(pdd, image, source)
        out[name] = (pdd, runner, data)
    return out


def test_image_holds_rackboot_and_its_tools(image):
    def sh(cmd):
        proc = subprocess.run(["podman", "run", "--rm", "--network=none", image, "sh", "-c", cmd],
                              capture_output=True, text=True, env=awx_job.podman_env(), check=False)
        assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
        return proc.stdout

    cols = json.loads(sh("ansible-galaxy collection list rackboot.metal --format json 2>/dev/null"))
    (installed,) = [v for v in cols.values() if "rackboot.metal" in v]
    assert installed["rackboot.metal"]["version"] == yaml.safe_load((REPO / "galaxy.yml").read_text())["version"]
    assert sh("helm version --short").startswith("v")
    sh("python3 -c 'import netaddr, jsonschema, kubernetes, jmespath, ansible_runner' && command -v ssh ssh-agent git")
    # The offline build's pip configuration does not stay in the image.
    sh("test ! -e /etc/pip.conf")


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_inventory_update_exports_what_the_roles_need(updates, name):
    _pdd, runner, raw = updates[name]
    assert runner.status == "successful", runner.stdout.read()
    # ansible-core 2.19 exports the plugin's strings as {"__ansible_unsafe": ...};
    # AWX stores them so and its inventory script hands them back to jobs.
    assert raw["_meta"]["hostvars"][raw["routers"]["hosts"][0]]["rackboot_router"]["name"] == {
        "__ansible_unsafe": raw["routers"]["hosts"][0]}
    data = awx_job.plain(raw)
    groups = {g for g in data if g != "_meta"}
    assert {"all", "k8s_nodes", "controlplane", "routers"} <= groups
    assert "rackboot.metal.cluster_from_json" in data["all"]["vars"]["rackboot_cluster"]
    cluster = json.loads(data["all"]["vars"]["rackboot_cluster_json"])
    hostvars = data["_meta"]["hostvars"]
    spec = yaml.safe_load((REPO / INVENTORIES[name]).read_text())
    nodes = {n["name"] for n in spec["nodes"]}
    routers = {r["name"] for r in spec["routers"]}
    assert cluster["node_count"] == len(nodes) and {r["name"] for r in cluster["routers"]} == routers
    assert set(data["k8s_nodes"]["hosts"]) == nodes and set(data["routers"]["hosts"]) == routers
    # Each node holds its own part; rackboot_node resolves from it in the job
    # (test_render_job_in_the_ee, tests/integration/test_inventory_cli.py).
    for host in nodes:
        assert hostvars[host]["rackboot_node_spec"]["name"] == host and hostvars[host]["ansible_host"]
        assert "rackboot_node" not in hostvars[host]
    assert "rackboot.metal.cluster_node" in data["k8s_nodes"]["vars"]["rackboot_node"]
    for host in routers:
        assert hostvars[host]["rackboot_router"]["name"] == host
    assert {p["name"] for p in json.loads(data["routers"]["vars"]["rackboot_router_peers_json"])} == nodes
    # Paths resolve inside the job's project copy, where every job of AWX runs.
    assert data["all"]["vars"]["rackboot_inventory_dir"] == f"/runner/project/{Path(INVENTORIES[name]).parent}"


@pytest.mark.parametrize("name", sorted(INVENTORIES))
def test_vaulted_variables_stay_encrypted_in_the_export(updates, name):
    # No vault password at update time: AWX stores the ciphertext in __ansible_vault
    # form and the job's Vault credential decrypts it.
    pdd, _runner, data = updates[name]
    secret = data["all"]["vars"]["rackboot_bgp_password"]
    assert set(secret) == {"__ansible_vault"} and secret["__ansible_vault"].startswith("$ANSIBLE_VAULT;1.2;AES256;")
    plain = (pdd / "project" / Path(INVENTORIES[name]).parent / "vault-password.txt").read_text().strip()
    assert plain not in json.dumps(data)


def test_bad_spec_fails_the_update_with_the_plugins_message(image, tmp_path):
    pdd = awx_job.private_data_dir(tmp_path)
    spec = pdd / "project" / INVENTORIES["lab"]
    text = spec.read_text()
    assert "mtu:" in text
    spec.write_text(text.replace("mtu:", "mtuu:", 1))
    line = next(i for i, ln in enumerate(spec.read_text().splitlines(), 1) if "mtuu:" in ln)
    runner, data = awx_job.inventory_update(pdd, image, INVENTORIES["lab"])
    out = runner.stdout.read()
    assert runner.status == "failed" and runner.rc != 0
    assert data is None and not (pdd / "artifacts" / "1" / "output.json").exists()
    assert f"cluster.yml:{line}: " in out and "mtuu: unknown key; did you mean 'mtu'?" in out, out[-3000:]


def test_render_job_in_the_ee(image, updates):
    pdd, _runner, data = updates["lab"]
    awx_job.write_job_inventory(pdd, data)
    password = (pdd / "project" / "inventories/lab/vault-password.txt").read_text().strip()
    t0 = time.monotonic()
    # The render reads the pinned upstream charts: AWX exposes a mirror to its
    # jobs (Settings > Jobs: "Paths to expose to isolated jobs") and names it
    # in "Extra Environment Variables", as an air-gapped site does.
    from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream
    upstream.ensure()
    mirror = upstream.cache_dir()
    runner = awx_job.run_job(pdd, image, "playbooks/render.yml", vault_id="lab", vault_password=password, ident="2",
                             container_options=("-v", "%s:/opt/rackboot-upstream:ro" % mirror),
                             task_env={"RACKBOOT_UPSTREAM_MIRROR": "/opt/rackboot-upstream"})
    took = time.monotonic() - t0
    assert runner.status == "successful", runner.stdout.read()[-4000:]
    cluster = json.loads(awx_job.plain(data["all"]["vars"]["rackboot_cluster_json"]))["name"]
    artifacts = pdd / "project" / "inventories" / "lab" / "artifacts" / cluster
    files = [p for p in artifacts.rglob("*") if p.is_file()]
    assert files, f"no artifacts under {artifacts}"
    # The router configs carry the BGP password: the Vault credential decrypted it.
    frr = [p for p in files if "rtr-frr" in str(p)]
    assert frr and any("password" in p.read_text() for p in frr)
    print(f"render job in the EE: {took:.1f} s, {len(files)} files")


@pytest.fixture
def frr_host(tmp_path):
    """An FRR router container with sshd on a loopback port; (port, private key text)."""
    subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-m", "rackboot.lab", "image", "container",
                    "rackboot/ee-target:bookworm"], cwd=REPO, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(REPO / "src")))
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    name = "ee17-rtr-frr"
    env = awx_job.podman_env()
    subprocess.run(["podman", "rm", "-f", name], env=env, capture_output=True, check=False)
    subprocess.run(
        ["podman", "run", "-d", "--name", name, "--hostname", "rtr-frr", "--privileged", "--systemd=always",
         "-p", "127.0.0.1::22", "localhost/rackboot/ee-target:bookworm", "/sbin/init"],
        env=env, check=True, capture_output=True,
    )
    try:
        subprocess.run(["podman", "exec", name, "sh", "-c",
                        f"mkdir -p -m 700 /root/.ssh && echo '{key.with_suffix('.pub').read_text().strip()}'"
                        " > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys"],
                       env=env, check=True)
        port = subprocess.run(["podman", "port", name, "22"], env=env, capture_output=True, text=True,
                              check=True).stdout.strip().rsplit(":", 1)[1]
        deadline = time.monotonic() + 60
        while subprocess.run(["podman", "exec", name, "systemctl", "is-active", "ssh"], env=env,
                             capture_output=True, check=False).returncode and time.monotonic() < deadline:
            time.sleep(1)
        yield int(port), key.read_text()
    finally:
        subprocess.run(["podman", "rm", "-f", name], env=env, capture_output=True, check=False)


def test_routers_stage_over_ssh_in_the_ee(image, updates, frr_host):
    port, key = frr_host
    pdd, _runner, data = updates["lab"]
    awx_job.write_job_inventory(pdd, data)
    password = (pdd / "project" / "inventories/lab/vault-password.txt").read_text().strip()
    extra = ["--limit", "rtr-frr", "-e", "ansible_host=127.0.0.1", "-e", f"ansible_port={port}"]
    stats = []
    for run in ("3", "4"):
        runner = awx_job.run_job(pdd, image, "playbooks/routers.yml", vault_id="lab", vault_password=password,
                                 extra=extra, ssh_key=key, container_options=("--network=host",), ident=run)
        assert runner.status == "successful", runner.stdout.read()[-5000:]
        stats.append(runner.stats)
    assert stats[0]["changed"].get("rtr-frr", 0) > 0
    assert stats[1]["changed"].get("rtr-frr", 0) == 0, "second routers run changed something"
    conf = subprocess.run(["podman", "exec", "ee17-rtr-frr", "vtysh", "-c", "show running-config"],
                          env=awx_job.podman_env(), capture_output=True, text=True, check=True).stdout
    assert "router bgp" in conf
