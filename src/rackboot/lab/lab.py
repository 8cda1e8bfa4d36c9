"""VM labs: QEMU (TCG) VMs wired to L2 segments inside a network namespace.

A lab is the set of VMs of one Molecule scenario. Each VM gets

* ``eth0``: a QEMU user-mode NIC (``restrict=on``: no traffic leaves QEMU)
  whose only hole is ``hostfwd`` from ``127.0.0.1:PORT`` to the guest's ssh;
* ``eth1..ethN``: one virtio NIC per entry of its platform's ``fabric`` list,
  backed by a tap device in the lab's network namespace ``rb-<lab>`` and
  enslaved to the Linux bridge named after the segment (for a platform with
  ``lacp: true``, a member of an LACP bond on the lab's switch: see below).
  QEMU itself runs in the host namespace (so hostfwd binds the host's
  loopback); the tap file descriptors are opened inside the lab namespace and
  handed to QEMU.

``lacp: true`` on a platform makes its fabric NICs one LACP link
aggregation on the switch side, the way a top-of-rack pair with MLAG (or a
switch stack) presents a LAG to a server: an Open vSwitch bridge
(``lacp<index>``, userspace datapath, so no kernel module is needed) holds
an active LACP bond of the VM's taps and uplinks into the segment of the
VM's first NIC through a veth pair. A Linux bridge cannot be the LACP partner
(it drops 802.3ad frames), so this is what lets an 802.3ad bond in the guest
really negotiate and aggregate. The lab runs its own ovsdb-server and
ovs-vswitchd inside its namespace, with all their files in the state
directory. Fabric NICs of such a lab have checksum offload off: the userspace
datapath reads frames with AF_PACKET, which sees offloaded (partial)
checksums and unsegmented TSO frames.

Runtime state (overlays, pid files, QMP sockets, serial logs, state.json)
lives in ``$RACKBOOT_RUN/labs/<lab>`` (default /run/rackboot). ``destroy``
needs nothing but the lab name: it kills the QEMU processes it finds by pid
file *and* by the ``-name rackboot:<lab>:...`` marker in their command line,
and the switch daemons by the pid file path in theirs, deletes the namespace
(bridges and taps go with it) and the state directory. It is idempotent, and
``create`` calls it first to clear a crashed run.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from . import images
from .common import log, run, run_dir

DEFAULT_IMAGE = "rackboot/base:bookworm"
DEFAULT_MEMORY = 1024
MAX_NICS = 12
NAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
SEGMENT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,14}$")
PLATFORM_KEYS = {"name", "groups", "children", "fabric", "memory", "cpus", "image", "lacp"}
OVS_SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")
MARKER = "rackboot:"
KERNEL_ARGS = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet mitigations=off"

CLONE_NEWNET = 0x40000000
TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000


class LabError(ValueError):
    """A bad lab definition or a lab operation that cannot be done."""


def max_vms() -> int:
    """Return the VM limit per lab (``$RACKBOOT_MAX_VMS``, default 3: 2 cores)."""
    return int(os.environ.get("RACKBOOT_MAX_VMS", "3"))


@dataclass
class Nic:
    """A fabric NIC: guest name (eth1...), segment, tap in the lab namespace."""

    guest: str
    segment: str
    tap: str
    mac: str


@dataclass
class Vm:
    """One VM of a lab, as parsed from a Molecule platform entry."""

    name: str
    index: int
    image: str = DEFAULT_IMAGE
    memory: int = DEFAULT_MEMORY
    cpus: int = 1
    mgmt_mac: str = ""
    nics: list[Nic] = field(default_factory=list)
    port: int = 0
    pid: int = 0
    lacp: bool = False


def mac_for(lab: str, vm_index: int, nic_index: int) -> str:
    """Locally administered, deterministic MAC (QEMU OUI 52:54:00)."""
    h = hashlib.sha1(lab.encode()).digest()[0]
    return f"52:54:00:{h:02x}:{vm_index:02x}:{nic_index:02x}"


def parse_platforms(platforms: list[dict], lab: str) -> list[Vm]:
    """Validate Molecule platform entries and turn them into Vm objects.

    Accepted keys: name, groups, children (Molecule's), fabric (list of
    segment names, one NIC each: eth1, eth2, ...), memory (MiB), cpus,
    image (``rackboot/<set>:<suite>``), lacp (bool: the fabric NICs form one
    LACP aggregation on the switch side, see the module docstring).
    """
    if not isinstance(platforms, list) or not platforms:
        raise LabError("platforms: need a non-empty list")
    if len(platforms) > max_vms():
        raise LabError(
            f"platforms: {len(platforms)} VMs asked, the limit is {max_vms()} "
            "(2 cores; raise RACKBOOT_MAX_VMS if the machine is bigger)"
        )
    vms: list[Vm] = []
    seen: set[str] = set()
    for i, p in enumerate(platforms):
        where = f"platforms[{i}]"
        if not isinstance(p, dict):
            raise LabError(f"{where}: must be a mapping")
        name = p.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise LabError(f"{where}.name: {name!r} is not a valid host name (a-z, 0-9, '-', at most 32)")
        if name in seen:
            raise LabError(f"{where}.name: duplicate VM name {name!r}")
        seen.add(name)
        unknown = set(p) - PLATFORM_KEYS
        if unknown:
            raise LabError(f"{where} ({name}): unknown keys {sorted(unknown)} (known: {sorted(PLATFORM_KEYS)})")
        fabric = p.get("fabric", [])
        if not isinstance(fabric, list) or len(fabric) > MAX_NICS:
            raise LabError(f"{where}.fabric: must be a list of at most {MAX_NICS} segment names")
        for j, seg in enumerate(fabric):
            if not isinstance(seg, str) or not SEGMENT_RE.match(seg):
                raise LabError(
                    f"{where}.fabric[{j}]: {seg!r} is not a valid segment name "
                    "(a-z, 0-9, '-', '_', at most 15: it names a bridge)"
                )
        memory = p.get("memory", DEFAULT_MEMORY)
        if not isinstance(memory, int) or not 256 <= memory <= 8192:
            raise LabError(f"{where}.memory: {memory!r} MiB is outside 256..8192")
        cpus = p.get("cpus", 1)
        if not isinstance(cpus, int) or not 1 <= cpus <= 4:
            raise LabError(f"{where}.cpus: {cpus!r} is outside 1..4")
        image = p.get("image", DEFAULT_IMAGE)
        if not isinstance(image, str) or not images.REF_RE.match(image):
            raise LabError(f"{where}.image: {image!r}: expected rackboot/<set>:<suite>")
        lacp = p.get("lacp", False)
        if not isinstance(lacp, bool):
            raise LabError(f"{where}.lacp: {lacp!r} must be true or false")
        if lacp and len(fabric) < 2:
            raise LabError(f"{where}.lacp: an LACP aggregation needs at least two fabric NICs, {name} has {len(fabric)}")
        nics = []
        for j, seg in enumerate(fabric, start=1):
            tap = f"{name}-e{j}"
            if len(tap) > 15:
                tap = f"vm{i}-e{j}"
            nics.append(Nic(guest=f"eth{j}", segment=seg, tap=tap, mac=mac_for(lab, i, j)))
        vms.append(Vm(name, i, image, memory, cpus, mac_for(lab, i, 0), nics, lacp=lacp))
    return vms


def lab_name_from_env() -> str:
    """Lab name of the Molecule scenario this process runs in.

    ``<scenario>-<6 hex of the scenario directory>``: two role scenarios both
    called ``default`` get different labs.
    """
    sdir = os.environ.get("MOLECULE_SCENARIO_DIRECTORY")
    if not sdir:
        raise LabError("no --lab given and MOLECULE_SCENARIO_DIRECTORY is not set")
    scenario = os.environ.get("MOLECULE_SCENARIO_NAME") or Path(sdir).name
    slug = re.sub(r"[^a-z0-9-]+", "-", scenario.lower()).strip("-")[:24] or "lab"
    return f"{slug}-{hashlib.sha1(os.path.realpath(sdir).encode()).hexdigest()[:6]}"


# --------------------------------------------------------------------------
# namespaces, taps, QMP

_libc = ctypes.CDLL(None, use_errno=True)


def _in_netns(netns: str):
    """Switch this thread into network namespace ``netns`` for the block."""
    return _in_netns_path(f"/run/netns/{netns}")


@contextlib.contextmanager
def _in_netns_path(path: str):
    """Switch this thread into the network namespace at ``path`` (/run/netns/X, /proc/PID/ns/net)."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns({path}): {os.strerror(err)}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if _libc.setns(own, CLONE_NEWNET) != 0:  # pragma: no cover - cannot recover
                os._exit(70)
    finally:
        os.close(own)


