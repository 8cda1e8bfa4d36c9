"""`rackboot init`, `validate` and the packaging (requirements, wheel contents)."""
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
import zipfile

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from conftest import REPO, ansible_env
from rackboot import validate
from rackboot.cli import TEMPLATES, cli

VALIDATE_SCHEMA = json.loads((REPO / "src/rackboot/schemas/validate.schema.json").read_text())


def _invoke(*args, **kw):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kw)


def _bad_lab(tmp_path):
    inv = tmp_path / "bad"
    inv.mkdir()
    text = (REPO / "inventories/lab/cluster.yml").read_text()
    assert "vlan: 100\n" in text
    (inv / "cluster.yml").write_text(text.replace("vlan: 100\n", "vlan: 5000\n").replace("asn: 65000\n", "asn: x\n", 1))
    return inv


@pytest.mark.parametrize("inventory", ["inventories/lab", "inventories/example", "inventories/lab/cluster.yml"])
def test_validate_accepts_the_shipped_specs(inventory):
    res = _invoke("validate", REPO / inventory)
    assert res.exit_code == 0, res.output
    res = _invoke("validate", REPO / inventory, "--json")
    assert res.exit_code == 0 and json.loads(res.output) == []


def test_validate_json_names_file_line_and_path(tmp_path):
    inv = _bad_lab(tmp_path)
    res = _invoke("validate", inv, "--json")
    assert res.exit_code == 3
    found = json.loads(res.output)
    jsonschema.validate(found, VALIDATE_SCHEMA)
    lines = (inv / "cluster.yml").read_text().splitlines()
    by_path = {p["path"]: p for p in found}
    assert "networks[1] (peering).vlan" in by_path and "routers[0] (rtr-frr).asn" in by_path
    for path, text in (("networks[1] (peering).vlan", "vlan: 5000"), ("routers[0] (rtr-frr).asn", "asn: x")):
        p = by_path[path]
        assert p["file"] == str(inv / "cluster.yml")
        assert text in lines[p["line"] - 1]
    assert len({(p["path"], p["message"]) for p in found}) == len(found)  # once each


def test_validate_groups_problems_by_item(tmp_path):
    res = _invoke("validate", _bad_lab(tmp_path))
    assert res.exit_code == 3
    out = res.output
    assert "routers[0] (rtr-frr)" in out and "networks[1] (peering)" in out
    assert out.count("networks[1] (peering).vlan") == 1


def test_problems_carry_the_item_they_belong_to(tmp_path):
    # The item comes with the problem, not from parsing its printed path: an
    # unknown top-level key with a dot in it is one item, not "rack".
    text = (REPO / "inventories/lab/cluster.yml").read_text()
    assert "\nrouters:\n" in text
    inv = tmp_path / "odd"
    inv.mkdir()
    (inv / "cluster.yml").write_text(text.replace("vlan: 100\n", "vlan: 5000\n") + "rack.s: 1\n")
    found = {p["path"]: p for p in validate.problems(inv)}
    assert found["networks[1] (peering).vlan"]["item"] == "networks[1] (peering)"
    (odd,) = [p for p in found.values() if "unknown key" in p["message"]]
    assert odd["item"] == odd["path"] == "rack.s"
    res = _invoke("validate", inv)
    assert res.exit_code == 3 and "\n  rack.s\n" in res.output


def test_validate_reports_yaml_errors_and_missing_specs(tmp_path):
    (tmp_path / "cluster.yml").write_text("plugin: rackboot.metal.cluster\ncluster: [\n")
    res = _invoke("validate", tmp_path, "--json")
    assert res.exit_code == 3
    found = json.loads(res.output)
    jsonschema.validate(found, VALIDATE_SCHEMA)
    assert found[0]["line"] and "YAML" in found[0]["message"]
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _invoke("validate", empty, "--json")
    assert res.exit_code == 3 and "no cluster spec" in json.loads(res.output)[0]["message"]


@pytest.mark.parametrize("template", TEMPLATES)
def test_init_creates_a_clean_inventory(tmp_path, template):
    pw = tmp_path / "pass"
    pw.write_text("init-test-password\n")
    inv = tmp_path / "dc9"
    res = _invoke("init", inv, "--from", template, "--vault-password-file", pw)
    assert res.exit_code == 0, res.output
    files = sorted(str(p.relative_to(inv)) for p in inv.rglob("*"))
    assert files == [".gitignore", "cluster.yml", "group_vars", "group_vars/all", "group_vars/all/vault.yml", "secrets"]
    ignored = (inv / ".gitignore").read_text().split()
    for entry in ("secrets/", "artifacts/", "runs/"):
        assert entry in ignored
    assert stat.S_IMODE((inv / "group_vars/all/vault.yml").stat().st_mode) == 0o600
    for folder in ("secrets", "group_vars", "group_vars/all"):
        assert stat.S_IMODE((inv / folder).stat().st_mode) == 0o700, folder
    spec = yaml.safe_load((inv / "cluster.yml").read_text())
    assert spec["cluster"]["name"] == "dc9"
    # The vault holds a new BGP password, readable with the new vault password only.
    from ansible.parsing.vault import VaultLib, VaultSecret
    vault_text = (inv / "group_vars/all/vault.yml").read_text()
    token = re.search(r"(\$ANSIBLE_VAULT.*)", vault_text, re.S).group(1).replace("  ", "")
    secret = VaultLib([("x", VaultSecret(b"init-test-password"))]).decrypt(token).decode()
    assert len(secret) >= 24 and secret not in vault_text
    template_vault = REPO / "inventories" / template / "group_vars/all/vault.yml"
    if template_vault.exists():      # the variant examples have no BGP, hence no vault
        assert token.strip() not in template_vault.read_text()
    assert _invoke("validate", inv).exit_code == 0


