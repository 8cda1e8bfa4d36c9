"""Where the rackboot.metal collection is, and the environment ansible runs in.

Two layouts: a checkout (the repository is the collection, reachable through
``collections/ansible_collections/rackboot/metal``) and an installed wheel
(``site-packages/ansible_collections/rackboot/metal``). Both ship the same
``ansible.cfg``; only the collections path differs.
"""
import os
import sys
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def collection_root():
    """The folder holding galaxy.yml, playbooks/, roles/ and plugins/."""
    if (_CHECKOUT / "galaxy.yml").is_file() and (_CHECKOUT / "collections").is_dir():
        return _CHECKOUT
    for entry in sys.path:
        root = Path(entry or ".") / "ansible_collections" / "rackboot" / "metal"
        if (root / "galaxy.yml").is_file():
            return root.resolve()
    raise RuntimeError("the rackboot.metal collection is not installed next to the rackboot package")


def collections_path():
    """The folder that holds ``ansible_collections/``."""
    root = collection_root()
    if root == _CHECKOUT:
        return root / "collections"
    return root.parents[2]


def import_collection():
    """Make ``ansible_collections.rackboot.metal`` importable in this process."""
    path = str(collections_path())
    if path not in sys.path:
        sys.path.insert(0, path)


def playbook(name):
    """A playbook of the collection by file name (an absolute path is taken as is)."""
    return Path(name) if os.path.isabs(name) else collection_root() / "playbooks" / name


def ansible_env(base=None):
    """Environment for ansible-playbook: the collection's ansible.cfg (unless
    the user chose one), this interpreter's bin folder first on PATH."""
    env = dict(os.environ if base is None else base)
    env.setdefault("ANSIBLE_CONFIG", str(collection_root() / "ansible.cfg"))
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        p for p in (str(collections_path()), env.get("ANSIBLE_COLLECTIONS_PATH")) if p)
    env["PATH"] = os.pathsep.join((os.path.dirname(sys.executable), env.get("PATH", "")))
    env.pop("ANSIBLE_INVENTORY", None)
    return env


def plain(value):
    """``ansible-inventory --list`` data as roles see it: ansible-core 2.19 wraps
    an inventory plugin's strings as ``{"__ansible_unsafe": value}``."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
