# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Talos cluster secrets without talosctl.

``generate()`` makes the bundle ``talosctl gen secrets`` writes (same YAML
keys, same key types: ECDSA P-256 CAs for etcd, Kubernetes and the
aggregator, an ECDSA service-account key, an Ed25519 CA for the Talos API),
``dump()``/``load()`` serialize it, and ``client_certificate()`` /
``talosconfig()`` make the admin client credentials talosctl uses. Every
value is base64 of PEM, as in Talos' own bundle.

Pure functions on plain dicts, shared by the talos_* modules; nothing here
logs or returns key material to Ansible.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
import secrets as _random
import stat
import string

import yaml

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.rackboot.metal.plugins.module_utils import config_apply

__all__ = ["SecretsError", "generate", "dump", "load", "validate", "client_certificate", "talosconfig",
           "fingerprint", "write_private", "private_dir", "bound_cluster", "check_cluster", "CA_VALIDITY",
           "CLIENT_VALIDITY"]

# Talos: CAValidityTime = 87600h (10 years); admin client certificates live one year.
CA_VALIDITY = datetime.timedelta(hours=87600)
CLIENT_VALIDITY = datetime.timedelta(days=365)
CERT_NAMES = ("etcd", "k8s", "k8saggregator", "os")
TOKEN_ALPHABET = string.ascii_lowercase + string.digits
# PEM block type Talos uses for Ed25519 keys (PKCS#8 bytes under its own label).
ED25519_PEM = "ED25519 PRIVATE KEY"
# A bundle belongs to one cluster: this comment line binds it to the cluster
# name. A comment keeps the body exactly talosctl's format.
BINDING = re.compile(r"^# rackboot-cluster: (\S+)[ \t]*$", re.MULTILINE | re.ASCII)
# Written into every private folder rackboot creates, so that `git add -A`
# of an inventory anywhere never picks up a secret or a rendered artifact.
GITIGNORE = "# Written by rackboot: secrets and rendered artifacts are never committed.\n*\n"


class SecretsError(Exception):
    """The secrets bundle is missing something or is not what Talos expects."""


def _b64(data):
    return base64.b64encode(data).decode("ascii")


def _unb64(text, what):
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, AttributeError, UnicodeEncodeError):
        raise SecretsError("%s is not base64" % what)


def _token():
    """A kubeadm-style token: 6 and 16 lowercase alphanumerics (Talos genToken(6, 16))."""
    def part(n):
        return "".join(_random.choice(TOKEN_ALPHABET) for _ in range(n))
    return "%s.%s" % (part(6), part(16))


def _ec_key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def _ed25519_key_pem(key):
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    body = base64.encodebytes(der).decode("ascii")
    return ("-----BEGIN %s-----\n%s-----END %s-----\n" % (ED25519_PEM, body, ED25519_PEM)).encode("ascii")


def _load_key(pem):
    """Load an EC or Ed25519 (Talos label) private key from PEM bytes."""
    text = pem.decode("ascii", "replace")
    if ED25519_PEM in text:
        text = text.replace(ED25519_PEM, "PRIVATE KEY")
    return serialization.load_pem_private_key(text.encode("ascii"), password=None)


def _self_signed_ca(key, subject, now):
    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now).not_valid_after(now + CA_VALIDITY)
               .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                              critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    return builder.sign(key, algorithm)


def _ec_ca(subject, now):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _self_signed_ca(key, subject, now)
    return {"crt": _b64(cert.public_bytes(serialization.Encoding.PEM)), "key": _b64(_ec_key_pem(key))}


def _org(name):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name)])


def generate(now=None):
    """A new secrets bundle (dict) in the layout of ``talosctl gen secrets``."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    os_key = ed25519.Ed25519PrivateKey.generate()
    os_cert = _self_signed_ca(os_key, _org("talos"), now)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    return {
        "cluster": {
            # Talos: ID base64url, secret base64 std, 32 random bytes each.
            "id": base64.urlsafe_b64encode(os.urandom(32)).decode("ascii"),
            "secret": _b64(os.urandom(32)),
        },
        "secrets": {
            "bootstraptoken": _token(),
            "secretboxencryptionsecret": _b64(os.urandom(32)),
        },
        "trustdinfo": {"token": _token()},
        "certs": {
            "etcd": _ec_ca(_org("etcd"), now),
            "k8s": _ec_ca(_org("kubernetes"), now),
            "k8saggregator": _ec_ca(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "front-proxy")]), now),
            "k8sserviceaccount": {"key": _b64(_ec_key_pem(sa_key))},
            "os": {"crt": _b64(os_cert.public_bytes(serialization.Encoding.PEM)), "key": _b64(_ed25519_key_pem(os_key))},
        },
    }


def dump(bundle, cluster=None):
    """YAML text of a bundle, keys in Talos' order, bound to ``cluster`` when given."""
    body = yaml.safe_dump(bundle, sort_keys=False, default_flow_style=False, width=1 << 20)
    if cluster is None:
        return body
    return ("# Talos secrets (CAs, keys, tokens) of the rackboot cluster %s. Never copy this file to\n"
            "# another cluster: rackboot refuses a bundle whose cluster name is not its own.\n"
            "# rackboot-cluster: %s\n%s" % (cluster, cluster, body))


