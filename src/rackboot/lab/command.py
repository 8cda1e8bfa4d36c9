"""`rackboot lab up|status|down` (docs/lab.md)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from .lab import LabError
from .rack import SPEAKERS, RackLab, ansible_lab_env, containers_env, load_spec

DEFAULT_SPEC = "inventories/lab"
# site.yml's order, the stages this machine can run for real.
STAGES = [
    ("routers", ["routers.yml"], []),
    ("network", ["node_network.yml"], []),
    ("node-os", ["kubeadm.yml"], ["--tags", "node_os"]),
]
NOT_APPLIED = (
    "kubeadm init/join and kube-vip: rendered and validated above, not applied (no Kubernetes packages, "
    "images or API server on this machine: the VMs have no internet)",
    "Helm installs (Cilium/Kube-OVN, Multus, MetalLB, tenant isolation): rendered, not applied (no cluster)",
)


def _spec_option(f):
    from rackboot.collection import collection_root

    default = Path(DEFAULT_SPEC) if Path(DEFAULT_SPEC).is_dir() else collection_root() / DEFAULT_SPEC
    return click.option("--spec", "spec_dir", type=click.Path(exists=True, path_type=Path),
                        default=default if default.exists() else None, show_default=DEFAULT_SPEC,
                        help="The cluster spec (inventory folder) the lab is built from.")(f)


def _open(spec_dir):
    from rackboot.cli import _Vault

    if spec_dir is None:
        raise click.UsageError("no lab spec: give --spec (e.g. a folder made with `rackboot init NAME --template lab`)")
    vault = _Vault(spec_dir, None, False)
    return RackLab(load_spec(spec_dir, vault.args)), vault


def _converge(rl, vault, console, stages=STAGES):
    """Run the stages through the CLI's ansible-runner path; return [(stage, changed, failed, seconds)]."""
    from rackboot.cli import _view
    from rackboot.runs import CHANGES, OK, run_playbook

    out = []
    for stage, books, extra in stages:
        t0 = time.monotonic()
        code, state, folder = run_playbook(rl.spec.inventory, "lab-" + stage, books, _view(console),
                                           vault_args=vault.args, extra_args=["-i", str(rl.overlay), *extra])
        changed = sum(h.changed for h in state.hosts.values())
        out.append((stage, changed, code not in (OK, CHANGES), time.monotonic() - t0, folder))
        if code not in (OK, CHANGES):
            raise click.ClickException(f"lab: stage {stage} failed (exit {code}); run record {folder}")
    return out


def _ping_round(rl, vault) -> float:
    from rackboot.collection import ansible_env

    t0 = time.monotonic()
    subprocess.run(["ansible", "-i", str(rl.spec.inventory), "-i", str(rl.overlay), *vault.args, "all", "-m",
                    "ansible.builtin.ping", "-o"], env=ansible_env(), capture_output=True, check=True)
    return time.monotonic() - t0


def _print_links(console, rows):
    from .figures import link_ok

    t = Table(title="Node links vs the spec (ip -d link, /proc/net/bonding, the switch's LACP view)",
              title_justify="left")
    for col in ("node", "bond", "members", "LACP", "VLANs", "jumbo (DF ping)", "vs model"):
        t.add_column(col)
    for r in rows:
        lacp = "-"
        if r["lacp"]:
            lacp = "%d ports, one aggregator: %s; switch: %s" % (
                r["lacp"]["active_ports"] or 0, r["lacp"]["one_aggregator"], " ".join(r["lacp"]["switch_status"]))
        vlans = ", ".join("%s id %s mtu %s" % (v["name"], v["id"], v["mtu"]) for v in r["vlans"])
        jumbo = ", ".join("%s %d -> %s %s" % (j["network"], j["mtu"], j["to"], "ok" if j["ok"] else "LOST")
                          for j in r["jumbo"])
        t.add_row(r["node"], "%s %s mtu %s" % (r["bond"], r["mode"], r["mtu"]), " ".join(r["members"]), lacp, vlans,
                  jumbo, "ok" if link_ok(r) else Text("MISMATCH", style="bold red"))
    console.print(t)


