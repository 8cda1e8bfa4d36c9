# -*- coding: utf-8 -*-
# Copyright: rackboot developers
# Apache License 2.0 (see LICENSE)
"""Strict, bounded YAML reader for cluster specs.

PyYAML's safe loader follows YAML 1.1 and trusts its input: a repeated key
silently replaces the first one, ``0200`` becomes 128, ``1:30`` becomes 90, a
self-referencing alias or deep nesting ends in RecursionError (or a crash of
libyaml's C composer), and an alias bomb expands until the process is killed.
This reader builds the data from libyaml's event stream (the C parser, no
recursion) and refuses all of that with the field path:

- duplicate mapping keys (block and flow), complex keys, tags other than the
  core schema's, more than one document;
- numbers that are not plain decimal (leading zeros, 0x/0o/0b, ``_``, base 60);
  they come back as ``BadNumber`` so the schema can say which field expected
  an integer;
- nesting deeper than ``MAX_DEPTH``, more than ``MAX_VALUES`` values once the
  aliases are expanded, scalars longer than ``MAX_SCALAR`` characters, files
  larger than ``MAX_BYTES``, an alias to the node it is inside.

Line numbers cost time, so the first read records none; when anything is
wrong the caller reads again with ``track_lines=True`` (see ``read``).
"""

from __future__ import annotations

import contextlib
import gc
import re

import yaml
from yaml import events as ev

__all__ = ["BadNumber", "Refused", "LoadProblem", "claims", "no_collection", "read", "MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "MAX_SCALAR"]

MAX_BYTES = 8 * 1024 * 1024      # a 5,000-node spec is about 0.8 MB
MAX_DEPTH = 64                   # the spec itself nests 7 deep; Helm values rarely 15
MAX_VALUES = 2000000             # values after alias expansion (5,000 nodes: ~100,000)
MAX_SCALAR = 65536               # characters in one string

_Parser = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_CORE = "tag:yaml.org,2002:"

_NULL = frozenset(["", "~", "null", "Null", "NULL"])
_TRUE = frozenset(["true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"])
_FALSE = frozenset(["false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"])
_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]{0,29})", re.ASCII)
_FLOAT = re.compile(r"[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
                    re.ASCII)
# What YAML 1.1 reads as a number although it is not plain decimal.
_ODD_NUMBER = re.compile(r"[-+]?(?:0[0-9_]+|0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|[0-9][0-9_]*(?::[0-9_]+)+"
                         r"(?:\.[0-9_]*)?|[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?|[0-9]{31,}|[0-9_.]*_[0-9_.]*)", re.ASCII)


