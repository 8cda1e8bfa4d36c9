# -*- coding: utf-8 -*-
"""Render mode for Talos: ansible-playbook playbooks/render/talos.yml on the example inventory.

The first run writes one machine configuration per node (mode 0600) plus the
secrets bundle (0600, in the secrets dir) and the talosconfig; the second run reports 0 changed and leaves every byte as it was;
every written document validates against Talos' schema. (Check mode, which
writes nothing, is covered by test_talos_rollout.py.)
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import stat
import subprocess

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.module_utils import talos_config
from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream

REPO = pathlib.Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories" / "example"

pytestmark = pytest.mark.slow


def playbook(art, sec, *extra):
    cmd = [str(REPO / ".venv/bin/ansible-playbook"), "-i", str(INVENTORY), str(REPO / "playbooks/render/talos.yml"),
           "-e", "rackboot_artifacts_dir=%s" % art, "-e", "rackboot_secrets_dir=%s" % sec]
    vault = INVENTORY / "vault-password.txt"
    if vault.exists():
        cmd += ["--vault-id", "example@%s" % vault]
    res = subprocess.run(cmd + list(extra), cwd=str(REPO), capture_output=True, text=True,
                         env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1"))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)", res.stdout)
    assert recap, res.stdout[-2000:]
    return int(recap.group(2)), res.stdout


def snapshot(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_render_example_twice_is_byte_identical(tmp_path):
    art, sec = tmp_path / "artifacts", tmp_path / "secrets"
    nodes = [n["name"] for n in yaml.safe_load((INVENTORY / "cluster.yml").read_text())["nodes"]]

    changed, _ = playbook(art, sec)
    assert changed > 0
    configs = sorted(p.name for p in (art / "talos").iterdir())
    assert configs == sorted("%s.yaml" % n for n in nodes)
    for p in list((art / "talos").iterdir()) + [sec / "talos-secrets.yaml", art / "talosconfig"]:
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    first = snapshot(tmp_path)

    changed, out = playbook(art, sec, "--diff")
    assert changed == 0, out[-3000:]
    assert snapshot(tmp_path) == first

    schema = json.loads(pathlib.Path(upstream.path("talos_schema")).read_text())
    for name in nodes:
        docs = [d for d in yaml.safe_load_all((art / "talos" / ("%s.yaml" % name)).read_text()) if d]
        assert talos_config.schema_errors(docs, schema) == [], name
        assert next(d for d in docs if d.get("kind") == "HostnameConfig")["hostname"] == name
