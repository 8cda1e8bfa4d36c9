"""Render mode for kubeadm clusters: playbooks/render/kubeadm.yml on the lab inventory, through
ansible-playbook and the inventory plugin, twice (byte-identical, 0 changed), and a bad spec refused
with a reason and no traceback."""
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO, VENV_BIN, ansible_env, load_yaml

LAB = REPO / "inventories" / "lab"
PLAYBOOK = REPO / "playbooks" / "render" / "kubeadm.yml"

pytestmark = pytest.mark.slow


def run_render(inventory, artifacts, vault=True):
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(PLAYBOOK),
           "-e", "rackboot_artifacts_dir=%s" % artifacts]
    if vault:
        cmd[1:1] = ["--vault-id", "lab@%s" % (LAB / "vault-password.txt")]
    return subprocess.run(cmd, cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=600)


def recap_changed(stdout):
    m = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=0", stdout)
    assert m, stdout[-3000:]
    return int(m.group(1))


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    out = tmp_path_factory.mktemp("render")
    first = run_render(LAB, out)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    files = snapshot(out)
    second = run_render(LAB, out)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    return out, first, second, files


def test_render_writes_one_config_per_node_and_kube_vip_per_control_plane(rendered):
    out, first, second, files = rendered
    spec = load_yaml(LAB / "cluster.yml")
    nodes = [n["name"] for n in spec["nodes"]]
    cps = [n["name"] for n in spec["nodes"] if n["role"] == "controlplane"]
    assert sorted(f for f in files if f.startswith("kubeadm/")) == sorted("kubeadm/%s-kubeadm-config.yaml" % n
                                                                       for n in nodes)
    assert sorted(f for f in files if f.startswith("kube-vip/")) == sorted("kube-vip/%s.yaml" % n for n in cps)


def test_second_render_changes_nothing(rendered):
    out, first, second, files = rendered
    assert recap_changed(first.stdout) > 0
    assert recap_changed(second.stdout) == 0
    assert snapshot(out) == files


def test_rendered_files_hold_the_spec(rendered):
    out, _, _, _ = rendered
    spec = load_yaml(LAB / "cluster.yml")
    mgmt = spec["host_network"]["native_network"]
    boot = next(n for n in spec["nodes"] if n["role"] == "controlplane")
    docs = {d["kind"]: d for d in yaml.safe_load_all((out / "kubeadm" / ("%s-kubeadm-config.yaml" % boot["name"]))
                                                     .read_text())}
    cc = docs["ClusterConfiguration"]
    assert cc["proxy"]["disabled"] is True
    assert cc["controlPlaneEndpoint"].split(":")[0] == spec["cluster"]["api_vip"]
    assert docs["InitConfiguration"]["localAPIEndpoint"]["advertiseAddress"] == boot["addresses"][mgmt]
    for node in spec["nodes"]:
        text = (out / "kubeadm" / ("%s-kubeadm-config.yaml" % node["name"])).read_text()
        assert "token:" not in text and "certificateKey" not in text  # render mode holds no secrets
        if node is not boot:
            (join,) = list(yaml.safe_load_all(text))
            assert join["kind"] == "JoinConfiguration"
            assert join["nodeRegistration"]["name"] == node["name"]
    pod = yaml.safe_load((out / "kube-vip" / ("%s.yaml" % boot["name"])).read_text())
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["address"] == spec["cluster"]["api_vip"]
    assert env["vip_interface"] == spec["host_network"]["bond"]["name"]
    # Steady state: the bootstrap node mounts super-admin.conf only while kubeadm init runs.
    assert pod["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf"


def test_unsupported_kubernetes_version_is_refused_with_a_reason(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns("artifacts", "secrets"))
    spec = (inv / "cluster.yml").read_text()
    (inv / "cluster.yml").write_text(spec.replace('kubernetes_version: "1.34.1"', 'kubernetes_version: "1.30.4"'))
    assert "1.30.4" in (inv / "cluster.yml").read_text()
    res = subprocess.run([str(VENV_BIN / "ansible-playbook"), "--vault-id",
                          "lab@%s" % (inv / "vault-password.txt"), "-i", str(inv), str(PLAYBOOK),
                          "-e", "rackboot_artifacts_dir=%s" % (tmp_path / "out")],
                         cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=600)
    output = res.stdout + res.stderr
    assert res.returncode != 0
    assert "1.30.4" in output and "1.31 or later" in output
    assert "Traceback" not in output
    assert not list((tmp_path / "out").rglob("*.yaml"))
