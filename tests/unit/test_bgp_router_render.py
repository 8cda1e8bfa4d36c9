# -*- coding: utf-8 -*-
"""Render mode for the routers (playbooks/render/routers.yml): every router of the spec gets its
config file, the password masked, and Vault is never needed."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from conftest import REPO, ansible_env


@pytest.mark.parametrize("inventory", ["lab", "example"])
def test_render_writes_every_router_masked_without_vault(tmp_path, inventory):
    spec = yaml.safe_load((REPO / "inventories" / inventory / "cluster.yml").read_text())
    proc = subprocess.run(
        ["ansible-playbook", "-i", "inventories/%s" % inventory, "playbooks/render/routers.yml",
         "-e", "rackboot_artifacts_dir=%s" % tmp_path],
        cwd=str(REPO), env=ansible_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    routers = {r["name"]: r for r in spec["routers"]}
    written = {p.stem: p.read_text() for p in (tmp_path / "routers").iterdir()}
    assert set(written) == set(routers)
    for name, text in written.items():
        assert "********" in text
        if routers[name]["platform"] == "frr":
            assert "router bgp %d" % routers[name]["asn"] in text
            if shutil.which("vtysh"):
                path = tmp_path / (name + ".frr.conf")
                path.write_text(text)
                assert subprocess.run(["vtysh", "-C", "-f", str(path)], capture_output=True).returncode == 0
        else:
            assert "local %s as %d;" % (routers[name]["address"], routers[name]["asn"]) in text
