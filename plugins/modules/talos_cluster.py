#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: talos_cluster
short_description: Drive talosctl through a Talos rollout (apply, bootstrap, wait, kubeconfig)
version_added: 0.1.0
author: rackboot developers (@rackboot)
description:
  - One I(step) of taking a rack of Talos nodes from maintenance mode to a
    bootstrapped cluster, with C(talosctl). The command lines and the order of
    operations come from C(rackboot.metal) module_utils C(talos_cli).
  - "C(apply): probes every node (our talosconfig first, then the
    maintenance service), refuses to start if any node answers neither, then
    applies the rendered configuration: over the insecure maintenance service
    (C(apply-config --insecure)) to nodes on their first boot, with the
    talosconfig to configured nodes whose live configuration differs.
    Control planes go first, the bootstrap node first of all. Nodes whose live
    configuration already equals the file are left alone."
  - "C(bootstrap): waits for the bootstrap node's authenticated API, then
    bootstraps etcd on it, exactly once: not when any control plane already
    reports etcd members, and never again after a recorded bootstrap
    (I(marker)) when etcd does not answer."
  - "C(wait_etcd): waits until etcd lists every control plane as a member."
  - "C(health): C(talosctl health) over all nodes (Kubernetes nodes only turn
    Ready once the CNI is installed: run this after the network roles)."
  - "C(kubeconfig): fetches the admin kubeconfig and writes it with mode 0600,
    once (again with I(force))."
  - In check mode, C(apply) and C(bootstrap) only probe and return the plan;
    nothing is changed on any node.
  - "Runs on the controller (C(delegate_to: localhost)); this module has not
    run against real Talos hardware in rackboot's CI (see docs/talos.md)."
options:
  step:
    description: What to do.
    type: str
    required: true
    choices: [apply, bootstrap, wait_etcd, health, kubeconfig]
  talosctl:
    description: Path of the talosctl binary.
    type: path
    required: true
  talosconfig:
    description: The talosconfig made by M(rackboot.metal.talos_client_config).
    type: path
    required: true
  nodes:
    description:
      - Every node, C(name), C(address) (management address), C(role) (controlplane|worker) and, for
        I(step=apply), C(config) (the rendered machine configuration file).
    type: list
    elements: dict
    required: true
  bootstrap_node:
    description: Control-plane node that bootstraps etcd (C(rackboot_cluster.bootstrap_node)).
    type: str
  marker:
    description: File recording that etcd was bootstrapped (written after a successful bootstrap).
    type: path
  apply_mode:
    description: C(talosctl apply-config --mode) for configured nodes.
    type: str
    default: auto
    choices: [auto, no-reboot, reboot, staged, try]
  timeout:
    description: Seconds to wait for nodes, etcd or health.
    type: int
    default: 900
  interval:
    description: Seconds between polls.
    type: int
    default: 10
  kubeconfig:
    description: Where I(step=kubeconfig) writes the admin kubeconfig.
    type: path
  force:
    description: With I(step=kubeconfig), fetch a new kubeconfig even if the file exists.
    type: bool
    default: false
notes:
  - Supports check mode; C(apply) returns a diff naming what would be applied where.
"""

EXAMPLES = r"""
- name: Apply the machine configurations
  rackboot.metal.talos_cluster:
    step: apply
    talosctl: /usr/local/bin/talosctl
    talosconfig: "{{ rackboot_artifacts_dir }}/talosconfig"
    nodes:
      - {name: cp1, address: 10.10.0.11, role: controlplane, config: "{{ rackboot_artifacts_dir }}/talos/cp1.yaml"}
    bootstrap_node: cp1
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
plan:
  description: Per node (apply) or once (bootstrap), the action decided and why.
  returned: for apply and bootstrap
  type: raw
commands:
  description: Every talosctl command line run, in order (no secrets appear on talosctl command lines).
  returned: always
  type: list
  elements: list
members:
  description: etcd members (wait_etcd).
  returned: for wait_etcd
  type: list
  elements: str
