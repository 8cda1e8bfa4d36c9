"""Fast tests of the test host helpers (rackboot.lab): no podman, no QEMU, no root."""

from __future__ import annotations

import json
import socket
import sys
import threading
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from rackboot.lab import cli, images, lab, scenarios  # noqa: E402

SETS = {
    "base": {"suites": ["bookworm", "trixie"], "packages": []},
    "router": {"suites": ["bookworm"], "packages": ["frr", "bird2"]},
}


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Keep cache and runtime state of every test in tmp_path."""
    monkeypatch.setenv("RACKBOOT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("RACKBOOT_RUN", str(tmp_path / "run"))
    monkeypatch.delenv("RACKBOOT_MAX_VMS", raising=False)


# -- images ------------------------------------------------------------------


def test_shipped_sets_offer_base_on_debian_12_and_13_and_a_router_set():
    sets = images.load_sets()
    assert {"bookworm", "trixie"} <= set(sets["base"]["suites"])
    assert {"frr", "frr-pythontools", "bird2"} <= set(sets["router"]["packages"])


def test_cache_key_is_stable_for_the_same_inputs():
    a = images.ImageSpec.from_ref("rackboot/base:bookworm", "container", SETS)
    b = images.ImageSpec.from_ref("localhost/rackboot/base:bookworm", "container", SETS)
    assert a.key == b.key
    assert a.stem == f"container-base-bookworm-{a.key}"


def test_cache_key_changes_with_the_package_list():
    before = images.ImageSpec.from_ref("rackboot/router:bookworm", "container", SETS)
    more = {**SETS, "router": {**SETS["router"], "packages": ["frr", "bird2", "tcpdump"]}}
    after = images.ImageSpec.from_ref("rackboot/router:bookworm", "container", more)
    assert "tcpdump" in after.packages
    assert before.key != after.key


def test_cache_key_changes_with_suite_kind_and_builder_version(monkeypatch):
    c12 = images.ImageSpec.from_ref("rackboot/base:bookworm", "container", SETS)
    c13 = images.ImageSpec.from_ref("rackboot/base:trixie", "container", SETS)
    vm = images.ImageSpec.from_ref("rackboot/base:bookworm", "vm", SETS, ssh_pubkey="ssh-ed25519 AAA")
    assert len({c12.key, c13.key, vm.key}) == 3
    before = c12.key  # key is computed on access
    monkeypatch.setattr(images, "BUILDER_VERSION", images.BUILDER_VERSION + 1)
    assert images.ImageSpec.from_ref("rackboot/base:bookworm", "container", SETS).key != before


def test_vm_key_depends_on_the_ssh_key_container_key_does_not():
    k1 = images.ImageSpec.from_ref("rackboot/base:bookworm", "vm", SETS, ssh_pubkey="ssh-ed25519 AAA")
    k2 = images.ImageSpec.from_ref("rackboot/base:bookworm", "vm", SETS, ssh_pubkey="ssh-ed25519 BBB")
    assert k1.key != k2.key
    c1 = images.ImageSpec.from_ref("rackboot/base:bookworm", "container", SETS, ssh_pubkey="x")
    c2 = images.ImageSpec.from_ref("rackboot/base:bookworm", "container", SETS, ssh_pubkey="y")
    assert c1.key == c2.key


def test_vm_images_carry_a_kernel_and_ssh_containers_do_not():
    vm = images.ImageSpec.from_ref("rackboot/base:bookworm", "vm", SETS)
    ct = images.ImageSpec.from_ref("rackboot/router:bookworm", "container", SETS)
    assert {"linux-image-amd64", "openssh-server"} <= set(vm.packages)
    assert "linux-image-amd64" not in ct.packages
    assert {"frr", "bird2", "systemd-sysv", "python3"} <= set(ct.packages)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("debian:bookworm", "expected"),
        ("rackboot/nosuch:bookworm", "unknown package set 'nosuch'"),
        ("rackboot/router:trixie", "not offered for suite 'trixie'"),
    ],
)
def test_bad_image_refs_are_explained(ref, message):
    with pytest.raises(images.ImageError, match=message):
        images.ImageSpec.from_ref(ref, "container", SETS)


def test_bad_sets_file_is_explained(tmp_path):
    bad = tmp_path / "images.yml"
    bad.write_text("---\nsets:\n  base:\n    suites: bookworm\n")
    with pytest.raises(images.ImageError, match="sets.base.suites must be a non-empty list"):
        images.load_sets(bad)
    bad.write_text("---\nsets:\n  base:\n    suites: [bookworm]\n    pakages: [x]\n")
    with pytest.raises(images.ImageError, match="unknown keys"):
        images.load_sets(bad)


def test_cached_image_is_reused_without_building(monkeypatch):
    spec = images.ImageSpec.from_ref("rackboot/base:bookworm", "vm", SETS, ssh_pubkey="k")
    out = images.cached_path(spec)
    out.mkdir(parents=True)

    def boom(*_args):
        raise AssertionError("must not build a cached image")

    monkeypatch.setattr(images, "_build_vm", boom)
    assert images.ensure(spec) == out


def test_image_refs_for_scenario_files(tmp_path):
    podman = tmp_path / "p.yml"
    podman.write_text(
        yaml.safe_dump(
            {
                "driver": {"name": "podman"},
                "platforms": [
                    {"name": "a", "image": "localhost/rackboot/router:bookworm"},
                    {"name": "b", "image": "docker.io/library/debian:12"},
                ],
            }
        )
    )
    assert cli.image_refs_for(podman) == ("container", ["localhost/rackboot/router:bookworm"])
    vms = tmp_path / "v.yml"
    vms.write_text(yaml.safe_dump({"driver": {"name": "default"}, "platforms": [{"name": "n1"}]}))
    assert cli.image_refs_for(vms) == ("vm", ["rackboot/base:bookworm"])


# -- VM labs: platform parsing ----------------------------------------------------


def test_platforms_become_vms_with_fabric_nics_in_order():
    vms = lab.parse_platforms(
        [{"name": "node1", "fabric": ["seg-a", "seg-b"], "memory": 768}, {"name": "node2", "fabric": ["seg-a"]}],
        "lab1",
    )
    assert [v.name for v in vms] == ["node1", "node2"]
    assert [(n.guest, n.segment, n.tap) for n in vms[0].nics] == [
        ("eth1", "seg-a", "node1-e1"),
        ("eth2", "seg-b", "node1-e2"),
    ]
    assert vms[0].memory == 768 and vms[1].memory == lab.DEFAULT_MEMORY
    assert vms[1].image == lab.DEFAULT_IMAGE
    macs = [vms[0].mgmt_mac, vms[1].mgmt_mac] + [n.mac for v in vms for n in v.nics]
    assert len(set(macs)) == len(macs)


def test_lacp_platforms_are_marked_and_others_are_not():
    vms = lab.parse_platforms(
        [{"name": "node1", "fabric": ["x", "y"], "lacp": True}, {"name": "node2", "fabric": ["x", "y"]}], "l"
    )
    assert [v.lacp for v in vms] == [True, False]


def test_long_vm_names_get_short_tap_names():
    (vm,) = lab.parse_platforms([{"name": "a-very-long-node-name", "fabric": ["x"]}], "l")
    assert vm.nics[0].tap == "vm0-e1"
    assert len(vm.nics[0].tap) <= 15


def test_the_shipped_vm_scenario_parses():
    platforms = lab.platforms_from_molecule_file(REPO / "molecule/vms-smoke/molecule.yml")
    vms = lab.parse_platforms(platforms, "vms-smoke")
    assert {n.segment for v in vms for n in v.nics} == {"seg-a"}


@pytest.mark.parametrize(
    ("platforms", "message"),
    [
        ([], "non-empty list"),
        ([{"name": "a"}, {"name": "a"}], "duplicate VM name 'a'"),
        ([{"name": "Node_1"}], r"platforms\[0\].name"),
        ([{"name": "a", "fabric": ["this-name-is-too-long"]}], r"platforms\[0\].fabric\[0\]"),
        ([{"name": "a", "fabric": "seg-a"}], "must be a list"),
        ([{"name": "a", "memory": 64}], "outside 256..8192"),
        ([{"name": "a", "fabirc": ["x"]}], "unknown keys"),
        ([{"name": "a", "image": "debian:12"}], "rackboot/<set>:<suite>"),
        ([{"name": f"n{i}"} for i in range(4)], "the limit is 3"),
        ([{"name": "a", "fabric": ["x", "y"], "lacp": "yes"}], r"platforms\[0\].lacp: 'yes' must be true or false"),
        ([{"name": "a", "fabric": ["x"], "lacp": True}], "needs at least two fabric NICs, a has 1"),
    ],
)
def test_bad_platforms_are_explained(platforms, message):
    with pytest.raises(lab.LabError, match=message):
        lab.parse_platforms(platforms, "l")


def test_vm_limit_can_be_raised(monkeypatch):
    monkeypatch.setenv("RACKBOOT_MAX_VMS", "4")
    assert len(lab.parse_platforms([{"name": f"n{i}"} for i in range(4)], "l")) == 4


def test_lab_names_differ_for_same_named_scenarios(monkeypatch, tmp_path):
    names = set()
    for role in ("node_os", "kubeadm"):
        sdir = tmp_path / "roles" / role / "molecule" / "default"
        sdir.mkdir(parents=True)
        monkeypatch.setenv("MOLECULE_SCENARIO_DIRECTORY", str(sdir))
        monkeypatch.setenv("MOLECULE_SCENARIO_NAME", "default")
        name = lab.lab_name_from_env()
        assert name.startswith("default-")
        names.add(name)
    assert len(names) == 2


def test_lab_name_needs_molecule_or_an_explicit_name(monkeypatch):
    monkeypatch.delenv("MOLECULE_SCENARIO_DIRECTORY", raising=False)
    with pytest.raises(lab.LabError, match="no --lab given"):
        lab.lab_name_from_env()


# -- VM labs: destroy, state, QMP --------------------------------------------------


def test_destroy_is_idempotent_on_nothing():
    empty = lab.Lab("never-created")
    assert empty.destroy() is False
    assert empty.destroy() is False
    assert cli.main(["lab", "destroy", "--lab", "never-created"]) == 0


def test_destroy_removes_stale_state_without_processes(tmp_path):
    stale = lab.Lab("crashed")
    stale.dir.mkdir(parents=True)
    (stale.dir / "node1.qcow2").write_text("overlay")
    (stale.dir / "node1.pid").write_text("999999999\n")  # no such process
    assert stale.destroy() is True
    assert not stale.dir.exists()
    assert stale.destroy() is False


def test_instance_config_for_molecule():
    lb = lab.Lab("l")
    vms = lab.parse_platforms([{"name": "node1"}], "l")
    vms[0].port = 40022
    (conf,) = lb.instance_config(vms)
    assert conf["instance"] == "node1" and conf["address"] == "127.0.0.1" and conf["port"] == 40022
    assert conf["user"] == "root" and conf["identity_file"].endswith("id_ed25519")


class FakeQemu:
    """A QMP server on a unix socket that records the commands it gets."""

    def __init__(self, path: Path):
        self.calls: list[dict] = []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn, conn.makefile("rwb") as f:
                f.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
                f.flush()
                for line in f:
                    msg = json.loads(line)
                    self.calls.append(msg)
                    if msg["execute"] == "set_link" and msg["arguments"]["name"] == "eth9":
                        f.write(b'{"error": {"class": "DeviceNotFound", "desc": "no eth9"}}\n')
                    else:
                        f.write(b'{"event": "NIC_RX_FILTER_CHANGED"}\n{"return": {}}\n')
                    f.flush()


def test_link_cut_and_reset_go_through_qmp(monkeypatch):
    ip_calls = []
    monkeypatch.setattr(lab, "run", lambda cmd, **_kw: ip_calls.append(cmd))
    lb = lab.Lab("qmp")
    lb.dir.mkdir(parents=True)
    vms = lab.parse_platforms([{"name": "node1", "fabric": ["a", "b"]}], "qmp")
    lb._save(vms)
    fake = FakeQemu(lb.dir / "node1.qmp")
    lb.set_link("node1", "eth2", up=False)
    lb.set_link("node1", "eth2", up=True)
    lb.reset("node1")
    commands = [c for c in fake.calls if c["execute"] != "qmp_capabilities"]
    assert commands == [
        {"execute": "set_link", "arguments": {"name": "eth2", "up": False}},
        {"execute": "set_link", "arguments": {"name": "eth2", "up": True}},
        {"execute": "system_reset"},
    ]
    # a pulled cable: the switch side (the tap in the lab namespace) loses carrier too
    assert ip_calls == [
        ["ip", "-n", "rb-qmp", "link", "set", "node1-e2", "carrier", "off"],
        ["ip", "-n", "rb-qmp", "link", "set", "node1-e2", "carrier", "on"],
    ]
    with pytest.raises(lab.LabError, match="no fabric NIC 'eth3'"):
        lb.set_link("node1", "eth3", up=False)
    with pytest.raises(lab.LabError, match="no VM 'node9'"):
        lb.reset("node9")
    with pytest.raises(lab.LabError, match="no eth9"):
        lab.qmp(lb.dir / "node1.qmp", "set_link", {"name": "eth9", "up": False})
    fake.sock.close()


def test_lab_commands_on_a_missing_lab_fail_cleanly(capsys):
    assert cli.main(["lab", "link", "--lab", "absent", "node1", "eth1", "down"]) == 1
    assert "lab absent does not exist" in capsys.readouterr().err


# -- scenario discovery -------------------------------------------------------------


def _scenario(path: Path, driver: str) -> None:
    path.mkdir(parents=True)
    (path / "molecule.yml").write_text(yaml.safe_dump({"driver": {"name": driver}}))


def test_scenarios_run_containers_first_and_roles_from_their_folder(tmp_path):
    _scenario(tmp_path / "molecule/vms-smoke", "default")
    _scenario(tmp_path / "molecule/containers-smoke", "podman")
    _scenario(tmp_path / "roles/node_network/molecule/default", "default")
    _scenario(tmp_path / "roles/node_os/molecule/default", "podman")
    (tmp_path / "molecule/shared").mkdir()
    found = scenarios.discover(tmp_path)
    assert [(s.kind, s.label) for s in found] == [
        ("containers", "containers-smoke"),
        ("containers", "node_os/default"),
        ("vms", "vms-smoke"),
        ("vms", "node_network/default"),
    ]
    assert found[1].cwd == tmp_path / "roles/node_os"
    assert [s.label for s in scenarios.select(found, role="node_os")] == ["node_os/default"]
    assert [s.label for s in scenarios.select(found, scenario="vms-smoke")] == ["vms-smoke"]
    assert [s.label for s in scenarios.select(found, scenario="default")] == ["node_os/default", "node_network/default"]
    assert [s.label for s in scenarios.select(found, scenario="node_network/default")] == ["node_network/default"]
