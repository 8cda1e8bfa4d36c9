# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Filters over the inventory's cluster model; the logic lives in plugins/plugin_utils/cluster_model.py."""

from __future__ import annotations

# Each filter is documented in plugins/filter/<filter name>.yml (ansible-doc -t filter).

import collections
import json

from ansible.errors import AnsibleFilterError

from ansible_collections.rackboot.metal.plugins.plugin_utils import cluster_model

_PARTS = ("networks", "management_network", "host_network", "load_balancer", "routers")
_CONTEXTS = collections.OrderedDict()   # key -> (the parts it was read from, context)
_DECODED = collections.OrderedDict()    # rackboot_cluster_json -> rackboot_cluster


def _stored(cluster, key):
    """The object stored under ``key``: Ansible hands filters lazy copies of a
    variable whose items still wrap the stored values (``.value``)."""
    raw = dict.get(cluster, key) if isinstance(cluster, dict) else None
    return getattr(raw, "value", raw)


def _context(cluster):
    """The cluster's node context, read once per cluster rather than once per node.

    Every host's rackboot_cluster is a lazy copy of the same stored dict, so
    its parts are the same objects: they key the cache (and are kept alive by
    it, so that no id is reused). A changed rackboot_cluster (set_fact, -e) has
    new parts and gets its own entry; anything else is read afresh.
    """
    parts = tuple(_stored(cluster, k) for k in _PARTS)
    if any(p is None for p in parts):
        return cluster_model.node_context(cluster)   # not a rackboot_cluster: let it fail there
    key = tuple(id(p) for p in parts)
    hit = _CONTEXTS.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], parts)):
        return hit[1]
    context = cluster_model.node_context(cluster)
    _CONTEXTS[key] = (parts, context)
    while len(_CONTEXTS) > 8:
        _CONTEXTS.popitem(last=False)
    return context


def _cluster_from_json(text):
    """rackboot_cluster from group all's rackboot_cluster_json, decoded once per process and string.

    Every read returns the same object, so that _context finds its parts again
    (filters do not change their input; Ansible hands templates lazy copies).
    """
    if not isinstance(text, str):
        raise AnsibleFilterError("cluster_from_json: needs the rackboot_cluster_json of a rackboot inventory, not %s"
                                 % type(text).__name__)
    key = str(text)
    hit = _DECODED.get(key)
    if hit is None:
        try:
            hit = json.loads(key)
        except ValueError as exc:
            raise AnsibleFilterError("cluster_from_json: rackboot_cluster_json is not JSON (%s)" % exc)
        if not isinstance(hit, dict):
            raise AnsibleFilterError("cluster_from_json: rackboot_cluster_json holds a %s, not a mapping"
                                     % type(hit).__name__)
        _DECODED[key] = hit
        while len(_DECODED) > 8:
            _DECODED.popitem(last=False)
    return hit


def _cluster_node(spec, cluster):
    if isinstance(cluster, str):
        # rackboot_cluster_json itself: the inventory's rackboot_node reads it so,
        # one template per read rather than two (rackboot_cluster is a template too).
        cluster = _cluster_from_json(cluster)
    try:
        return cluster_model.resolve_node(spec, context=_context(cluster))
    except (KeyError, TypeError, AttributeError) as exc:
        raise AnsibleFilterError("cluster_node: needs the rackboot_node_spec of a node and the rackboot_cluster of "
                                 "a rackboot inventory (%s: %s)" % (type(exc).__name__, exc))


class FilterModule(object):
    def filters(self):
        return {"cluster_node": _cluster_node, "cluster_from_json": _cluster_from_json}
