"""ansible-test sanity's validate-modules on every module, inventory and
lookup plugin, offline: the validator ansible-core ships (ansible_test), run
the way `ansible-test sanity --test validate-modules` runs it, in this venv
(ansible-test itself would build a fresh venv with pip from the internet).
Filter plugins are multi-file plugins, which validate-modules skips:
test_filter_docs covers them."""
import json
import pathlib
import subprocess
import sys

import ansible_test

from conftest import REPO, ansible_env

VALIDATE = pathlib.Path(ansible_test.__file__).parent / "_util/controller/sanity/validate-modules/validate.py"
COLLECTION = REPO / "collections/ansible_collections/rackboot/metal"   # the checkout, under its FQCN path
# The collection is Apache-2.0, not GPLv3: this is the code every non-GPL
# collection lists in tests/sanity/ignore-*.txt.
IGNORED_CODES = {"missing-gplv3-license"}
# Known errors awaiting a fix, as (file, code): none now. Listed exactly: an
# entry that no longer occurs fails the test too, so the list can only shrink.
PENDING = set()


def _validate(plugin_type):
    paths = sorted(str(p.relative_to(COLLECTION)) for p in (COLLECTION / "plugins" / plugin_type).glob("*.py"))
    assert paths
    cmd = [sys.executable, str(VALIDATE), "--format", "json", "--arg-spec",
           "--collection", "ansible_collections/rackboot/metal", "--collection-version", "0.1.0"]
    if plugin_type != "modules":
        cmd += ["--plugin-type", plugin_type]
    env = dict(ansible_env(), ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"))
    res = subprocess.run(cmd + paths, cwd=COLLECTION, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode in (0, 3) and not res.stderr, res.stderr[-3000:]
    return json.loads(res.stdout), paths


def test_validate_modules_is_clean():
    problems, pending_seen, checked = [], set(), 0
    for plugin_type in ("modules", "inventory", "lookup"):
        report, paths = _validate(plugin_type)
        assert sorted(report) == paths        # every file reported on, nothing skipped silently
        checked += len(paths)
        for path, result in report.items():
            for err in result["errors"]:
                if err["code"] in IGNORED_CODES:
                    continue
                key = (path, err["msg"].split(":")[0])
                if key in PENDING:
                    pending_seen.add(key)
                else:
                    problems.append("%s:%s: %s %s" % (path, err.get("line", 0), err["code"], err["msg"]))
            problems += ["%s: trace %s" % (path, t) for t in result.get("traces", [])]
    assert checked >= 10
    assert problems == [], "\n".join(problems)
    assert PENDING - pending_seen == set(), "fixed, remove from PENDING: %s" % sorted(PENDING - pending_seen)

