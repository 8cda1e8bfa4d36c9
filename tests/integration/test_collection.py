"""The repository is the collection rackboot.metal: usable from the checkout,
buildable, and installable where AWX / an execution environment would put it."""
import subprocess
import tarfile

from conftest import REPO, ansible_env


def run(*cmd, cwd=REPO, env=None):
    return subprocess.run(list(cmd), cwd=cwd, env=env or ansible_env(), capture_output=True, text=True, timeout=300)


def test_fqcn_works_from_the_checkout():
    res = run("ansible-doc", "-t", "inventory", "rackboot.metal.cluster")
    assert res.returncode == 0, res.stderr
    assert "rackboot cluster spec" in res.stdout


def test_build_and_install(tmp_path):
    res = run("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    artifact = next(tmp_path.glob("rackboot-metal-*.tar.gz"))
    names = tarfile.open(artifact).getnames()
    assert "plugins/inventory/cluster.py" in names
    assert "plugins/module_utils/cluster_model.py" in names
    assert not any(n.startswith(("collections/", ".venv/", "src/rackboot/lab/__pycache__")) for n in names)
    assert not any("vault-password" in n or n.endswith("talos-secrets.yaml") for n in names)

    dest = tmp_path / "installed"
    env = ansible_env()
    res = run("ansible-galaxy", "collection", "install", "--offline", "--no-deps", "--force", "-p", str(dest), str(artifact), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    # From elsewhere, with only the installed copy on the collections path.
    env["ANSIBLE_COLLECTIONS_PATH"] = str(dest)
    env.pop("ANSIBLE_CONFIG")
    env["ANSIBLE_INVENTORY_ENABLED"] = "rackboot.metal.cluster"
    env["ANSIBLE_INVENTORY_UNPARSED_FAILED"] = "true"
    res = run("ansible-inventory", "-i", str(REPO / "inventories/example/cluster.yml"), "--graph", cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    assert "@controlplane:" in res.stdout