class BadNumber(object):
    """A plain scalar that YAML 1.1 would read as a number in a non-decimal form."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text

    def __eq__(self, other):
        return isinstance(other, BadNumber) and other.text == self.text

    def __hash__(self):
        return hash(self.text)


class Refused(object):
    """A value the reader already reported (unsupported tag); checks skip it."""

    __slots__ = ()

    def __repr__(self):
        return "<refused>"


REFUSED = Refused()


class LoadProblem(Exception):
    """A problem that stops reading (syntax, limits). ``line`` is 1-based or None."""

    def __init__(self, reason, line=None, path=()):
        super(LoadProblem, self).__init__(reason)
        self.reason, self.line, self.path = reason, line, tuple(path)


def _scalar(event):
    value, tag = event.value, event.tag
    if len(value) > MAX_SCALAR:
        raise LoadProblem("a string of %d characters; at most %d are allowed" % (len(value), MAX_SCALAR),
                          event.start_mark.line + 1)
    if tag is None and event.implicit[0]:
        if value in _NULL:
            return None
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        c = value[:1]
        if c and (c.isdigit() or c in "+-."):
            if _INT.fullmatch(value):
                return int(value)
            if _FLOAT.fullmatch(value):
                return float(value.replace(".", "", 1)) if value.lower().lstrip("+-") in (".inf", ".nan") else \
                    float(value)
            if _ODD_NUMBER.fullmatch(value):
                return BadNumber(value)
        return value
    if tag is None or tag == "!" or tag == _CORE + "str":
        return value
    if tag == _CORE + "int":
        return int(value) if _INT.fullmatch(value) else BadNumber(value)
    if tag == _CORE + "float" and _FLOAT.fullmatch(value):
        return float(value.replace(".", "", 1)) if value.lower().lstrip("+-") in (".inf", ".nan") else float(value)
    if tag == _CORE + "bool" and (value in _TRUE or value in _FALSE):
        return value in _TRUE
    if tag == _CORE + "null" and value in _NULL:
        return None
    return REFUSED


class _Frame(object):
    __slots__ = ("seq", "obj", "key", "anchor", "start", "merges", "keylines", "part", "line", "refused")

    def __init__(self, seq, obj, anchor, start, part, line):
        self.seq, self.obj, self.anchor, self.start, self.part, self.line = seq, obj, anchor, start, part, line
        self.key = _NOKEY
        self.merges = None
        self.keylines = None


_NOKEY = object()


class _Reader(object):
    def __init__(self, track):
        self.track = track
        self.lines = {}          # path -> 1-based line (track mode only)
        self.problems = []       # [(path, reason, line)]
        self.anchors = {}        # anchor -> (value, size)
        self.count = 0           # values read, aliases expanded

    def path(self, stack, last=_NOKEY):
        """Field path of the innermost container (plus ``last``); stack[0] holds the document."""
        if len(stack) < 2:
            return ()
        out = [f.part for f in stack[2:]]
        if last is not _NOKEY:
            out.append(last)
        return tuple(out)

    def run(self, text):
        loader = _Parser(text)
        try:
            return self._events(loader)
        finally:
            loader.dispose()

    def _events(self, loader):
        stack = [_Frame(True, [], None, 0, None, 0)]   # the document's root sits in a one-item list
        docs = 0
        track = self.track
        while loader.check_event():
            event = loader.get_event()
            cls = type(event)
            if cls is ev.ScalarEvent:
                self.count += 1
                value = _scalar(event)
                if value is REFUSED:
                    self.problems.append((self._slot_path(stack), "the YAML tag %s is not allowed in a cluster spec"
                                          % _printable(event.tag), event.start_mark.line + 1))
                if event.anchor is not None:
                    self.anchors[event.anchor] = (value, 1)
                self._add(stack, value, 1, event)
            elif cls is ev.MappingStartEvent or cls is ev.SequenceStartEvent:
                top = stack[-1]
                if not top.seq and top.key is _NOKEY:
                    raise LoadProblem("a mapping key must be a plain string, not a %s"
                                      % ("list" if cls is ev.SequenceStartEvent else "mapping"),
                                      event.start_mark.line + 1, self.path(stack))
                if len(stack) > MAX_DEPTH:
                    raise LoadProblem("nested deeper than %d levels" % MAX_DEPTH, event.start_mark.line + 1,
                                      self.path(stack)[:3])
                refused = event.tag not in (None, "!", _CORE + ("seq" if cls is ev.SequenceStartEvent else "map"))
                if refused:
                    self.problems.append((self._slot_path(stack), "the YAML tag %s is not allowed in a cluster spec"
                                          % _printable(event.tag), event.start_mark.line + 1))
                self.count += 1
                part = len(top.obj) if top.seq else top.key
                frame = _Frame(cls is ev.SequenceStartEvent, [] if cls is ev.SequenceStartEvent else {},
                               event.anchor, self.count, part, event.start_mark.line + 1)
                frame.refused = refused
                if track:
                    self.lines.setdefault(self.path(stack, part), event.start_mark.line + 1)
                stack.append(frame)
            elif cls is ev.MappingEndEvent or cls is ev.SequenceEndEvent:
                frame = stack.pop()
                if frame.merges:
                    for merged in frame.merges:
                        for k, v in merged.items():
                            frame.obj.setdefault(k, v)
                size = self.count - frame.start + 1
                value = REFUSED if frame.refused else frame.obj
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (value, size)
                self._add(stack, value, 0, event, frame)
            elif cls is ev.AliasEvent:
                if event.anchor not in self.anchors:
                    if any(f.anchor == event.anchor for f in stack):
                        raise LoadProblem("the alias *%s refers to the node it is inside (a loop)"
                                          % _printable(event.anchor), event.start_mark.line + 1, self._slot_path(stack))
                    raise LoadProblem("unknown alias *%s" % _printable(event.anchor), event.start_mark.line + 1,
                                      self._slot_path(stack))
                value, size = self.anchors[event.anchor]
                self.count += size
                if self.count > MAX_VALUES:
                    raise LoadProblem("the aliases expand to more than %d values (an alias bomb?)" % MAX_VALUES,
                                      event.start_mark.line + 1, self._slot_path(stack))
                self._add(stack, value, 0, event)
            elif cls is ev.DocumentStartEvent:
                docs += 1
                if docs > 1:
                    raise LoadProblem("a second YAML document ('---'); a cluster spec is one document",
                                      event.start_mark.line + 1)
            if self.count > MAX_VALUES:
                raise LoadProblem("more than %d values" % MAX_VALUES, event.start_mark.line + 1)
        root = stack[0].obj
        return root[0] if root else None

    def _slot_path(self, stack):
        """Path of the value about to be added to the innermost container."""
        top = stack[-1]
        if len(stack) == 1:
            return ()
        if top.seq:
            return self.path(stack, len(top.obj))
        return self.path(stack, top.key) if top.key is not _NOKEY else self.path(stack)

    def _add(self, stack, value, _size, event, frame=None):
        top = stack[-1]
        line = event.start_mark.line + 1
        if top.seq:
            if self.track and frame is None and len(stack) > 1:
                self.lines.setdefault(self.path(stack, len(top.obj)), line)
            top.obj.append(value)
            return
        if top.key is _NOKEY:  # this value is a key
            if frame is not None:  # unreachable: containers as keys are refused when they start
                raise LoadProblem("a mapping key must be a plain string", line, self.path(stack))
            if not isinstance(value, str):
                value = event.value if isinstance(event, ev.ScalarEvent) else None
                if value is None:
                    raise LoadProblem("a mapping key must be a plain string", line, self.path(stack))
            top.key = value
            if self.track:
                if top.keylines is None:
                    top.keylines = {}
                first = top.keylines.get(value)
                if first is None:
                    top.keylines[value] = line
                    self.lines[self.path(stack, value)] = line
            if value in top.obj and value != "<<":
                first = top.keylines.get(value) if top.keylines else None
                self.problems.append((self.path(stack, value), "duplicate key%s: YAML keeps only the last one, so the "
                                      "first is silently lost" % (" (first on line %d)" % first if first else ""),
                                      line))
            return
        key = top.key
        top.key = _NOKEY
        if key == "<<" and (isinstance(event, ev.AliasEvent) or frame is not None):
            merged = value if isinstance(value, list) else [value]
            if not all(isinstance(m, dict) for m in merged):
                self.problems.append((self.path(stack, key), "a merge key (<<) takes a mapping or a list of mappings",
                                      line))
                return
            top.merges = (top.merges or []) + merged
            return
        if key in top.obj:
            return   # a duplicate key, reported above: the first value is kept
        if self.track and frame is None:
            self.lines.setdefault(self.path(stack, key), line)
        top.obj[key] = value


# Files the inventory plugin claims, so that a broken spec gets the plugin's
# own message (never another plugin's unrelated complaint): a top-level
# `plugin:` naming rackboot, even misspelled; a file without `plugin:` that has
# the spec's top-level `cluster:` and `nodes:`; an empty file.
_PLUGIN_LINE = re.compile(r"^plugin:\s*['\"]?[^\n]*rackboot", re.M | re.I)
_ANY_PLUGIN = re.compile(r"^plugin\s*:", re.M)
_SPEC_KEYS = (re.compile(r"^cluster\s*:", re.M), re.compile(r"^nodes\s*:", re.M))
_BLANK = re.compile(r"\A(?:\s*(?:#[^\n]*)?\n?)*\Z")


def claims(path):
    """Whether ``path`` is a cluster spec (or meant to be one) by its name and first MiB."""
    if not str(path).endswith((".yml", ".yaml")):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return False
    if _PLUGIN_LINE.search(head) or _BLANK.match(head):
        return True
    return not _ANY_PLUGIN.search(head) and all(k.search(head) for k in _SPEC_KEYS)


@contextlib.contextmanager
def no_collection():
    """Pause the cyclic garbage collector while a spec becomes a model.

    A 5,000-node spec is some 100,000 small dicts and lists, none of them
    cyclic; each allocation burst would otherwise start a full pass over every
    object of the process (Ansible's too), a third of the reading time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _printable(text):
    text = str(text)
    if len(text) <= 40 and text.isascii() and text.isprintable():
        return text
    return repr(text[:40])[1:-1] + ("..." if len(text) > 40 else "")


def read(text, track_lines=False):
    """Read a spec's text. Returns ``(data, problems, lines)``.

    ``problems`` is a list of ``(path, reason, line)``; ``lines`` maps field
    paths to 1-based lines (filled only with ``track_lines``). Raises
    ``LoadProblem`` when the text cannot be read at all (syntax, limits).
    """
    if len(text) > MAX_BYTES:
        raise LoadProblem("the file has %d bytes; a cluster spec may have at most %d" % (len(text), MAX_BYTES))
    reader = _Reader(track_lines)
    try:
        data = reader.run(text)
    except yaml.reader.ReaderError as e:
        char = e.character if isinstance(e.character, int) else ord(e.character or "\0")
        raise LoadProblem("contains the control character U+%04X, which YAML does not allow" % char,
                          text.count("\n", 0, e.position) + 1)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        reason = str(e.problem or e.context or "syntax error").splitlines()[0]
        raise LoadProblem("not valid YAML: %s" % reason, mark.line + 1 if mark else None)
    except yaml.YAMLError as e:
        raise LoadProblem("not valid YAML: %s" % (str(e).splitlines() or ["syntax error"])[0])
    return data, reader.problems, reader.lines