def test_init_prompts_for_the_vault_password_and_refuses_a_used_folder(tmp_path):
    inv = tmp_path / "dc8"
    res = _invoke("init", inv, input="pw1\npw1\n")
    assert res.exit_code == 0, res.output
    assert "pw1" not in (inv / "group_vars/all/vault.yml").read_text()
    res = _invoke("init", inv, input="pw1\npw1\n")
    assert res.exit_code == 3 and "not empty" in res.output


def test_requirements_agree_with_pyproject():
    pins = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert sorted(project["dependencies"]) == sorted(pins)
    assert all(re.fullmatch(r"[A-Za-z0-9_.\[\]-]+==[0-9][0-9A-Za-z.]*", p) for p in pins)
    dev = [line.strip() for line in (REPO / "requirements-dev.txt").read_text().splitlines()
           if line.strip() and not line.startswith("#")]
    assert dev[0] == "-r requirements.txt"
    names = {re.split(r"[=\[]", p)[0].lower() for p in pins}
    for pin in dev[1:]:
        assert "==" in pin and re.split(r"[=\[]", pin)[0].lower() not in names, pin
    # Test tools stay out of the runtime.
    assert not names & {"molecule", "pytest", "hypothesis", "ansible-lint", "yamllint"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    src = out / "src"
    # Build from a clean tree (git's files only), as `pip wheel .` on a clone does.
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        if (REPO / f).is_file() and not (REPO / f).is_symlink():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    from hatchling.builders.wheel import WheelBuilder
    return next(WheelBuilder(str(src)).build(directory=str(out / "dist"), versions=["standard"]))


def test_wheel_carries_the_collection_from_the_allow_list(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    col = "ansible_collections/rackboot/metal/"
    for must in ("rackboot/cli.py", col + "galaxy.yml", col + "plugins/inventory/cluster.py", col + "playbooks/site.yml",
                 col + "playbooks/verify.yml", col + "roles/bgp_router/meta/argument_specs.yml", col + "meta/runtime.yml",
                 col + "ansible.cfg", col + "README.md") + tuple(col + "inventories/%s/cluster.yml" % t for t in TEMPLATES):
        assert must in names, must
    allowed = re.compile(r"^(rackboot/|rackboot-[^/]+\.dist-info/|%s(plugins|roles|playbooks|meta|docs)/|"
                         r"%s(galaxy\.yml|README\.md|CHANGELOG\.md|ansible\.cfg|inventories/(%s)/cluster\.yml)$)"
                         % (col, col, "|".join(TEMPLATES)))
    assert [n for n in names if not allowed.match(n)] == []
    assert not [n for n in names if "/molecule/" in n or "vault" in n or "/secrets/" in n or "__pycache__" in n]


def test_installed_wheel_works_from_any_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--target", str(target),
                    wheel], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYTHONPATH"))}
    env["PYTHONPATH"] = str(target)
    inv = tmp_path / "lab"
    inv.mkdir()
    shutil.copy(REPO / "inventories/lab/cluster.yml", inv)
    code = "import rackboot.collection as c; print(c.collection_root()); from rackboot.cli import main; main()"
    res = subprocess.run([sys.executable, "-c", code, "validate", str(inv)], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines()[0] == str(target / "ansible_collections/rackboot/metal")
    # FQCNs resolve through the installed copy, with its ansible.cfg.
    res = subprocess.run([sys.executable, "-c", "import sys, rackboot.collection as c, json; "
                          "json.dump(c.ansible_env({'PATH': '/usr/bin'}), sys.stdout)"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True)
    aenv = json.loads(res.stdout)
    aenv["PYTHONPATH"] = str(target)
    assert aenv["ANSIBLE_CONFIG"] == str(target / "ansible_collections/rackboot/metal/ansible.cfg")
    res = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-inventory"), "-i", str(inv),
                          "--graph"], cwd=tmp_path, env=aenv, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "@routers" in res.stdout and "rtr-frr" in res.stdout


@pytest.mark.parametrize("command", [["apply", "--check"], ["render"], ["verify"]])
def test_bad_spec_is_bad_input(tmp_path, command):
    inv = tmp_path / "bad"
    inv.mkdir()
    (inv / "cluster.yml").write_text((REPO / "inventories/lab/cluster.yml").read_text().replace("vlan: 100",
                                                                                                  "vlan: 5000"))
    res = subprocess.run([sys.executable, "-m", "rackboot", command[0], str(inv)] + command[1:], capture_output=True,
                         text=True, env=dict(ansible_env(), PYTHONPATH=str(REPO / "src")))
    assert res.returncode == 3
    assert "networks[1] (peering).vlan" in res.stderr
    assert not (inv / "runs").exists()
