"""Build and cache Debian test host images: podman images and VM disks.

Both kinds start from ``debootstrap --variant=minbase`` with the packages of a
named set (images.yml) baked in. An image is cached on disk under
``$RACKBOOT_CACHE/images`` and keyed by a hash of everything that went into
it (kind, suite, package list, units masked, files trimmed, initrd modules,
ssh key, BUILDER_VERSION), so a second run reuses it and a changed package
list rebuilds it. Builds hold a lock per image, so two scenarios never build
the same image at once.

* container: a rootfs tarball (``container-<set>-<suite>-<key>.tar.zst``),
  imported as ``localhost/rackboot/<set>:<suite>`` labelled with the key.
* vm: a directory ``vm-<set>-<suite>-<key>/`` with ``disk.qcow2`` (ext4,
  whole-disk /dev/vda), the image's own ``vmlinuz`` and a small ``initrd.img``
  (initramfs-tools ``MODULES=list``) for QEMU direct kernel boot.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .common import cache_dir, du, file_lock, human_size, log, run

# Bump when the build recipe (code below) changes in a way the data in
# ImageSpec.key_material() does not capture.
BUILDER_VERSION = 1

SETS_FILE = Path(__file__).with_name("images.yml")
DEFAULT_MIRROR = "http://deb.debian.org/debian"

# What every image of a kind needs, whatever its set adds.
CONTAINER_PACKAGES = (
    "systemd-sysv",
    "python3",
    "python3-apt",
    "iproute2",
    "iputils-ping",
    "sudo",
    "procps",
    "kmod",
    "ca-certificates",
)
VM_PACKAGES = CONTAINER_PACKAGES + (
    "udev",
    "dbus",
    "linux-image-amd64",
    "initramfs-tools",
    "openssh-server",
    "netbase",
)
VM_INITRD_MODULES = ("virtio_pci", "virtio_blk", "virtio_net", "ext4")
MASKED_UNITS = (
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dpkg-db-backup.timer",
    "e2scrub_all.timer",
    "e2scrub_reap.service",
    "fstrim.timer",
)
VM_MASKED_UNITS = MASKED_UNITS + (
    "systemd-networkd-wait-online.service",
    "getty@tty1.service",
    "systemd-timesyncd.service",
)
# Trimmed from every rootfs (docs, man pages, translations, apt indexes).
TRIM_GLOBS = (
    "usr/share/doc/*",
    "usr/share/man/*",
    "usr/share/info/*",
    "usr/share/locale/*",
    "usr/share/lintian/*",
    "var/cache/apt/*.bin",
    "var/cache/apt/archives/*.deb",
    "var/lib/apt/lists/*_*",
    "var/log/*.log",
)
# Kernel module trees a test VM never loads (keeps the disk small).
VM_TRIM_MODULE_DIRS = (
    "kernel/drivers/gpu",
    "kernel/drivers/media",
    "kernel/drivers/net/wireless",
    "kernel/drivers/infiniband",
    "kernel/drivers/staging",
    "kernel/drivers/bluetooth",
    "kernel/drivers/isdn",
    "kernel/drivers/iio",
    "kernel/sound",
    "kernel/net/wireless",
    "kernel/net/mac80211",
    "kernel/net/bluetooth",
)
VM_DISK_SIZE = "4G"
KINDS = ("container", "vm")
REF_RE = re.compile(r"^(?:localhost/)?rackboot/(?P<set>[a-z0-9][a-z0-9_-]*):(?P<suite>[a-z]+)$")


class ImageError(ValueError):
    """A bad image reference or package set."""


def load_sets(path: Path = SETS_FILE) -> dict:
    """Return the package sets from images.yml, checked."""
    data = yaml.safe_load(path.read_text()) or {}
    sets = data.get("sets")
    if not isinstance(sets, dict) or not sets:
        raise ImageError(f"{path}: top-level 'sets' mapping is missing or empty")
    for name, body in sets.items():
        if not isinstance(body, dict):
            raise ImageError(f"{path}: sets.{name} must be a mapping")
        unknown = set(body) - {"description", "suites", "packages", "disabled"}
        if unknown:
            raise ImageError(f"{path}: sets.{name}: unknown keys {sorted(unknown)}")
        if not isinstance(body.get("suites"), list) or not body["suites"]:
            raise ImageError(f"{path}: sets.{name}.suites must be a non-empty list")
        if not isinstance(body.get("packages", []), list):
            raise ImageError(f"{path}: sets.{name}.packages must be a list")
        if not isinstance(body.get("disabled", []), list):
            raise ImageError(f"{path}: sets.{name}.disabled must be a list of unit names")
    return sets


@dataclass(frozen=True)
class ImageSpec:
    """One image: kind (container|vm), package set and Debian suite."""

    kind: str
    set: str
    suite: str
    packages: tuple[str, ...] = field(default=())
    ssh_pubkey: str = ""
    # Units installed but not started at boot (the play that needs them enables them).
    disabled: tuple[str, ...] = field(default=())

    @classmethod
    def from_ref(cls, ref: str, kind: str, sets: dict | None = None, ssh_pubkey: str = "") -> ImageSpec:
        """Parse ``[localhost/]rackboot/<set>:<suite>`` against the known sets."""
        if kind not in KINDS:
            raise ImageError(f"unknown image kind {kind!r} (expected one of {', '.join(KINDS)})")
        m = REF_RE.match(ref)
        if not m:
            raise ImageError(f"image {ref!r}: expected [localhost/]rackboot/<set>:<suite>")
        sets = load_sets() if sets is None else sets
        name, suite = m.group("set"), m.group("suite")
        if name not in sets:
            raise ImageError(f"image {ref!r}: unknown package set {name!r} (known: {', '.join(sorted(sets))})")
        if suite not in sets[name]["suites"]:
            raise ImageError(
                f"image {ref!r}: set {name!r} is not offered for suite {suite!r} "
                f"(offered: {', '.join(sets[name]['suites'])}; add it in {SETS_FILE.name})"
            )
        base = VM_PACKAGES if kind == "vm" else CONTAINER_PACKAGES
        packages = tuple(sorted(set(base) | set(sets[name].get("packages") or [])))
        disabled = tuple(sorted(sets[name].get("disabled") or []))
        return cls(kind, name, suite, packages, ssh_pubkey.strip() if kind == "vm" else "", disabled)

    @property
    def ref(self) -> str:
        """The image reference scenarios use."""
        return f"rackboot/{self.set}:{self.suite}"

    @property
    def podman_name(self) -> str:
        """The podman image name (containers only)."""
        return f"localhost/{self.ref}"

    def key_material(self) -> dict:
        """Everything the image content depends on."""
        material = {
            "builder": BUILDER_VERSION,
            "kind": self.kind,
            "suite": self.suite,
            "variant": "minbase",
            "packages": list(self.packages),
            "trim": list(TRIM_GLOBS),
        }
        if self.kind == "vm":
            material |= {
                "masked": list(VM_MASKED_UNITS),
                "initrd_modules": list(VM_INITRD_MODULES),
                "trim_modules": list(VM_TRIM_MODULE_DIRS),
                "disk_size": VM_DISK_SIZE,
                "ssh_pubkey": self.ssh_pubkey,
            }
        else:
            material["masked"] = list(MASKED_UNITS)
        if self.disabled:  # only then: the keys of sets without it stay as they were
            material["disabled"] = list(self.disabled)
        return material

    @property
    def key(self) -> str:
        """Short hash of key_material(); part of every cached file name."""
        blob = json.dumps(self.key_material(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def stem(self) -> str:
        """Cache file/dir name without extension."""
        return f"{self.kind}-{self.set}-{self.suite}-{self.key}"


def images_dir() -> Path:
    """Return the image cache directory."""
    return cache_dir() / "images"


def ssh_key() -> Path:
    """Return the private key the VM images trust, creating it once."""
    key = cache_dir() / "ssh" / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rackboot-test-hosts", "-f", str(key)])
    return key


def vm_spec(ref: str, sets: dict | None = None) -> ImageSpec:
    """ImageSpec of a VM image (its key includes the ssh public key)."""
    pub = ssh_key().with_suffix(".pub").read_text()
    return ImageSpec.from_ref(ref, "vm", sets, ssh_pubkey=pub)


# --------------------------------------------------------------------------
# rootfs


def _mirror() -> str:
    return os.environ.get("RACKBOOT_DEBIAN_MIRROR", DEFAULT_MIRROR)


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _trim(root: Path) -> None:
    for pattern in TRIM_GLOBS:
        for path in root.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    _write(
        root,
        "etc/dpkg/dpkg.cfg.d/01-rackboot-nodoc",
        "path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\n"
        "path-exclude=/usr/share/man/*\npath-exclude=/usr/share/info/*\n"
        "path-exclude=/usr/share/locale/*\n",
    )


def _debootstrap(spec: ImageSpec, root: Path, logfile: Path) -> None:
    debs = cache_dir() / "debs" / spec.suite
    debs.mkdir(parents=True, exist_ok=True)
    cmd = [
        "debootstrap",
        "--variant=minbase",
        f"--include={','.join(spec.packages)}",
        f"--cache-dir={debs}",
        spec.suite,
        str(root),
        _mirror(),
    ]
    # One debootstrap per suite at a time: they share the .deb cache.
    with file_lock(debs / ".lock", f"the {spec.suite} package cache"):
        run(cmd, logfile=logfile)


def _configure_common(spec: ImageSpec, root: Path, masked: tuple[str, ...], logfile: Path) -> None:
    # Each instance gets its own machine-id at first boot.
    (root / "etc/machine-id").write_text("")
    (root / "var/lib/dbus/machine-id").unlink(missing_ok=True)
    _write(
        root,
        "etc/apt/sources.list",
        f"deb {DEFAULT_MIRROR} {spec.suite} main\n",
    )
    run(["chroot", str(root), "systemctl", "mask", *masked], logfile=logfile)


def _configure_vm(spec: ImageSpec, root: Path, logfile: Path) -> None:
    _write(root, "etc/fstab", "/dev/vda / ext4 defaults,discard 0 1\n")
    _write(root, "etc/hostname", "rackboot-vm\n")
    # No DNS: nothing in a test VM may reach outside the lab.
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    _write(root, "etc/resolv.conf", "# test VMs have no DNS\n")
    # Management NIC (QEMU user-mode network, restrict=on): static, no DHCP wait.
    _write(
        root,
        "etc/systemd/network/10-mgmt.network",
        "[Match]\nName=eth0\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n"
        "LinkLocalAddressing=no\nIPv6AcceptRA=no\n",
    )
    _write(
        root,
        "etc/ssh/sshd_config.d/10-rackboot.conf",
        "PermitRootLogin prohibit-password\nPasswordAuthentication no\nUseDNS no\n",
    )
    _write(root, "root/.ssh/authorized_keys", spec.ssh_pubkey + "\n", 0o600)
    (root / "root/.ssh").chmod(0o700)
    run(["chroot", str(root), "systemctl", "enable", "systemd-networkd"], logfile=logfile)
    # Small initrd: only what direct kernel boot from virtio-blk needs.
    _write(root, "etc/initramfs-tools/conf.d/rackboot", "MODULES=list\n")
    _write(root, "etc/initramfs-tools/modules", "\n".join(VM_INITRD_MODULES) + "\n")
    moddirs = sorted((root / "lib/modules").iterdir())
    for kdir in moddirs:
        for rel in VM_TRIM_MODULE_DIRS:
            shutil.rmtree(kdir / rel, ignore_errors=True)
        run(["chroot", str(root), "depmod", kdir.name], logfile=logfile)
    subprocess.run(["mount", "-t", "proc", "proc", str(root / "proc")], check=True)
    try:
        run(["chroot", str(root), "update-initramfs", "-u", "-k", "all"], logfile=logfile)
    finally:
        subprocess.run(["umount", "-l", str(root / "proc")], check=False)


# --------------------------------------------------------------------------
# containers


def podman_key(name: str) -> str | None:
    """Return the rackboot key label of a podman image, or None if absent."""
    proc = subprocess.run(
        ["podman", "image", "inspect", "--format", '{{ index .Labels "io.rackboot.key" }}', name],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() if proc.returncode == 0 else None


def _podman_import(spec: ImageSpec, tarball: Path) -> None:
    t0 = time.monotonic()
    old = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", spec.podman_name],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    with subprocess.Popen(["zstd", "-dc", str(tarball)], stdout=subprocess.PIPE) as unzst:
        run(
            [
                "podman",
                "import",
                "--quiet",
                "--change",
                'CMD ["/sbin/init"]',
                "--change",
                "STOPSIGNAL SIGRTMIN+3",
                "--change",
                f"LABEL io.rackboot.key={spec.key}",
                "--message",
                f"rackboot {spec.stem}",
                "-",
                spec.podman_name,
            ],
            stdin=unzst.stdout,
        )
    if old and old != podman_key(spec.podman_name):
        # The old build lost its tag; drop it unless a container still uses it.
        subprocess.run(["podman", "rmi", old], capture_output=True, check=False)
    log(f"imported {spec.podman_name} (key {spec.key}) in {time.monotonic() - t0:.1f} s")


def _rootfs(spec: ImageSpec, work: Path, logfile: Path) -> Path:
    """debootstrap and configure the rootfs of ``spec`` in ``work/rootfs``."""
    root = work / "rootfs"
    t0 = time.monotonic()
    log(f"debootstrap {spec.suite} minbase + {len(spec.packages)} packages (log {logfile})")
    _debootstrap(spec, root, logfile)
    log(f"debootstrap done in {time.monotonic() - t0:.1f} s, rootfs {human_size(du(root))}")
    if spec.kind == "vm":
        _configure_common(spec, root, VM_MASKED_UNITS, logfile)
        _configure_vm(spec, root, logfile)
    else:
        _configure_common(spec, root, MASKED_UNITS, logfile)
    if spec.disabled:
        run(["chroot", str(root), "systemctl", "disable", *spec.disabled], logfile=logfile)
    _trim(root)
    return root


def _build_container(spec: ImageSpec, out: Path, work: Path, logfile: Path) -> None:
    root = _rootfs(spec, work, logfile)
    t1 = time.monotonic()
    tmp = out.with_name(out.name + ".part")
    with tmp.open("wb") as fh:
        tar = subprocess.Popen(
            ["tar", "-C", str(root), "--numeric-owner", "--xattrs", "--acls", "-cf", "-", "."],
            stdout=subprocess.PIPE,
        )
        zst = subprocess.run(["zstd", "-q", "-T0", "-6", "-c"], stdin=tar.stdout, stdout=fh, check=False)
        tar.stdout.close()
        if tar.wait() != 0 or zst.returncode != 0:
            raise RuntimeError(f"packing {root} failed")
    tmp.rename(out)
    log(f"rootfs {human_size(du(root))} packed to {out.name} ({human_size(out.stat().st_size)}) in {time.monotonic() - t1:.1f} s")


def _build_vm(spec: ImageSpec, out: Path, work: Path, logfile: Path) -> None:
    root = _rootfs(spec, work, logfile)
    stage = out.with_name(out.name + ".part")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    initrds = sorted((root / "boot").glob("initrd.img-*"))
    if not kernels or not initrds:
        raise RuntimeError(f"no kernel/initrd in {root / 'boot'}")
    shutil.copy2(kernels[-1], stage / "vmlinuz")
    shutil.copy2(initrds[-1], stage / "initrd.img")
    t1 = time.monotonic()
    raw = work / "disk.raw"
    run(["truncate", "-s", VM_DISK_SIZE, str(raw)])
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-d", str(root), str(raw)], logfile=logfile)
    run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(stage / "disk.qcow2")], logfile=logfile)
    (stage / "manifest.json").write_text(json.dumps(spec.key_material(), indent=2) + "\n")
    stage.rename(out)
    log(
        f"disk.qcow2 {human_size((out / 'disk.qcow2').stat().st_size)}, initrd "
        f"{human_size((out / 'initrd.img').stat().st_size)}, kernel {kernels[-1].name} "
        f"(mkfs+convert {time.monotonic() - t1:.1f} s)"
    )


def cached_path(spec: ImageSpec) -> Path:
    """Where the cached artifact of ``spec`` lives (file or directory)."""
    suffix = ".tar.zst" if spec.kind == "container" else ""
    return images_dir() / f"{spec.stem}{suffix}"


def _prune(spec: ImageSpec, keep: Path) -> None:
    """Remove older builds of the same kind/set/suite."""
    for path in images_dir().glob(f"{spec.kind}-{spec.set}-{spec.suite}-*"):
        if path != keep and not path.name.endswith(".lock"):
            log(f"removing outdated {path.name}")
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def ensure(spec: ImageSpec) -> Path:
    """Build ``spec`` unless cached; for containers also import it into podman.

    Returns the cached tarball (container) or image directory (vm).
    """
    out = cached_path(spec)
    lock = images_dir() / f".{spec.kind}-{spec.set}-{spec.suite}.lock"
    with file_lock(lock, spec.stem):
        if out.exists():
            log(f"{spec.kind} image {spec.ref} cached: {out.name} ({human_size(du(out))})")
        else:
            t0 = time.monotonic()
            log(f"building {spec.kind} image {spec.ref} (key {spec.key}) into {images_dir()}")
            images_dir().mkdir(parents=True, exist_ok=True)
            logfile = images_dir() / "logs" / f"{spec.stem}.log"
            logfile.unlink(missing_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"build-{spec.stem}-", dir=images_dir()))
            try:
                builder = _build_vm if spec.kind == "vm" else _build_container
                builder(spec, out, work, logfile)
            finally:
                shutil.rmtree(work, ignore_errors=True)
                for part in images_dir().glob(f"{spec.stem}*.part"):
                    shutil.rmtree(part, ignore_errors=True) if part.is_dir() else part.unlink()
            log(f"built {spec.kind} image {spec.ref}: {human_size(du(out))} in {time.monotonic() - t0:.1f} s")
            _prune(spec, out)
        if spec.kind == "container" and podman_key(spec.podman_name) != spec.key:
            _podman_import(spec, out)
    return out


def ensure_refs(refs: list[str], kind: str) -> list[Path]:
    """ensure() each distinct image reference of one kind."""
    sets = load_sets()
    specs = []
    for ref in dict.fromkeys(refs):
        specs.append(vm_spec(ref, sets) if kind == "vm" else ImageSpec.from_ref(ref, kind, sets))
    return [ensure(spec) for spec in specs]
