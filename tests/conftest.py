"""Shared test fixtures and the upstream-files gate.

Upstream files (schemas, CRDs, charts) come only through
plugins/plugin_utils/upstream.py: the session stops before collecting any
test, with one line, when a pinned file is neither cached nor in
RACKBOOT_UPSTREAM_MIRROR (default ../shared) nor fetchable."""
import contextlib
import copy
import fcntl
import os
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


def pytest_configure(config):
    # The fixtures' vault passwords: git checks them out 0644, and the
    # preflight refuses a vault password file that other users can read.
    for path in REPO.glob("**/vault-password.txt"):
        if ".venv" not in path.parts:
            path.chmod(0o600)
    from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream
    try:
        upstream.ensure()
    except upstream.UpstreamError as exc:
        # A clean one-line stop, before collection: never a traceback or a skip.
        sys.stderr.write("rackboot: %s\n" % exc)
        raise pytest.UsageError("upstream files missing (see the line above)") from None


# Parallel runs (./scripts/test: pytest-xdist, -n <cores> --dist loadgroup).
# Every test gets a group, so a module's tests share one worker and its module
# fixtures are built once. The Molecule scenarios are two groups at the head of
# the queue, the VM scenarios (under molecule-all's heavy lock) and the
# container scenarios (under its containers lock): two workers run them side
# by side, one scenario each at a time, then take the other modules. The lab is
# the last group and runs alone (below).
def _scenario_kind(item):
    return getattr(item, "callspec", None) and item.callspec.params.get("kind")


GROUPS = (("molecule-vms", lambda i: i.get_closest_marker("molecule") and _scenario_kind(i) == "vms"),
          ("molecule-containers", lambda i: i.get_closest_marker("molecule")),
          (None, lambda i: not i.get_closest_marker("lab")),
          ("lab", lambda i: True))


@pytest.hookimpl(tryfirst=True)  # before xdist's, which reads the groups into the node ids
def pytest_collection_modifyitems(config, items):
    ordered = [[] for _ in GROUPS]
    for item in items:
        rank, group = next((n, g) for n, (g, match) in enumerate(GROUPS) if match(item))
        item.add_marker(pytest.mark.xdist_group(group or item.nodeid.split("::", 1)[0]))
        ordered[rank].append(item)
    items[:] = [item for part in ordered for item in part]


# The lab's BFD sessions (TCG guests) flap when the machine is busy
# (docs/lab.md), so the lab runs alone: every other test module holds the
# machine shared, the lab holds it exclusively. The gate stops new modules from
# starting while the lab waits for the running ones, so the lab is not starved.
_RUN = os.environ.get("PYTEST_XDIST_TESTRUNUID", "serial")
_GATE = Path(tempfile.gettempdir()) / ("rackboot-tests-%s.gate" % _RUN)
_ROOM = Path(tempfile.gettempdir()) / ("rackboot-tests-%s.room" % _RUN)


@contextlib.contextmanager
def _machine(alone):
    if "PYTEST_XDIST_WORKER" not in os.environ:  # one process: nothing runs beside
        yield
        return
    with open(_GATE, "a") as gate, open(_ROOM, "a") as room:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        if not alone:
            fcntl.flock(gate, fcntl.LOCK_UN)
        yield


@pytest.fixture(scope="module", autouse=True)
def _share_the_machine(request):
    """Under pytest-xdist, a lab module waits until the other workers' running modules end
    and keeps new ones from starting; autouse, so it is set up before the module's own
    fixtures (the lab's up and down run inside it)."""
    with _machine(alone=request.node.get_closest_marker("lab") is not None):
        yield


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.fixture
def lab_spec():
    """The lab cluster spec as loaded data (a fresh copy per test)."""
    return copy.deepcopy(_LAB)


@pytest.fixture
def example_spec():
    return copy.deepcopy(_EXAMPLE)


# The pins (roles/versions owns every version): tests read them, never repeat them.
VERSIONS = load_yaml(REPO / "roles" / "versions" / "defaults" / "main.yml")
TALOS = {"talos_version": VERSIONS["versions_talos"], "sysctls": VERSIONS["versions_neighbour_sysctls"]}
_LAB = load_yaml(REPO / "inventories" / "lab" / "cluster.yml")
_EXAMPLE = load_yaml(REPO / "inventories" / "example" / "cluster.yml")


def ansible_env():
    """Environment for running ansible-* commands from the checkout."""
    env = dict(os.environ)
    env["PATH"] = "%s:%s" % (VENV_BIN, env.get("PATH", ""))
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env.pop("ANSIBLE_INVENTORY", None)
    return env
