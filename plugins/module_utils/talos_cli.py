# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""talosctl command lines and the order of operations of a Talos rollout.

Everything that decides *what* to run is here, as pure functions that can be
tested without talosctl or a Talos node:

* command builders, one per talosctl call rackboot makes, following the
  documented talosctl interface (global flags ``--talosconfig``, ``--nodes``,
  ``--endpoints``; ``apply-config --insecure`` for the maintenance service);
* ``plan_apply``: which nodes get the insecure (maintenance mode, first
  boot) apply and which the authenticated one, control planes first;
* ``plan_bootstrap``: bootstrap etcd exactly once, on one control plane, and
  refuse when a previous bootstrap is recorded but etcd does not answer;
* parsers for the talosctl output rackboot reads.

``Talos`` runs the plans through an injected ``run(argv) -> (rc, out, err)``
(AnsibleModule.run_command in the module, a fake in the tests).
"""

from __future__ import annotations

import os
import time

import yaml

__all__ = ["PlanError", "cmd_probe_maintenance", "cmd_probe_configured", "cmd_apply_insecure", "cmd_apply",
           "cmd_version", "cmd_etcd_members", "cmd_bootstrap", "cmd_health", "cmd_kubeconfig",
           "parse_machineconfig", "parse_etcd_members", "plan_apply", "plan_bootstrap", "order_nodes", "Talos",
           "APPLY_MODES"]

APPLY_MODES = ("auto", "no-reboot", "reboot", "staged", "try")


class PlanError(Exception):
    """The cluster is in a state rackboot will not act on (the message says why)."""


# ----------------------------------------------------------------------------
# Command lines (argv lists; never a shell string)
# ----------------------------------------------------------------------------
def cmd_probe_maintenance(talosctl, address):
    """Answers only in maintenance mode (no config yet): the documented first-boot disk listing."""
    return [talosctl, "get", "disks", "--insecure", "--nodes", address]


def cmd_probe_configured(talosctl, talosconfig, address, config_id="v1alpha1"):
    """Answers once the node runs a config signed by our OS CA; prints one MachineConfig resource.

    Talos keeps the active config as ``v1alpha1`` and the one saved to disk as ``persistent`` (ahead of
    the active one after a ``staged`` apply); the spec is the config's YAML as a string.
    """
    return [talosctl, "--talosconfig", talosconfig, "get", "machineconfig", config_id, "--nodes", address,
            "--endpoints", address, "--output", "yaml"]


def cmd_apply_insecure(talosctl, address, config_file):
    """First boot: the unauthenticated maintenance service takes the whole config, installs, reboots."""
    return [talosctl, "apply-config", "--insecure", "--nodes", address, "--file", config_file]


def cmd_apply(talosctl, talosconfig, address, config_file, mode="auto"):
    if mode not in APPLY_MODES:
        raise ValueError("apply mode %r is not one of %s" % (mode, ", ".join(APPLY_MODES)))
    return [talosctl, "--talosconfig", talosconfig, "apply-config", "--nodes", address, "--endpoints", address,
            "--file", config_file, "--mode", mode]


def cmd_version(talosctl, talosconfig, address):
    return [talosctl, "--talosconfig", talosconfig, "version", "--nodes", address, "--endpoints", address]


def cmd_etcd_members(talosctl, talosconfig, address):
    return [talosctl, "--talosconfig", talosconfig, "etcd", "members", "--nodes", address, "--endpoints", address]


def cmd_bootstrap(talosctl, talosconfig, address):
    return [talosctl, "--talosconfig", talosconfig, "bootstrap", "--nodes", address, "--endpoints", address]


def cmd_health(talosctl, talosconfig, address, controlplanes, workers, timeout):
    argv = [talosctl, "--talosconfig", talosconfig, "health", "--nodes", address, "--endpoints", address,
            "--control-plane-nodes", ",".join(controlplanes)]
    if workers:
        argv += ["--worker-nodes", ",".join(workers)]
    return argv + ["--wait-timeout", "%ds" % int(timeout)]


def cmd_kubeconfig(talosctl, talosconfig, address):
    """Admin kubeconfig on stdout (local path '-' with --merge=false), so rackboot writes it 0600 itself."""
    return [talosctl, "--talosconfig", talosconfig, "kubeconfig", "-", "--nodes", address, "--endpoints", address,
            "--merge=false"]


# ----------------------------------------------------------------------------
# Output parsers
# ----------------------------------------------------------------------------
def parse_machineconfig(text):
    """Documents of the live config from ``get machineconfig -o yaml``; None if unreadable."""
    try:
        resources = [r for r in yaml.safe_load_all(text) if r]
    except yaml.YAMLError:
        return None
    for res in resources:
        if not isinstance(res, dict):
            continue
        spec = res.get("spec")
        if isinstance(spec, str):
            try:
                return [d for d in yaml.safe_load_all(spec) if d is not None]
            except yaml.YAMLError:
                return None
        if isinstance(spec, dict):
            return [spec]
        if isinstance(spec, list):
            return spec
    return None


def parse_etcd_members(text):
    """Member host names from the table ``talosctl etcd members`` prints."""
    lines = [ln.split() for ln in text.splitlines() if ln.strip()]
    if not lines or "HOSTNAME" not in lines[0]:
        return []
    col = lines[0].index("HOSTNAME")
    return sorted(set(row[col] for row in lines[1:] if len(row) > col))


# ----------------------------------------------------------------------------
# Plans
# ----------------------------------------------------------------------------
def order_nodes(nodes, bootstrap_node=None):
    """Control planes first (the bootstrap node first of all), then workers; spec order otherwise."""
    def key(item):
        i, n = item
        return (0 if n["name"] == bootstrap_node else 1 if n["role"] == "controlplane" else 2, i)
    return [n for _, n in sorted(enumerate(nodes), key=key)]


def plan_apply(nodes, states, desired, bootstrap_node=None):
    """What to do on each node.

    nodes:   [{name, address, role}] ; states: name -> ("maintenance"|"configured"|"unreachable", live_docs)
    desired: name -> documents rackboot rendered.
    Returns [{name, address, action, reason}], action in insecure | apply | none. Raises PlanError
    listing every unreachable node: a rollout never starts half-blind.
    """
    down = [n["name"] for n in nodes if states[n["name"]][0] == "unreachable"]
    if down:
        raise PlanError("no Talos API answers on node%s %s (neither maintenance mode nor our talosconfig): "
                        "boot them from the Talos ISO/PXE first, or check the addresses"
                        % ("s" if len(down) > 1 else "", ", ".join(down)))
    plan = []
    for n in order_nodes(nodes, bootstrap_node):
        state, live = states[n["name"]]
        if state == "maintenance":
            action, reason = "insecure", "maintenance mode: first configuration over the insecure service"
        elif live is not None and live == desired[n["name"]]:
            action, reason = "none", "live configuration is identical"
        else:
            action, reason = "apply", ("live configuration differs" if live is not None
                                       else "live configuration unreadable")
        plan.append({"name": n["name"], "address": n["address"], "action": action, "reason": reason})
    return plan


def plan_bootstrap(controlplanes, members, bootstrapped_before, bootstrap_node):
    """Whether and where to bootstrap etcd.

    members: name -> list of etcd member names that node reports, or None when it answers no etcd call.
    bootstrapped_before: a previous run recorded a bootstrap (marker file).
    Returns {"action": "bootstrap"|"none", "node": name or None, "reason": text}.
    """
    names = [c["name"] for c in controlplanes]
    if bootstrap_node not in names:
        raise PlanError("bootstrap node %s is not a control-plane node (%s)" % (bootstrap_node, ", ".join(names)))
    running = {n: m for n, m in members.items() if m}
    if running:
        where = sorted(running)[0]
        return {"action": "none", "node": None,
                "reason": "etcd already runs (%s reports members %s)" % (where, ", ".join(running[where]))}
    if bootstrapped_before:
        raise PlanError("etcd was bootstrapped before (marker file) but no control plane answers etcd calls; "
                        "bootstrapping again would fork the cluster. Recover etcd (talosctl bootstrap "
                        "--recover-from) or remove the marker if the cluster was wiped")
    return {"action": "bootstrap", "node": bootstrap_node, "reason": "no control plane runs etcd yet"}


# ----------------------------------------------------------------------------
# Runner
# ----------------------------------------------------------------------------
class Talos(object):
    """Runs plans through ``run(argv) -> (rc, stdout, stderr)``."""

    def __init__(self, talosctl, talosconfig, run, sleep=time.sleep, clock=time.monotonic, config_id="v1alpha1"):
        self.talosctl = talosctl
        self.talosconfig = talosconfig
        self.config_id = config_id     # "persistent" when changes are staged for the next reboot
        self.run = run
        self.sleep = sleep
        self.clock = clock
        self.log = []          # argv of every call, in order (returned by the module)

    def call(self, argv):
        self.log.append(list(argv))
        return self.run(argv)

    def must(self, argv, what):
        rc, out, err = self.call(argv)
        if rc != 0:
            raise PlanError("%s failed (rc %d): %s" % (what, rc, (err or out).strip()[-2000:]))
        return out

    def probe(self, address):
        """('configured', live_docs) | ('maintenance', None) | ('unreachable', None).

        Without a talosconfig file yet (check mode before the first render) only the maintenance
        service can answer.
        """
        if os.path.isfile(self.talosconfig):
            rc, out, _ = self.call(cmd_probe_configured(self.talosctl, self.talosconfig, address, self.config_id))
            if rc == 0:
                return "configured", parse_machineconfig(out)
        rc, _, _ = self.call(cmd_probe_maintenance(self.talosctl, address))
        if rc == 0:
            return "maintenance", None
        return "unreachable", None

    def apply(self, plan, files, mode):
        for step in plan:
            if step["action"] == "insecure":
                self.must(cmd_apply_insecure(self.talosctl, step["address"], files[step["name"]]),
                          "maintenance-mode apply-config on %s" % step["name"])
            elif step["action"] == "apply":
                self.must(cmd_apply(self.talosctl, self.talosconfig, step["address"], files[step["name"]], mode),
                          "apply-config on %s" % step["name"])

    def wait(self, what, check, timeout, interval):
        """Call ``check()`` until it returns a true value or ``timeout`` seconds pass."""
        deadline = self.clock() + timeout
        while True:
            result = check()
            if result:
                return result
            if self.clock() >= deadline:
                raise PlanError("timed out after %ds waiting for %s" % (timeout, what))
            self.sleep(interval)

    def etcd_members(self, address):
        rc, out, _ = self.call(cmd_etcd_members(self.talosctl, self.talosconfig, address))
        return parse_etcd_members(out) if rc == 0 else None

    def api_ready(self, address):
        rc, _, _ = self.call(cmd_version(self.talosctl, self.talosconfig, address))
        return rc == 0

    def bootstrap(self, controlplanes, bootstrap_node, bootstrapped_before, timeout, interval, check_mode=False):
        """Wait for the bootstrap node's API, decide, bootstrap; returns the plan dict."""
        by_name = {c["name"]: c for c in controlplanes}
        if bootstrap_node not in by_name:
            raise PlanError("bootstrap node %s is not a control-plane node" % bootstrap_node)
        if not check_mode:
            self.wait("the Talos API of %s (installed and rebooted with its config)" % bootstrap_node,
                      lambda: self.api_ready(by_name[bootstrap_node]["address"]), timeout, interval)
        members = {c["name"]: self.etcd_members(c["address"]) for c in controlplanes}
        plan = plan_bootstrap(controlplanes, members, bootstrapped_before, bootstrap_node)
        if plan["action"] == "bootstrap" and not check_mode:
            self.must(cmd_bootstrap(self.talosctl, self.talosconfig, by_name[bootstrap_node]["address"]),
                      "bootstrap on %s" % bootstrap_node)
        return plan

    def wait_etcd(self, controlplanes, bootstrap_node, timeout, interval):
        """Wait until etcd on the bootstrap node lists every control plane as a member."""
        address = {c["name"]: c["address"] for c in controlplanes}[bootstrap_node]
        want = sorted(c["name"] for c in controlplanes)

        def check():
            members = self.etcd_members(address) or []
            return members if all(w in members for w in want) else None
        return self.wait("etcd members %s" % ", ".join(want), check, timeout, interval)
