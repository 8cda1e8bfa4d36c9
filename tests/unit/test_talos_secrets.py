# -*- coding: utf-8 -*-
"""Talos secrets bundle, admin client certificate, and the talos_secrets / talos_client_config modules."""

from __future__ import annotations

import base64
import grp
import json
import os
import pathlib
import re
import stat
import subprocess
import sys

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.rackboot.metal.plugins.module_utils import talos_secrets

REPO = pathlib.Path(__file__).resolve().parents[2]
TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")   # kubeadm bootstrap token format Talos uses


@pytest.fixture(scope="module")
def bundle():
    return talos_secrets.generate()


def _crt(b64):
    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def _pem(b64):
    return base64.b64decode(b64).decode("ascii")


def test_bundle_has_the_talosctl_gen_secrets_layout(bundle):
    assert list(bundle) == ["cluster", "secrets", "trustdinfo", "certs"]
    assert set(bundle["certs"]) == {"etcd", "k8s", "k8saggregator", "k8sserviceaccount", "os"}
    assert TOKEN.match(bundle["secrets"]["bootstraptoken"])
    assert TOKEN.match(bundle["trustdinfo"]["token"])
    assert len(base64.urlsafe_b64decode(bundle["cluster"]["id"])) == 32
    assert len(base64.b64decode(bundle["cluster"]["secret"])) == 32
    assert len(base64.b64decode(bundle["secrets"]["secretboxencryptionsecret"])) == 32


@pytest.mark.parametrize("name,org", [("etcd", "etcd"), ("k8s", "kubernetes"), ("os", "talos")])
def test_cas_are_self_signed_cas_with_talos_subjects(bundle, name, org):
    crt = _crt(bundle["certs"][name]["crt"])
    assert crt.subject == crt.issuer
    assert crt.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == org
    assert crt.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert crt.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is True
    crt.verify_directly_issued_by(crt)
    assert (crt.not_valid_after_utc - crt.not_valid_before_utc).days >= 3649   # Talos: 87600h


def test_key_types_match_talos(bundle):
    assert isinstance(_crt(bundle["certs"]["os"]["crt"]).public_key(), ed25519.Ed25519PublicKey)
    for name in ("etcd", "k8s", "k8saggregator"):
        key = _crt(bundle["certs"][name]["crt"]).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        assert "BEGIN EC PRIVATE KEY" in _pem(bundle["certs"][name]["key"])
    assert "BEGIN ED25519 PRIVATE KEY" in _pem(bundle["certs"]["os"]["key"])
    assert "BEGIN EC PRIVATE KEY" in _pem(bundle["certs"]["k8sserviceaccount"]["key"])
    agg = _crt(bundle["certs"]["k8saggregator"]["crt"])
    assert agg.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "front-proxy"


def test_two_bundles_share_nothing():
    a, b = talos_secrets.generate(), talos_secrets.generate()
    flat = lambda d: {v for x in d.values() for v in (flat(x) if isinstance(x, dict) else [x])}  # noqa: E731
    assert not flat(a) & flat(b)


def test_dump_load_round_trip_and_validation(bundle):
    assert talos_secrets.load(talos_secrets.dump(bundle)) == bundle
    broken = yaml.safe_load(talos_secrets.dump(bundle))
    broken["certs"]["etcd"]["key"] = bundle["certs"]["k8s"]["key"]
    with pytest.raises(talos_secrets.SecretsError, match="certs.etcd: the key does not belong"):
        talos_secrets.validate(broken, "f.yaml")
    del broken["trustdinfo"]
    with pytest.raises(talos_secrets.SecretsError, match="f.yaml: trustdinfo.token is missing"):
        talos_secrets.validate(broken, "f.yaml")


def test_client_certificate_is_an_admin_cert_signed_by_the_os_ca(bundle):
    crt_b64, key_b64 = talos_secrets.client_certificate(bundle)
    crt, ca = _crt(crt_b64), _crt(bundle["certs"]["os"]["crt"])
    crt.verify_directly_issued_by(ca)
    assert crt.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "os:admin"
    assert crt.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == \
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
    assert crt.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign is False
    assert "BEGIN ED25519 PRIVATE KEY" in _pem(key_b64)
    cfg = talos_secrets.talosconfig("c1", ["10.0.0.11"], ["10.0.0.11"], bundle, crt_b64, key_b64)
    assert cfg["context"] == "c1" and cfg["contexts"]["c1"]["ca"] == bundle["certs"]["os"]["crt"]


def test_write_private_creates_mode_0600(tmp_path):
    path = tmp_path / "sub" / "f"
    talos_secrets.write_private(str(path), "x")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == "x"


