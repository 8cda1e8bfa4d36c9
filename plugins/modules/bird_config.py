#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
module: bird_config
author: rackboot developers (@rackboot)
short_description: Check and apply a bird.conf to a running BIRD 2 with a soft reconfigure
description:
  - Writes O(content) to a staged file beside O(dest) and parses it with C(bird -p -c).
  - Reports a change when the file on disk differs (BIRD cannot print its running configuration).
  - Installs the file atomically and applies it with C(birdc configure soft), which keeps sessions up
    and does not refeed routes when only filters change.
  - If BIRD rejects the new file, the previous file is put back and BIRD reconfigured with it.
  - Passwords (C(password "X") lines and O(secrets)) never appear in the returned diff or messages.
options:
  content:
    description:
      - The complete bird.conf.
      - Not C(no_log) as a whole, so that its diff stays readable. The value of every C(password) line
        in it and the strings in O(secrets) are masked wherever Ansible shows or logs the task. Pass the
        password in O(secrets) too, since the target's syslog records the arguments before the module runs.
    type: str
    required: true
  dest:
    description: The BIRD configuration file (the one BIRD was started with).
    type: path
    default: /etc/bird/bird.conf
  owner:
    description: Owner of O(dest) (BIRD re-reads it after dropping privileges).
    type: str
    default: bird
  group:
    description: Group of O(dest).
    type: str
    default: bird
  mode:
    description: Mode of O(dest); it holds the BGP password.
    type: raw
    default: "0600"
  socket:
    description:
      - BIRD control socket (C(birdc -s)). When BIRD does not answer on it, it is not running; the
        checked file is installed and BIRD reads it when it starts.
    type: path
    default: /run/bird/bird.ctl
  bird:
    description: Path of C(bird).
    type: path
    default: /usr/sbin/bird
  birdc:
    description: Path of C(birdc).
    type: path
    default: /usr/sbin/birdc
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
    description: Returns the old and new O(dest), passwords masked.
    support: full
"""

EXAMPLES = r"""
- name: Apply the rendered bird.conf
  rackboot.metal.bird_config:
    content: "{{ lookup('ansible.builtin.template', 'bird.conf.j2') }}"
    secrets: ["{{ rackboot_bgp_password }}"]
"""

RETURN = r"""
reconfigure:
  description: BIRD's answer to C(configure soft) (passwords masked).
  returned: when BIRD was reconfigured
  type: str
  sample: Reconfigured
rolled_back:
  description: BIRD rejected the new file; the previous one was restored and applied again.
  returned: on failure
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.rackboot.metal.plugins.module_utils.config_apply import (
    config_params, StagedFile, atomic_write, file_diff, read_text)

# birdc's answers to `configure` that mean the new configuration is in place.
_OK = ("Reconfigured", "Reconfiguration in progress", "Reconfiguration confirmed")


def configure(module, path):
    """`birdc configure soft "path"` -> (ok, output)."""
    p = module.params
    cmd = [p["birdc"], "-s", p["socket"], "configure", "soft", '"%s"' % path]
    rc, out, err = module.run_command(cmd, cwd="/")
    text = (out + err).strip()
    return rc == 0 and any(ok in text for ok in _OK), text


def running(module):
    """BIRD answers on its control socket (a stale socket file of a dead BIRD does not count)."""
    p = module.params
    if not os.path.exists(p["socket"]):
        return False
    rc, out, err = module.run_command([p["birdc"], "-s", p["socket"], "show", "status"], cwd="/")
    return rc == 0 and "Unable to connect" not in out + err


def main():
    module = AnsibleModule(
        argument_spec=dict(
            content=dict(type="str", required=True),
            dest=dict(type="path", default="/etc/bird/bird.conf"),
            owner=dict(type="str", default="bird"),
            group=dict(type="str", default="bird"),
            mode=dict(type="raw", default="0600"),
            socket=dict(type="path", default="/run/bird/bird.ctl"),
            bird=dict(type="path", default="/usr/sbin/bird"),
            birdc=dict(type="path", default="/usr/sbin/birdc"),
            secrets=dict(type="list", elements="str", default=[], no_log=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    masker, mode, content = config_params(module, (p["bird"], p["birdc"]), "install BIRD 2 (package bird2)")
    dest = p["dest"]
    previous = read_text(dest)
    changed = previous != content
    result = dict(changed=changed)
    if changed and module._diff:
        result["diff"] = file_diff(previous, content, dest, masker)
    if not changed:
        module.exit_json(**result)

    with StagedFile(dest, content, mode, p["owner"], p["group"], check_mode=module.check_mode) as staged:
        rc, out, err = module.run_command([p["bird"], "-p", "-c", staged.path], cwd="/")
        if rc != 0:
            module.fail_json(msg=masker("bird.conf does not pass `bird -p` (nothing was applied): %s"
                                        % (out + err).strip().replace(staged.path, dest)))
        if module.check_mode:
            module.exit_json(**result)
        staged.install()
    if not running(module):
        result["reconfigure"] = "BIRD is not running; it reads the new file when it starts"
        module.exit_json(**result)

    ok, answer = configure(module, dest)
    if not ok:
        restore = "no previous file"
        if previous is not None:
            atomic_write(dest, previous, mode, p["owner"], p["group"])
            restore = configure(module, dest)[1]
        else:
            os.unlink(dest)
        module.fail_json(msg=masker("`birdc configure soft` failed, previous bird.conf restored: %s | restore: %s"
                                    % (answer, restore)), rolled_back=True, changed=True)
    result["reconfigure"] = masker(answer)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