def _print_routers(console, rows):
    from .figures import router_ok

    t = Table(title="BGP on the routers (vtysh / birdc, ss for TCP-MD5, the kernel's route)", title_justify="left")
    for col in ("router", "node sessions", "route", "nexthops", "vs model"):
        t.add_column(col)
    for r in rows:
        s = "; ".join("%s %s md5=%s bfd=%s" % (n, v["state"], "yes" if v["md5"] else "no", v["bfd"])
                      for n, v in sorted(r["sessions"].items()))
        t.add_row("%s (%s)" % (r["router"], r["platform"]), s, r["route"], " ".join(r["nexthops"]) or "-",
                  "ok" if router_ok(r) else Text("MISMATCH", style="bold red"))
    console.print(t)


def _figures(rl, console, as_json=None):
    from .figures import node_links, routers, wait_converged

    # Links first: their ssh logins load the TCG guests (and starve their BGP speakers'
    # BFD for a moment); the sessions are then read once they have settled.
    links = node_links(rl)
    settle = wait_converged(rl)
    rtrs = routers(rl)
    _print_links(console, links)
    _print_routers(console, rtrs)
    if settle < 0:
        console.print(Text("BGP did not converge within 180 s", style="bold red"))
    return {"links": links, "routers": rtrs, "bgp_settle_s": round(settle, 1)}


def _write_figures(rl, figures):
    path = rl.lab.dir / "figures.json"
    path.write_text(json.dumps(figures, indent=1, default=str) + "\n")
    return path


@click.group()
def lab():
    """The local lab: the spec's rack as QEMU VMs and router containers on this machine."""


@lab.command()
@_spec_option
@click.option("--cut", "cut_node", default=None, help="Node whose links to cut for the BFD figure (default: the last).")
def up(spec_dir, cut_node):
    """Build (cached) and start the lab, then run routers, host network and node OS on it."""
    from rackboot.cli import _console

    console = _console()
    with containers_env(), ansible_lab_env():
        rl, vault = _open(spec_dir)
        t0 = time.monotonic()
        fresh = not rl.running()
        try:
            if fresh:
                rl.create()
            else:
                rl.write_overlay()
            t_hosts = time.monotonic() - t0
            console.print(Text("lab %s: hosts %s in %.0f s%s" % (
                rl.lab.name, "started" if fresh else "already running", t_hosts,
                ", the VMs boot while the routers are configured" if fresh else ""), style="bold"))
            first = _converge(rl, vault, console, STAGES[:1])
            # The render contacts no host: it runs while the VMs still boot.
            render = _converge(rl, vault, console, [("render", ["render.yml"],
                                                     ["-e", "rackboot_artifacts_dir=%s" % (rl.lab.dir / "artifacts")])])
            t_boot = rl.wait_boot()
            if fresh:
                console.print(Text("lab %s: VMs answer ssh (%.0f s more after the routers stage and the render)"
                                   % (rl.lab.name, t_boot), style="bold"))
            first += _converge(rl, vault, console, STAGES[1:] + [("metallb-stand-in", [str(SPEAKERS)], [])])
            figures = {"fresh": fresh, "hosts_s": round(t_hosts, 1), "boot_wait_s": round(t_boot, 1),
                       "converge": [{"stage": s, "changed": c, "seconds": round(d, 1)} for s, c, _f, d, _ in first]}
            figures.update(_figures(rl, console))
            if fresh:
                node = cut_node or list(rl.spec.nodes)[-1]
                from .figures import failover

                figures["failover"] = failover(rl, node)
                again = _converge(rl, vault, console)
                figures["second_converge"] = [{"stage": s, "changed": c, "seconds": round(d, 1)}
                                              for s, c, _f, d, _ in again]
                figures["ping_round_s"] = round(_ping_round(rl, vault), 1)
        except LabError as exc:
            raise click.ClickException(str(exc))
        figures["up_s"] = round(time.monotonic() - t0, 1)
        path = _write_figures(rl, figures)
        _print_tail(console, rl, figures, render, path)
        wrong = _mismatches(figures)
        if wrong:
            raise click.ClickException("the lab does not match the spec: " + "; ".join(wrong))


