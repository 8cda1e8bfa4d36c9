"""Paths, logging and process helpers shared by the image builder and the VM lab."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

# The checkout (src/rackboot/lab/ -> repository root); scenario discovery only.
REPO_ROOT = Path(__file__).resolve().parents[3]


def cache_dir() -> Path:
    """Return the cache root: ``$RACKBOOT_CACHE`` or ``~/.cache/rackboot``."""
    env = os.environ.get("RACKBOOT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "rackboot"


def run_dir() -> Path:
    """Return the runtime state root (VM labs): ``$RACKBOOT_RUN`` or ``/run/rackboot``."""
    return Path(os.environ.get("RACKBOOT_RUN", "/run/rackboot"))


def log(msg: str) -> None:
    """Print a progress line to stderr (molecule and ansible keep stdout)."""
    print(f"[rackboot-hosts {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class CommandError(RuntimeError):
    """A command failed; the message carries its output tail."""


def run(
    cmd: Sequence[str],
    *,
    logfile: Path | None = None,
    check: bool = True,
    capture: bool = False,
    **kwargs,
) -> subprocess.CompletedProcess:
    """Run ``cmd``; its output goes to ``logfile`` (if given) or is captured.

    On failure raise CommandError with the command and the end of its output.
    """
    if logfile is not None and not capture:
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with logfile.open("a") as fh:
            fh.write(f"\n$ {shlex.join(cmd)}\n")
            fh.flush()
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False, **kwargs)
        if check and proc.returncode != 0:
            tail = "".join(logfile.read_text(errors="replace").splitlines(True)[-25:])
            raise CommandError(f"{shlex.join(cmd)} failed ({proc.returncode}); log {logfile}:\n{tail}")
        return proc
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kwargs)
    if check and proc.returncode != 0:
        raise CommandError(
            f"{shlex.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return proc


@contextlib.contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive flock on ``path``; say so when another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log(f"waiting for another process building {what} (lock {path})")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def human_size(n: float) -> str:
    """Format a byte count as e.g. ``153.2 MiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def du(path: Path) -> int:
    """Return the allocated size of a file or directory tree in bytes."""
    if path.is_file():
        return path.stat().st_blocks * 512
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total
