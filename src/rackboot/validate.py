"""The inventory plugin's checks, as a list of problems.

The one adapter between the CLI and the spec model: everything the model
reports (``SpecError.problems``, YAML errors of ``load_spec``) becomes
``{file, line, path, message, item}`` here, so a change in how the model
reports problems is absorbed in this file.
"""
import re
from pathlib import Path

from rackboot.collection import import_collection

_YAML_ERROR = re.compile(r"^(?P<file>.+?):(?P<line>\d+): (?P<message>.*)$", re.S)


def spec_files(inventory):
    """The cluster specs of an inventory (a folder or one spec file)."""
    import_collection()
    from ansible_collections.rackboot.metal.plugins.inventory.cluster import InventoryModule

    path = Path(inventory)
    candidates = [path] if path.is_file() else sorted(
        p for p in path.glob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
    plugin = InventoryModule.__new__(InventoryModule)
    return [p for p in candidates if plugin.verify_file(str(p))]


def _item(data, path):
    """'nodes[3] (w1)' for a problem under a named list item, else the top key."""
    if not path:
        return "(spec)"
    head = str(path[0])
    if len(path) > 1 and isinstance(path[1], int) and isinstance(data, dict):
        items = data.get(path[0])
        name = None
        if isinstance(items, list) and path[1] < len(items) and isinstance(items[path[1]], dict):
            name = items[path[1]].get("name")
        return "%s[%d]%s" % (head, path[1], " (%s)" % name if isinstance(name, str) else "")
    return head


def problems(inventory):
    """Every problem of every spec in the inventory, in file and line order."""
    import_collection()
    from ansible.errors import AnsibleParserError
    from ansible_collections.rackboot.metal.plugins.inventory.cluster import load_spec
    from ansible_collections.rackboot.metal.plugins.module_utils.cluster_model import SpecError, build
    from ansible_collections.rackboot.metal.plugins.module_utils.spec_schema import format_path

    files = spec_files(inventory)
    if not files:
        return [{"file": str(inventory), "line": None, "path": "", "item": "(inventory)",
                 "message": "no cluster spec here (a .yml file whose top-level plugin: is rackboot.metal.cluster)"}]
    out = []
    for spec in files:
        try:
            text, data = load_spec(str(spec))
        except AnsibleParserError as e:
            m = _YAML_ERROR.match(e.message)
            out.append({"file": str(spec), "line": int(m.group("line")) if m else None, "path": "",
                        "item": "(yaml)", "message": m.group("message") if m else e.message})
            continue
        try:
            build(data, source=str(spec), text=text)
        except SpecError as e:
            seen = set()
            for path, reason in e.problems:
                if (path, reason) in seen:
                    continue
                seen.add((path, reason))
                out.append({"file": str(spec), "line": e.lines.get(path), "path": format_path(path),
                            "item": _item(data, path), "message": reason})
    return out
