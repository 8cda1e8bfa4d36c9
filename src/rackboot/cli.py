"""The `rackboot` command (docs/cli.md): a front door on the playbooks.

It adds no logic the playbooks lack: every command runs a playbook of the
collection through ansible-runner (or the inventory plugin's own model, for
`validate`), shows its progress and keeps its record.
"""
import difflib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.text import Text

from rackboot import __version__
from rackboot.collection import ansible_env, collection_root
from rackboot.runs import BAD_INPUT, CHANGES, FAILED, OK, UNREACHABLE, find_run, list_runs, run_playbook, state_of
from rackboot.validate import problems as spec_problems
from rackboot.view import LiveView, PlainView, print_summary

# Stage -> playbooks, in the order `apply` runs them (site.yml is all of them).
STAGES = {
    "routers": ["routers.yml"],
    "network": ["node_network.yml"],
    "nodes": ["talos.yml", "kubeadm.yml"],
    "cluster": ["network_stack.yml"],
}
STAGE_CHOICES = list(STAGES) + ["stack"]
# The example inventories `init --from` copies the spec of (inventories/NAME/cluster.yml;
# galaxy.yml and pyproject.toml ship each one): the reference cluster, the lab,
# and one per network design of docs/network-stack.md.
TEMPLATES = ("example", "lab", "cilium", "no-cni", "tenant-vpcs")
GITIGNORE = """\
# Never committed: long-lived secrets, rendered artifacts (kubeconfig,
# machine configs with keys), run records and vault password files.
secrets/
artifacts/
runs/
vault-password*.txt
*.vault-pass
"""


def _console(stream=None):
    stream = stream or sys.stdout
    # Logs (CI, AWX, pipes) are not 80 columns wide: do not fold tables there.
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 160
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


def _err():
    return _console(sys.stderr)


def _inventory_arg(f):
    return click.argument("inventory", type=click.Path(exists=True, path_type=Path))(f)


