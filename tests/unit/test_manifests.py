# -*- coding: utf-8 -*-
"""plugins/plugin_utils/manifests.py: image references, mirrors, the validator, the air-gap list."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.rackboot.metal.plugins.plugin_utils import manifests as mf
from ansible_collections.rackboot.metal.plugins.plugin_utils import upstream

REPO = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize("ref, want", [
    ("busybox", ("docker.io", "library/busybox", None, None)),
    ("docker.io/kubeovn/kube-ovn:v1.16.2", ("docker.io", "kubeovn/kube-ovn", "v1.16.2", None)),
    ("quay.io/cilium/cilium:v1.19.4@" + DIGEST, ("quay.io", "cilium/cilium", "v1.19.4", DIGEST)),
    ("localhost:5000/a/b:1", ("localhost:5000", "a/b", "1", None)),
    ("registry.local/x@" + DIGEST, ("registry.local", "x", None, DIGEST)),
])
def test_parse_image(ref, want):
    p = mf.parse_image(ref)
    assert (p["registry"], p["repository"], p["tag"], p["digest"]) == want


def test_bad_image_reference():
    with pytest.raises(mf.RenderError, match="not an image reference"):
        mf.parse_image("Quay.io/UPPER case")


def test_mirror_keeps_path_tag_and_digest():
    ref = "quay.io/cilium/cilium:v1.19.4@" + DIGEST
    assert mf.mirror_image(ref, "mirror.local:5000/") == "mirror.local:5000/cilium/cilium:v1.19.4@" + DIGEST
    assert mf.mirror_image("busybox:1", "m.local") == "m.local/library/busybox:1"
    assert mf.mirror_repository("kube-ovn", "m.local") == "kube-ovn"      # relative to a registry address
    assert mf.mirror_repository("docker.io/kubeovn", "m.local") == "m.local/kubeovn"


def test_mirror_values_cover_every_repository_a_chart_declares():
    for name in ("cilium_chart", "metallb_chart", "kube_ovn_chart", "cozy_proxy_chart"):
        defaults = mf.chart_defaults(upstream.path(name))
        over = mf.mirror_values(defaults, "m.local")
        assert over, name

        def walk(node, o):
            for key, value in node.items():
                if key == "repository" and isinstance(value, str) and "/" in value:
                    assert o[key].startswith("m.local/"), (name, value)
                elif key == "registry" and isinstance(value, dict) and "address" in value:
                    assert o[key]["address"].startswith("m.local/"), (name, value)
                elif isinstance(value, dict):
                    walk(value, o.get(key, {}))
        walk(defaults, over)
    # Subchart values sit under the subchart's name (MetalLB's frr-k8s).
    assert "frr-k8s" in mf.chart_defaults(upstream.path("metallb_chart"))


def test_images_of_pods_cronjobs_and_configmaps():
    docs = [
        {"kind": "DaemonSet", "spec": {"template": {"spec": {"initContainers": [{"image": "a.io/i:1"}],
                                                             "containers": [{"image": "a.io/c:1"}]}}}},
        {"kind": "CronJob", "spec": {"jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"image": "a.io/cron:2"}]}}}}}},
        {"kind": "ConfigMap", "data": {"image": "docker.io/kubeovn/vpc-nat-gateway:v1.16.2",
                                       "conf.yaml": "foo: 1\n  image: \"b.io/x:3\"\n", "other": "not an image"}},
    ]
    assert mf.images(docs) == ["a.io/c:1", "a.io/cron:2", "a.io/i:1", "b.io/x:3",
                               "docker.io/kubeovn/vpc-nat-gateway:v1.16.2"]


@pytest.fixture(scope="module")
def validator():
    return mf.validator()


def _daemonset():
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d", "namespace": "n"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                     "template": {"metadata": {"labels": {"a": "b"}},
                                  "spec": {"containers": [{"name": "c", "image": "a.io/c:1"}]}}}}


def test_validator_accepts_a_valid_object(validator):
    assert validator.problems([_daemonset()], "x") == []


def test_validator_names_component_kind_name_and_field_path(validator):
    bad = _daemonset()
    bad["spec"]["template"]["spec"]["containers"][0]["imagee"] = "typo"
    bad["spec"]["template"]["spec"]["hostNetwork"] = "maybe"
    problems = validator.problems([bad], "cozy_proxy")
    assert any(p.startswith("cozy_proxy: DaemonSet n/d: spec.template.spec.containers[0]: ") and "'imagee'" in p
               for p in problems), problems
    assert any(p.startswith("cozy_proxy: DaemonSet n/d: spec.template.spec.hostNetwork: ") for p in problems)


def test_validator_checks_custom_resources_against_their_crd(validator):
    pool = {"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "p", "namespace": "m"},
            "spec": {"addresses": ["10.0.0.0/24"], "autoAssing": True}}
    (problem,) = validator.problems([pool], "metallb")
    assert problem.startswith("metallb: IPAddressPool m/p: spec: ") and "autoAssing" in problem
    unknown = {"apiVersion": "example.com/v1", "kind": "Nope", "metadata": {"name": "x"}}
    assert validator.problems([unknown], "c") == ["c: Nope x: no Kubernetes schema or CRD for apiVersion "
                                                  "example.com/v1 kind Nope"]
    with pytest.raises(mf.RenderError, match="1 invalid object"):
        mf.check(validator, [unknown], "c")


def test_redacted_secrets_keep_their_keys_only():
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"tls.key": "c2VjcmV0"}}
    before = copy.deepcopy(secret)
    (out,) = mf.redact_secrets([secret])
    assert secret == before
    assert out["data"] == {"tls.key": ""} and "rackboot.io/not-rendered" in out["metadata"]["annotations"]


def test_dump_is_stable_and_round_trips():
    docs = [{"b": 1, "a": {"z": [1, 2], "y": "x"}}, {"kind": "K"}]
    assert mf.dump(docs) == mf.dump(copy.deepcopy(docs))
    assert list(yaml.safe_load_all(mf.dump(docs))) == docs


def test_platform_images_follow_the_distribution_and_the_pins():
    pins = {"etcd": "3.6.4-0", "coredns": "1.12.1", "pause": "3.10.1", "talos": "1.13.9", "kube_vip": "0.9.2"}
    talos = mf.platform_images("talos", "1.34.1", pins)
    kubeadm = mf.platform_images("kubeadm", "1.34.1", pins)
    assert "ghcr.io/siderolabs/installer:v1.13.9" in talos and "gcr.io/etcd-development/etcd:v3.6.4" in talos
    assert "registry.k8s.io/etcd:3.6.4-0" in kubeadm and "ghcr.io/kube-vip/kube-vip:v0.9.2" in kubeadm
    for images in (talos, kubeadm):
        assert "registry.k8s.io/kube-apiserver:v1.34.1" in images
        assert not any("kube-proxy" in i for i in images)


def test_helm_binary_errors_name_the_setting(tmp_path, monkeypatch):
    with pytest.raises(mf.RenderError, match="rackboot_helm_binary=.* is not an executable helm"):
        mf.helm_binary(str(tmp_path / "nope"))
    monkeypatch.setenv("RACKBOOT_HELM", str(tmp_path / "nope"))
    with pytest.raises(mf.RenderError, match="RACKBOOT_HELM="):
        mf.helm_binary()


def test_missing_local_chart():
    with pytest.raises(mf.RenderError, match="chart /nonexistent of release r does not exist"):
        mf.helm_template("/nonexistent", "r", "n", "1.34.1", {})


def test_chart_pins_match_roles_versions():
    """One owner: the chart versions in roles/versions equal the upstream manifest's pins."""
    pins = yaml.safe_load((REPO / "roles/versions/defaults/main.yml").read_text())
    sources = upstream.manifest()
    for component, source in (("cilium", "cilium_chart"), ("kube_ovn", "kube_ovn_chart"),
                              ("metallb", "metallb_chart"), ("cozy_proxy", "cozy_proxy_chart"),
                              ("multus", "multus_manifest")):
        assert str(sources[source]["version"]).lstrip("v") == pins["versions_" + component], component
        chart = upstream.path(source)
        if source.endswith("_chart"):
            meta = yaml.safe_load(mf._chart_file(chart, "Chart.yaml"))
            assert str(meta["version"]).lstrip("v") == pins["versions_" + component], component
