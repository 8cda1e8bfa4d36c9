# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Stage, check, install and roll back a daemon's configuration file.

Shared by rackboot.metal.frr_config and rackboot.metal.bird_config: both write
the new file beside the live one, let the daemon's own parser check it, swap
it in atomically, ask the daemon to reload, and put the previous file back
(and reload it) when the reload fails, so a router is never left half-applied.
Everything that leaves the module (diffs, command output) goes through
``Masker`` first: a config holds the BGP password.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import tempfile

__all__ = ["MASK", "Masker", "StagedFile", "read_text", "atomic_write", "file_diff", "file_attributes"]

MASK = "********"
# `password WORD` (FRR), `password "WORD";` (BIRD), `password 7 HASH` (FRR encrypted form).
_PASSWORD_RE = re.compile(r'(\bpassword\s+(?:\d+\s+)?)("[^"]*"|\S+?)(;?\s*$)', re.MULTILINE)


class Masker(object):
    """Hide passwords in text: every ``password X`` value plus the given secrets."""

    def __init__(self, secrets=None):
        self.secrets = sorted({str(s) for s in (secrets or []) if s}, key=len, reverse=True)

    def __call__(self, text):
        if text is None:
            return None
        if isinstance(text, (list, tuple)):
            return [self(t) for t in text]
        text = _PASSWORD_RE.sub(lambda m: m.group(1) + ('"%s"' % MASK if m.group(2).startswith('"') else MASK)
                                + m.group(3), text)
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text


def read_text(path):
    """The file's text, or None if it does not exist."""
    try:
        with open(path, "r") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _ids(owner, group):
    uid = pwd.getpwnam(owner).pw_uid if owner else -1
    gid = grp.getgrnam(group).gr_gid if group else -1
    return uid, gid


def atomic_write(path, text, mode=0o600, owner=None, group=None, suffix=".rackboot-tmp", module=None):
    """Write ``text`` to ``path`` through a temporary file in the same folder and rename it.

    The one atomic writer of the collection (router configs, networkd files,
    Talos secrets and artifacts). The temporary file has its final mode and
    owner before it holds the text, so a secret is never readable by anyone
    else, not even for a moment. With ``module`` (files that are not secret),
    the rename is ``module.atomic_move``, which also keeps the SELinux context
    of the destination; it makes a new file 0666 & ~umask, so the mode is set
    again right after. Secrets go without ``module``: no such window.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=suffix, dir=folder)
    try:
        os.fchmod(fd, mode)
        uid, gid = _ids(owner, group)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "w") as f:
            fd = None
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if module is None:
            os.replace(tmp, path)
        else:
            module.atomic_move(tmp, path, keep_dest_attrs=False)
            os.chmod(path, mode)
            if uid != -1 or gid != -1:
                os.chown(path, uid, gid)
        tmp = None
    finally:
        if fd is not None:
            os.close(fd)
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def file_attributes(module, path, default_mode, changed, result):
    """Give ``path`` the common file arguments of ``module`` (``add_file_common_args``: owner, group,
    mode, SELinux context, attributes); ``default_mode`` when the task sets no mode. Returns ``changed``
    updated; what differed is added to ``result["diff"]``. A file that does not exist (check mode, it
    would be created) is left out: the write gives it the default mode and the next run the rest."""
    if not os.path.lexists(path):
        return changed
    args = module.load_file_common_arguments(module.params, path=path)
    if args.get("mode") is None:
        args["mode"] = default_mode
    diff = {"before": {"path": path}, "after": {"path": path}}
    changed = module.set_fs_attributes_if_different(args, changed, diff)
    if len(diff["before"]) > 1 or len(diff["after"]) > 1:
        old = result.get("diff")
        result["diff"] = (old if isinstance(old, list) else [old] if old else []) + [diff]
    return changed


class StagedFile(object):
    """A candidate config written beside ``dest`` (same file system: the install is a rename).

    ``check_mode=True`` stages it in a private temporary folder instead (0700, removed
    afterwards): the daemon's parser still sees the real file, dest's folder is not touched.
    """

    def __init__(self, dest, text, mode=0o600, owner=None, group=None, check_mode=False):
        self.dest = dest
        self.tmpdir = tempfile.mkdtemp(prefix="rackboot-check-") if check_mode else None
        folder = self.tmpdir or os.path.dirname(os.path.abspath(dest))
        self.path = os.path.join(folder, "." + os.path.basename(dest) + ".rackboot-staged")
        self.mode, self.owner, self.group = mode, owner, group
        atomic_write(self.path, text, mode, owner, group)

    def install(self):
        """Rename the staged file over ``dest``."""
        if self.tmpdir:
            raise RuntimeError("a check-mode candidate is never installed")
        os.replace(self.path, self.dest)

    def discard(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        if self.tmpdir and os.path.isdir(self.tmpdir):
            os.rmdir(self.tmpdir)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.discard()
        return False


def file_diff(before, after, path, masker):
    """Ansible diff dict of a file's old and new content, passwords masked."""
    return {
        "before": masker(before or ""), "after": masker(after or ""),
        "before_header": "%s (before)" % path, "after_header": "%s (after)" % path,
    }


def config_params(module, tools, install_hint):
    """What both router-config modules do with their common parameters.

    Fails when a daemon tool is missing; returns (masker, mode, content) with
    the mode as an integer and the content ending in a newline.
    """
    p = module.params
    # `content` is not no_log (its diff must stay readable): the password values in it join
    # the module's no_log values, so Ansible masks them wherever the result shows them.
    module.no_log_values.update(m.group(2).strip('"') for m in _PASSWORD_RE.finditer(p["content"]))
    for tool in tools:
        if not os.path.exists(tool):
            module.fail_json(msg="%s not found: %s" % (tool, install_hint))
    folder = os.path.dirname(os.path.abspath(p["dest"]))
    if not os.path.isdir(folder):
        module.fail_json(msg="the folder of dest %s does not exist: %s, or set dest" % (p["dest"], install_hint))
    mode = int(p["mode"], 8) if isinstance(p["mode"], str) else int(p["mode"])
    content = p["content"] if p["content"].endswith("\n") else p["content"] + "\n"
    return Masker(p["secrets"]), mode, content
