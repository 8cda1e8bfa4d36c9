#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: frr_config
author: rackboot developers (@rackboot)
short_description: Check and apply an frr.conf to a running FRR without resetting unchanged sessions
description:
  - Writes O(content) to a staged file beside O(dest) and checks it with C(vtysh -C -f).
  - Compares it with the running configuration using FRR's own C(frr-reload.py --test); the task
    reports a change only when that reload diff is non-empty or the file on disk differs.
  - Installs the file atomically and applies it with C(frr-reload.py --reload), which only sends the
    differing lines, so BGP sessions whose configuration did not change stay up.
  - If the reload fails, the previous file is put back and reloaded, so nothing is half-applied.
  - Passwords (C(password X) lines and O(secrets)) never appear in the returned diff or messages.
options:
  content:
    description:
      - The complete frr.conf, in the form FRR prints it (C(show running-config)).
      - Not C(no_log) as a whole, so that its diff stays readable. The value of every C(password) line
        in it and the strings in O(secrets) are masked wherever Ansible shows or logs the task. Pass the
        password in O(secrets) too, since the target's syslog records the arguments before the module runs.
    type: str
    required: true
  dest:
    description: The FRR configuration file.
    type: path
    default: /etc/frr/frr.conf
  owner:
    description: Owner of O(dest).
    type: str
    default: frr
  group:
    description: Group of O(dest).
    type: str
    default: frr
  mode:
    description: Mode of O(dest); it holds the BGP password.
    type: raw
    default: "0600"
  pathspace:
    description: FRR pathspace (C(-N)) of the instance, for several FRR instances on one host.
    type: str
  vtysh:
    description: Path of C(vtysh).
    type: path
    default: /usr/bin/vtysh
  frr_reload:
    description: Path of FRR's C(frr-reload.py) (Debian package C(frr-pythontools)).
    type: path
    default: /usr/lib/frr/frr-reload.py
  secrets:
    description: Extra strings to mask in everything the module returns (e.g. the BGP password).
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    description: Parses the candidate and reports the change without installing or reloading anything.
    support: full
  diff_mode:
    description: Returns the old and new O(dest), passwords masked (the lines the reload sends are in RV(reload_diff)).
    support: full
notes:
  - FRR must be running (C(frr.service)) with the daemons the file configures (C(bgpd), C(bfdd)).
"""

EXAMPLES = r"""
- name: Apply the rendered frr.conf
  rackboot.metal.frr_config:
    content: "{{ lookup('ansible.builtin.template', 'frr.conf.j2') }}"
    secrets: ["{{ rackboot_bgp_password }}"]
  no_log: false
"""

RETURN = r"""
reload_diff:
  description: What frr-reload.py found to change in the running configuration (passwords masked).
  returned: always
  type: dict
  sample: {"delete": [], "add": ["router bgp 65000\n neighbor 10.0.0.4 peer-group K8S-NODES"]}
file_changed:
  description: Whether the file on disk differs from O(content).
  returned: always
  type: bool
rolled_back:
  description: The reload failed and the previous configuration was restored and reloaded.
  returned: on failure
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rackboot.metal.plugins.module_utils.config_apply import (
    config_params, StagedFile, atomic_write, file_diff, read_text)


def _parse_reload_test(stdout):
    """frr-reload.py --test output -> {'delete': [...], 'add': [...]} (one entry per command block)."""
    out = {"delete": [], "add": []}
    section = None
    block = []

    def flush():
        if section and block:
            out[section].append("\n".join(block))
        del block[:]

    for line in stdout.splitlines():
        if line.startswith("Lines To Delete"):
            flush()
            section = "delete"
        elif line.startswith("Lines To Add"):
            flush()
            section = "add"
        elif set(line.strip()) == {"="}:
            continue
        elif not line.strip():
            flush()
        elif section:
            if not line.startswith(" "):
                flush()
            block.append(line)
    flush()
    return out


