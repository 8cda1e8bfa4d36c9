"""Run playbooks through ansible-runner and keep a record of every run.

A run is one playbook invocation for one stage. Its record is the folder
``<inventory>/runs/<time>-<stage>/``: ansible-runner's artifacts (``job_events/``
with every event as JSON, ``stdout``, ``rc``, ``status``) plus ``rackboot.json``
(what was run, when, and the exit code). The summary is always computed from
the events, so ``rackboot runs show`` prints exactly what the run printed.
"""
import datetime
import json
import os
import re
import shlex
import tempfile
import time
from pathlib import Path

from rackboot.collection import ansible_env, playbook

# Exit codes (docs/cli.md).
OK, FAILED, CHANGES, BAD_INPUT, UNREACHABLE = 0, 1, 2, 3, 4

RESULT_EVENTS = {
    "runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable",
    "runner_on_skipped": "skipped",
}
_SECRET_NAME = re.compile(r"PASS|TOKEN|SECRET|KEY|CREDENTIAL|AUTH", re.I)


def runs_dir(inventory):
    """Where the records of INVENTORY's runs go: its ``runs/`` folder, or
    $RACKBOOT_RUNS_DIR (the demo keeps the example inventory untouched)."""
    if os.environ.get("RACKBOOT_RUNS_DIR"):
        return Path(os.environ["RACKBOOT_RUNS_DIR"]).resolve()
    inv = Path(inventory)
    return (inv.parent if inv.is_file() else inv).resolve() / "runs"


def new_run_id(stage):
    return "%s-%s" % (datetime.datetime.now().strftime("%Y%m%dT%H%M%S%f")[:-3], stage)


class HostState(object):
    __slots__ = ("name", "ok", "changed", "failed", "unreachable", "skipped", "ignored", "task", "started", "ended")

    def __init__(self, name):
        self.name = name
        self.ok = self.changed = self.failed = self.unreachable = self.skipped = self.ignored = 0
        self.task = ""
        self.started = self.ended = None

    @property
    def status(self):
        if self.unreachable:
            return "unreachable"
        if self.failed:
            return "failed"
        if self.changed:
            return "changed"
        return "ok"

    def as_dict(self):
        return {k: getattr(self, k) for k in ("name", "ok", "changed", "failed", "unreachable", "skipped", "ignored",
                                              "started", "ended")}


def _ts(event):
    created = event.get("created")
    if not created:
        return time.time()
    try:
        return datetime.datetime.fromisoformat(created).replace(tzinfo=datetime.timezone.utc).timestamp()
    except ValueError:
        return time.time()


def result_message(res):
    """One line saying why a task failed (no_log results are already censored by Ansible)."""
    if not isinstance(res, dict):
        return str(res)
    if "censored" in res:
        return res["censored"]
    if isinstance(res.get("results"), list) and res.get("msg") == "One or more items failed":
        failed = [result_message(item) for item in res["results"] if isinstance(item, dict) and item.get("failed")]
        if failed:
            return "; ".join(failed)
    keys = ("msg", "stderr", "reason", "module_stderr", "stdout")
    if res.get("msg") == "non-zero return code" and res.get("stderr"):
        keys = keys[1:]  # a command's own error says more
    for key in keys:
        value = res.get(key)
        if value:
            text = value if isinstance(value, str) else json.dumps(value)
            return text.strip().splitlines()[0] if text.strip() else text
    return "failed"


def _text(value):
    return value if isinstance(value, str) else json.dumps(value, indent=1, sort_keys=True) + "\n"


def result_diffs(res):
    """(header, before, after) of each diff a changed result carries (its loop
    items' too); a ``prepared`` diff comes as (header, None, text). Only
    check runs ask for diffs (ansible-playbook --diff) and a few modules
    return one always; no_log results carry none."""
    out = []
    items = [res] + [r for r in res.get("results") or () if isinstance(r, dict) and r.get("changed")]
    for item in items:
        diff = item.get("diff")
        for d in diff if isinstance(diff, list) else [diff]:
            if not isinstance(d, dict):
                continue
            header = d.get("after_header") or d.get("before_header") or ""
            if isinstance(d.get("prepared"), str):
                out.append((header, None, d["prepared"]))
            elif "before" in d or "after" in d:
                out.append((header, _text(d.get("before", "")), _text(d.get("after", ""))))
    return out


