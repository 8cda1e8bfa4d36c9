"""The inventory plugin's checks, as a list of problems.

The one adapter between the CLI and the spec model: everything the model
reports (``SpecError.problems``, YAML errors of ``load_spec``) becomes
``{file, line, path, item, message}`` here (``item``, what the
CLI groups by, comes with each problem), so a change in how the model
reports problems is absorbed in this file.
"""
from pathlib import Path

from rackboot.collection import import_collection


def spec_files(inventory):
    """The cluster specs of an inventory (a folder or one spec file)."""
    import_collection()
    # The plugin's own test, without importing the plugin (and Ansible's templating with it).
    from ansible_collections.rackboot.metal.plugins.plugin_utils.spec_loader import claims

    path = Path(inventory)
    candidates = [path] if path.is_file() else sorted(
        p for p in path.glob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    return [p for p in candidates if claims(p)]


def problems(inventory):
    """Every problem of every spec in the inventory, in file and line order."""
    import_collection()
    from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import validate_file

    files = spec_files(inventory)
    if not files:
        return [{"file": str(inventory), "line": None, "path": "", "item": "(inventory)",
                 "message": "no cluster spec here (a .yml file whose top-level plugin: is rackboot.metal.cluster)"}]
    out = []
    if len(files) > 1:
        # The inventory plugin refuses this too: one cluster per inventory folder.
        out.append({"file": str(files[1]), "line": None, "path": "", "item": "(inventory)",
                    "message": "a second cluster spec in one inventory (the first is %s): one spec per inventory "
                               "folder" % files[0]})
    for spec in files:
        _model, found = validate_file(str(spec))
        seen = set()
        for p in found:
            key = (p["path"], p["message"])
            if key in seen:
                continue
            seen.add(key)
            out.append(dict(p, file=str(spec)))
    return out
