#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
from __future__ import annotations

DOCUMENTATION = r"""
module: networkd_config
short_description: Apply a node's bonds, VLANs, bridges and routes with systemd-networkd or netplan, commit-confirmed
version_added: 0.1.0
author: rackboot developers (@rackboot)
description:
  - Renders the link model of one node (C(rackboot_node.network) from the
    C(rackboot.metal.cluster) inventory) as systemd-networkd files
    C(10-rackboot-*.netdev|.network) or as one netplan file, compares them
    with what is on the node and writes only what differs.
  - Only files whose name starts with C(10-rackboot-) (or the netplan file
    given) are managed. Files of links that left the model are deleted and
    their virtual devices (bond, VLAN, bridge) deleted from the kernel.
  - Applies without a reboot (C(networkctl reload) and C(networkctl reconfigure),
    or C(netplan apply)). A virtual device whose C(.netdev) changed is deleted
    first, because networkd never alters an existing device.
  - With O(rollback_timeout) it is commit-confirmed. Before changing anything
    it saves the current files and arms a systemd timer on the node that puts
    them back after that many seconds unless M(rackboot.metal.network_rollback)
    confirms the change in time.
  - Refuses, before touching anything, when ifupdown (/etc/network/interfaces)
    configures a link of the model (unless O(ifupdown=takeover)), or when a
    foreign C(.network) file sorting before ours would shadow one of our links.
options:
  links:
    description: The node's links (C(rackboot_node.network.links)), parents before children.
    type: list
    elements: dict
    required: true
  routes:
    description: The node's routes (C(rackboot_node.network.routes)).
    type: list
    elements: dict
    default: []
  backend:
    description: C(networkd) writes networkd files; C(netplan) writes one netplan file (renderer networkd).
    type: str
    choices: [networkd, netplan]
    default: networkd
  config_dir:
    description: Where the networkd files go.
    type: path
    default: /etc/systemd/network
  netplan_file:
    description: The netplan file (backend C(netplan)).
    type: path
    default: /etc/netplan/60-rackboot.yaml
  apply:
    description:
      - Apply to the running system. V(false) only writes the files (render mode, to a review folder)
        and skips every check of the running system.
    type: bool
    default: true
  rollback_timeout:
    description: Seconds after which the node restores the previous configuration unless confirmed; 0 disables.
    type: int
    default: 0
  ifupdown:
    description:
      - What to do when /etc/network/interfaces (or a file it sources) configures a link of the model.
      - C(fail) refuses and names the file and line; C(takeover) comments those stanzas out (undone by a
        rollback); C(ignore) leaves them (both stacks then fight over the link).
    type: str
    choices: [fail, takeover, ignore]
    default: fail
  interfaces_file:
    description: The ifupdown configuration.
    type: path
    default: /etc/network/interfaces
  state_dir:
    description: Where the snapshot, the rollback script and the pending change record live.
    type: path
    default: /var/lib/rackboot/network
notes:
  - Supports check mode and diff.
"""

EXAMPLES = r"""
- name: Apply the host network, roll back by itself after 120 s unless confirmed
  rackboot.metal.networkd_config:
    links: "{{ rackboot_node.network.links }}"
    routes: "{{ rackboot_node.network.routes }}"
    rollback_timeout: 120

- name: Render the files of a node to a review folder
  rackboot.metal.networkd_config:
    links: "{{ hostvars['node1'].rackboot_node.network.links }}"
    routes: "{{ hostvars['node1'].rackboot_node.network.routes }}"
    config_dir: artifacts/node-network/node1/networkd
    apply: false
  delegate_to: localhost
"""

RETURN = r"""
files:
  description: Managed files by what happened to them.
  returned: always
  type: dict
  sample: {added: [/etc/systemd/network/10-rackboot-bond0.100.netdev], changed: [], removed: [], unchanged: []}
deleted_links:
  description: Virtual devices deleted from the kernel (removed from the model, or altered and re-created).
  returned: always
  type: list
  elements: str
drift:
  description: Virtual devices of the model missing from the kernel although their files were in place (re-created).
  returned: changed
  type: list
  elements: str
missing_links:
  description: Links of the model that do not exist on the node after applying (e.g. a NIC name that is wrong).
  returned: always
  type: list
  elements: str
rollback:
  description: The armed rollback (C(null) when none was armed).
  returned: always
  type: dict
  sample: {unit: rackboot-network-rollback, timeout: 120, script: /var/lib/rackboot/network/rollback.sh}
ifupdown:
  description: Lines of the ifupdown configuration that configure managed links, as C(FILE:LINE (LINK)).
  returned: always
  type: list
  elements: str
"""

