# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Node OS (roles/node_os): containerd configuration, Kubernetes packages and their apt repository."""

from __future__ import annotations

import re

import tomli_w

from ansible_collections.rackboot.metal.plugins.plugin_utils import kubeadm as kb

__all__ = ["NodeOsError", "containerd_major", "containerd_config", "kubernetes_apt_repo", "offline_debs",
           "debs_to_install", "package_problems"]


class NodeOsError(ValueError):
    """The node's packages or containerd cannot be set up as asked; the message says why."""


_CONTAINERD_VERSION_RE = re.compile(r"\sv?(\d+)\.(\d+)[.\d]*")


def containerd_major(version_output):
    """Major version from ``containerd --version`` (Debian: 'containerd github.com/containerd/containerd 1.6.20~ds1 ...',
    containerd.io: 'containerd containerd.io v2.1.4 ...')."""
    m = _CONTAINERD_VERSION_RE.search(" " + str(version_output))
    if not m:
        raise NodeOsError("cannot read a version from %r" % (version_output,))
    return int(m.group(1))


def containerd_config(major, sandbox_image, systemd_cgroup=True):
    """A minimal /etc/containerd/config.toml: runc with the systemd cgroup driver (like the kubelet) and the
    pinned sandbox (pause) image. containerd 1.x reads config version 2, containerd 2.x version 3."""
    major = int(major)
    if major < 1:
        raise NodeOsError("containerd %s is too old for Kubernetes" % major)
    runc = {"runtime_type": "io.containerd.runc.v2", "options": {"SystemdCgroup": bool(systemd_cgroup)}}
    if major == 1:
        conf = {"version": 2, "plugins": {"io.containerd.grpc.v1.cri": {
            "sandbox_image": str(sandbox_image), "containerd": {"runtimes": {"runc": runc}}}}}
    else:
        # containerd 2 split the CRI plugin: images (the pinned sandbox) and runtime are separate plugins.
        conf = {"version": 3, "plugins": {
            "io.containerd.cri.v1.images": {"pinned_images": {"sandbox": str(sandbox_image)}},
            "io.containerd.cri.v1.runtime": {"containerd": {"runtimes": {"runc": runc}}}}}
    return tomli_w.dumps(conf)


def kubernetes_apt_repo(kubernetes_version):
    """The upstream apt repository of a Kubernetes minor release (pkgs.k8s.io has one per minor)."""
    major, minor = kb.version_tuple(kubernetes_version)[:2]
    return "https://pkgs.k8s.io/core:/stable:/v%d.%d/deb/" % (major, minor)


def offline_debs(results, cache_dir):
    """[{path, package, version}] from the registered results of a loop running
    ``dpkg-deb --showformat='${Package} ${Version}' --show FILE`` over controller paths."""
    out = []
    for res in results:
        fields = str(res["stdout"]).split()
        # Debian versions start with a digit (epochs included).
        if len(fields) != 2 or not fields[1][:1].isdigit():
            raise NodeOsError("dpkg-deb printed %r for %s" % (res["stdout"], res["item"]))
        out.append({"path": "%s/%s" % (cache_dir.rstrip("/"), str(res["item"]).rsplit("/", 1)[-1]),
                    "package": fields[0], "version": fields[1]})
    return out


def debs_to_install(debs, installed):
    """Offline packages: ``debs`` is [{path, package, version}] (from dpkg-deb), ``installed`` the
    ``ansible_facts.packages`` mapping. Returns the paths whose package is missing or at another version."""
    out = []
    for deb in debs:
        have = [p.get("version") for p in (installed or {}).get(deb["package"], [])]
        if deb["version"] not in have:
            out.append(deb["path"])
    return out


def package_problems(packages, kubernetes_version, installed):
    """For package source 'none': what is wrong with the preinstalled kubelet/kubeadm/kubectl."""
    want = str(kubernetes_version).lstrip("v")
    problems = []
    for name in packages:
        versions = [p.get("version", "") for p in (installed or {}).get(name, [])]
        if not versions:
            problems.append("%s is not installed" % name)
        elif not any(v == want or v.startswith(want + "-") or v.startswith(want + "+") for v in versions):
            problems.append("%s is at %s, the spec wants %s" % (name, ", ".join(versions), want))
    return problems
