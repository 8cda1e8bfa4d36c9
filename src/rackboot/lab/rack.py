"""`rackboot lab up|status|down`: a small rack on this machine, from a cluster spec.

The spec's kubeadm nodes become QEMU VMs (lab.py) with two fabric NICs each on
two lab switches (Linux bridges ``fab-a``/``fab-b`` joined by a stack link,
jumbo frames on every port); a node whose computed bond is 802.3ad gets an
LACP partner (an Open vSwitch bond, ``lacp: true``). The routers become
systemd containers from the router image (FRR or BIRD, as their platform
says), with ``eth1`` an access port in the VLAN of the BGP network on an Open
vSwitch bridge (``rtrsw``) trunked into ``fab-a``: the host kernel has no
802.1Q, Open vSwitch's userspace datapath does. Everything lives in the lab's
network namespace ``rb-<lab>``; the management gateway of the spec sits on
``fab-a`` there.

The playbooks are the ones a rack gets, run through the CLI's ansible-runner
path with the spec's own inventory plus an overlay (``hosts.yml`` in the lab's
state folder) that only says how to reach the lab's hosts and what this
machine lacks (no Kubernetes packages).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import ipaddress
import json
import os
import re
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from rackboot.collection import plain

from . import images
from .common import log, run
from .lab import Lab, LabError, Vm, _in_netns_path, lab_priority, parse_platforms

ROUTER_IMAGE = "localhost/rackboot/router:bookworm"
NODE_IMAGE = "rackboot/lab-node:bookworm"
CONTAINERS_CONF = Path(__file__).with_name("containers.conf")
SPEAKERS = Path(__file__).parent / "playbooks" / "speakers.yml"
SEGMENTS = ("fab-a", "fab-b")
ROUTER_SWITCH = "rtrsw"
LABEL = "io.rackboot.lab"
# Three TCG guests boot in ~3 min on an idle 2-core machine, 7 at load 15.
BOOT_TIMEOUT = float(os.environ.get("RACKBOOT_LAB_BOOT_TIMEOUT", "1200"))

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17


@dataclass
class Spec:
    """What the lab needs from the spec's computed inventory."""

    inventory: Path
    cluster: str
    nodes: dict  # name -> rackboot_node
    routers: dict  # name -> rackboot_router
    groups: dict
    cluster_model: dict

    @property
    def lab_name(self) -> str:
        return re.sub(r"[^a-z0-9-]+", "-", f"rblab-{self.cluster}".lower())[:32].strip("-")

    def container(self, router: str) -> str:
        return f"{self.lab_name}-{router}"

    @property
    def vip(self) -> str:
        """The pool address the nodes' stand-in speakers announce (first host of the first BGP pool)."""
        cidr = self.cluster_model["load_balancer"]["bgp_pools"][0]["cidrs"][0]
        return str(next(ipaddress.ip_network(cidr).hosts()))

    def bond(self, node: str) -> dict:
        return next(link for link in self.nodes[node]["network"]["links"] if link["kind"] == "bond")

    def gateway(self) -> str | None:
        nets = self.cluster_model.get("networks") or []
        native = next((n for n in nets if not n.get("vlan")), None)
        return native and native.get("gateway") and f"{native['gateway']}/{ipaddress.ip_network(native['cidr']).prefixlen}"


def load_spec(inventory: Path, vault_args: list[str]) -> Spec:
    """The spec as the inventory plugin computes it (ansible-inventory --list)."""
    from rackboot.collection import ansible_env

    proc = subprocess.run(["ansible-inventory", "-i", str(inventory), *vault_args, "--list"], capture_output=True,
                          text=True, env=ansible_env(), check=False)
    if proc.returncode != 0:
        raise LabError(f"{inventory}: ansible-inventory failed:\n{proc.stderr[-2000:]}")
    data = plain(json.loads(proc.stdout))
    hv = data["_meta"]["hostvars"]
    groups = {g: v.get("hosts", []) for g, v in data.items() if g != "_meta"}
    if not groups.get("kubeadm"):
        raise LabError(f"{inventory}: the lab needs kubeadm nodes (cluster.distribution: kubeadm)")
    # rackboot_cluster is a template of this one string (docs/development.md)
    cluster = json.loads(hv[groups["kubeadm"][0]]["rackboot_cluster_json"])
    # The listing holds each node's own part and the routers' peers once
    # (docs/cluster-spec.md, "Inventory variables"): resolve them as plays do.
    from rackboot.collection import import_collection
    import_collection()
    from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import resolve_node
    nodes = {h: resolve_node(hv[h]["rackboot_node_spec"], cluster) for h in groups["kubeadm"]}
    routers = {h: dict(hv[h]["rackboot_router"], peers=json.loads(hv[h]["rackboot_router_peers_json"]))
               for h in groups.get("routers", [])}
    return Spec(inventory, cluster["name"], nodes, routers, groups, cluster)


