"""Every Molecule scenario, one test each, through scripts/molecule-all.

`molecule test` runs create, converge, idempotence (0 changed), verify and
destroy on real test hosts: podman systemd containers first, then QEMU VMs.
Running them from pytest gives the suite one summary line; each scenario's
full log is in $RACKBOOT_CACHE/logs (see docs/testing.md).

vms-smoke is left to `scripts/molecule-all -s vms-smoke`: every check of it
(tagged VLAN traffic, no untagged leak, a cut link, a reboot) is also in
node_network's verify on the same VM image, and its 8-10 minutes do not fit
CI's 90. containers-smoke stays: 2 minutes, first, the canary of the
container test hosts.
"""
import os
import subprocess

import pytest

from conftest import REPO
from rackboot.lab.scenarios import discover


NOT_IN_SUITE = {"vms-smoke"}


def scenarios():
    return [[s.kind, s.label] for s in discover(REPO) if s.label not in NOT_IN_SUITE]


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
