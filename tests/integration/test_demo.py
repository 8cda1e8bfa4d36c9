"""The README's main command works end to end on the built-in default, and
leaves nothing in the example inventory (which a user may copy)."""
import subprocess

import yaml

from conftest import REPO, ansible_env

EXAMPLE = REPO / "inventories/example"


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_demo_validates_shows_and_renders_the_example(tmp_path):
    before = _files(EXAMPLE)
    env = dict(ansible_env(), XDG_CACHE_HOME=str(tmp_path))
    res = subprocess.run([str(REPO / "scripts/demo")], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=900)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-3000:]
    spec = yaml.safe_load((EXAMPLE / "cluster.yml").read_text())
    scratch = tmp_path / "rackboot/demo" / spec["cluster"]["name"]
    artifacts = scratch / "artifacts"
    assert "== Artifacts in %s:" % artifacts in out
    for node in spec["nodes"]:
        assert "|--%s" % node["name"] in out
        assert (artifacts / "talos" / ("%s.yaml" % node["name"])).is_file()
    for router in spec["routers"]:
        assert (artifacts / "routers" / ("%s.conf" % router["name"])).is_file()
    assert (scratch / "secrets/talos-secrets.yaml").is_file()
    assert "failed=1" not in out
    # `cp -r inventories/example ...` copies no demo PKI, artifacts or state.
    assert _files(EXAMPLE) == before