import glob
import json
import os
import shutil
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rackboot.metal.plugins.module_utils import config_apply
from ansible_collections.rackboot.metal.plugins.module_utils.networkd import (
    PREFIX, ROLLBACK_UNIT, ModelError, comment_out_stanzas, delete_order, ifupdown_stanzas, managed_names,
    netdev_of, render_networkd, rollback_script, shadowing_files)
from ansible_collections.rackboot.metal.plugins.module_utils.netplan import render_netplan


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return None


def _write_atomic(module, path, text, mode):
    d = os.path.dirname(path) or "."
    if not os.path.isdir(d):
        os.makedirs(d, 0o755)
    config_apply.atomic_write(path, text, mode, module=module)


def _ifupdown_files(main):
    """/etc/network/interfaces and the files its source/source-directory lines pull in."""
    out, todo, seen = [], [main], set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        text = _read(path)
        if text is None:
            continue
        out.append((path, text))
        base = os.path.dirname(path)
        for raw in text.splitlines():
            words = raw.split()
            if len(words) < 2 or words[0] not in ("source", "source-directory"):
                continue
            pattern = words[1] if os.path.isabs(words[1]) else os.path.join(base, words[1])
            if words[0] == "source":
                todo.extend(sorted(glob.glob(pattern)))
            else:
                todo.extend(sorted(os.path.join(pattern, f) for f in os.listdir(pattern)
                                   if os.path.isfile(os.path.join(pattern, f)))
                            if os.path.isdir(pattern) else [])
    return out