# ---------------------------------------------------------------------------------------------
# The modules, run as Ansible runs them (a JSON args file)
# ---------------------------------------------------------------------------------------------
def run_module(name, args, tmp_path, check=False, diff=False):
    argsfile = tmp_path / ("%s-args.json" % name)
    argsfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check, _ansible_diff=diff)}))
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    res = subprocess.run([sys.executable, str(REPO / ("plugins/modules/%s.py" % name)), str(argsfile)],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path))
    return json.loads(res.stdout), res.stdout + res.stderr


def test_secrets_module_creates_once_never_overwrites(tmp_path):
    path = tmp_path / "secrets" / "talos-secrets.yaml"
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path, check=True)
    assert res["changed"] and not path.exists()
    res, out = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path)
    assert res["changed"] and res["created"] and stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    bundle = yaml.safe_load(text)
    assert bundle["certs"]["os"]["key"] not in out and bundle["secrets"]["bootstraptoken"] not in out
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path)
    assert not res["changed"] and path.read_text() == text
    path.chmod(0o644)
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path)
    assert res["changed"] and stat.S_IMODE(path.stat().st_mode) == 0o600 and path.read_text() == text


def test_secrets_live_in_a_private_folder_git_ignores(tmp_path):
    """0600 file, 0700 folder, and a .gitignore: `git add -A` of the inventory commits none of it."""
    inventory = tmp_path / "inventories" / "prod" / "dc1"          # deeper than inventories/*/
    inventory.mkdir(parents=True)
    (inventory / "cluster.yml").write_text("plugin: rackboot.metal.cluster\n")
    path = inventory / "secrets" / "talos-secrets.yaml"
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path)
    assert res["changed"] and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q", str(tmp_path)], check=True)
    subprocess.run(git + ["add", "-A"], cwd=tmp_path, check=True)
    staged = subprocess.run(["git", "diff", "--cached", "--name-only"], cwd=tmp_path, capture_output=True,
                            text=True, check=True).stdout.split()
    assert "inventories/prod/dc1/cluster.yml" in staged
    assert sorted(staged) == ["inventories/prod/dc1/cluster.yml", "talos_secrets-args.json"]
    # A folder someone loosened is tightened again (and reported).
    path.parent.chmod(0o755)
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path)
    assert res["changed"] and stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_secrets_module_refuses_the_bundle_of_another_cluster(tmp_path):
    path = tmp_path / "secrets" / "talos-secrets.yaml"
    run_module("talos_secrets", {"path": str(path), "cluster": "demo"}, tmp_path)
    text = path.read_text()
    assert talos_secrets.bound_cluster(text) == "demo"
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "dc1-prod"}, tmp_path)
    assert res.get("failed") and str(path) in res["msg"]
    assert "belongs to cluster demo, not to this cluster dc1-prod" in res["msg"]
    assert path.read_text() == text
    # A bundle that names no cluster (from talosctl gen secrets, or an older rackboot) is not adopted silently.
    path.write_text(talos_secrets.dump(yaml.safe_load(text)))
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "dc1-prod"}, tmp_path)
    assert res.get("failed") and "# rackboot-cluster: dc1-prod" in res["msg"]
    path.write_text("# rackboot-cluster: dc1-prod\n" + path.read_text())
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "dc1-prod"}, tmp_path)
    assert not res.get("failed") and not res["created"]


def test_secrets_module_refuses_a_damaged_bundle(tmp_path):
    path = tmp_path / "talos-secrets.yaml"
    path.write_text("cluster: {id: x}\n")
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path)
    assert res.get("failed") and "cluster.secret is missing" in res["msg"] and "never overwrites" in res["msg"]
    assert path.read_text() == "cluster: {id: x}\n"


def test_client_config_module_keeps_its_certificate_and_updates_endpoints(tmp_path):
    secrets = tmp_path / "talos-secrets.yaml"
    run_module("talos_secrets", {"path": str(secrets), "cluster": "c1"}, tmp_path)
    tc = tmp_path / "talosconfig"
    args = {"path": str(tc), "secrets_path": str(secrets), "context": "c1", "endpoints": ["10.0.0.11"]}
    res, out = run_module("talos_client_config", args, tmp_path, diff=True)
    assert res["changed"] and res["certificate_renewed"] and stat.S_IMODE(tc.stat().st_mode) == 0o600
    cfg = yaml.safe_load(tc.read_text())
    assert cfg["contexts"]["c1"]["key"] not in out
    first = tc.read_text()
    res, _ = run_module("talos_client_config", args, tmp_path)
    assert not res["changed"] and tc.read_text() == first
    res, _ = run_module("talos_client_config", dict(args, endpoints=["10.0.0.11", "10.0.0.12"]), tmp_path)
    cfg2 = yaml.safe_load(tc.read_text())
    assert res["changed"] and not res["certificate_renewed"]
    assert cfg2["contexts"]["c1"]["crt"] == cfg["contexts"]["c1"]["crt"]
    assert cfg2["contexts"]["c1"]["endpoints"] == ["10.0.0.11", "10.0.0.12"]