class Frr(object):
    def __init__(self, module, masker):
        self.m = module
        self.mask = masker
        p = module.params
        # --confdir = the file's folder: frr-reload.py then does not `write` the running config
        # over frr.conf (it does when the file it applies is not CONFDIR/frr.conf).
        self.ns = ["--confdir", os.path.dirname(os.path.abspath(p["dest"]))]
        self.ns += ["--pathspace", p["pathspace"]] if p["pathspace"] else []
        self.vtysh_ns = ["-N", p["pathspace"]] if p["pathspace"] else []

    def run(self, args):
        # frr-reload.py writes its log beside the cwd-independent /var/log/frr; run from / so a
        # deleted working directory never breaks it.
        return self.m.run_command(args, cwd="/")

    def fail(self, msg, **kw):
        self.m.fail_json(msg=self.mask(msg), **kw)

    def check_syntax(self, path):
        rc, out, err = self.run([self.m.params["vtysh"]] + self.vtysh_ns + ["-C", "-f", path])
        if rc != 0:
            self.fail("frr.conf does not pass `vtysh -C -f` (nothing was applied): %s" % (out + err).strip())

    def reload_test(self, path):
        rc, out, err = self.run([self.m.params["frr_reload"], "--test"] + self.ns + [path])
        if rc != 0:
            self.fail("`frr-reload.py --test` failed (is FRR running with bgpd and bfdd?): %s"
                      % (err or out).strip()[-2000:])
        return _parse_reload_test(out)

    def reload(self, path):
        rc, out, err = self.run([self.m.params["frr_reload"], "--reload"] + self.ns + [path])
        return rc, (out + err).strip()


def main():
    module = AnsibleModule(
        argument_spec=dict(
            content=dict(type="str", required=True),
            dest=dict(type="path", default="/etc/frr/frr.conf"),
            owner=dict(type="str", default="frr"),
            group=dict(type="str", default="frr"),
            mode=dict(type="raw", default="0600"),
            pathspace=dict(type="str"),
            vtysh=dict(type="path", default="/usr/bin/vtysh"),
            frr_reload=dict(type="path", default="/usr/lib/frr/frr-reload.py"),
            secrets=dict(type="list", elements="str", default=[], no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    masker, mode, content = config_params(module, (p["vtysh"], p["frr_reload"]), "install FRR (packages frr, frr-pythontools)")
    dest = p["dest"]
    frr = Frr(module, masker)
    previous = read_text(dest)
    file_changed = previous != content

    with StagedFile(dest, content, mode, p["owner"], p["group"], check_mode=module.check_mode) as staged:
        frr.check_syntax(staged.path)
        pending = frr.reload_test(staged.path)
        live_changed = bool(pending["delete"] or pending["add"])
        changed = live_changed or file_changed
        result = dict(changed=changed, file_changed=file_changed,
                      reload_diff={k: masker(v) for k, v in pending.items()})
        if changed and module._diff:
            result["diff"] = [file_diff(previous, content, dest, masker)]
            if live_changed:
                result["diff"].append({
                    "before_header": "running-config (lines frr-reload.py deletes)",
                    "after_header": "running-config (lines frr-reload.py adds)",
                    "before": masker("\n".join(pending["delete"]) + "\n"),
                    "after": masker("\n".join(pending["add"]) + "\n"),
                })
        if not changed or module.check_mode:
            module.exit_json(**result)
        staged.install()

    rc, output = frr.reload(dest)
    if rc != 0:
        # Put the previous file back and reload it: the router keeps its last good config.
        restore_rc, restore_out = None, "no previous file"
        if previous is not None:
            atomic_write(dest, previous, mode, p["owner"], p["group"])
            restore_rc, restore_out = frr.reload(dest)
        else:
            os.unlink(dest)
        frr.fail("`frr-reload.py --reload` failed (rc %d), previous frr.conf restored (reload rc %s): %s | restore: %s"
                 % (rc, restore_rc, output[-2000:], restore_out[-1000:]), rolled_back=True, changed=True)
    residual = frr.reload_test(dest)
    if residual["delete"] or residual["add"]:
        # Applied, but FRR prints some lines differently: the next run would not be idempotent.
        module.warn("frr.conf differs from FRR's running-config after the reload: %s"
                    % masker(str(residual)))
    result["residual"] = {k: masker(v) for k, v in residual.items()}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
