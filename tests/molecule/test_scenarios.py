"""Every Molecule scenario, one test each, through scripts/molecule-all.

`molecule test` runs create, converge, idempotence (0 changed), verify and
destroy on real test hosts: podman systemd containers first, then QEMU VMs.
Running them from pytest gives the suite one summary line; each scenario's
full log is in $RACKBOOT_CACHE/logs (see docs/testing.md).
"""
import os
import subprocess

import pytest

from conftest import REPO
from rackboot.lab.scenarios import discover


def scenarios():
    return [[s.kind, s.label] for s in discover(REPO)]


@pytest.mark.molecule
@pytest.mark.slow
@pytest.mark.parametrize("kind,label", scenarios(), ids=lambda v: v.replace("/", ":"))
def test_molecule_scenario(kind, label):
    res = subprocess.run([str(REPO / "scripts/molecule-all"), "--no-bootstrap", "--fail-fast", "-s", label],
                         cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=40 * 60)
    tail = "\n".join((res.stdout + res.stderr).splitlines()[-150:])
    assert res.returncode == 0, "molecule test of %s (%s) failed:\n%s" % (label, kind, tail)
    # Print the per-step timings into the pytest report (-rA / -s shows them).
    print([line for line in res.stdout.splitlines() if line.startswith("<== ")])
