"""No dead code in the shared libraries: every public function or class of
plugins/module_utils and plugins/plugin_utils is used by its own file or by
a plugin, role, playbook, script or the rackboot command (tests alone do not keep code alive).
Names listed in __all__ do not count as a use."""
import ast
import re

import pytest

from conftest import REPO

LIBS = sorted(REPO.glob("plugins/module_utils/*.py")) + sorted(REPO.glob("plugins/plugin_utils/*.py"))
USERS = {p: p.read_text() for d in ("plugins", "roles", "playbooks", "scripts", "src") for p in (REPO / d).rglob("*")
         if p.is_file() and not p.is_symlink() and "molecule" not in p.parts and "__pycache__" not in p.parts
         and p.suffix in (".py", ".yml", ".j2", "")}


def _public(tree):
    return [n.name for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith("_")]


def _uses_inside(tree, name):
    return any((isinstance(n, ast.Name) and n.id == name) or (isinstance(n, ast.Attribute) and n.attr == name)
               for n in ast.walk(tree))


@pytest.mark.parametrize("lib", LIBS, ids=lambda p: p.name)
def test_every_public_name_is_used(lib):
    tree = ast.parse(lib.read_text())
    dead = []
    for name in _public(tree):
        word = re.compile(r"\b%s\b" % re.escape(name))
        if not _uses_inside(tree, name) and not any(word.search(t) for p, t in USERS.items() if p != lib):
            dead.append(name)
    assert dead == []
