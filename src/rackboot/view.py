"""What a run shows: a live view on a terminal, plain lines elsewhere, and the
same summary table for both (and for ``rackboot runs show``)."""
import time

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold magenta"}


def _secs(seconds):
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    return "%dm%04.1fs" % divmod(seconds, 60) if seconds >= 60 else "%.1fs" % seconds


def summary_table(states):
    """One row per stage and host: counts and time, then a total per stage."""
    table = Table(title="Summary", title_justify="left", show_lines=False)
    for col, justify in (("stage", "left"), ("host", "left"), ("ok", "right"), ("changed", "right"),
                         ("failed", "right"), ("unreachable", "right"), ("skipped", "right"), ("time", "right")):
        table.add_column(col, justify=justify, no_wrap=True)
    for state in states:
        for h in sorted(state.hosts.values(), key=lambda h: h.name):
            took = h.ended - h.started if h.started is not None and h.ended is not None else None
            table.add_row(state.stage, Text(h.name, style=_STYLE[h.status]), str(h.ok), str(h.changed),
                          str(h.failed), str(h.unreachable), str(h.skipped), _secs(took))
        took = state.ended - state.started if state.started is not None else None
        table.add_row(state.stage, Text("total", style="bold"), "", "", "", "", "", _secs(took),
                      end_section=True)
    return table


def failures_table(states):
    rows = [(s.stage,) + f for s in states for f in s.failures]
    if not rows:
        return None
    table = Table(title="Failures", title_justify="left")
    for col in ("stage", "host", "task", "message"):
        table.add_column(col, overflow="fold")
    for stage, host, task, msg, unreachable in rows:
        table.add_row(stage, Text(host, style=_STYLE["unreachable" if unreachable else "failed"]), task, msg)
    return table


def print_summary(console, states):
    console.print(summary_table(states))
    failures = failures_table(states)
    if failures is not None:
        console.print(failures)


class PlainView(object):
    """Not a terminal (CI, AWX, pipes): one line per changed or failed result."""

    def __init__(self, console):
        self.console = console

    def start(self, state, meta):
        self.console.print("== %s: %s%s" % (state.stage, " ".join(meta["playbooks"]),
                                            " (check)" if meta.get("check") else ""), highlight=False)

    def event(self, state, event, line):
        if event.get("event") == "playbook_on_play_start":
            self.console.print("-- play: %s" % state.play, highlight=False)
        if line:
            kind, host, task, msg = line
            self.console.print("%s: %s: %s%s" % (kind, host, task, (": " + msg) if msg else ""),
                               highlight=False, soft_wrap=True)

    def abort(self):
        pass

    def finish(self, state, meta, run_folder):
        if meta.get("error"):
            self.console.print(Text.from_ansi(meta["error"]).plain, highlight=False, markup=False)
        self.console.print("== %s: exit %d, record %s" % (state.stage, meta["exit"], run_folder), highlight=False)


class LiveView(object):
    """A terminal: stage, play, task, one row per host; failures printed above
    the live area the moment they happen."""

    def __init__(self, console, refresh_per_second=4):
        self.console = console
        self.refresh = refresh_per_second
        self.live = None
        self.meta = None

    def _render(self, state):
        head = Text.assemble(("stage ", "dim"), (state.stage, "bold"), ("  play ", "dim"), state.play or "-",
                             ("  task ", "dim"), state.task or "-")
        table = Table(box=None, pad_edge=False)
        for col, justify in (("host", "left"), ("ok", "right"), ("changed", "right"), ("failed", "right"),
                             ("unreachable", "right"), ("task", "left"), ("elapsed", "right")):
            table.add_column(col, justify=justify, no_wrap=True)
        now = time.time()
        for h in sorted(state.hosts.values(), key=lambda h: h.name):
            table.add_row(Text(h.name, style=_STYLE[h.status]), str(h.ok), str(h.changed), str(h.failed),
                          str(h.unreachable), h.task, _secs(now - h.started if h.started else None))
        return Group(head, table)

    def start(self, state, meta):
        self.meta = meta
        self.console.print("[bold]%s[/]: %s%s" % (state.stage, " ".join(meta["playbooks"]),
                                                  " (check)" if meta.get("check") else ""))
        self.live = Live(self._render(state), console=self.console, refresh_per_second=self.refresh,
                         transient=True, get_renderable=lambda: self._render(state))
        self.live.start()

    def event(self, state, event, line):
        if line and line[0] in ("failed", "unreachable"):
            kind, host, task, msg = line
            self.live.console.print(Text.assemble((kind.upper(), _STYLE[kind]), " ", (host, "bold"), ": ", task,
                                                  ": ", msg), soft_wrap=False)

    def abort(self):
        if self.live is not None:
            self.live.stop()

    def finish(self, state, meta, run_folder):
        self.live.stop()
        if meta.get("error"):
            self.console.print(Text.from_ansi(meta["error"]))
        self.console.print("[bold]%s[/]: exit %d, record %s" % (state.stage, meta["exit"], run_folder),
                           highlight=False)