# --------------------------------------------------------------------------
# the lab's hosts


def podman(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run(["podman", *args], check=check)


def _tx_checksum_off(pid: int, ifname: str) -> None:
    """ethtool -K IFNAME tx off inside the netns of ``pid``.

    Open vSwitch's userspace datapath reads frames with AF_PACKET and would
    forward a veth's partial (offloaded) checksums as they are.
    """
    with _in_netns_path(f"/proc/{pid}/ns/net"):
        value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
        ifr = struct.pack("16sP16x", ifname.encode(), ctypes.addressof(value))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            fcntl.ioctl(s.fileno(), SIOCETHTOOL, ifr)


class RackLab:
    """The lab of one spec: VMs, router containers, switches, inventory overlay."""

    def __init__(self, spec: Spec):
        self.spec = spec
        self.lab = Lab(spec.lab_name)
        self.overlay = self.lab.dir / "inventory"
        self._pids: dict[str, int] = {}

    # ---------------------------------------------------------------- state
    def running(self) -> bool:
        """True when every VM and router container of the lab is up."""
        try:
            vms = self.lab.load()
        except LabError:
            return False
        alive = all(Path(f"/proc/{v.pid}").exists() for v in vms)
        names = set(self.containers())
        return alive and all(self.spec.container(r) in names for r in self.spec.routers)

    def containers(self) -> list[str]:
        out = podman("ps", "--filter", f"label={LABEL}={self.lab.name}", "--format", "{{.Names}}", check=False).stdout
        return out.split()

    def platforms(self) -> list[dict]:
        out = []
        for name in self.spec.nodes:
            bond = self.spec.bond(name)
            if len(bond["members"]) != 2:
                raise LabError(f"{self.spec.inventory}: node {name}: the lab wires two fabric NICs, the bond has "
                               f"{bond['members']}")
            out.append({"name": name, "fabric": list(SEGMENTS), "memory": 768, "image": NODE_IMAGE,
                        "lacp": bond["mode"] == "802.3ad"})
        return out

    # --------------------------------------------------------------- create
    def create(self) -> None:
        """Build the images, start routers and VMs, wire the switches.

        Returns while the VMs still boot (under TCG that takes minutes): the
        routers stage runs meanwhile, ``wait_boot`` waits for their ssh.
        """
        t0 = time.monotonic()
        images.ensure_refs([ROUTER_IMAGE.removeprefix("localhost/")], "container")
        images.ensure_refs([NODE_IMAGE], "vm")
        log(f"lab {self.lab.name}: images ready in {time.monotonic() - t0:.1f} s")
        self.destroy(quiet=True)
        for router in self.spec.routers:
            podman("run", "-d", "--name", self.spec.container(router), "--hostname", router, "--systemd=always",
                   "--privileged", "--network", "none", "--label", f"{LABEL}={self.lab.name}", ROUTER_IMAGE,
                   "/sbin/init")
        vms = parse_platforms(self.platforms(), self.lab.name)
        try:
            self.lab.create(vms, wait=False)
            self._wire()
            self.write_overlay(vms)
        except BaseException:
            self.destroy(quiet=True)
            raise

    def wait_boot(self) -> float:
        """Wait until every VM answers ssh; return the seconds waited."""
        t0 = time.monotonic()
        self.lab.wait_ssh(timeout=BOOT_TIMEOUT)
        return time.monotonic() - t0

    def _ns(self, *args: str) -> None:
        run(["ip", "-n", self.lab.netns, *args])

    def _wire(self) -> None:
        ns = self.lab.netns
        # The two switches are one stack (like an MLAG pair), jumbo frames on every port.
        self._ns("link", "add", "stack-a", "type", "veth", "peer", "name", "stack-b")
        self._ns("link", "set", "stack-a", "master", SEGMENTS[0], "up")
        self._ns("link", "set", "stack-b", "master", SEGMENTS[1], "up")
        gw = self.spec.gateway()
        if gw:
            self._ns("addr", "replace", gw, "dev", SEGMENTS[0])
        # The routers: access ports in the BGP network's VLAN on an OVS bridge trunked into fab-a.
        vlan = str(next(iter(self.spec.routers.values()))["network"]["vlan"] or 0) if self.spec.routers else "0"
        if self.spec.routers:
            if not self.lab.switch_pids():  # no LACP partner in this lab: start the switch daemons for the routers
                self.lab._start_lacp_switch([])
            self.lab.ovs("add-br", ROUTER_SWITCH, "--", "set", "bridge", ROUTER_SWITCH, "datapath_type=netdev")
            self._ns("link", "add", "rtr-up", "type", "veth", "peer", "name", "rtr-sw")
            self._ns("link", "set", "rtr-sw", "master", SEGMENTS[0], "up")
            self._ns("link", "set", "rtr-up", "up")
            self.lab.ovs("add-port", ROUTER_SWITCH, "rtr-up")
        for i, (name, router) in enumerate(self.spec.routers.items()):
            pid = podman("inspect", "-f", "{{.State.Pid}}", self.spec.container(name)).stdout.strip()
            port = f"rtr{i}-p"
            self._ns("link", "add", port, "type", "veth", "peer", "name", "eth1", "netns", pid)
            self._ns("link", "set", port, "up")
            tag = [f"tag={vlan}"] if vlan != "0" else []
            self.lab.ovs("add-port", ROUTER_SWITCH, port, "--", "set", "port", port, *tag)
            nsenter = ["nsenter", "-t", pid, "-n"]
            run([*nsenter, "ip", "addr", "add", router["address_cidr"], "dev", "eth1"])
            run([*nsenter, "ip", "link", "set", "eth1", "up"])
            run([*nsenter, "ip", "link", "set", "lo", "up"])
            _tx_checksum_off(int(pid), "eth1")
            lab_priority(int(pid))
        # ports first, then the bridges (a bridge's MTU cannot exceed its ports')
        links = json.loads(run(["ip", "-n", ns, "-j", "link", "show"]).stdout)
        for dev in [d["ifname"] for d in links if d["ifname"] not in ("lo", *SEGMENTS)] + list(SEGMENTS):
            run(["ip", "-n", ns, "link", "set", dev, "mtu", "9216"], check=False)
        for name in self.spec.routers:
            podman("exec", self.spec.container(name), "timeout", "120", "systemctl", "is-system-running", "--wait",
                   check=False)
        log(f"lab {self.lab.name}: switches wired (stack fab-a/fab-b, {ROUTER_SWITCH} VLAN {vlan}, gateway {gw})")

    def write_overlay(self, vms: list[Vm] | None = None) -> None:
        """The inventory overlay: how to reach the lab's hosts, what this machine lacks.

        host_vars/ and group_vars/ files, not inline variables: they take
        precedence over the spec's inventory (its ansible_host is the rack's
        management address) whatever the order of the -i options.
        """
        vms = self.lab.load() if vms is None else vms
        key = str(images.ssh_key())
        ssh_args = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ControlMaster=auto -o ControlPersist=300s"
        hosts = {v.name: {"ansible_host": "127.0.0.1", "ansible_port": v.port, "ansible_user": "root",
                          "ansible_ssh_private_key_file": key, "ansible_ssh_common_args": ssh_args,
                          "ansible_python_interpreter": "/usr/bin/python3"} for v in vms}
        hosts |= {r: {"ansible_connection": "containers.podman.podman", "ansible_host": self.spec.container(r),
                      "ansible_python_interpreter": "/usr/bin/python3"} for r in self.spec.routers}
        header = "# Generated by `rackboot lab up`: how to reach the lab's hosts. Not a spec.\n"
        for sub in ("host_vars", "group_vars"):
            (self.overlay / sub).mkdir(parents=True, exist_ok=True)
        (self.overlay / "hosts.yml").write_text(header + yaml.safe_dump({"all": {"hosts": dict.fromkeys(hosts)}}))
        for name, hv in hosts.items():
            (self.overlay / "host_vars" / f"{name}.yml").write_text(header + yaml.safe_dump(hv, sort_keys=False))
        # TCG guests answer slowly (mitogen's first connection ships its core).
        (self.overlay / "group_vars" / "all.yml").write_text(header + yaml.safe_dump(
            {"rackboot_preflight_timeout": 120}, sort_keys=False))
        # What this machine lacks: no pkgs.k8s.io (QEMU's user network is restricted), so
        # node_os installs no Kubernetes packages here; everything else it does for real.
        (self.overlay / "group_vars" / "kubeadm.yml").write_text(header + yaml.safe_dump(
            {"node_os_kubernetes_packages": [], "node_os_package_source": "none"}, sort_keys=False))

    # -------------------------------------------------------------- destroy
    def destroy(self, quiet: bool = False) -> list[str]:
        """Remove the lab's containers, VMs, switches, namespace and state; return what was there."""
        found = []
        out = podman("ps", "-a", "--filter", f"label={LABEL}={self.lab.name}", "--format", "{{.Names}}",
                     check=False).stdout.split()
        for name in out:
            podman("rm", "-f", "-t", "2", name, check=False)
            found.append(f"container {name}")
        if self.lab.destroy(quiet=True):
            found.append(f"VM lab {self.lab.name} (namespace {self.lab.netns})")
        if not quiet:
            log(f"lab {self.lab.name}: removed {', '.join(found) if found else 'nothing (no lab)'}")
        return found

    def leftovers(self) -> list[str]:
        """Anything of this lab still on the machine (processes, containers, namespace, state)."""
        from .lab import _qemu_markers

        left = [f"qemu pid {pid}" for pid, (name, _vm) in _qemu_markers().items() if name == self.lab.name]
        left += [f"switch pid {pid}" for pid in self.lab.switch_pids()]
        left += [f"container {c}" for c in podman("ps", "-a", "--filter", f"label={LABEL}={self.lab.name}",
                                                  "--format", "{{.Names}}", check=False).stdout.split()]
        if Path(f"/run/netns/{self.lab.netns}").exists():
            left.append(f"namespace {self.lab.netns}")
        if self.lab.dir.exists():
            left.append(f"state {self.lab.dir}")
        return left

    # ---------------------------------------------------------- operations
    def node_ssh(self, node: str, command: str, check: bool = True, timeout: float = 60) -> str:
        from .lab import ssh_base_args

        vm = self.lab.vm(node)
        proc = subprocess.run([*ssh_base_args(images.ssh_key(), vm.port), command], capture_output=True, text=True,
                              check=False, timeout=timeout)
        if check and proc.returncode != 0:
            raise LabError(f"{node}: {command!r} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def router_pid(self, router: str) -> int:
        """PID 1 of a router container (for nsenter)."""
        if router not in self._pids:
            self._pids[router] = int(podman("inspect", "-f", "{{.State.Pid}}", self.spec.container(router)).stdout)
        return self._pids[router]

    def cut(self, node: str, up: bool) -> None:
        """Cut (or restore) every fabric link of a node, both ends lose carrier."""
        for nic in self.lab.vm(node).nics:
            self.lab.set_link(node, nic.guest, up)


@contextlib.contextmanager
def _environ(defaults=(), overrides=()):
    """Environment variables for the block: ``defaults`` where unset, ``overrides`` always; restored after."""
    defaults, overrides = dict(defaults), dict(overrides)
    saved = {k: os.environ.get(k) for k in {**defaults, **overrides}}
    for k, v in defaults.items():
        os.environ.setdefault(k, v)
    os.environ.update(overrides)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def ansible_lab_env():
    """What the lab's Ansible runs need on top of the collection's ansible.cfg.

    * the ``yaml`` inventory plugin for the overlay's ``hosts.yml`` (ansible.cfg
      leaves it out so that a broken spec gets only the cluster plugin's words;
      the cluster plugin still comes first for the spec);
    * mitogen's ``mitogen_linear`` strategy: 3-5x faster on TCG VMs
      (docs/testing.md); ``ANSIBLE_STRATEGY=linear`` turns it off.
    """
    import ansible_mitogen

    plugins = str(Path(ansible_mitogen.__file__).parent / "plugins" / "strategy")
    theirs = os.environ.get("ANSIBLE_STRATEGY_PLUGINS")
    return _environ(
        defaults={"ANSIBLE_STRATEGY": "mitogen_linear",
                  "ANSIBLE_INVENTORY_ENABLED": "rackboot.metal.cluster,host_list,script,yaml",
                  "ANSIBLE_TIMEOUT": "60"},  # connecting to a TCG guest on a busy machine
        overrides={"ANSIBLE_STRATEGY_PLUGINS": os.pathsep.join(p for p in (plugins, theirs) if p)})


def containers_env():
    """podman needs the lab's containers.conf (runc, cgroupfs) unless the user has one."""
    return _environ(defaults={"CONTAINERS_CONF": str(CONTAINERS_CONF)})
