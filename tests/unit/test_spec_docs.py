"""docs/cluster-spec.md documents every field of the schema, as generated."""
from conftest import REPO

from ansible_collections.rackboot.metal.plugins.module_utils.spec_schema import reference_markdown


def test_field_reference_matches_the_schema():
    docs = (REPO / "docs" / "cluster-spec.md").read_text()
    assert reference_markdown() in docs, "docs/cluster-spec.md is stale: run scripts/gen-spec-docs"


def test_every_example_field_is_documented():
    """Every key path of the public example appears in the reference (free-form
    mappings such as addresses and components are documented as a whole)."""
    import yaml
    from conftest import REPO

    ref = reference_markdown()
    free_form = ("addresses", "macs", "labels", "components")

    def walk(value, prefix):
        if isinstance(value, dict) and not prefix.endswith(free_form):
            for key, child in value.items():
                path = "%s.%s" % (prefix, key) if prefix else key
                yield path
                yield from walk(child, path)
        elif isinstance(value, list):
            for child in value:
                yield from walk(child, prefix + "[]")

    spec = yaml.safe_load((REPO / "inventories" / "example" / "cluster.yml").read_text())
    for path in walk(spec, ""):
        assert "| `%s` |" % path in ref, path