class Apply(object):
    def __init__(self, module):
        self.m = module
        self.p = module.params
        self.result = {"changed": False, "files": {"added": [], "changed": [], "removed": [], "unchanged": []},
                       "deleted_links": [], "missing_links": [], "rollback": None, "ifupdown": []}
        self.diffs = []

    def run_cmd(self, args, check=True):
        rc, out, err = self.m.run_command(args)
        if check and rc != 0:
            self.m.fail_json(msg="%s failed (rc %d): %s" % (" ".join(args), rc, (err or out).strip()), **self.result)
        return rc, out, err

    # ------------------------------------------------------------------
    def desired(self):
        links, routes = self.p["links"], self.p["routes"]
        try:
            if self.p["backend"] == "netplan":
                return {self.p["netplan_file"]: (render_netplan(links, routes), 0o600)}
            return {os.path.join(self.p["config_dir"], name): (text, 0o644)
                    for name, text in render_networkd(links, routes).items()}
        except ModelError as e:
            self.m.fail_json(msg="networkd_config: the link model is invalid: %s" % e)

    def current(self):
        if self.p["backend"] == "netplan":
            text = _read(self.p["netplan_file"])
            return {self.p["netplan_file"]: text} if text is not None else {}
        out = {}
        for path in glob.glob(os.path.join(self.p["config_dir"], PREFIX + "*")):
            if os.path.isfile(path) and not os.path.basename(path).startswith("."):
                out[path] = _read(path)
        return out

    def old_netdevs(self, current):
        """{name: kind} of the virtual devices the files on the node define."""
        if self.p["backend"] == "netplan":
            try:
                with open(os.path.join(self.p["state_dir"], "netdevs.json")) as f:
                    return json.load(f)
            except (IOError, OSError, ValueError):
                return {}
        out = {}
        for path, text in current.items():
            if path.endswith(".netdev"):
                name, kind = netdev_of(text)
                if name:
                    out[name] = kind
        return out

    def checks(self, names):
        """Refuse before touching anything; returns extra file changes (ifupdown takeover)."""
        extra = {}
        hits = []
        for path, text in _ifupdown_files(self.p["interfaces_file"]):
            found = ifupdown_stanzas(text, [n for n in names if n != "lo"])
            hits += ["%s:%d (%s)" % (path, no, name) for no, name in found]
            if found and self.p["ifupdown"] == "takeover":
                extra[path] = (comment_out_stanzas(text, names), os.stat(path).st_mode & 0o7777)
        self.result["ifupdown"] = hits
        if hits and self.p["ifupdown"] == "fail":
            self.m.fail_json(msg="networkd_config: ifupdown configures links this role manages: %s. Move them out "
                             "of ifupdown first, or set ifupdown=takeover (node_network_ifupdown: takeover) to let "
                             "the role comment those stanzas out (undone by a rollback). Nothing was changed."
                             % ", ".join(hits), **self.result)
        if self.p["backend"] == "networkd":
            foreign = {}
            for d in ("/etc/systemd/network", "/run/systemd/network", self.p["config_dir"]):
                for path in glob.glob(os.path.join(d, "*.network")):
                    foreign.setdefault(os.path.basename(path), _read(path) or "")
            shadow = shadowing_files(foreign, names)
            if shadow:
                self.m.fail_json(msg="networkd_config: these .network files sort before rackboot's and match its "
                                 "links, so networkd would ignore rackboot's files: %s. Remove or rename them. "
                                 "Nothing was changed." % ", ".join("%s (%s)" % s for s in shadow), **self.result)
        return extra

    def pending(self):
        return os.path.exists(os.path.join(self.p["state_dir"], "pending.json"))

    # ------------------------------------------------------------------
    def run(self):
        p = self.p
        desired = self.desired()
        names = managed_names(p["links"])
        new_netdevs = {lk["name"]: lk["kind"] for lk in p["links"] if lk["kind"] in ("bond", "vlan", "bridge")}
        current = self.current()
        old_netdevs = self.old_netdevs(current)
        extra = self.checks(names) if p["apply"] else {}
        if p["apply"] and p["rollback_timeout"] and self.pending():
            self.m.fail_json(msg="networkd_config: a previous network change on this node is still waiting for "
                             "confirmation (%s/pending.json); confirm it with rackboot.metal.network_rollback or "
                             "wait for its timer to roll it back. Nothing was changed." % p["state_dir"])

        files = self.result["files"]
        writes = {}
        for path, (text, mode) in sorted(desired.items()):
            old = current.get(path)
            if old is None:
                files["added"].append(path)
            elif old != text:
                files["changed"].append(path)
            else:
                files["unchanged"].append(path)
                continue
            writes[path] = (text, mode)
            self.diffs.append({"before_header": path if old is not None else "/dev/null", "after_header": path,
                               "before": old or "", "after": text})
        removes = sorted(set(current) - set(desired))
        for path in removes:
            files["removed"].append(path)
            self.diffs.append({"before_header": path, "after_header": "/dev/null", "before": current[path],
                               "after": ""})
        for path, (text, mode) in sorted(extra.items()):
            self.diffs.append({"before_header": path, "after_header": path, "before": _read(path), "after": text})
            writes[path] = (text, mode)
            files["changed"].append(path)

        # A netdev leaves the kernel when it left the model, or when its
        # definition changed (networkd only ever creates netdevs).
        changed_netdev = set()
        for path in files["changed"]:
            if path.endswith(".netdev"):
                name, _kind = netdev_of(current[path])
                if name:
                    changed_netdev.add(name)
        if p["backend"] == "netplan" and writes:
            changed_netdev = {n for n in new_netdevs if n in old_netdevs and old_netdevs[n] != new_netdevs[n]}
        to_delete = {n: k for n, k in old_netdevs.items() if n not in new_netdevs or n in changed_netdev}
        # Drift: the files are right but a device is missing from the kernel (deleted by hand).
        drift = [n for n in names if p["apply"] and not os.path.exists("/sys/class/net/%s" % n)
                 and n in new_netdevs]

        if not writes and not removes and not drift:
            self.finish()
        self.result["changed"] = True
        self.result["drift"] = drift
        if self.m.check_mode:
            self.result["deleted_links"] = [n for n in delete_order(to_delete)
                                            if os.path.exists("/sys/class/net/%s" % n)]
            self.finish()

        if p["apply"] and p["rollback_timeout"]:
            self.arm(current, desired, extra, new_netdevs, old_netdevs, changed_netdev, names)
        for path in removes:
            os.unlink(path)
        for path, (text, mode) in sorted(writes.items()):
            _write_atomic(self.m, path, text, mode)
        if not p["apply"]:
            self.finish()
        if p["backend"] == "netplan":
            _write_atomic(self.m, os.path.join(p["state_dir"], "netdevs.json"),
                          json.dumps(new_netdevs, sort_keys=True), 0o644)
        for name in delete_order(to_delete):
            if os.path.exists("/sys/class/net/%s" % name):
                self.run_cmd(["ip", "link", "del", "dev", name])
                self.result["deleted_links"].append(name)
        self.activate(names, old_netdevs, files, changed_netdev)
        self.finish()

    def activate(self, names, old_netdevs, files, changed_netdev):
        if self.p["backend"] == "netplan":
            self.run_cmd(["netplan", "generate"])
            self.run_cmd(["netplan", "apply"])
        else:
            self.run_cmd(["networkctl", "reload"])
            touched = set()
            for path in files["added"] + files["changed"] + files["removed"]:
                base = os.path.basename(path)
                if base.startswith(PREFIX) and base.endswith(".network"):
                    touched.add(base[len(PREFIX):-len(".network")])
            # A re-created netdev's children (VLANs on a bond, a bridge port) lose their
            # enslavement/parent with it: reconfigure everything the model holds then.
            if changed_netdev:
                touched.update(names)
            for name in sorted(touched):
                if os.path.exists("/sys/class/net/%s" % name):
                    self.run_cmd(["networkctl", "reconfigure", name], check=False)
        deadline = time.time() + 20
        missing = names
        while time.time() < deadline:
            missing = [n for n in names if not os.path.exists("/sys/class/net/%s" % n)]
            if not missing:
                break
            time.sleep(0.5)
        self.result["missing_links"] = missing

    def arm(self, current, desired, extra, new_netdevs, old_netdevs, changed_netdev, names):
        """Snapshot what the change touches, write the rollback script, start the timer."""
        sd = self.p["state_dir"]
        snap = os.path.join(sd, "snapshot")
        if os.path.isdir(snap):
            shutil.rmtree(snap)
        os.makedirs(snap, 0o700)
        os.chmod(sd, 0o700)
        restore, remove = [], []
        touched = sorted(set(current) | set(desired) | set(extra))
        for i, path in enumerate(touched):
            if os.path.exists(path):
                dest = os.path.join(snap, "%03d-%s" % (i, os.path.basename(path)))
                shutil.copy2(path, dest)
                restore.append((path, dest))
            else:
                remove.append(path)
        created = [n for n in new_netdevs if n not in old_netdevs or n in changed_netdev]
        delete_links = delete_order({n: new_netdevs[n] for n in created})
        reconf = sorted(set(names) | set(old_netdevs))
        script = rollback_script(sd, restore, remove, delete_links, reconf, self.p["backend"])
        script_path = os.path.join(sd, "rollback.sh")
        _write_atomic(self.m, script_path, script, 0o700)
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "timeout": self.p["rollback_timeout"],
                  "restore": [d for d, _ in restore], "remove": remove, "delete_links": delete_links,
                  "backend": self.p["backend"]}
        for stale in ("rolled-back.json", "rolled-back.reason", "rolled-back.time"):
            if os.path.exists(os.path.join(sd, stale)):
                os.unlink(os.path.join(sd, stale))
        _write_atomic(self.m, os.path.join(sd, "pending.json"), json.dumps(record, sort_keys=True), 0o600)
        # A leftover unit of an earlier run (stopped or failed) would block the name.
        self.run_cmd(["systemctl", "stop", ROLLBACK_UNIT + ".timer"], check=False)
        self.run_cmd(["systemctl", "reset-failed", ROLLBACK_UNIT + ".service", ROLLBACK_UNIT + ".timer"], check=False)
        self.run_cmd(["systemd-run", "--unit", ROLLBACK_UNIT, "--description",
                      "rackboot: restore the network configuration unless the change is confirmed",
                      "--on-active=%ds" % self.p["rollback_timeout"], "--timer-property=AccuracySec=1s",
                      "/bin/sh", script_path])
        self.result["rollback"] = {"unit": ROLLBACK_UNIT, "timeout": self.p["rollback_timeout"], "script": script_path,
                                   "record": record}

    def finish(self):
        if self.m._diff:
            self.result["diff"] = self.diffs
        self.m.exit_json(**self.result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            links=dict(type="list", elements="dict", required=True),
            routes=dict(type="list", elements="dict", default=[]),
            backend=dict(type="str", choices=["networkd", "netplan"], default="networkd"),
            config_dir=dict(type="path", default="/etc/systemd/network"),
            netplan_file=dict(type="path", default="/etc/netplan/60-rackboot.yaml"),
            apply=dict(type="bool", default=True),
            rollback_timeout=dict(type="int", default=0),
            ifupdown=dict(type="str", choices=["fail", "takeover", "ignore"], default="fail"),
            interfaces_file=dict(type="path", default="/etc/network/interfaces"),
            state_dir=dict(type="path", default="/var/lib/rackboot/network"),
        ),
        supports_check_mode=True,
    )
    if module.params["rollback_timeout"] < 0:
        module.fail_json(msg="rollback_timeout must be 0 (off) or a number of seconds")
    Apply(module).run()


if __name__ == "__main__":
    main()
