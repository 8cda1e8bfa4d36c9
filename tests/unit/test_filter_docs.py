"""Every filter has its own documentation (plugins/filter/<name>.yml), which
ansible-doc shows, with its own short description and options that are
parameters of the filter."""
import importlib
import inspect
import json
import subprocess

import yaml

from conftest import REPO, ansible_env

MODULES = ["bgp_router", "cluster", "kubeadm", "network_stack"]


def _filters():
    found = {}
    for mod in MODULES:
        plugin = importlib.import_module("ansible_collections.rackboot.metal.plugins.filter.%s" % mod)
        found.update(plugin.FilterModule().filters())
    return found


def _params(func):
    while getattr(func, "__closure__", None):                 # the modules' error-wrapping closures
        inner = [c.cell_contents for c in func.__closure__ if callable(c.cell_contents)]
        if not inner:
            break
        func = inner[-1]
    return list(inspect.signature(func).parameters)


def test_each_filter_has_its_own_documentation():
    filters = _filters()
    assert len(filters) >= 29
    names = ["rackboot.metal.%s" % n for n in sorted(filters)]
    res = subprocess.run([str(REPO / ".venv/bin/ansible-doc"), "-t", "filter", "--json"] + names, cwd=REPO,
                         env=ansible_env(), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    docs = {k.split(".")[-1]: v["doc"] for k, v in json.loads(res.stdout).items()}
    assert sorted(docs) == sorted(filters)
    assert all(docs[n]["name"] == n for n in docs)
    shorts = [d["short_description"] for d in docs.values()]
    assert len(set(shorts)) == len(shorts)


def test_documented_options_are_parameters_of_the_filter():
    for name, func in sorted(_filters().items()):
        doc = yaml.safe_load((REPO / "plugins/filter" / ("%s.yml" % name)).read_text())["DOCUMENTATION"]
        params = _params(func)
        options = [o for o in doc.get("options", {}) if o != "_input"]
        assert [o for o in options if o not in params[1:]] == [], name
        assert [p for p in params[1:] if p not in options] == [], name