def _mismatches(f) -> list[str]:
    """What `lab up` measured that differs from the spec's model (empty: all of it holds)."""
    from .figures import link_ok, router_ok

    out = ["links of %s" % r["node"] for r in f["links"] if not link_ok(r)]
    out += ["BGP on %s" % r["router"] for r in f["routers"] if not router_ok(r)]
    if "failover" in f:
        out += ["%s never dropped %s" % (r, f["failover"]["node"])
                for r, secs in f["failover"]["dropped_after_s"].items() if secs is None]
        out += ["second converge changed %s" % c["stage"] for c in f["second_converge"] if c["changed"]]
    return out


def _print_tail(console, rl, f, render, path):
    console.print(Text("Converge", style="bold"))
    for c in f["converge"]:
        console.print("  %-18s %3d changed  %6.1f s" % (c["stage"], c["changed"], c["seconds"]))
    if "failover" in f:
        fo = f["failover"]
        console.print(Text("Link cut (every fabric link of %s, carrier lost on both ends)" % fo["node"], style="bold"))
        for router, secs in fo["dropped_after_s"].items():
            console.print("  %-10s dropped %s from the route after %s" % (
                router, fo["node"], "%.2f s" % secs if secs is not None else "NEVER (30 s)"))
        console.print("  links restored: every nexthop back after %.1f s" % fo["back_after_s"])
        changed = sum(c["changed"] for c in f["second_converge"])
        secs = sum(c["seconds"] for c in f["second_converge"])
        console.print(Text("Second converge: %d changed in %.1f s (a bare `ansible -m ping` round over the same "
                           "hosts: %.1f s)" % (changed, secs, f["ping_round_s"]), style="bold"))
    console.print(Text("Not applied here", style="bold"))
    console.print("  %s: rendered and validated into %s" % (render[0][0], rl.lab.dir / "artifacts"))
    for line in NOT_APPLIED:
        console.print("  " + line)
    console.print("  MetalLB: a stand-in (FRR on each node, from rackboot_node.bgp) announces %s/32" % rl.spec.vip)
    console.print("  Kubernetes packages: not installed (lab overlay node_os_kubernetes_packages: [])")
    console.print(Text("lab up: %.0f s; figures in %s; `rackboot lab status`, `rackboot lab down`"
                       % (f["up_s"], path), style="bold"))


@lab.command()
@_spec_option
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
def status(spec_dir, as_json):
    """Hosts, BGP sessions and routes of the running lab."""
    from rackboot.cli import _console

    console = _console()
    with containers_env():
        rl, _vault = _open(spec_dir)
        if not rl.running():
            left = rl.leftovers()
            console.print("lab %s is not running%s" % (rl.lab.name, (" (leftovers: %s)" % ", ".join(left)) if left else ""))
            sys.exit(1)
        t = Table(title="Hosts of lab %s" % rl.lab.name, title_justify="left")
        for col in ("host", "kind", "reach", "state"):
            t.add_column(col)
        for v in rl.lab.status()["vms"]:
            t.add_row(v["name"], "QEMU VM", "ssh 127.0.0.1:%d" % v["port"], str(v.get("qemu_status", v["running"])))
        for r in rl.spec.routers:
            t.add_row(r, "container (%s)" % rl.spec.routers[r]["platform"], "podman %s" % rl.spec.container(r),
                      "running" if rl.spec.container(r) in rl.containers() else "missing")
        from .figures import node_links, routers

        if as_json:
            click.echo(json.dumps({"links": node_links(rl), "routers": routers(rl)}, indent=1))
            return
        console.print(t)
        _print_links(console, node_links(rl))
        _print_routers(console, routers(rl))


@lab.command()
@_spec_option
def down(spec_dir):
    """Remove every VM, container, switch, namespace and process of the lab."""
    with containers_env():
        rl, _vault = _open(spec_dir)
        found = rl.destroy(quiet=True)
        left = rl.leftovers()
        click.echo("lab %s: removed %s" % (rl.lab.name, ", ".join(found) if found else "nothing (no lab)"))
        if left:
            raise click.ClickException("left behind: " + ", ".join(left))