def _vault_options(f):
    f = click.option("--ask-vault-password", is_flag=True, help="Prompt for the vault password.")(f)
    f = click.option("--vault-password-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="File holding the vault password (default: INVENTORY/vault-password.txt when it exists).")(f)
    return f


class _Vault(object):
    """The --vault-id arguments for ansible-playbook. A prompted password goes
    to a 0600 file outside the run record, removed afterwards: it never
    reaches the command line, the environment or runner's env/ files."""

    def __init__(self, inventory, password_file, ask):
        self.args = []
        self._tmp = None
        label = _label(inventory)
        if ask:
            password = click.prompt("Vault password", hide_input=True, err=True)
            fd, self._tmp = tempfile.mkstemp(prefix="rackboot-vault-")
            with os.fdopen(fd, "w") as f:
                f.write(password)
            password_file = Path(self._tmp)
        elif password_file is None:
            default = _inventory_dir(inventory) / "vault-password.txt"
            password_file = default if default.is_file() else None
        if password_file is not None:
            self.args = ["--vault-id", "%s@%s" % (label, Path(password_file).resolve())]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self._tmp:
            os.unlink(self._tmp)


def _inventory_dir(inventory):
    inventory = Path(inventory)
    return (inventory.parent if inventory.is_file() else inventory).resolve()


def _label(inventory):
    return re.sub(r"[^A-Za-z0-9_-]", "_", _inventory_dir(inventory).name) or "rackboot"


def _view(console):
    return LiveView(console) if console.is_terminal else PlainView(console)


def _preflight(inventory):
    """The spec's problems stop a run before any playbook starts (exit 3)."""
    found = spec_problems(inventory)
    if found:
        _print_problems(_err(), found)
        sys.exit(BAD_INPUT)


def _print_problems(console, found):
    by_file = {}
    for p in found:
        by_file.setdefault(p["file"], {}).setdefault(p["item"], []).append(p)
    console.print(Text("%d problem%s" % (len(found), "" if len(found) == 1 else "s"), style="bold red"))
    for file, items in by_file.items():
        console.print(Text(file, style="bold"))
        for item, probs in items.items():
            console.print(Text("  " + item, style="cyan"))
            for p in probs:
                where = "%s:%s" % (file, p["line"]) if p["line"] else file
                console.print(Text.assemble("    ", (where, "dim"), ": ", (p["path"] or "(file)", "yellow"), ": ",
                                            p["message"]))


def _worst(codes):
    for code in (BAD_INPUT, UNREACHABLE, FAILED, CHANGES):
        if code in codes:
            return code
    return OK


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rackboot")
def cli():
    """Bare-metal Kubernetes clusters and their BGP routers from one cluster spec."""


@cli.command()
@click.argument("name", type=click.Path(path_type=Path))
@click.option("--from", "template", type=click.Choice(TEMPLATES), default="example", show_default=True,
              help="The spec to start from.")
@_vault_options
def init(name, template, vault_password_file, ask_vault_password):
    """Create the inventory folder NAME from a template.

    It holds the spec (cluster.yml, cluster name = the folder's name), a
    vault-encrypted group_vars/all/vault.yml with a new random BGP password,
    an empty secrets/ (0700) and a .gitignore. Nothing else is copied: no
    secrets, artifacts, runs or vault password files of the template.
    """
    if name.exists() and any(name.iterdir()):
        _err().print("%s already exists and is not empty" % name)
        sys.exit(BAD_INPUT)
    if vault_password_file is not None:
        password = vault_password_file.read_text().strip()
    else:
        password = click.prompt("New vault password for %s" % name, hide_input=True, confirmation_prompt=True,
                                err=True)
    if not password:
        _err().print("the vault password must not be empty")
        sys.exit(BAD_INPUT)
    from ansible.parsing.vault import VaultLib, VaultSecret

    label = re.sub(r"[^A-Za-z0-9_-]", "_", name.resolve().name)
    spec = (collection_root() / "inventories" / template / "cluster.yml").read_text()
    # The new cluster is named after its folder (first `name:` under `cluster:`).
    spec = re.sub(r"(?m)^(cluster:\n(?:[ \t]*#.*\n)*[ \t]+name:[ \t]*)\S+", lambda m: m.group(1) + label, spec,
                  count=1)
    vault = VaultLib([(label, VaultSecret(password.encode()))])
    token = vault.encrypt(secrets.token_urlsafe(24), vault_id=label).decode()
    name.mkdir(mode=0o755, parents=True, exist_ok=True)
    (name / "cluster.yml").write_text(spec)
    (name / ".gitignore").write_text(GITIGNORE)
    gv = name / "group_vars" / "all"
    gv.mkdir(mode=0o700, parents=True)
    os.chmod(name / "group_vars", 0o700)
    vault_file = gv / "vault.yml"
    fd = os.open(vault_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("---\n# The MD5 password of every BGP session (routers and MetalLB speakers), generated by\n"
                "# rackboot init. Show it: ansible-vault view --vault-id %s@prompt ...\n" % label)
        f.write("rackboot_bgp_password: !vault |\n")
        f.write("".join("  %s\n" % line for line in token.splitlines()))
    (name / "secrets").mkdir(mode=0o700)
    _console().print("created %s from the %s template: edit %s, then `rackboot validate %s`"
                     % (name, template, name / "cluster.yml", name))


@cli.command()
@_inventory_arg
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list of {file, line, path, message}.")
def validate(inventory, as_json):
    """Check the cluster spec(s) of INVENTORY (the inventory plugin's checks).

    Exit 0 when valid, 3 when not.
    """
    found = spec_problems(inventory)
    if as_json:
        click.echo(json.dumps([{k: p[k] for k in ("file", "line", "path", "message")} for p in found], indent=1))
    elif found:
        _print_problems(_console(), found)
    else:
        _console().print("%s: valid" % inventory)
    sys.exit(BAD_INPUT if found else OK)


def _artifacts_dir(inventory, vault):
    """rackboot_artifacts_dir as the inventory resolves it (group_vars may override the default)."""
    res = subprocess.run(["ansible-inventory", "-i", str(inventory), "--list", "--export"] + vault.args,
                         env=ansible_env(), capture_output=True, text=True)
    if res.returncode:
        _err().print(res.stderr.strip())
        sys.exit(BAD_INPUT)
    value = json.loads(res.stdout)["all"]["vars"]["rackboot_artifacts_dir"]
    return Path(value["__ansible_unsafe"] if isinstance(value, dict) else value)


def _read_tree(folder):
    out = {}
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out[str(path.relative_to(folder))] = path
    return out


def _is_secret(path):
    # Render mode writes files with keys or credentials 0600 (kubeconfig, talosconfig, machine configs).
    return path.stat().st_mode & 0o077 == 0


def _print_lines(console, lines):
    """Diff lines, + green and - red."""
    for line in lines:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else None
        console.print(Text(line.rstrip("\n"), style=style), soft_wrap=True)


def _print_diff(console, a, b, name_a, name_b):
    _print_lines(console, difflib.unified_diff(a.splitlines(True), b.splitlines(True), name_a, name_b))


def _diff(old_dir, new_dir, console, module_diffs):
    """Print what differs between two renders. A 0600 file (keys, credentials)
    shows only the diff its module returned: render runs without --diff, so
    only modules that always return one do (rackboot's own, which leave keys
    and passwords out)."""
    old, new = _read_tree(old_dir), _read_tree(new_dir)
    changed = 0
    for rel in sorted(set(old) | set(new)):
        a = old[rel].read_bytes() if rel in old else b""
        b = new[rel].read_bytes() if rel in new else b""
        if a == b:
            continue
        changed += 1
        if (rel in old and _is_secret(old[rel])) or (rel in new and _is_secret(new[rel])):
            console.print("~ %s (0600: contents not shown)" % rel, style="yellow")
            for _host, _task, header, before, after in module_diffs:
                if header == str(new_dir / rel) and before is not None:
                    _print_diff(console, before, after, "a/" + rel, "b/" + rel)
            continue
        _print_diff(console, a.decode(errors="replace"), b.decode(errors="replace"),
                    "a/" + rel if rel in old else "/dev/null", "b/" + rel if rel in new else "/dev/null")
    return changed


@cli.command()
@_inventory_arg
@click.option("--diff", "show_diff", is_flag=True,
              help="Render into a scratch folder, show the unified diff against the previous render "
                   "(which stays as it is), exit 2 when something would change.")
@click.option("--artifacts", type=click.Path(file_okay=False, path_type=Path),
              help="Write the artifacts here instead of the inventory's rackboot_artifacts_dir.")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="VARS",
              help="Extra variables, as for ansible-playbook -e (KEY=VALUE, or @FILE).")
@_vault_options
def render(inventory, show_diff, artifacts, extra_vars, vault_password_file, ask_vault_password):
    """Render every artifact of INVENTORY (playbooks/render.yml), touching no host."""
    _preflight(inventory)
    console = _console()
    with _Vault(inventory, vault_password_file, ask_vault_password) as vault:
        target = artifacts.resolve() if artifacts else None
        scratch = None
        if show_diff:
            previous = target or _artifacts_dir(inventory, vault)
            scratch = tempfile.mkdtemp(prefix="rackboot-render-")
            target = Path(scratch) / previous.name
            # Render over a copy of the previous render, as a real render writes
            # over it: what a module keeps (the talosconfig's client certificate
            # while it is valid) is kept, so an unchanged spec shows no change.
            if previous.is_dir():
                shutil.copytree(previous, target, symlinks=True)
        extra = [arg for ev in extra_vars for arg in ("-e", ev)]
        extra += ["-e", "rackboot_artifacts_dir=%s" % target] if target else []
        try:
            code, state, _ = run_playbook(inventory, "render", ["render.yml"], _view(console),
                                          vault_args=vault.args, extra_args=extra)
            print_summary(console, [state])
            if code == OK and show_diff:
                changed = _diff(previous, target, console, state.diffs)
                console.print("%d file%s would change in %s" % (changed, "" if changed == 1 else "s", previous))
                code = CHANGES if changed else OK
        finally:
            if scratch:
                shutil.rmtree(scratch, ignore_errors=True)
    sys.exit(code)


def _print_changes(console, states):
    """What a check run would change: each changed result's diff, by host and task."""
    rows = [d for s in states for d in s.diffs]
    if not rows:
        return
    console.print(Text("Changes", style="bold"))
    for host, task, header, before, after in rows:
        console.print(Text.assemble("~ ", (host, "bold"), ": ", task, (" (%s)" % header) if header else ""),
                      style="yellow")
        if before is None:
            _print_lines(console, after.splitlines())
        else:
            _print_diff(console, before, after, "before", "after")


def _run_stages(inventory, stages, check, limit, vault_password_file, ask_vault_password):
    _preflight(inventory)
    console = _console()
    states, codes = [], []
    with _Vault(inventory, vault_password_file, ask_vault_password) as vault:
        for stage, books in stages:
            code, state, _ = run_playbook(inventory, stage, books, _view(console), check=check, limit=limit,
                                          vault_args=vault.args)
            states.append(state)
            codes.append(code)
            if code not in (OK, CHANGES):
                break
    if check:
        _print_changes(console, states)
    print_summary(console, states)
    sys.exit(_worst(codes))


@cli.command()
@_inventory_arg
@click.option("--stage", "stages", multiple=True, type=click.Choice(STAGE_CHOICES),
              help="Run only these stages (repeatable; default: all, in order). "
                   "stack = playbooks/site.yml in one run.")
@click.option("--check", is_flag=True, help="Change nothing; show what would change (--check --diff); exit 2 if anything would.")
@click.option("--limit", help="Only these hosts or groups (ansible-playbook --limit).")
@_vault_options
def apply(inventory, stages, check, limit, vault_password_file, ask_vault_password):
    """Apply INVENTORY: routers, host network, nodes, cluster network stack."""
    chosen = [s for s in STAGE_CHOICES if s in stages] if stages else list(STAGES)
    plan = [(s, ["site.yml"] if s == "stack" else STAGES[s]) for s in chosen]
    _run_stages(inventory, plan, check, limit, vault_password_file, ask_vault_password)


@cli.command()
@_inventory_arg
@click.option("--limit", help="Only these hosts or groups.")
@_vault_options
def verify(inventory, limit, vault_password_file, ask_vault_password):
    """Read-only checks of what is deployed (playbooks/verify.yml)."""
    _run_stages(inventory, [("verify", ["verify.yml"])], False, limit, vault_password_file, ask_vault_password)


@cli.command()
@click.argument("args", nargs=-1, required=True, metavar="INVENTORY | show ID")
@click.option("-i", "--inventory", "inventory_opt", type=click.Path(exists=True, path_type=Path),
              help="With `show`: the inventory whose runs/ holds ID (default: ID is a path, or found under ./ "
                   "and ./inventories/*).")
@click.option("--json", "as_json", is_flag=True, help="List the runs as JSON.")
def runs(args, inventory_opt, as_json):
    """List the runs of INVENTORY, or print the summary of run ID again."""
    console = _console()
    if args[0] == "show" and len(args) == 2:
        run_folder = _locate_run(args[1], inventory_opt)
        if run_folder is None:
            _err().print("no run %s (rackboot runs INVENTORY lists them)" % args[1])
            sys.exit(BAD_INPUT)
        state = state_of(run_folder)
        print_summary(console, [state])
        sys.exit(OK)
    if len(args) != 1 or not Path(args[0]).exists():
        _err().print("usage: rackboot runs INVENTORY | rackboot runs show ID")
        sys.exit(BAD_INPUT)
    found = list_runs(args[0])
    if as_json:
        click.echo(json.dumps(found, indent=1))
        sys.exit(OK)
    from rich.table import Table

    table = Table(title="Runs of %s" % args[0], title_justify="left")
    for col in ("id", "stage", "check", "limit", "started", "finished", "exit"):
        table.add_column(col)
    for meta in found:
        table.add_row(meta["id"], meta.get("stage", ""), "yes" if meta.get("check") else "", meta.get("limit") or "",
                      meta.get("started", ""), meta.get("finished", ""), str(meta.get("exit", "")))
    console.print(table)


def _locate_run(run_id, inventory):
    path = Path(run_id)
    if (path / "rackboot.json").is_file():
        return path
    candidates = [inventory] if inventory else [Path(".")] + sorted(Path("inventories").glob("*"))
    for inv in candidates:
        found = find_run(inv, run_id)
        if found:
            return found
    return None


# The local lab (rackboot.lab): `rackboot lab up|status|down`.
from rackboot.lab.command import lab  # noqa: E402

cli.add_command(lab)


def main():
    cli()