def _context_with(tc, **fields):
    cfg = yaml.safe_load(tc.read_text())
    cfg["contexts"]["c1"].update(fields)
    tc.write_text(yaml.safe_dump(cfg))


@pytest.mark.parametrize("case, reason", [
    ("expiring", "expires within 30 days"),
    ("other CA", "issued by another CA"),
    ("other roles", "has roles os:reader, not os:admin"),
    ("no key", "no client certificate for context c1"),
])
def test_client_config_reissues_only_for_a_reason_and_says_which(tmp_path, case, reason):
    secrets = tmp_path / "talos-secrets.yaml"
    run_module("talos_secrets", {"path": str(secrets), "cluster": "c1"}, tmp_path)
    bundle = talos_secrets.load(secrets.read_text())
    tc = tmp_path / "talosconfig"
    args = {"path": str(tc), "secrets_path": str(secrets), "context": "c1", "endpoints": ["10.0.0.11"]}
    res, _ = run_module("talos_client_config", args, tmp_path)
    assert res["renew_reason"] == "no client certificate for context c1 yet"
    res, _ = run_module("talos_client_config", args, tmp_path)
    assert not res["changed"] and not res["certificate_renewed"] and "renew_reason" not in res
    if case == "expiring":
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=360)
        crt, key = talos_secrets.client_certificate(bundle, now=now, validity=datetime.timedelta(days=365))
    elif case == "other CA":
        crt, key = talos_secrets.client_certificate(talos_secrets.generate())
    elif case == "other roles":
        crt, key = talos_secrets.client_certificate(bundle, roles=("os:reader",))
    else:
        crt, key = yaml.safe_load(tc.read_text())["contexts"]["c1"]["crt"], ""
    _context_with(tc, crt=crt, key=key)
    res, out = run_module("talos_client_config", args, tmp_path, check=True, diff=True)
    assert res["changed"] and res["certificate_renewed"] and reason in res["renew_reason"]
    assert yaml.safe_load(tc.read_text())["contexts"]["c1"]["crt"] == crt   # check mode wrote nothing
    res, out = run_module("talos_client_config", args, tmp_path, diff=True)
    diff = res["diff"][0] if isinstance(res["diff"], list) else res["diff"]
    assert reason in diff["after"] and reason not in diff["before"]
    new = yaml.safe_load(tc.read_text())["contexts"]["c1"]
    assert new["crt"] != crt and new["key"] not in out
    _crt(new["crt"]).verify_directly_issued_by(_crt(bundle["certs"]["os"]["crt"]))


def test_secrets_and_client_config_take_the_common_file_options(tmp_path):
    """A mode given to the task wins (e.g. a group of operators); without one the files stay 0600."""
    path = tmp_path / "secrets" / "talos-secrets.yaml"
    args = {"path": str(path), "cluster": "c1", "mode": "0640"}
    res, _ = run_module("talos_secrets", args, tmp_path)
    assert res["created"] and stat.S_IMODE(path.stat().st_mode) == 0o640
    res, _ = run_module("talos_secrets", args, tmp_path)
    assert not res["changed"]
    res, _ = run_module("talos_secrets", {"path": str(path), "cluster": "c1"}, tmp_path, check=True, diff=True)
    assert res["changed"] and stat.S_IMODE(path.stat().st_mode) == 0o640
    assert res["diff"] == [{"before": {"path": str(path), "mode": "0640"}, "after": {"path": str(path), "mode": "0600"}}]
    tc = tmp_path / "talosconfig"
    tc_args = {"path": str(tc), "secrets_path": str(path), "context": "c1", "endpoints": ["10.0.0.11"]}
    res, _ = run_module("talos_client_config", dict(tc_args, mode="0640"), tmp_path)
    assert res["changed"] and stat.S_IMODE(tc.stat().st_mode) == 0o640
    res, _ = run_module("talos_client_config", dict(tc_args, mode="0640"), tmp_path)
    assert not res["changed"]
    res, _ = run_module("talos_client_config", tc_args, tmp_path)
    assert res["changed"] and not res["certificate_renewed"] and stat.S_IMODE(tc.stat().st_mode) == 0o600
    # A group the controller user is in: applied, then idempotent.
    group = grp.getgrgid(os.getgid()).gr_name
    res, _ = run_module("talos_client_config", dict(tc_args, group=group), tmp_path)
    assert not res["changed"] and tc.stat().st_gid == os.getgid()
    res, _ = run_module("talos_client_config", dict(tc_args, group="no-such-group-12b"), tmp_path)
    assert res.get("failed") and "no-such-group-12b" in res["msg"]