"""

import os

import yaml

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rackboot.metal.plugins.module_utils import talos_cli, talos_secrets


def main():
    module = AnsibleModule(
        argument_spec=dict(
            step=dict(type="str", required=True, choices=["apply", "bootstrap", "wait_etcd", "health", "kubeconfig"]),
            talosctl=dict(type="path", required=True),
            talosconfig=dict(type="path", required=True),
            nodes=dict(type="list", elements="dict", required=True),
            bootstrap_node=dict(type="str"),
            marker=dict(type="path"),
            apply_mode=dict(type="str", default="auto", choices=list(talos_cli.APPLY_MODES)),
            timeout=dict(type="int", default=900),
            interval=dict(type="int", default=10),
            kubeconfig=dict(type="path", no_log=False),
            force=dict(type="bool", default=False),
        ),
        required_if=[("step", "bootstrap", ["bootstrap_node", "marker"]), ("step", "wait_etcd", ["bootstrap_node"]),
                     ("step", "kubeconfig", ["kubeconfig", "bootstrap_node"])],
        supports_check_mode=True,
    )
    p = module.params
    step = p["step"]
    result = dict(changed=False, commands=[])
    if not (os.path.isfile(p["talosctl"]) and os.access(p["talosctl"], os.X_OK)):
        module.fail_json(msg="talosctl not found or not executable at %s (set talos_talosctl_path, or "
                             "talos_talosctl_offline_file to install it)" % p["talosctl"], **result)
    if not os.path.isfile(p["talosconfig"]) and not module.check_mode:
        module.fail_json(msg="talosconfig %s does not exist (rackboot.metal.talos_client_config makes it)"
                             % p["talosconfig"], **result)
    nodes = []
    for i, n in enumerate(p["nodes"]):
        missing = [k for k in ("name", "address", "role") if not n.get(k)]
        if step == "apply" and not n.get("config"):
            missing.append("config")
        if missing:
            module.fail_json(msg="nodes[%d]: missing %s" % (i, ", ".join(missing)), **result)
        nodes.append(n)
    controlplanes = [n for n in nodes if n["role"] == "controlplane"]
    workers = [n for n in nodes if n["role"] != "controlplane"]

    def run(argv):
        return module.run_command(argv, check_rc=False)

    # A staged apply lands in the persistent config only: compare with that one, or every run re-applies.
    talos = talos_cli.Talos(p["talosctl"], p["talosconfig"], run,
                            config_id="persistent" if p["apply_mode"] == "staged" else "v1alpha1")
    try:
        if step == "apply":
            desired, files = {}, {}
            for n in nodes:
                try:
                    with open(n["config"]) as f:
                        desired[n["name"]] = [d for d in yaml.safe_load_all(f.read()) if d is not None]
                except OSError as e:
                    if not module.check_mode:   # check mode: render did not write it; plan without it
                        module.fail_json(msg="node %s: cannot read machine configuration %s: %s"
                                             % (n["name"], n["config"], e), **result)
                    desired[n["name"]] = None
                except yaml.YAMLError as e:
                    module.fail_json(msg="node %s: cannot read machine configuration %s: %s"
                                         % (n["name"], n["config"], e), **result)
                files[n["name"]] = n["config"]
            states = {n["name"]: talos.probe(n["address"]) for n in nodes}
            plan = talos_cli.plan_apply(nodes, states, desired, p["bootstrap_node"])
            result["plan"] = plan
            todo = [s for s in plan if s["action"] != "none"]
            if todo:
                result["changed"] = True
                result["diff"] = dict(before="", after="".join(
                    "%s (%s): %s %s\n" % (s["name"], s["address"],
                                          "apply-config --insecure" if s["action"] == "insecure" else
                                          "apply-config --mode " + p["apply_mode"], files[s["name"]])
                    for s in todo))
            if todo and not module.check_mode:
                talos.apply(plan, files, p["apply_mode"])
        elif step == "bootstrap":
            before = os.path.exists(p["marker"])
            plan = talos.bootstrap(controlplanes, p["bootstrap_node"], before, p["timeout"], p["interval"],
                                   check_mode=module.check_mode)
            result["plan"] = plan
            # Record the bootstrap (or adopt a cluster bootstrapped by hand) so it never happens twice.
            record = plan["action"] == "bootstrap" or not before
            result["changed"] = record
            if record and not module.check_mode:
                talos_secrets.write_private(p["marker"], "etcd bootstrapped on %s\n" % (plan["node"] or "an earlier run"))
        elif step == "wait_etcd":
            if not module.check_mode:
                result["members"] = talos.wait_etcd(controlplanes, p["bootstrap_node"], p["timeout"], p["interval"])
        elif step == "health":
            if not module.check_mode:
                by_name = {c["name"]: c for c in controlplanes}
                address = (by_name.get(p["bootstrap_node"]) or controlplanes[0])["address"]
                talos.must(talos_cli.cmd_health(p["talosctl"], p["talosconfig"], address,
                                                [c["address"] for c in controlplanes],
                                                [w["address"] for w in workers], p["timeout"]), "talosctl health")
        elif step == "kubeconfig":
            if os.path.exists(p["kubeconfig"]) and not p["force"]:
                if oct(os.stat(p["kubeconfig"]).st_mode & 0o777) != oct(0o600):
                    result["changed"] = True
                    if not module.check_mode:
                        os.chmod(p["kubeconfig"], 0o600)
            else:
                result["changed"] = True
                result["diff"] = dict(before="", after="%s: admin kubeconfig (mode 0600)\n" % p["kubeconfig"])
                if not module.check_mode:
                    address = {c["name"]: c["address"] for c in controlplanes}[p["bootstrap_node"]]
                    out = talos.must(talos_cli.cmd_kubeconfig(p["talosctl"], p["talosconfig"], address),
                                     "talosctl kubeconfig")
                    talos_secrets.write_private(p["kubeconfig"], out)
    except talos_cli.PlanError as e:
        result["commands"] = talos.log
        module.fail_json(msg=str(e), **result)
    result["commands"] = talos.log
    module.exit_json(**result)


if __name__ == "__main__":
    main()
