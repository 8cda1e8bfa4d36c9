"""The repository is the collection rackboot.metal: usable from the checkout,
buildable, and installable where AWX / an execution environment would put it."""
import fnmatch
import shutil
import subprocess
import tarfile

import pytest
import yaml

from conftest import REPO, ansible_env
from rackboot.cli import TEMPLATES

# What a built rackboot.metal may contain, and nothing else (galaxy.yml's
# manifest directives are the allow-list; this is the independent check).
ALLOWED = ["MANIFEST.json", "FILES.json", "README.md", "LICENSE", "CHANGELOG.md",
           "meta/*.yml", "meta/*.txt", "docs/*.md",
           "plugins/*/*.py", "plugins/*/*.yml",
           "roles/*/defaults/*.yml", "roles/*/tasks/*.yml", "roles/*/handlers/*.yml", "roles/*/meta/*.yml",
           "roles/*/templates/*.j2", "roles/*/files/*.yml", "roles/*/vars/*.yml",
           "playbooks/*.yml", "playbooks/*/*.yml",
           "inventories/example/group_vars/*/*.yml", "inventories/lab/group_vars/*/*.yml"] + [
           "inventories/%s/cluster.yml" % t for t in TEMPLATES]
FORBIDDEN = ["tests/*", "scripts/*", "molecule/*", "*/molecule/*", ".venv*", "src/*", "pyproject.toml", ".ci/*",
             "collections*", "*/secrets/*", "*/artifacts/*", "*vault-password*", "inventories/dc1/*",
             "*__pycache__*", "*.pyc", "galaxy.yml"]


def run(*cmd, cwd=REPO, env=None):
    return subprocess.run(list(cmd), cwd=cwd, env=env or ansible_env(), capture_output=True, text=True, timeout=300)


def test_fqcn_works_from_the_checkout():
    res = run("ansible-doc", "-t", "inventory", "rackboot.metal.cluster")
    assert res.returncode == 0, res.stderr
    assert "rackboot cluster spec" in res.stdout


def _files(artifact):
    with tarfile.open(artifact) as tar:
        return [m.name for m in tar.getmembers() if m.isfile()]


@pytest.fixture(scope="module")
def polluted_build(tmp_path_factory):
    """The collection built from a copy of the checkout that also holds what
    a user's clone holds: their own inventory with secrets and artifacts, the
    demo's secrets, a venv, the CLI package, tests, rendered molecule state."""
    tmp = tmp_path_factory.mktemp("collection")
    src = tmp / "src" / "ansible_collections" / "rackboot" / "metal"
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, tracked.decode().split("\0")):
        if (REPO / rel).is_file() and not (REPO / rel).is_symlink():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, src / rel)
    for rel in ["inventories/dc1/cluster.yml", "inventories/dc1/group_vars/all/vault.yml",
                "inventories/dc1/vault-password.txt", "inventories/dc1/secrets/talos-secrets.yaml",
                "inventories/example/secrets/talos-secrets.yaml", "inventories/example/artifacts/c/talos/cp1.yaml",
                "inventories/example/artifacts/c/kube-ovn/values.yml", "src/rackboot/cli.py", "pyproject.toml",
                ".venv/bin/python", "roles/talos/molecule/default/molecule.yml", "plugins/filter/__pycache__/x.pyc"]:
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_text("secret: do-not-ship\n")
    out = tmp / "out"
    res = run("ansible-galaxy", "collection", "build", "--output-path", str(out), str(src))
    assert res.returncode == 0, res.stdout + res.stderr
    return next(out.glob("rackboot-metal-*.tar.gz"))


def test_built_collection_holds_only_the_allow_list(polluted_build):
    names = _files(polluted_build)
    outside = [n for n in names if not any(fnmatch.fnmatch(n, pat) for pat in ALLOWED)]
    assert outside == []
    forbidden = [n for n in names if any(fnmatch.fnmatch(n, pat) for pat in FORBIDDEN)]
    assert forbidden == []
    for required in ["LICENSE", "meta/runtime.yml", "meta/execution-environment.yml", "plugins/inventory/cluster.py",
                     "roles/versions/files/upstream.yml", "playbooks/site.yml"] + ["inventories/%s/cluster.yml" % t for t in TEMPLATES]:
        assert required in names
    with tarfile.open(polluted_build) as tar:
        assert not any(b"do-not-ship" in tar.extractfile(n).read() for n in names)


def test_license_is_the_apache_license_2_0():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text and "APPENDIX: How to apply the Apache License" in text
    assert len(text.split()) > 1500          # the full text, not a stub
    assert yaml.safe_load((REPO / "galaxy.yml").read_text())["license"] == ["Apache-2.0"]


def test_execution_environment_dependencies(polluted_build, tmp_path):
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    assert runtime["requires_ansible"].startswith(">=2.19")
    dest = tmp_path / "installed"
    res = run("ansible-galaxy", "collection", "install", "--offline", "--no-deps", "--force", "-p", str(dest),
              str(polluted_build))
    assert res.returncode == 0, res.stdout + res.stderr
    res = run("ansible-builder", "introspect", str(dest))
    assert res.returncode == 0, res.stdout + res.stderr
    deps = yaml.safe_load(res.stdout)
    python = {line.split(">=")[0] for line in deps["python"]}
    assert {"cryptography", "jsonschema", "netaddr", "kubernetes"} <= python
    assert any(line.startswith("openssh-client") for line in deps["system"])
    # Every library the EE installs is one the test suite pins and runs with.
    pinned = {line.split("==")[0].lower() for line in (REPO / "requirements.txt").read_text().splitlines()
              if "==" in line and not line.startswith("#")}
    assert {p.lower() for p in python} <= pinned


def test_build_and_install(tmp_path):
    res = run("ansible-galaxy", "collection", "build", "--output-path", str(tmp_path))
    assert res.returncode == 0, res.stdout + res.stderr
    artifact = next(tmp_path.glob("rackboot-metal-*.tar.gz"))
    names = tarfile.open(artifact).getnames()
    assert "plugins/inventory/cluster.py" in names
    assert "plugins/plugin_utils/cluster_model.py" in names
    assert not any(n.startswith(("collections/", ".venv/", "src/")) for n in names)
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
