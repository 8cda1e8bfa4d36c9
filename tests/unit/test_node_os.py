"""node_os helpers: containerd configuration per containerd major version, package checks, apt repository."""
import tomllib

import pytest

from ansible_collections.rackboot.metal.plugins.plugin_utils import node_os as nos

PAUSE = "registry.k8s.io/pause:3.10.1"


@pytest.mark.parametrize("output, major", [
    ("containerd github.com/containerd/containerd 1.6.20~ds1 1.6.20~ds1-1+deb12u3", 1),  # Debian 12
    ("containerd github.com/containerd/containerd 1.7.24~ds1 1.7.24~ds1-6+b2", 1),       # Debian 13
    ("containerd containerd.io 1.7.27 05044ec0a9a75232cad458027ca83437aae3f4da", 1),    # Docker repo, 1.7
    ("containerd containerd.io v2.1.4 75cb2b7193e4e490e9fbdc236c0e811ccaba3376", 2),   # Docker repo, 2.x
    ("containerd github.com/containerd/containerd/v2 v2.0.2 ", 2),
])
def test_containerd_major(output, major):
    assert nos.containerd_major(output) == major


def test_containerd_major_rejects_garbage():
    with pytest.raises(nos.NodeOsError, match="cannot read a version"):
        nos.containerd_major("command not found")


def test_containerd_1x_config_is_version_2_with_systemd_cgroups():
    conf = tomllib.loads(nos.containerd_config(1, PAUSE))
    assert conf["version"] == 2
    cri = conf["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == PAUSE
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is True


def test_containerd_2x_config_is_version_3_with_systemd_cgroups():
    conf = tomllib.loads(nos.containerd_config(2, PAUSE))
    assert conf["version"] == 3
    assert conf["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == PAUSE
    runc = conf["plugins"]["io.containerd.cri.v1.runtime"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is True


# The config.toml text rackboot wrote before it used a TOML writer (the node_os Molecule scenario checked
# containerd's own dump of these): the writer must produce exactly the same tables and keys.
_HAND_WRITTEN = {
    1: """version = 2

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{image}"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
  SystemdCgroup = {flag}
""",
    2: """version = 3

[plugins.'io.containerd.cri.v1.images'.pinned_images]
  sandbox = "{image}"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
  SystemdCgroup = {flag}
""",
}


@pytest.mark.parametrize("major, form", [(1, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize("systemd_cgroup", [True, False])
def test_containerd_config_has_the_tables_of_the_hand_written_config(major, form, systemd_cgroup):
    old = tomllib.loads(_HAND_WRITTEN[form].format(image=PAUSE, flag=str(systemd_cgroup).lower()))
    assert tomllib.loads(nos.containerd_config(major, PAUSE, systemd_cgroup)) == old


def test_containerd_config_quotes_what_it_writes():
    odd = 'registry.example/pause:3.10 "quoted" \\ back'
    conf = tomllib.loads(nos.containerd_config(2, odd))
    assert conf["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]["sandbox"] == odd
    with pytest.raises(nos.NodeOsError, match="too old"):
        nos.containerd_config(0, PAUSE)


def test_kubernetes_apt_repo_is_per_minor_release():
    assert nos.kubernetes_apt_repo("1.34.1") == "https://pkgs.k8s.io/core:/stable:/v1.34/deb/"
    assert nos.kubernetes_apt_repo("v1.31.12") == "https://pkgs.k8s.io/core:/stable:/v1.31/deb/"


def test_offline_debs_and_what_to_install():
    results = [
        {"item": "/srv/debs/kubelet_1.34.1-1.1_amd64.deb", "stdout": "kubelet 1.34.1-1.1"},
        {"item": "/srv/debs/kubeadm_1.34.1-1.1_amd64.deb", "stdout": "kubeadm 1.34.1-1.1"},
        {"item": "/srv/debs/cri-tools_1.34.0-1.1_amd64.deb", "stdout": "cri-tools 1.34.0-1.1"},
    ]
    debs = nos.offline_debs(results, "/var/cache/rackboot/debs/")
    assert debs[0] == {"path": "/var/cache/rackboot/debs/kubelet_1.34.1-1.1_amd64.deb",
                       "package": "kubelet", "version": "1.34.1-1.1"}
    installed = {"kubelet": [{"version": "1.34.1-1.1"}], "kubeadm": [{"version": "1.33.5-1.1"}]}
    assert nos.debs_to_install(debs, installed) == [debs[1]["path"], debs[2]["path"]]
    assert nos.debs_to_install(debs, {d["package"]: [{"version": d["version"]}] for d in debs}) == []
    with pytest.raises(nos.NodeOsError, match="dpkg-deb printed"):
        nos.offline_debs([{"item": "x.deb", "stdout": "dpkg-deb: error"}], "/tmp")


def test_package_problems_for_preinstalled_packages():
    installed = {"kubelet": [{"version": "1.34.1-1.1"}], "kubeadm": [{"version": "1.33.5-1.1"}]}
    problems = nos.package_problems(["kubelet", "kubeadm", "kubectl"], "1.34.1", installed)
    assert problems == ["kubeadm is at 1.33.5-1.1, the spec wants 1.34.1", "kubectl is not installed"]
    # 1.34.10 is not 1.34.1
    assert nos.package_problems(["kubelet"], "1.34.1", {"kubelet": [{"version": "1.34.10-1.1"}]})
    assert nos.package_problems(["kubelet"], "v1.34.1", installed) == []
