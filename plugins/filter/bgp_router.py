# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Filter rackboot.metal.bgp_router_model: rackboot_router -> router config model."""

from __future__ import annotations

# Each filter is documented in plugins/filter/<filter name>.yml (ansible-doc -t filter).

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
