"""playbooks/preflight.yml, run as site.yml runs it: a missing vault password,
a vault password file others can read and hosts that do not answer are
reported together, in one message saying what to do, before any host is
changed (and never as Ansible's raw "undecryptable variable" error)."""
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import REPO, ansible_env

pytestmark = pytest.mark.slow
LAB = REPO / "inventories/lab"


def _closed_port():
    with socket.socket() as s:          # bound and closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def inventory(tmp_path):
    inv = tmp_path / "dc1"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns("secrets", "artifacts"))
    (inv / "vault-password.txt").chmod(0o600)
    return inv


def site(inventory, *extra):
    env = ansible_env()
    env.pop("ANSIBLE_VAULT_PASSWORD_FILE", None)
    env.pop("ANSIBLE_VAULT_IDENTITY_LIST", None)
    env["ANSIBLE_NOCOLOR"] = "1"
    # Every host is 127.0.0.1 on a port where nothing listens: no traffic leaves loopback.
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks/site.yml"),
           "--check", "-e", "ansible_host=127.0.0.1", "-e", "ansible_port=%d" % _closed_port(),
           "-e", "rackboot_preflight_timeout=3"] + list(extra)
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return res.returncode, res.stdout + res.stderr


def _ssh_hosts():
    hosts = set()
    for group in ("routers", "kubeadm"):
        out = subprocess.run([str(REPO / ".venv/bin/ansible-inventory"), "-i", str(LAB), "--graph", group],
                             cwd=REPO, env=ansible_env(), capture_output=True, text=True, check=True).stdout
        hosts |= set(re.findall(r"\|--([^@\s]+)", out))
    return hosts


def test_every_problem_is_reported_at_once_before_any_host_is_touched(inventory):
    (inventory / "vault-password.txt").chmod(0o644)
    rc, out = site(inventory)
    assert rc != 0
    assert "Attempt to use undecryptable variable" not in out
    problems = re.search(r"(\d+) preflight problem\(s\), no host was changed:\n(.*?)\nOrigin", out, re.S)
    assert problems, out[-3000:]
    lines = problems.group(2).splitlines()
    assert int(problems.group(1)) == len(lines)
    assert any(line.startswith("- variable rackboot_bgp_password is vault-encrypted") and "--vault-id" in line
               for line in lines)
    assert any("vault password file %s/vault-password.txt is readable by other users: chmod 600" % inventory in line
               for line in lines)
    hosts = _ssh_hosts()
    assert hosts and {h for h in hosts if any(line.startswith("- host %s at 127.0.0.1 does not answer" % h)
                                              for line in lines)} == hosts
    # Nothing after the preflight ran.
    assert "PLAY [Configure the upstream BGP routers]" not in out


def test_with_the_vault_password_only_the_hosts_remain(inventory):
    rc, out = site(inventory, "--vault-id", "lab@%s" % (inventory / "vault-password.txt"))
    assert rc != 0
    problems = re.search(r"(\d+) preflight problem\(s\)", out)
    assert problems and int(problems.group(1)) == len(_ssh_hosts()), out[-3000:]
    assert "vault-encrypted" not in out and "readable by other users" not in out


def test_render_mode_contacts_no_host_and_passes(inventory, tmp_path):
    env = ansible_env()
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(inventory), str(REPO / "playbooks/preflight.yml"),
           "-e", "rackboot_preflight_connect=false", "--vault-id", "lab@%s" % (inventory / "vault-password.txt")]
    res = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    for folder in ("secrets", "artifacts"):
        found = list(inventory.glob("%s/**/.gitignore" % folder)) or list(inventory.glob("%s/.gitignore" % folder))
        assert found, folder
        assert os.stat(found[0].parent).st_mode & 0o777 == 0o700
