"""Offline stand-in for the awx.awx modules (tests/integration/test_awx_configure.py).

Ansible runs collection modules without an action plugin of their own
through ``ansible.legacy.normal``, which a configured action plugin path
may override. This one does, for awx.awx modules only: it takes the task's
final arguments (templated, loop item applied, module_defaults merged),
loads the module's own argument spec by calling its ``main()`` with
``ControllerAPIModule`` swapped for a recorder, and validates them with
ansible-core's ArgumentSpecValidator, as AnsibleModule would before the
module's first API request. Every other module runs as usual. The result
carries the validated arguments (``awx_args``) for the test to inspect.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

import ansible.plugins.action
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

# This file is loaded under the built-in's module name: load the built-in by path.
_spec = importlib.util.spec_from_file_location(
    "_rackboot_builtin_normal", Path(ansible.plugins.action.__file__).with_name("normal.py")
)
_builtin = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_builtin)
NormalAction = _builtin.ActionModule

_CONSTRAINTS = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


class _Recorded(Exception):
    def __init__(self, spec, kwargs):
        super().__init__("argument spec recorded")
        self.spec = spec
        self.kwargs = kwargs


def module_argument_spec(name):
    """(full argument spec, constraint kwargs) of awx.awx.<name>, as its main() builds them."""
    mod = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
    real = mod.ControllerAPIModule

    def record(argument_spec=None, **kwargs):
        # ControllerModule.__init__ adds its connection options the same way.
        raise _Recorded({**real.AUTH_ARGSPEC, **(argument_spec or {})}, kwargs)

    mod.ControllerAPIModule = record
    try:
        mod.main()
    except _Recorded as rec:
        return rec.spec, {k: v for k, v in rec.kwargs.items() if k in _CONSTRAINTS}
    finally:
        mod.ControllerAPIModule = real
    raise RuntimeError(f"awx.awx.{name}: main() never built its module")


class ActionModule(NormalAction):
    def run(self, tmp=None, task_vars=None):
        action = self._task.resolved_action or ""
        if not action.startswith("awx.awx."):
            return super().run(tmp, task_vars)
        spec, constraints = module_argument_spec(action.rsplit(".", 1)[1])
        args = dict(self._task.args)
        result = ArgumentSpecValidator(spec, **constraints).validate(args)
        if result.error_messages:
            return {"failed": True, "msg": f"{action}: " + "; ".join(result.error_messages)}
        return {"changed": False, "awx_module": action, "awx_args": result.validated_parameters}
