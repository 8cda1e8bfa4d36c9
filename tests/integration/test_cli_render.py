"""`rackboot render --diff` on a Talos inventory: a render that changes
nothing reports nothing (exit 0); a changed spec value and an expiring
client certificate are reported (exit 2) with the diff, the certificate's
reason included, its key never; the previous render stays as it was.

Real renders of a fresh `rackboot init --from example` (playbooks/render.yml,
helm templates and all): about 45 s each on a loaded 2-core machine.
"""
import base64
import datetime
import subprocess
import sys

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.module_utils import talos_secrets
from conftest import REPO, ansible_env

pytestmark = pytest.mark.slow


def _rackboot(*args):
    res = subprocess.run([sys.executable, "-m", "rackboot"] + [str(a) for a in args], capture_output=True,
                         text=True, env=dict(ansible_env(), PYTHONPATH=str(REPO / "src")), timeout=900)
    return res.returncode, res.stdout + res.stderr


def _tree(folder):
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_render_diff_reports_only_real_changes(tmp_path):
    vault = tmp_path / "vault-pass"
    vault.write_text("w19-render-diff\n")
    vault.chmod(0o600)
    inv = tmp_path / "dc1"
    code, out = _rackboot("init", inv, "--from", "example", "--vault-password-file", vault)
    assert code == 0, out
    art = tmp_path / "art"
    code, out = _rackboot("render", inv, "--artifacts", art, "--vault-password-file", vault)
    assert code == 0, out
    first = _tree(art)
    assert "talosconfig" in first and "routers/tor1.conf" in first

    code, out = _rackboot("render", inv, "--diff", "--artifacts", art, "--vault-password-file", vault)
    assert code == 0, out
    assert "0 files would change" in out and "talosconfig" not in out.split("== render: exit")[-1]
    assert _tree(art) == first

    # A spec value the routers and MetalLB carry, and a client certificate 5 days from expiry.
    spec = inv / "cluster.yml"
    spec.write_text(spec.read_text().replace("    hold_time: 9\n", "    hold_time: 12\n"))
    tc = art / "talosconfig"
    cfg = yaml.safe_load(tc.read_text())
    bundle = talos_secrets.load((inv / "secrets" / "talos-secrets.yaml").read_text())
    start = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) - datetime.timedelta(days=360)
    crt, key = talos_secrets.client_certificate(bundle, now=start, validity=datetime.timedelta(days=365))
    cfg["contexts"][cfg["context"]].update(crt=crt, key=key)
    talos_secrets.write_private(str(tc), yaml.safe_dump(cfg, sort_keys=False))
    before = _tree(art)

    code, out = _rackboot("render", inv, "--diff", "--artifacts", art, "--vault-password-file", vault)
    assert code == 2, out
    diff = out.split("== render: exit")[-1]
    assert "--- a/routers/tor1.conf" in diff and "+ neighbor K8S-NODES timers 3 12" in diff, diff
    assert "+  hold time 12;" in diff, diff
    assert "~ talosconfig (0600: contents not shown)" in diff
    assert "the client certificate expires within 30 days" in diff
    new_key = base64.b64decode(key).decode()
    assert key not in out and new_key.splitlines()[1] not in out
    assert "files would change" in diff
    assert _tree(art) == before   # --diff leaves the previous render as it was
