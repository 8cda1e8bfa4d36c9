"""Find the project's Molecule scenarios and order them for scripts/molecule-all.

Top-level scenarios live in ``molecule/<name>/`` and run with the repository
root as working directory; role scenarios live in
``roles/<role>/molecule/<name>/`` and run from ``roles/<role>``. Container
scenarios (driver podman) run first, then anything else, then VM scenarios
(driver default), each group top-level first, then by role, then by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

ORDER = {"containers": 0, "other": 1, "vms": 2}


@dataclass(frozen=True)
class Scenario:
    """One Molecule scenario."""

    name: str
    role: str  # "" for top-level scenarios
    cwd: Path  # where molecule runs
    molecule_file: Path
    kind: str  # containers | vms | other

    @property
    def label(self) -> str:
        """``name`` or ``role/name``."""
        return f"{self.role}/{self.name}" if self.role else self.name


def kind_of(molecule_file: Path) -> str:
    """containers (driver podman), vms (driver default/delegated) or other."""
    data = yaml.safe_load(molecule_file.read_text()) or {}
    driver = (data.get("driver") or {}).get("name", "default")
    if driver == "podman":
        return "containers"
    if driver in ("default", "delegated"):
        return "vms"
    return "other"


def discover(repo: Path) -> list[Scenario]:
    """All scenarios of the repository, in run order."""
    found = [Scenario(f.parent.name, "", repo, f, kind_of(f)) for f in repo.glob("molecule/*/molecule.yml")]
    for f in repo.glob("roles/*/molecule/*/molecule.yml"):
        role_dir = f.parent.parent.parent
        found.append(Scenario(f.parent.name, role_dir.name, role_dir, f, kind_of(f)))
    return sorted(found, key=lambda s: (ORDER[s.kind], s.role != "", s.role, s.name))


def select(scenarios: list[Scenario], scenario: str | None = None, role: str | None = None) -> list[Scenario]:
    """Filter by scenario (``name`` or ``role/name``) and/or role."""
    out = scenarios
    if role:
        out = [s for s in out if s.role == role]
    if scenario:
        out = [s for s in out if scenario in (s.name, s.label)]
    return out
