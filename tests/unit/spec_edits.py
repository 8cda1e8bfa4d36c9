# -*- coding: utf-8 -*-
"""Helpers of the spec-refusal tests: edit a spec's text, find a line, read the problems."""

from __future__ import annotations

import pytest

from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import SpecError, read_spec


def edit(text, *pairs):
    """``text`` with each ``(old, new)`` replaced once (``old`` must be there)."""
    for old, new in pairs:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def line_of(text, fragment):
    """The 1-based line of the last occurrence of ``fragment``."""
    return text[:text.rindex(fragment)].count("\n") + 1


def refusal(tmp_path, text):
    """The one problem ``read_spec`` reports for ``text`` as ``(line, path, message)``: one root cause, one message."""
    path = tmp_path / "cluster.yml"
    path.write_text(text)
    with pytest.raises(SpecError) as err:
        read_spec(str(path))
    problems = [(i["line"], i["path"], i["message"]) for i in err.value.items()]
    assert len(problems) == 1, problems
    return problems[0]


def assert_refused(tmp_path, text, fragment, path, reason):
    """``text`` is refused once, at the line of ``fragment``, for field ``path``, with ``reason`` in the message."""
    line, got_path, message = refusal(tmp_path, text)
    assert (got_path, line) == (path, line_of(text, fragment)), (line, got_path, message)
    assert reason in message, message