class RunState(object):
    """Everything the views show, folded from runner events (live or saved)."""

    def __init__(self, stage):
        self.stage = stage
        self.hosts = {}
        self.play = ""
        self.task = ""
        self.started = None
        self.ended = None
        self.failures = []     # (host, task, message, unreachable)
        self.stats = None
        self.diffs = []        # (host, task, header, before, after): the diffs of changed results

    def host(self, name):
        h = self.hosts.get(name)
        if h is None:
            h = self.hosts[name] = HostState(name)
        return h

    def feed(self, event):
        """Fold one event in; return a (kind, host, task, message) for results worth a line."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        now = _ts(event)
        if self.started is None:
            self.started = now
        self.ended = now
        if kind == "playbook_on_play_start":
            self.play = data.get("play", "")
        elif kind == "playbook_on_task_start":
            self.task = data.get("task", "")
        elif kind == "runner_on_start":
            h = self.host(data.get("host", "?"))
            h.task = data.get("task", "")
            if h.started is None:
                h.started = now
        elif kind in RESULT_EVENTS:
            h = self.host(data.get("host", "?"))
            if h.started is None:
                h.started = now
            h.ended = now
            task = data.get("task", "")
            res = data.get("res") or {}
            result = RESULT_EVENTS[kind]
            if result == "failed" and data.get("ignore_errors"):
                h.ignored += 1
                return None
            if result == "ok" and isinstance(res, dict) and res.get("changed"):
                h.changed += 1
                self.diffs.extend((h.name, task) + d for d in result_diffs(res))
                return ("changed", h.name, task, "")
            setattr(h, result, getattr(h, result) + 1)
            if result in ("failed", "unreachable"):
                msg = result_message(res)
                self.failures.append((h.name, task, msg, result == "unreachable"))
                return (result, h.name, task, msg)
        elif kind == "playbook_on_stats":
            self.stats = {k: data.get(k) or {} for k in ("ok", "changed", "failures", "dark", "skipped",
                                                         "ignored", "rescued", "processed")}
        return None

    def exit_code(self, rc, check):
        """0 success, 1 failure, 2 changes pending (check), 3 bad input, 4 unreachable hosts."""
        if any(h.unreachable for h in self.hosts.values()):
            return UNREACHABLE
        if any(h.failed for h in self.hosts.values()):
            return FAILED
        if rc in (4, 5) and not self.hosts:
            # ansible-playbook: 4 = a file (inventory, playbook) failed to parse, 5 = bad options.
            return BAD_INPUT
        if rc:
            return FAILED
        if check and any(h.changed for h in self.hosts.values()):
            return CHANGES
        return OK


def load_events(run_folder):
    events = []
    folder = Path(run_folder) / "job_events"
    if folder.is_dir():
        for f in folder.glob("*.json"):
            if f.name.endswith("-partial.json"):
                continue
            with open(f) as fh:
                events.append(json.load(fh))
    events.sort(key=lambda e: e.get("counter", 0))
    return events


def state_of(run_folder):
    meta = read_meta(run_folder)
    state = RunState(meta.get("stage", "?"))
    for event in load_events(run_folder):
        state.feed(event)
    return state


def read_meta(run_folder):
    path = Path(run_folder) / "rackboot.json"
    if path.is_file():
        with open(path) as f:
            return json.load(f)
    return {"id": Path(run_folder).name}


def list_runs(inventory):
    folder = runs_dir(inventory)
    if not folder.is_dir():
        return []
    return [read_meta(d) for d in sorted(folder.iterdir()) if (d / "rackboot.json").is_file()]


def find_run(inventory, run_id):
    """A run folder by id (or a unique prefix of it)."""
    folder = runs_dir(inventory)
    exact = folder / run_id
    if (exact / "rackboot.json").is_file():
        return exact
    matches = [d for d in sorted(folder.iterdir()) if d.name.startswith(run_id)] if folder.is_dir() else []
    return matches[0] if len(matches) == 1 else None


def _scrub_command_file(run_folder):
    """ansible-runner saves the whole process environment in ``command``: keep
    only the names, and values of settings that cannot hold a secret."""
    path = Path(run_folder) / "command"
    if not path.is_file():
        return
    with open(path) as f:
        data = json.load(f)
    env = data.get("env") or {}
    keep = ("ANSIBLE_", "RUNNER_", "PATH", "PYTHONPATH", "LANG", "LC_")
    data["env"] = {k: (v if k.startswith(keep) and not _SECRET_NAME.search(k) else "<not recorded>")
                   for k, v in env.items()}
    with open(path, "w") as f:
        json.dump(data, f)
    os.chmod(path, 0o600)


def _write_event(folder, event):
    """Save one event as ansible-runner does (``job_events/<counter>-<uuid>.json``,
    0600, renamed into place), with one ``json.dumps``: runner's ``json.dump``
    streams it through the pure-Python encoder, twice the CPU per event."""
    name = "%s-%s.json" % (event["counter"], event["uuid"])
    tmp = folder / (name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(event))
    os.replace(tmp, folder / name)


def run_playbook(inventory, stage, playbook_names, view, check=False, diff=False, limit=None, vault_args=(),
                 extra_args=()):
    """Run one stage's playbooks through ansible-runner; return (exit code, state, run folder)."""
    import ansible_runner

    inventory = Path(inventory).resolve()
    folder = runs_dir(inventory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_id = new_run_id(stage)
    args = list(vault_args) + list(extra_args)
    if check:
        args.append("--check")
    if check or diff:
        args.append("--diff")
    if limit:
        args += ["--limit", limit]
    # ansible-playbook takes several playbooks; runner passes the first.
    books = [str(playbook(p)) for p in playbook_names]
    args += books[1:]
    meta = {"id": run_id, "stage": stage, "inventory": str(inventory), "playbooks": playbook_names,
            "check": check, "limit": limit, "started": datetime.datetime.now().isoformat(timespec="seconds")}
    state = RunState(stage)
    env = ansible_env()
    ours = {k: v for k, v in env.items() if os.environ.get(k) != v}
    view.start(state, meta)
    events_dir = folder / run_id / "job_events"
    with tempfile.TemporaryDirectory(prefix="rackboot-") as private:
        def handler(event):
            view.event(state, event, state.feed(event))
            _write_event(events_dir, event)
            return False  # written: runner would not write it again

        try:
            runner = ansible_runner.run(
                private_data_dir=private, artifact_dir=str(folder), ident=run_id, rotate_artifacts=0,
                playbook=books[0], inventory=str(inventory), cmdline=shlex.join(args), envvars=ours,
                event_handler=handler, quiet=True)
        except BaseException:
            view.abort()
            raise
    rc = runner.rc
    run_folder = folder / run_id
    _scrub_command_file(run_folder)
    code = state.exit_code(rc, check)
    meta.update({"finished": datetime.datetime.now().isoformat(timespec="seconds"), "ansible_rc": rc,
                 "exit": code, "status": runner.status})
    if code not in (OK, CHANGES) and not state.failures and (run_folder / "stdout").is_file():
        # Ansible stopped before any task result (a playbook or vault error): its own words.
        lines = (run_folder / "stdout").read_text(errors="replace").strip().splitlines()
        meta["error"] = "\n".join(line for line in lines[-15:] if line.strip())
    with open(run_folder / "rackboot.json", "w") as f:
        json.dump(meta, f, indent=1)
    view.finish(state, meta, run_folder)
    return code, state, run_folder