def bound_cluster(text):
    """The cluster name a bundle's text is bound to, or None."""
    match = BINDING.search(text)
    return match.group(1) if match else None


def check_cluster(text, cluster, source="talos secrets"):
    """Raise SecretsError unless the bundle text is bound to ``cluster``."""
    bound = bound_cluster(text)
    if bound == cluster:
        return
    if bound is None:
        raise SecretsError(
            "%s does not say which cluster it belongs to (no '# rackboot-cluster: <name>' line), and this is "
            "cluster %s: if the bundle really is %s's, add the line '# rackboot-cluster: %s' at its top; "
            "otherwise move the file away and rackboot creates new secrets" % (source, cluster, cluster, cluster))
    raise SecretsError(
        "%s belongs to cluster %s, not to this cluster %s (was it copied from another inventory?): one "
        "bundle, one cluster. Move the file away to create new secrets for %s, or point rackboot_secrets_dir "
        "at %s's own secrets folder" % (source, bound, cluster, cluster, cluster))


def validate(bundle, source="talos secrets"):
    """Raise SecretsError naming the first missing/invalid field; return the bundle."""
    if not isinstance(bundle, dict):
        raise SecretsError("%s: not a mapping" % source)
    required = [("cluster", "id"), ("cluster", "secret"), ("secrets", "bootstraptoken"),
                ("secrets", "secretboxencryptionsecret"), ("trustdinfo", "token"),
                ("certs", "k8sserviceaccount", "key")]
    required += [("certs", name, part) for name in CERT_NAMES for part in ("crt", "key")]
    for path in required:
        node = bundle
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, str) or not node:
            raise SecretsError("%s: %s is missing or empty" % (source, ".".join(path)))
    for name in CERT_NAMES:
        where = "%s: certs.%s" % (source, name)
        try:
            cert = x509.load_pem_x509_certificate(_unb64(bundle["certs"][name]["crt"], where + ".crt"))
            key = _load_key(_unb64(bundle["certs"][name]["key"], where + ".key"))
        except ValueError as e:
            raise SecretsError("%s: cannot be parsed: %s" % (where, e))
        if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) != \
                key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo):
            raise SecretsError("%s: the key does not belong to the certificate" % where)
    try:
        _load_key(_unb64(bundle["certs"]["k8sserviceaccount"]["key"], source + ": certs.k8sserviceaccount.key"))
    except ValueError as e:
        raise SecretsError("%s: certs.k8sserviceaccount.key cannot be parsed: %s" % (source, e))
    return bundle


def load(text, source="talos secrets"):
    try:
        bundle = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise SecretsError("%s: not valid YAML: %s" % (source, e))
    return validate(bundle, source)


def fingerprint(bundle, name="os"):
    """SHA-256 of a CA certificate (DER), safe to print."""
    cert = x509.load_pem_x509_certificate(base64.b64decode(bundle["certs"][name]["crt"]))
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def client_certificate(bundle, roles=("os:admin",), now=None, validity=CLIENT_VALIDITY):
    """An Ed25519 client certificate signed by the OS CA, like talosctl's admin cert.

    Returns (crt_b64, key_b64).
    """
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    ca_cert = x509.load_pem_x509_certificate(base64.b64decode(bundle["certs"]["os"]["crt"]))
    ca_key = _load_key(base64.b64decode(bundle["certs"]["os"]["key"]))
    key = ed25519.Ed25519PrivateKey.generate()
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, r) for r in roles])
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + validity)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
            .sign(ca_key, None))
    return _b64(cert.public_bytes(serialization.Encoding.PEM)), _b64(_ed25519_key_pem(key))


def talosconfig(context, endpoints, nodes, bundle, crt, key):
    """The talosctl client configuration (dict) for one cluster context."""
    return {
        "context": context,
        "contexts": {
            context: {
                "endpoints": list(endpoints),
                "nodes": list(nodes),
                "ca": bundle["certs"]["os"]["crt"],
                "crt": crt,
                "key": key,
            },
        },
    }


def private_dir(directory, check_mode=False):
    """Make ``directory`` mode 0700 with a catch-all ``.gitignore``; return whether anything changed."""
    changed = False
    if not os.path.isdir(directory):
        changed = True
        if check_mode:
            return changed
        os.makedirs(directory, 0o700)
    if stat.S_IMODE(os.stat(directory).st_mode) != 0o700:
        changed = True
        if not check_mode:
            os.chmod(directory, 0o700)
    ignore = os.path.join(directory, ".gitignore")
    if not os.path.exists(ignore):
        changed = True
        if not check_mode:
            with open(ignore, "w") as f:
                f.write(GITIGNORE)
    return changed


def write_private(path, text):
    """Write ``text`` to ``path`` with mode 0600 from the first byte (atomic rename)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        private_dir(directory)
    config_apply.atomic_write(path, text, 0o600)
