#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: network_rollback
short_description: Confirm, roll back or inspect a commit-confirmed network change
version_added: 0.1.0
author: rackboot developers (@rackboot)
description:
  - The second half of M(rackboot.metal.networkd_config) with C(rollback_timeout)
    (the way C(netplan try) or Junos C(commit confirmed) work).
  - C(confirmed) first has the node ping every address in O(ping) (each must
    answer within O(ping_timeout) seconds), then stops the rollback timer and
    drops the snapshot; the change stays. If an address does not answer it
    fails and leaves the timer armed.
  - C(rolled_back) runs the rollback now (detached from the connection, as a
    systemd unit) and waits for it to finish.
  - C(query) only reports whether a change is pending and whether, when and
    why the last one was rolled back.
options:
  state:
    description: What to do.
    type: str
    choices: [confirmed, rolled_back, query]
    default: confirmed
  reason:
    description: Why the change is rolled back (C(rolled_back)); recorded on the node.
    type: str
    default: rolled back on request
  ping:
    description: Addresses the node must reach before a change is confirmed (C(confirmed)).
    type: list
    elements: str
    default: []
  ping_timeout:
    description: Seconds the addresses in O(ping) have, together, to answer.
    type: int
    default: 30
  wait:
    description: Seconds to wait for the rollback to finish (C(rolled_back)).
    type: int
    default: 60
  state_dir:
    description: The state folder of M(rackboot.metal.networkd_config).
    type: path
    default: /var/lib/rackboot/network
notes:
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Keep the new network configuration if the node reaches its gateway
  rackboot.metal.network_rollback:
    state: confirmed
    ping: [10.10.0.1]

- name: What was rolled back, and why
  rackboot.metal.network_rollback:
    state: query
  register: node_network_rollback_state
"""

RETURN = r"""
pending:
  description: The change that is waiting for confirmation (files to restore or remove, links to delete), or C(null).
  returned: always
  type: dict
silent:
  description: Addresses of O(ping) that did not answer (C(confirmed) failed).
  returned: failure
  type: list
  elements: str
rolled_back:
  description: The last rolled back change with C(rolled_back_at) and C(reason), or C(null).
  returned: always
  type: dict
  sample: {time: "2026-11-23T18:00:00Z", rolled_back_at: "2026-11-23T18:02:00Z", reason: "the confirmation timer expired",
           restore: [/etc/systemd/network/10-rackboot-bond0.network], remove: [], delete_links: [bond0.300]}
"""

import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rackboot.metal.plugins.module_utils.networkd import ROLLBACK_UNIT


def _load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (IOError, OSError, ValueError):
        return None


def _text(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except (IOError, OSError):
        return None


def status(sd):
    pending = _load(os.path.join(sd, "pending.json"))
    done = _load(os.path.join(sd, "rolled-back.json"))
    if done is not None:
        done["rolled_back_at"] = _text(os.path.join(sd, "rolled-back.time"))
        done["reason"] = _text(os.path.join(sd, "rolled-back.reason"))
    return pending, done


def reach(module, addresses, timeout):
    """Ping each address from the node until it answers or ``timeout`` s have
    passed; return those that never answered."""
    left = list(addresses)
    deadline = time.time() + timeout
    while left:
        left = [a for a in left if module.run_command(["ping", "-c", "1", "-W", "1", a])[0] != 0]
        if not left or time.time() >= deadline:
            break
        time.sleep(0.5)
    return left


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", choices=["confirmed", "rolled_back", "query"], default="confirmed"),
            reason=dict(type="str", default="rolled back on request"),
            ping=dict(type="list", elements="str", default=[]),
            ping_timeout=dict(type="int", default=30),
            wait=dict(type="int", default=60),
            state_dir=dict(type="path", default="/var/lib/rackboot/network"),
        ),
        supports_check_mode=True,
    )
    sd, state = module.params["state_dir"], module.params["state"]
    pending, done = status(sd)
    result = {"changed": False, "pending": pending, "rolled_back": done}
    if state == "query" or pending is None:
        if state == "confirmed" and pending is None and done is not None:
            # Confirming a change the timer already undid: the run must not go on as if it stuck.
            module.fail_json(msg="network_rollback: nothing to confirm: the change of %s was already rolled back at "
                             "%s (%s)" % (done.get("time"), done.get("rolled_back_at"), done.get("reason")), **result)
        module.exit_json(**result)
    result["changed"] = True
    if module.check_mode:
        module.exit_json(**result)
    if state == "confirmed":
        silent = reach(module, module.params["ping"], module.params["ping_timeout"])
        if silent:
            module.fail_json(msg="network_rollback: not confirmed: no answer from %s within %d s"
                             % (", ".join(silent), module.params["ping_timeout"]), silent=silent, **result)
        module.run_command(["systemctl", "stop", ROLLBACK_UNIT + ".timer"])
        pending, done = status(sd)
        if pending is None:
            module.fail_json(msg="network_rollback: the rollback timer fired before the confirmation: the change of "
                             "%s was rolled back at %s" % (done and done.get("time"), done and done.get("rolled_back_at")),
                             changed=False, pending=None, rolled_back=done)
        os.unlink(os.path.join(sd, "pending.json"))
        shutil.rmtree(os.path.join(sd, "snapshot"), ignore_errors=True)
        module.run_command(["systemctl", "reset-failed", ROLLBACK_UNIT + ".service", ROLLBACK_UNIT + ".timer"])
        module.exit_json(changed=True, pending=None, rolled_back=None, confirmed=pending)
    # rolled_back: run the script now, as its own unit so that losing this
    # connection (the old address comes back) does not kill it halfway.
    module.run_command(["systemctl", "stop", ROLLBACK_UNIT + ".timer"])
    module.run_command(["systemctl", "reset-failed", ROLLBACK_UNIT + "-now.service"])
    rc, out, err = module.run_command(["systemd-run", "--unit", ROLLBACK_UNIT + "-now", "--collect", "/bin/sh",
                                       os.path.join(sd, "rollback.sh"), module.params["reason"]])
    if rc != 0:
        module.fail_json(msg="network_rollback: could not start the rollback: %s" % (err or out).strip(), **result)
    deadline = time.time() + module.params["wait"]
    while time.time() < deadline:
        pending, done = status(sd)
        if pending is None and done is not None:
            module.exit_json(changed=True, pending=None, rolled_back=done)
        time.sleep(0.5)
    module.fail_json(msg="network_rollback: the rollback did not finish within %d s (see journalctl -u %s-now)"
                     % (module.params["wait"], ROLLBACK_UNIT), **result)


if __name__ == "__main__":
    main()
