"""Docs name paths that exist, and playbooks name roles by FQCN."""
import re

import pytest
import yaml

from conftest import REPO

DOCS = sorted(REPO.glob("docs/*.md")) + [REPO / "README.md"]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_artifact_paths_name_the_inventory(doc):
    # Artifacts live in inventories/<inv>/artifacts/<cluster>/ (or wherever rackboot_artifacts_dir points).
    bare = [line.strip() for line in doc.read_text().splitlines()
            if re.search(r"(?<![\w/.<>-])artifacts/(<cluster>|dc1-prod|lab)\b", line)]
    assert bare == []


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_plugin_folders_named_in_docs_exist(doc):
    named = set(re.findall(r"plugins/([a-z_]+)/", doc.read_text()))
    assert [d for d in sorted(named) if not (REPO / "plugins" / d).is_dir()] == []


def _role_names(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("ansible.builtin.include_role", "ansible.builtin.import_role", "include_role", "import_role"):
                yield value["name"]
            elif key == "roles":
                for role in value:
                    yield role["role"] if isinstance(role, dict) else role
            else:
                yield from _role_names(value)
    elif isinstance(node, list):
        for item in node:
            yield from _role_names(item)


def test_playbooks_use_fqcn_role_names():
    names = [(str(p.relative_to(REPO)), name) for p in sorted(REPO.glob("playbooks/**/*.yml"))
             for name in _role_names(yaml.safe_load(p.read_text()))]
    assert len(names) > 10
    assert [n for n in names if not n[1].startswith("rackboot.metal.")] == []
