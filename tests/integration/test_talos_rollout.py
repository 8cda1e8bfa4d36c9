# -*- coding: utf-8 -*-
"""playbooks/talos.yml (role talos) on the example inventory, against the fake talosctl.

No Talos node runs on the test machines: the fake (tests/unit/test_talos_fakectl.py)
accepts only documented talosctl flags and simulates nine nodes booted into
maintenance mode. Check mode changes nothing on any node; the first run applies
every config over the maintenance service, bootstraps etcd once and writes the
kubeconfig and talosconfig with mode 0600; the second run changes nothing.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import stat
import subprocess

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.module_utils import talos_secrets

REPO = pathlib.Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "example"
_spec = importlib.util.spec_from_file_location("talos_fakectl", REPO / "tests/unit/test_talos_fakectl.py")
fakectl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fakectl)

pytestmark = pytest.mark.slow
MUTATING = ("apply-config", "bootstrap")


def test_rollout_check_then_apply_then_nothing(tmp_path):
    spec = yaml.safe_load((INVENTORY / "cluster.yml").read_text())
    addresses = {n["name"]: n["addresses"]["mgmt"] for n in spec["nodes"]}
    sec, art = tmp_path / "secrets", tmp_path / "artifacts"
    sec.mkdir()
    bundle = talos_secrets.generate()      # the cluster the fake nodes will trust
    talos_secrets.write_private(str(sec / "talos-secrets.yaml"), talos_secrets.dump(bundle, spec["cluster"]["name"]))
    talosctl, state = fakectl.install_fake(tmp_path, {a: {"state": "maintenance"} for a in addresses.values()},
                                           bundle["certs"]["os"]["crt"])

    installed = tmp_path / "bin" / "talosctl"
    installed.parent.mkdir()

    def play(*extra):
        cmd = [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(INVENTORY), str(REPO / "playbooks/talos.yml"),
               "-e", "rackboot_artifacts_dir=%s" % art, "-e", "rackboot_secrets_dir=%s" % sec,
               # talosctl from an "offline file", installed by the role into bin/
               "-e", "talos_talosctl_offline_file=%s" % talosctl, "-e", "talos_talosctl_path=%s" % installed,
               "-e", "talos_poll_interval=0",
               # the preflight checks that every vaulted value decrypts, needed by this stage or not
               "--vault-id", "example@%s" % (INVENTORY / "vault-password.txt")]
        res = subprocess.run(cmd + list(extra), cwd=str(REPO), capture_output=True, text=True,
                             env=dict(os.environ, FAKE_TALOS_STATE=state, ANSIBLE_NOCOLOR="1"))
        assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-3000:]
        return int(re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", res.stdout).group(1)), res.stdout

    changed, out = play("--check", "--diff")
    calls = fakectl.read_state(state)["calls"]
    assert changed > 0 and calls, out[-3000:]
    assert not [c for c in calls if any(m in c for m in MUTATING)], "check mode touched a node"
    assert "apply-config --insecure" in out       # the plan is shown
    assert not installed.exists() and set(fakectl.read_state(state)["programs"]) == {talosctl}
    assert not (art / "talos").exists() and not (art / "talosconfig").exists()   # check mode wrote nothing

    changed, out = play()
    st = fakectl.read_state(state)
    assert changed > 0
    assert st["bootstraps"] == 1
    applied = [c for c in st["calls"] if "apply-config" in c]
    assert len(applied) == len(addresses) and all("--insecure" in c for c in applied)
    for name, addr in addresses.items():
        node = st["nodes"][addr]
        assert node["state"] == "configured" and node["hostname"] == name
        assert node["config"] == (art / "talos" / ("%s.yaml" % name)).read_text()
    for f in (art / "kubeconfig", art / "talosconfig", sec / "talos-bootstrapped"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert "kind: Config" in (art / "kubeconfig").read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o755
    assert st["programs"][-1] == str(installed)          # the role ran the installed copy

    # Second run, limited to one node the way an engineer rolls out rack by rack: nothing changes,
    # and only that node is looked at by the apply step.
    before = len(st["calls"])
    changed, out = play("-e", '{"talos_apply_nodes": ["w1"]}')
    st = fakectl.read_state(state)
    assert changed == 0, out[-4000:]
    new_calls = st["calls"][before:]
    assert not [c for c in new_calls if any(m in c for m in MUTATING)]
    assert st["bootstraps"] == 1
    probed = {c[c.index("--nodes") + 1] for c in new_calls if "machineconfig" in c}
    assert probed == {addresses["w1"]}
