# -*- coding: utf-8 -*-
"""A stand-in for talosctl that follows its documented interface, and its tests.

No Talos node can run on the test machines, so the rollout logic is tested
against this program. It accepts only the flags the Talos v1.13 CLI reference
documents for each subcommand it implements (anything else is an error, as
with the real talosctl), simulates nodes in maintenance mode / configured /
down in a JSON state file (``FAKE_TALOS_STATE``), authenticates like apid (the
talosconfig's client certificate must be signed by the cluster's OS CA), and
records every call. Tests import ``install_fake`` to get an executable.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

FAKE_SOURCE = r'''
import base64, json, os, sys
import yaml
from cryptography import x509

# Flags per subcommand, from the talosctl v1.13 CLI reference (global flags are accepted everywhere).
GLOBAL = {"--talosconfig": 1, "--nodes": 1, "-n": 1, "--endpoints": 1, "-e": 1, "--context": 1, "--cluster": 1}
FLAGS = {
    ("apply-config",): {"--file": 1, "-f": 1, "--insecure": 0, "-i": 0, "--mode": 1, "-m": 1, "--dry-run": 0,
                        "--timeout": 1, "--cert-fingerprint": 1, "--config-patch": 1, "-p": 1},
    ("bootstrap",): {"--recover-from": 1, "--recover-skip-hash-check": 0},
    ("get",): {"--insecure": 0, "-i": 0, "--namespace": 1, "--output": 1, "-o": 1, "--watch": 0, "-w": 0},
    ("etcd", "members"): {},
    ("version",): {"--client": 0, "--short": 0, "--insecure": 0, "-i": 0},
    ("health",): {"--control-plane-nodes": 1, "--worker-nodes": 1, "--init-node": 1, "--k8s-endpoint": 1,
                  "--run-e2e": 0, "--server": 0, "--wait-timeout": 1},
    ("kubeconfig",): {"--force": 0, "-f": 0, "--force-context-name": 1, "--merge": 1, "-m": 0},
}
MODES = ("auto", "no-reboot", "reboot", "staged", "try")


def fail(msg, rc=1):
    sys.stderr.write("error: " + msg + "\n")
    sys.exit(rc)


def parse(argv):
    words, opts, i = [], {}, 0
    while i < len(argv):
        a = argv[i]
        if a.startswith("-") and a != "-":
            name, eq, val = a.partition("=")
            words_key = tuple(words[:2]) if tuple(words[:2]) in FLAGS else tuple(words[:1])
            allowed = dict(GLOBAL, **FLAGS.get(words_key, {}))
            if name not in allowed:
                fail("unknown flag: %s" % name, 2)
            if allowed[name] and not eq:
                i += 1
                if i >= len(argv):
                    fail("flag needs an argument: %s" % name, 2)
                val = argv[i]
            opts[name] = val if (allowed[name] or eq) else True
        else:
            words.append(a)
        i += 1
    return words, opts


state_path = os.environ["FAKE_TALOS_STATE"]
with open(state_path) as f:
    state = json.load(f)
argv = sys.argv[1:]
state["calls"].append(argv)
state.setdefault("programs", []).append(sys.argv[0])


def save():
    with open(state_path, "w") as f:
        json.dump(state, f, indent=1)


save()
words, opts = parse(argv)
cmd = tuple(words[:2]) if tuple(words[:2]) in FLAGS else tuple(words[:1])
if cmd not in FLAGS:
    fail("unknown command %r" % (words,), 2)
nodes = [n for n in (opts.get("--nodes") or opts.get("-n") or "").split(",") if n]
insecure = bool(opts.get("--insecure") or opts.get("-i"))


def node(addr):
    n = state["nodes"].get(addr)
    if n is None or n["state"] == "down":
        fail("rpc error: code = Unavailable desc = connection error: dial tcp %s:50000: connect: no route to host" % addr)
    return n


def authenticate():
    if insecure:
        return
    path = opts.get("--talosconfig")
    if not path or not os.path.exists(path):
        fail("failed to open config file: talosconfig not found")
    cfg = yaml.safe_load(open(path))
    ctx = cfg["contexts"][cfg["context"]]
    if ctx["ca"] != state["ca"]:
        fail("rpc error: x509: certificate signed by unknown authority")
    ca = x509.load_pem_x509_certificate(base64.b64decode(state["ca"]))
    crt = x509.load_pem_x509_certificate(base64.b64decode(ctx["crt"]))
    try:
        crt.verify_directly_issued_by(ca)
    except Exception:
        fail("rpc error: tls: bad certificate")
    if not (opts.get("--endpoints") or opts.get("-e") or ctx.get("endpoints")):
        fail("failed to determine endpoints")


def targets():
    if len(nodes) != 1:
        fail("this fake needs exactly one --nodes, got %r" % nodes, 2)
    n = node(nodes[0])
    if insecure and n["state"] != "maintenance":
        fail("rpc error: code = Unavailable desc = tls: certificate required (the node left maintenance mode)")
    if not insecure and n["state"] != "configured":
        fail("rpc error: code = Unavailable desc = connection refused (apid does not run in maintenance mode)")
    return n


def cps():
    return [n for n in state["nodes"].values() if n["state"] == "configured" and n.get("role") == "controlplane"]


authenticate()
if cmd == ("get",):
    n = targets()
    what = words[1] if len(words) > 1 else None
    if what == "disks":
        print("NODE   NAMESPACE   TYPE   ID        SIZE\n       runtime     Disk   nvme0n1   1.0 TB")
    elif what in ("machineconfig", "machineconfigs", "mc"):
        if words[2:3] not in (["v1alpha1"], ["persistent"]):
            fail("this fake only serves the v1alpha1 (active) and persistent machine configs", 2)
        if opts.get("--output", opts.get("-o")) != "yaml":
            fail("this fake only prints machineconfig as yaml", 2)
        print(yaml.safe_dump({"node": nodes[0], "metadata": {"namespace": "config", "type": "MachineConfigs.config.talos.dev",
                                                            "id": words[2]}, "spec": n["config"]}, sort_keys=False))
    else:
        fail("unknown resource %r" % what, 2)
elif cmd == ("apply-config",):
    path = opts.get("--file") or opts.get("-f")
    if not path:
        fail("no filename supplied for configuration", 2)
    mode = opts.get("--mode") or opts.get("-m") or "auto"
    if mode not in MODES:
        fail("invalid mode %r" % mode, 2)
    n = targets()
    text = open(path).read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    if not docs or docs[0].get("version") != "v1alpha1":
        fail("failed to parse config: no v1alpha1 document")
    n["config"] = text
    n["role"] = docs[0]["machine"]["type"]
    n["hostname"] = next((d["hostname"] for d in docs if d.get("kind") == "HostnameConfig"), nodes[0])
    n["state"] = "configured"      # install + reboot, instantly
    n["applies"] = n.get("applies", 0) + 1
elif cmd == ("version",):
    targets()
    print("Server:\n\tTag: v1.13.9")
elif cmd == ("etcd", "members"):
    n = targets()
    if not state["etcd"] or n.get("role") != "controlplane":
        fail("rpc error: code = Unknown desc = etcd is not running (service etcd is waiting)")
    print("NODE   ID   HOSTNAME   PEER URLS   CLIENT URLS   LEARNER")
    for i, m in enumerate(cps()):
        print("%s   %016x   %s   https://x:2380   https://x:2379   false" % (nodes[0], i + 1, m["hostname"]))
elif cmd == ("bootstrap",):
    n = targets()
    if n.get("role") != "controlplane":
        fail("bootstrap is only supported on control plane nodes")
    if state["etcd"]:
        fail("rpc error: code = AlreadyExists desc = etcd data directory is not empty")
    state["etcd"] = True
    state["bootstraps"] = state.get("bootstraps", 0) + 1
elif cmd == ("health",):
    targets()
    if not state["etcd"]:
        fail("waiting for etcd to be healthy: timeout")
    print("waiting for all k8s nodes to report ready: OK")
elif cmd == ("kubeconfig",):
    targets()
    if words[1:2] != ["-"] or opts.get("--merge", opts.get("-m")) not in ("false",):
        fail("this fake only writes the kubeconfig to stdout ('-' with --merge=false)", 2)
    if not state["etcd"]:
        fail("kube-apiserver is not running")
    print("apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: [{name: admin, user: {client-key-data: c2VjcmV0}}]")
save()
'''


def install_fake(tmp_path, nodes, ca):
    """Write the fake talosctl and its state; return (talosctl path, state path).

    nodes: address -> {"state": "maintenance"|"configured"|"down", ...}
    """
    talosctl = tmp_path / "talosctl"
    talosctl.write_text("#!%s\n%s" % (sys.executable, FAKE_SOURCE))
    talosctl.chmod(talosctl.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "talos-state.json"
    state.write_text(json.dumps({"nodes": {a: dict(n) for a, n in nodes.items()}, "ca": ca, "etcd": False,
                                 "calls": []}))
    return str(talosctl), str(state)


_CODE = compile(FAKE_SOURCE, "fake-talosctl", "exec")


def run_inprocess(argv, state):
    """Run the fake in this process (same code as the executable, without a Python start per call)."""
    import contextlib
    import io
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_env = sys.argv, os.environ.get("FAKE_TALOS_STATE")
    sys.argv, os.environ["FAKE_TALOS_STATE"] = ["talosctl"] + list(argv[1:]), state
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                exec(_CODE, {"__name__": "fake_talosctl"})
                rc = 0
            except SystemExit as e:
                rc = e.code or 0
    finally:
        sys.argv = saved_argv
        if saved_env is None:
            os.environ.pop("FAKE_TALOS_STATE", None)
        else:
            os.environ["FAKE_TALOS_STATE"] = saved_env
    return rc, out.getvalue(), err.getvalue()


def read_state(path):
    with open(path) as f:
        return json.load(f)


# --- the fake itself rejects what real talosctl rejects ------------------------------------------
@pytest.fixture
def fake(tmp_path):
    talosctl, state = install_fake(tmp_path, {"10.0.0.1": {"state": "maintenance"}}, ca="none")
    env = dict(os.environ, FAKE_TALOS_STATE=state)

    def run(*args):
        return subprocess.run([talosctl] + list(args), env=env, capture_output=True, text=True)
    return run


def test_fake_rejects_undocumented_flags(fake):
    res = fake("apply-config", "--insecure", "--nodes", "10.0.0.1", "--file", "x", "--yes")
    assert res.returncode == 2 and "unknown flag: --yes" in res.stderr


def test_fake_maintenance_probe_answers_only_in_maintenance(fake):
    assert fake("get", "disks", "--insecure", "--nodes", "10.0.0.1").returncode == 0
    res = fake("get", "disks", "--insecure", "--nodes", "10.0.0.9")
    assert res.returncode == 1 and "no route" in res.stderr


def test_fake_refuses_authenticated_calls_without_talosconfig(fake):
    res = fake("--talosconfig", "/nonexistent", "version", "--nodes", "10.0.0.1", "--endpoints", "10.0.0.1")
    assert res.returncode == 1 and "talosconfig" in res.stderr