def open_tap(netns: str, ifname: str) -> int:
    """Create tap ``ifname`` inside ``netns``; return its fd (for QEMU ``fd=``)."""
    with _in_netns(netns):
        fd = os.open("/dev/net/tun", os.O_RDWR)
        try:
            ifr = struct.pack("16sH22x", ifname.encode(), IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)
            fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError:
            os.close(fd)
            raise
    return fd


def qmp(sock_path: Path, command: str, arguments: dict | None = None, timeout: float = 10) -> dict:
    """Send one QMP command to a QEMU and return its ``return`` value."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        f = s.makefile("rwb")

        def call(cmd: str, args: dict | None) -> dict:
            msg = {"execute": cmd} | ({"arguments": args} if args else {})
            f.write(json.dumps(msg).encode() + b"\n")
            f.flush()
            while True:
                reply = json.loads(f.readline())
                if "return" in reply:
                    return reply["return"]
                if "error" in reply:
                    raise LabError(f"QMP {cmd}: {reply['error'].get('desc', reply['error'])}")
                # asynchronous events: skip

        json.loads(f.readline())  # greeting
        call("qmp_capabilities", None)
        return call(command, arguments)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _qemu_markers() -> dict[int, tuple[str, str]]:
    """{pid: (lab, vm)} of every QEMU started by a lab (``-name rackboot:<lab>:<vm>``)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _proc_cmdline(int(entry.name))
        for i, arg in enumerate(args[:-1]):
            name = args[i + 1].split(",")[0]
            if arg == "-name" and name.startswith(MARKER) and name.count(":") == 2:
                _, lab_name, vm = name.split(":")
                found[int(entry.name)] = (lab_name, vm)
    return found


