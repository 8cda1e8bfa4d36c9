"""Command line of the rackboot test hosts (run from the repository root).

  python -m rackboot.lab image container|vm rackboot/SET:SUITE...
  python -m rackboot.lab image --for molecule/SCENARIO/molecule.yml
  python -m rackboot.lab lab create --molecule-file F [--instance-config F]
  python -m rackboot.lab lab destroy [--all]
  python -m rackboot.lab lab link VM ethN down|up [--mode qmp|tap]
  python -m rackboot.lab lab reset VM
  python -m rackboot.lab lab wait
  python -m rackboot.lab lab ssh VM -- CMD...
  python -m rackboot.lab lab lacp VM
  python -m rackboot.lab lab status|list
  python -m rackboot.lab scenarios [-s NAME|ROLE/NAME] [-r ROLE]

``lab`` commands act on ``--lab NAME`` or, inside a Molecule run, on the lab
of the current scenario (from MOLECULE_SCENARIO_DIRECTORY).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

import yaml

from . import images, scenarios
from .common import REPO_ROOT, log
from .lab import DEFAULT_IMAGE, Lab, LabError, lab_name_from_env, list_labs, parse_platforms, platforms_from_molecule_file, ssh_base_args


def image_refs_for(molecule_file: Path) -> tuple[str, list[str]]:
    """(kind, image refs) a scenario needs: podman driver → container, default → vm."""
    data = yaml.safe_load(molecule_file.read_text()) or {}
    platforms = data.get("platforms") or []
    kind = scenarios.kind_of(molecule_file)
    if kind == "containers":
        return "container", [p.get("image", "") for p in platforms if images.REF_RE.match(p.get("image", ""))]
    if kind == "vms":
        return "vm", [p.get("image", DEFAULT_IMAGE) for p in platforms]
    return "none", []


def _image(args: argparse.Namespace) -> int:
    if args.molecule_file:
        kind, refs = image_refs_for(Path(args.molecule_file))
        if not refs:
            log(f"{args.molecule_file}: no rackboot images to build")
            return 0
    else:
        if not args.refs or args.kind not in images.KINDS:
            raise images.ImageError("give KIND and image refs, or --for molecule.yml")
        kind, refs = args.kind, args.refs
    for path in images.ensure_refs(refs, kind):
        print(path)
    return 0


def _lab(args: argparse.Namespace) -> Lab:
    return Lab(args.lab or lab_name_from_env())


def _create(args: argparse.Namespace) -> int:
    lab = _lab(args)
    if args.molecule_file:
        platforms = platforms_from_molecule_file(Path(args.molecule_file))
    else:
        platforms = json.loads(args.platforms_json)
    vms = lab.create(parse_platforms(platforms, lab.name), boot_timeout=args.timeout)
    conf = lab.instance_config(vms)
    if args.instance_config:
        Path(args.instance_config).write_text(yaml.safe_dump(conf, sort_keys=False))
    print(json.dumps(conf, indent=2))
    return 0


def _destroy(args: argparse.Namespace) -> int:
    names = list_labs() if args.all else [_lab(args).name]
    for name in names:
        Lab(name).destroy()
    if args.instance_config:
        Path(args.instance_config).unlink(missing_ok=True)
    return 0


def _link(args: argparse.Namespace) -> int:
    _lab(args).set_link(args.vm, args.nic, args.state == "up", args.mode)
    return 0


def _reset(args: argparse.Namespace) -> int:
    _lab(args).reset(args.vm)
    return 0


def _wait(args: argparse.Namespace) -> int:
    lab = _lab(args)
    vms = [v for v in lab.load() if not args.vm or v.name in args.vm]
    lab.wait_ssh(vms, timeout=args.timeout)
    return 0


def _ssh(args: argparse.Namespace) -> int:
    vm = _lab(args).vm(args.vm)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    return subprocess.run([*ssh_base_args(images.ssh_key(), vm.port), *cmd], check=False).returncode


def _status(args: argparse.Namespace) -> int:
    print(json.dumps(_lab(args).status(), indent=2))
    return 0


def _lacp(args: argparse.Namespace) -> int:
    print(json.dumps(_lab(args).lacp(args.vm), indent=2))
    return 0


def _list(_args: argparse.Namespace) -> int:
    for name in list_labs():
        print(name)
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    found = scenarios.select(scenarios.discover(REPO_ROOT), args.scenario, args.role)
    if not found:
        raise LabError(f"no scenario matches (scenario={args.scenario!r}, role={args.role!r})")
    for s in found:
        print(f"{s.kind}\t{s.label}\t{s.name}\t{s.cwd}\t{s.molecule_file}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m rackboot.lab", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("image", help="build (or reuse) cached images")
    p.add_argument("kind", nargs="?", choices=images.KINDS)
    p.add_argument("refs", nargs="*", metavar="rackboot/SET:SUITE")
    p.add_argument("--for", dest="molecule_file", metavar="MOLECULE_YML", help="the images a scenario needs")
    p.set_defaults(func=_image)

    p = sub.add_parser("scenarios", help="list Molecule scenarios in run order (TSV)")
    p.add_argument("-s", "--scenario", help="NAME or ROLE/NAME")
    p.add_argument("-r", "--role", help="only this role's scenarios")
    p.set_defaults(func=_scenarios)

    lab = sub.add_parser("lab", help="VM labs (QEMU)").add_subparsers(dest="labcmd", required=True)

    def labparser(name: str, func, help_: str) -> argparse.ArgumentParser:
        p = lab.add_parser(name, help=help_)
        p.add_argument("--lab", help="lab name (default: from the Molecule scenario)")
        p.set_defaults(func=func)
        return p

    p = labparser("create", _create, "destroy leftovers, boot the VMs, wait for ssh")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--molecule-file", help="molecule.yml whose platforms to create")
    src.add_argument("--platforms-json", help="platforms as a JSON list")
    p.add_argument("--instance-config", help="write Molecule's instance_config.yml here")
    p.add_argument("--timeout", type=float, default=420, help="seconds to wait for ssh")
    p = labparser("destroy", _destroy, "kill VMs, delete namespace and state (idempotent)")
    p.add_argument("--all", action="store_true", help="every lab on this machine")
    p.add_argument("--instance-config", help="remove this instance_config.yml too")
    p = labparser("link", _link, "cut or restore a fabric link")
    p.add_argument("vm")
    p.add_argument("nic", metavar="ethN")
    p.add_argument("state", choices=("up", "down"))
    p.add_argument("--mode", choices=("qmp", "tap"), default="qmp", help="qmp: carrier loss; tap: silent loss")
    p = labparser("reset", _reset, "hard-reset (power-cycle) a VM")
    p.add_argument("vm")
    p = labparser("wait", _wait, "wait for ssh on the lab's VMs")
    p.add_argument("vm", nargs="*")
    p.add_argument("--timeout", type=float, default=420)
    p = labparser("ssh", _ssh, "run a command on a VM over ssh")
    p.add_argument("vm")
    p.add_argument("command", nargs=argparse.REMAINDER)
    p = labparser("lacp", _lacp, "the switch's view of a VM's LACP aggregation, as JSON")
    p.add_argument("vm")
    labparser("status", _status, "show the lab's VMs as JSON")
    labparser("list", _list, "list labs on this machine")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line and exit code 1."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (images.ImageError, LabError, RuntimeError, OSError) as exc:
        log(f"error: {exc}")
        return 1
