"""Shared test fixtures and the upstream-files gate.

Upstream files (schemas, CRDs, charts) come only through
plugins/plugin_utils/upstream.py: the session stops before collecting any
test, with one line, when a pinned file is neither cached nor in
RACKBOOT_UPSTREAM_MIRROR (default ../shared) nor fetchable."""
import copy
import os
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"


def pytest_configure(config):
    from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream
    try:
        upstream.ensure()
    except upstream.UpstreamError as exc:
        # A clean one-line stop, before collection: never a traceback or a skip.
        sys.stderr.write("rackboot: %s\n" % exc)
        raise pytest.UsageError("upstream files missing (see the line above)") from None


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


_LAB = load_yaml(REPO / "inventories" / "lab" / "cluster.yml")
_EXAMPLE = load_yaml(REPO / "inventories" / "example" / "cluster.yml")


def ansible_env():
    """Environment for running ansible-* commands from the checkout."""
    env = dict(os.environ)
    env["PATH"] = "%s:%s" % (VENV_BIN, env.get("PATH", ""))
    env["ANSIBLE_CONFIG"] = str(REPO / "ansible.cfg")
    env.pop("ANSIBLE_INVENTORY", None)
    return env
