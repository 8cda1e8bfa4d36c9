# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Filter rackboot.metal.bgp_router_model: rackboot_router -> router config model."""

from __future__ import annotations

DOCUMENTATION = r"""
name: bgp_router_model
author: rackboot developers
short_description: The platform-neutral BGP configuration of an upstream router
description:
  - Turns C(rackboot_router) (published by the rackboot.metal.cluster inventory plugin) into the model
    that both router templates (frr.conf, bird.conf) format, so that FRR and BIRD get the same policy.
options:
  _input:
    description: The C(rackboot_router) variable of a router host.
    type: dict
    required: true
  password:
    description: The MD5 password of every session (C(rackboot_bgp_password)); empty disables MD5.
    type: str
  mask:
    description: Replace the password by C(********) (render mode, reviewable artifacts).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Render frr.conf
  ansible.builtin.template:
    src: frr.conf.j2
    dest: /tmp/frr.conf
    mode: "0600"
  vars:
    bgp: "{{ rackboot_router | rackboot.metal.bgp_router_model(password=rackboot_bgp_password) }}"
"""

RETURN = r"""
_value:
  description: Keys C(name asn router_id peer_group listen_range neighbors bfd_profile import export multipath).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.rackboot.metal.plugins.module_utils.bgp_router import router_config


def bgp_router_model(router, password=None, mask=False):
    try:
        return router_config(router, password=password, mask=mask)
    except (ValueError, KeyError, TypeError) as exc:
        raise AnsibleFilterError("bgp_router_model: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"bgp_router_model": bgp_router_model}
