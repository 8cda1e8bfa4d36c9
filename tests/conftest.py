"""Shared test fixtures: paths of the repository and of ../shared."""
import copy
import os
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("RACKBOOT_SHARED", REPO.parent / "shared"))
VENV_BIN = REPO / ".venv" / "bin"


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