def _wait_banner(port: int, deadline: float) -> bool:
    """Wait until ``127.0.0.1:port`` answers with an SSH banner."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
                s.settimeout(5)
                if s.recv(8).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(1)
    return False


def ssh_base_args(key: Path, port: int) -> list[str]:
    """ssh options for a lab VM (no host key checks: keys change per build)."""
    return [
        "ssh",
        "-i",
        str(key),
        "-p",
        str(port),
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=5",
        "root@127.0.0.1",
    ]


# --------------------------------------------------------------------------
# the lab


class Lab:
    """One lab: its namespace, bridges, VMs and state directory."""

    def __init__(self, name: str):
        if not NAME_RE.match(name):
            raise LabError(f"lab name {name!r}: a-z, 0-9, '-', at most 32")
        self.name = name
        self.dir = run_dir() / "labs" / name
        self.netns = f"rb-{name}"
        self.state_file = self.dir / "state.json"

    # state ---------------------------------------------------------------
    def load(self) -> list[Vm]:
        """Return the VMs recorded by ``create``."""
        if not self.state_file.exists():
            raise LabError(f"lab {self.name} does not exist (no {self.state_file})")
        data = json.loads(self.state_file.read_text())
        return [Vm(**(v | {"nics": [Nic(**n) for n in v["nics"]]})) for v in data["vms"]]

    def _save(self, vms: list[Vm]) -> None:
        data = {"lab": self.name, "netns": self.netns, "vms": [asdict(v) for v in vms]}
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(self.state_file)

    def vm(self, name: str) -> Vm:
        """Return one recorded VM by name."""
        for v in self.load():
            if v.name == name:
                return v
        raise LabError(f"lab {self.name}: no VM {name!r}")

    def nic(self, vm: str, guest: str) -> Nic:
        """Return a fabric NIC of a VM by its guest name (eth1...)."""
        v = self.vm(vm)
        for n in v.nics:
            if n.guest == guest:
                return n
        raise LabError(f"lab {self.name}: VM {vm} has no fabric NIC {guest!r} ({[n.guest for n in v.nics]})")

    # create / destroy ----------------------------------------------------
    def create(self, vms: list[Vm], boot_timeout: float = 420, wait: bool = True) -> list[Vm]:
        """Destroy leftovers, then build images, wire segments, boot and (``wait``) wait for ssh."""
        self.destroy(quiet=True)
        t0 = time.monotonic()
        key = images.ssh_key()
        refs = list(dict.fromkeys(v.image for v in vms))
        image_dirs = dict(zip(refs, images.ensure_refs(refs, "vm")))
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            run(["ip", "netns", "add", self.netns])
            run(["ip", "-n", self.netns, "link", "set", "lo", "up"])
            for seg in dict.fromkeys(n.segment for v in vms for n in v.nics):
                run(["ip", "-n", self.netns, "link", "add", seg, "type", "bridge", "stp_state", "0", "forward_delay", "0"])
                run(["ip", "-n", self.netns, "link", "set", seg, "up"])
            offload = not any(v.lacp for v in vms)
            for v in vms:
                self._start(v, image_dirs[v.image], offload)
                self._save(vms)
            if not offload:
                self._start_lacp_switch([v for v in vms if v.lacp])
            if not wait:
                log(f"lab {self.name}: {len(vms)} VM(s) started in {time.monotonic() - t0:.1f} s, booting")
                return vms
            log(f"lab {self.name}: {len(vms)} VM(s) started in {time.monotonic() - t0:.1f} s, waiting for ssh")
            self.wait_ssh(vms, key, boot_timeout)
        except BaseException:
            log(f"lab {self.name}: create failed, cleaning up (serial logs kept in {self.dir}/*.console.log)")
            self.destroy(quiet=True, keep_logs=True)
            raise
        log(f"lab {self.name}: up in {time.monotonic() - t0:.1f} s: " + ", ".join(f"{v.name}=127.0.0.1:{v.port}" for v in vms))
        return vms

    def _start(self, vm: Vm, image_dir: Path, offload: bool = True) -> None:
        overlay = self.dir / f"{vm.name}.qcow2"
        run(
            [
                "qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2",
                "-b", str(image_dir / "disk.qcow2"), str(overlay),
            ]
        )  # fmt: skip
        fds = []
        try:
            for nic in vm.nics:
                fds.append(open_tap(self.netns, nic.tap))
                if vm.lacp:  # a member of the switch's LACP bond (_start_lacp_switch)
                    run(["ip", "-n", self.netns, "link", "set", nic.tap, "up"])
                else:
                    run(["ip", "-n", self.netns, "link", "set", nic.tap, "master", nic.segment, "up"])
            machine_id = hashlib.sha256(f"{self.name}/{vm.name}".encode()).hexdigest()[:32]
            for attempt in range(3):
                vm.port = _free_port()
                cmd = [
                    "qemu-system-x86_64",
                    "-name", f"{MARKER}{self.name}:{vm.name}",
                    "-machine", "pc", "-accel", "tcg,tb-size=256", "-cpu", "max",
                    "-smp", str(vm.cpus), "-m", str(vm.memory),
                    "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
                    "-kernel", str(image_dir / "vmlinuz"), "-initrd", str(image_dir / "initrd.img"),
                    "-append", f"{KERNEL_ARGS} systemd.hostname={vm.name} systemd.machine_id={machine_id}",
                    "-drive", f"file={overlay},if=none,id=disk0,format=qcow2,cache=unsafe,discard=unmap",
                    "-device", "virtio-blk-pci,drive=disk0,addr=0x1e",
                    "-device", "virtio-rng-pci,addr=0x1f",
                    "-netdev", f"user,id=net-eth0,restrict=on,hostfwd=tcp:127.0.0.1:{vm.port}-:22",
                    "-device", f"virtio-net-pci,netdev=net-eth0,id=eth0,mac={vm.mgmt_mac},addr=0x3",
                ]  # fmt: skip
                # Fabric NICs report speed and duplex like a real NIC: without them
                # an 802.3ad bond keeps its ports down ("failed to get link
                # speed/duplex"), which no physical server does.
                for j, (nic, fd) in enumerate(zip(vm.nics, fds), start=1):
                    cmd += [
                        "-netdev", f"tap,id=net-{nic.guest},fd={fd}",
                        "-device", f"virtio-net-pci,netdev=net-{nic.guest},id={nic.guest},mac={nic.mac},"
                                   f"addr={3 + j:#x},speed=10000,duplex=full" + ("" if offload else ",csum=off"),
                    ]  # fmt: skip
                cmd += [
                    "-serial", f"file:{self.dir / (vm.name + '.console.log')}",
                    "-qmp", f"unix:{self.dir / (vm.name + '.qmp')},server=on,wait=off",
                    "-pidfile", str(self.dir / f"{vm.name}.pid"),
                    "-daemonize",
                ]  # fmt: skip
                proc = subprocess.run(cmd, pass_fds=fds, capture_output=True, text=True, check=False)
                if proc.returncode == 0:
                    break
                if "host forwarding" not in proc.stderr or attempt == 2:
                    raise LabError(f"qemu for {vm.name} failed: {proc.stderr.strip()}")
        finally:
            for fd in fds:
                os.close(fd)
        vm.pid = int((self.dir / f"{vm.name}.pid").read_text().strip())
        lab_priority(vm.pid)
        log(f"lab {self.name}: started {vm.name} (pid {vm.pid}, ssh 127.0.0.1:{vm.port}, " f"fabric {[f'{n.guest}->{n.segment}' for n in vm.nics]})")

    # the LACP switch (Open vSwitch, userspace datapath) ---------------------
    @property
    def ovs_dir(self) -> Path:
        return self.dir / "ovs"

    def ovs(self, *args: str) -> str:
        """Run ovs-vsctl against this lab's switch; return its stdout."""
        return run(["ovs-vsctl", f"--db=unix:{self.ovs_dir / 'db.sock'}", "--timeout=30", *args]).stdout

    def ovs_appctl(self, *args: str) -> str:
        """Run ovs-appctl against this lab's ovs-vswitchd; return its stdout."""
        return run(["ovs-appctl", "-t", str(self.ovs_dir / "ovs-vswitchd.ctl"), *args]).stdout

    def switch_pids(self) -> set[int]:
        """The pids of this lab's switch daemons (their --pidfile is in the lab's directory)."""
        prefix = f"--pidfile={self.ovs_dir}/"
        return {pid for pid in _all_pids() if any(a.startswith(prefix) for a in _proc_cmdline(pid))}

    def _start_lacp_switch(self, vms: list[Vm]) -> None:
        if not OVS_SCHEMA.exists():
            raise LabError(f"lacp: Open vSwitch is not installed ({OVS_SCHEMA} missing): apt-get install openvswitch-switch")
        d = self.ovs_dir
        d.mkdir(parents=True, exist_ok=True)
        env = {"OVS_RUNDIR": str(d), "OVS_DBDIR": str(d), "OVS_LOGDIR": str(d), "OVS_SYSCONFDIR": str(d)}
        netns = ["ip", "netns", "exec", self.netns, "env", *(f"{k}={v}" for k, v in env.items())]
        run(["ovsdb-tool", "create", str(d / "conf.db"), str(OVS_SCHEMA)])
        for daemon, first in (("ovsdb-server", str(d / "conf.db")), ("ovs-vswitchd", f"unix:{d / 'db.sock'}")):
            extra = [f"--remote=punix:{d / 'db.sock'}"] if daemon == "ovsdb-server" else []
            run([*netns, daemon, first, *extra, f"--pidfile={d / (daemon + '.pid')}", f"--unixctl={d / (daemon + '.ctl')}",
                 f"--log-file={d / (daemon + '.log')}", "--detach"])  # fmt: skip
        self.ovs("--no-wait", "init")
        for v in vms:
            br, bond, up, down = _switch_names(v)
            run(["ip", "-n", self.netns, "link", "add", up, "type", "veth", "peer", "name", down])
            run(["ip", "-n", self.netns, "link", "set", down, "master", v.nics[0].segment, "up"])
            run(["ip", "-n", self.netns, "link", "set", up, "up"])
            self.ovs("add-br", br, "--", "set", "bridge", br, "datapath_type=netdev")
            self.ovs("add-port", br, up)
            self.ovs(
                "add-bond", br, bond, *(n.tap for n in v.nics), "lacp=active", "bond_mode=balance-tcp",
                "other_config:lacp-time=fast",
            )  # fmt: skip
            log(f"lab {self.name}: switch {br}: LACP bond of {[n.tap for n in v.nics]} ({v.name}), uplink to {v.nics[0].segment}")

    def lacp(self, vm: str) -> dict:
        """The switch's view of a VM's LACP aggregation: members and their state."""
        v = self.vm(vm)
        if not v.lacp:
            raise LabError(f"lab {self.name}: {vm} has no LACP aggregation (platform key lacp)")
        bond = _switch_names(v)[1]
        out = self.ovs_appctl("lacp/show", bond)
        members: dict[str, dict] = {}
        current = None
        for line in out.splitlines():
            m = re.match(r"^member: (\S+): (.*)$", line.strip())
            if m:
                current = members.setdefault(m.group(1), {"status": m.group(2).split(), "partner_sys_id": None})
            elif current is not None and line.strip().startswith("partner sys_id:"):
                current["partner_sys_id"] = line.split(":", 1)[1].strip()
        status = re.search(r"^\s*status: (.*)$", out, re.M)
        sys_id = re.search(r"^\s*sys_id: (\S+)$", out, re.M)
        return {
            "bond": bond,
            "status": status.group(1).split() if status else [],
            "sys_id": sys_id.group(1) if sys_id else None,
            "members": members,
        }

    def wait_ssh(self, vms: list[Vm] | None = None, key: Path | None = None, timeout: float = 420) -> None:
        """Wait until every VM accepts an ssh login."""
        vms = self.load() if vms is None else vms
        key = key or images.ssh_key()
        deadline = time.monotonic() + timeout
        t0 = time.monotonic()
        for v in vms:
            while True:
                if not _proc_cmdline(v.pid):
                    raise LabError(f"lab {self.name}: qemu of {v.name} died; see {self.dir / (v.name + '.console.log')}")
                if _wait_banner(v.port, min(deadline, time.monotonic() + 5)):
                    proc = subprocess.run([*ssh_base_args(key, v.port), "true"], capture_output=True, check=False)
                    if proc.returncode == 0:
                        log(f"lab {self.name}: {v.name} ssh ready after {time.monotonic() - t0:.1f} s")
                        break
                if time.monotonic() > deadline:
                    raise LabError(
                        f"lab {self.name}: {v.name} no ssh on 127.0.0.1:{v.port} after {timeout:.0f} s; "
                        f"see {self.dir / (v.name + '.console.log')}"
                    )
                time.sleep(1)

    def destroy(self, quiet: bool = False, keep_logs: bool = False) -> bool:
        """Remove everything of this lab; True if something was there."""
        found = False
        pids = {pid for pid, (lab_name, _vm) in _qemu_markers().items() if lab_name == self.name}
        for pidfile in self.dir.glob("*.pid"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(pidfile.read_text().strip())
                if any(a.startswith(f"{MARKER}{self.name}:") for a in _proc_cmdline(pid)):
                    pids.add(pid)
        pids |= self.switch_pids()
        for pid in pids:
            found = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while pids and time.monotonic() < deadline:
            pids = {p for p in pids if Path(f"/proc/{p}").exists() and _proc_state(p) != "Z"}
            time.sleep(0.1)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if Path(f"/run/netns/{self.netns}").exists():
            found = True
            run(["ip", "netns", "delete", self.netns])
        if self.dir.exists():
            found = True
            if keep_logs:
                for path in self.dir.iterdir():
                    if path.is_dir():
                        shutil.rmtree(path)
                    elif not path.name.endswith(".console.log"):
                        path.unlink(missing_ok=True)
            else:
                shutil.rmtree(self.dir)
        if not quiet:
            log(f"lab {self.name}: {'destroyed' if found else 'nothing to destroy'}")
        return found

    # operations for tests -------------------------------------------------
    def set_link(self, vm: str, guest: str, up: bool, mode: str = "qmp") -> None:
        """Cut or restore a fabric link.

        ``qmp``: both ends lose carrier, as when a cable is pulled: the
        virtio NIC (QMP ``set_link``, the guest sees link down) and the tap
        (the switch port: a bridge or an LACP bond stops using it at once).
        ``tap``: the tap goes down in the lab namespace; the guest keeps
        carrier but frames are lost (a silent failure, like a dead switch
        port behind a media converter).
        """
        nic = self.nic(vm, guest)
        if mode == "qmp":
            qmp(self.dir / f"{vm}.qmp", "set_link", {"name": nic.guest, "up": up})
            run(["ip", "-n", self.netns, "link", "set", nic.tap, "carrier", "on" if up else "off"])
        elif mode == "tap":
            run(["ip", "-n", self.netns, "link", "set", nic.tap, "up" if up else "down"])
        else:
            raise LabError(f"link mode {mode!r}: expected qmp or tap")
        log(f"lab {self.name}: {vm} {guest} ({nic.segment}) {'up' if up else 'down'} via {mode}")

    def reset(self, vm: str) -> None:
        """Hard-reset a VM (power cycle); the QEMU process keeps running."""
        self.vm(vm)
        qmp(self.dir / f"{vm}.qmp", "system_reset")
        log(f"lab {self.name}: {vm} reset")

    def status(self) -> dict:
        """Return lab state plus liveness of each VM."""
        vms = self.load()
        out = {"lab": self.name, "netns": self.netns, "dir": str(self.dir), "vms": []}
        for v in vms:
            entry = asdict(v)
            entry["running"] = bool(_proc_cmdline(v.pid))
            with contextlib.suppress(OSError, LabError, ValueError):
                entry["qemu_status"] = qmp(self.dir / f"{v.name}.qmp", "query-status", timeout=3).get("status")
            out["vms"].append(entry)
        return out

    def instance_config(self, vms: list[Vm]) -> list[dict]:
        """Molecule delegated-driver instance config for the VMs."""
        key = images.ssh_key()
        return [
            {
                "instance": v.name,
                "address": "127.0.0.1",
                "port": v.port,
                "user": "root",
                "identity_file": str(key),
                "lab": self.name,
            }
            for v in vms
        ]


def lab_priority(pid: int) -> None:
    """Apply ``$RACKBOOT_LAB_NICE`` to the scheduler autogroup of a QEMU or router (unset: leave it).

    QEMU daemonizes into its own session, and with ``kernel.sched_autogroup_enabled``
    the scheduler shares the CPU between sessions first: other users' ``nice``
    then does not make room for the VMs, whose BFD timers miss their deadlines
    on a loaded machine. The autogroup's own nice value does.
    """
    nice = os.environ.get("RACKBOOT_LAB_NICE")
    if nice:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/autogroup").write_text(str(int(nice)))


def _switch_names(vm: Vm) -> tuple[str, str, str, str]:
    """Switch bridge, LACP bond, uplink veth end in the switch, its peer in the segment."""
    br = f"lacp{vm.index}"
    return br, f"{br}-bond", f"{br}-up", f"{br}-sw"


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "X"


def list_labs() -> list[str]:
    """Names of labs with state or a namespace on this machine."""
    names = {p.name for p in (run_dir() / "labs").glob("*") if p.is_dir()}
    names |= {p.name[3:] for p in Path("/run/netns").glob("rb-*")}
    names |= {lab_name for lab_name, _vm in _qemu_markers().values()}
    return sorted(names)


def platforms_from_molecule_file(path: Path) -> list[dict]:
    """Return the ``platforms`` list of a molecule.yml."""
    data = yaml.safe_load(path.read_text()) or {}
    return data.get("platforms") or []
