"""One source for every setting: each pinned version (every value in
roles/versions/defaults/main.yml and every `version:` of the upstream
manifest) and the neighbour-table sysctls live in roles/versions only. A copy
anywhere else in the collection's code, roles or playbooks is what drifted
before (Talos 1.13.9 in five places, gc_thresh 1024/4096/8192 vs 4096/8192/16384)."""
import re

import pytest
import yaml

from conftest import REPO

VERSIONS_DIR = REPO / "roles" / "versions"
SCANNED = ["plugins/**/*.py", "plugins/**/*.yml", "playbooks/**/*.yml"] + [
    "roles/*/%s/**/*" % part for part in ("defaults", "tasks", "templates", "meta", "vars", "handlers", "files")]
# (file, version) pairs allowed outside roles/versions, each with its reason.
# The Kubernetes version comes from each spec; these name it only as an example
# of the version format in documentation and error messages.
_FORMAT_EXAMPLE = "example of the version format in docs or an error message, not a pin"
EXCEPTIONS = {
    ("plugins/inventory/cluster.py", "1.34.1"): _FORMAT_EXAMPLE,
    ("plugins/plugin_utils/spec_schema.py", "1.34.1"): _FORMAT_EXAMPLE,
    ("plugins/plugin_utils/kubeadm.py", "1.34.1"): _FORMAT_EXAMPLE,
}


def _pins():
    pins = set()

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
        elif isinstance(value, str) and re.fullmatch(r"v?\d+\.\d+(\.\d+)?", value):
            pins.add(value.lstrip("v"))

    defaults = yaml.safe_load((VERSIONS_DIR / "defaults/main.yml").read_text())
    walk({k: v for k, v in defaults.items() if k != "versions_neighbour_sysctls"})
    for source in yaml.safe_load((VERSIONS_DIR / "files/upstream.yml").read_text())["sources"].values():
        walk(source["version"])
    return sorted(pins)


def _files():
    seen = set()
    for pattern in SCANNED:
        for path in REPO.glob(pattern):
            if path.is_file() and VERSIONS_DIR not in path.parents and "__pycache__" not in path.parts:
                seen.add(path)
    return sorted(seen)


def test_the_pins_are_found():
    pins = _pins()
    assert len(pins) >= 8 and "1.13.9" in pins     # the scan below cannot pass vacuously
    assert len(_files()) > 50


@pytest.mark.parametrize("pin", _pins())
def test_a_pinned_version_appears_only_in_roles_versions(pin):
    # 1.13.9 matches "1.13.9" and "v1.13.9", not "11.13.9", "1.13.90" or an address like 10.1.13.9.
    pattern = re.compile(r"(?<![\w.])v?%s(?![\w.])|(?<![\w.])v?%s(?=\.[a-z])" % (re.escape(pin), re.escape(pin)))
    found = []
    for path in _files():
        rel = str(path.relative_to(REPO))
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            if pattern.search(line) and (rel, pin) not in EXCEPTIONS:
                found.append("%s:%d: %s" % (rel, number, line.strip()))
    assert found == [], "pinned version %s outside roles/versions:\n%s" % (pin, "\n".join(found))


def test_neighbour_table_sysctls_have_one_owner():
    found = ["%s: %s" % (path.relative_to(REPO), line.strip()) for path in _files()
             for line in path.read_text(errors="replace").splitlines() if "gc_thresh" in line]
    assert found == []
    sysctls = yaml.safe_load((VERSIONS_DIR / "defaults/main.yml").read_text())["versions_neighbour_sysctls"]
    assert set(sysctls) == {"net.ipv4.neigh.default.gc_thresh%d" % i for i in (1, 2, 3)}


@pytest.mark.parametrize("kubernetes,pause", [("1.33.4", "3.10"), ("v1.34.1", "3.10.1"), ("1.35.0", "3.10.1")])
def test_the_pause_image_follows_the_specs_kubernetes_version(tmp_path, kubernetes, pause):
    """node_os pins the pause image of the spec's Kubernetes minor (not of an unused default)."""
    import json
    import subprocess

    from conftest import ansible_env
    play = tmp_path / "play.yml"
    play.write_text(yaml.safe_dump([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars_files": [str(VERSIONS_DIR / "defaults/main.yml"), str(REPO / "roles/node_os/defaults/main.yml")],
        "vars": {"rackboot_cluster": {"kubernetes_version": kubernetes},
                 "ansible_python_interpreter": str(REPO / ".venv/bin/python")},
        "tasks": [{"ansible.builtin.copy": {
            "dest": str(tmp_path / "out.json"), "mode": "0600",
            "content": "{{ {'image': node_os_sandbox_image, 'sysctls': node_os_host_sysctls} | to_json }}"}}]}]))
    res = subprocess.run([str(REPO / ".venv/bin/ansible-playbook"), "-i", "localhost,", str(play)], cwd=REPO,
                         env=ansible_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout[-2000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["image"] == "registry.k8s.io/pause:%s" % pause
    sysctls = out["sysctls"]
    shared = yaml.safe_load((VERSIONS_DIR / "defaults/main.yml").read_text())["versions_neighbour_sysctls"]
    assert {k: str(v) for k, v in sysctls.items() if k in shared} == shared
