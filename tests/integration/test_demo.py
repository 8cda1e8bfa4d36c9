"""The README's main command works end to end on the built-in default."""
import subprocess

import yaml

from conftest import REPO, ansible_env


def test_demo_validates_shows_and_renders_the_example():
    res = subprocess.run([str(REPO / "scripts/demo")], cwd=REPO, env=ansible_env(), capture_output=True, text=True,
                         timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    spec = yaml.safe_load((REPO / "inventories/example/cluster.yml").read_text())
    artifacts = REPO / "inventories/example/artifacts" / spec["cluster"]["name"]
    for node in spec["nodes"]:
        assert "|--%s" % node["name"] in out
        assert (artifacts / "talos" / ("%s.yaml" % node["name"])).is_file()
    for router in spec["routers"]:
        assert (artifacts / "routers" / ("%s.conf" % router["name"])).is_file()
    assert "failed=1" not in out
