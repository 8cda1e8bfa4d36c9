"""Run commands in the execution environment the way AWX does (test helper).

AWX hands each job to ansible-runner with process isolation: a private data
dir with ``project/`` (the project checkout), ``inventory/``, ``env/`` and an
``args`` file for raw commands, run by podman in the EE image as
``--user=root`` with the private data dir mounted at /runner
(awx/main/tasks/jobs.py: BaseTask.build_execution_environment_params,
RunInventoryUpdate.build_env/build_args, RunJob.build_args). This module
builds those folders and calls ansible_runner.run with the same parameters.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import ansible_runner

from rackboot.collection import plain  # noqa: F401  (ansible-inventory data as roles see it)

REPO = Path(__file__).resolve().parents[2]
CONTAINER_ROOT = "/runner"
# awx/main/constants.py STANDARD_INVENTORY_UPDATE_ENV
STANDARD_INVENTORY_UPDATE_ENV = {
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    "ANSIBLE_INVENTORY_EXPORT": "True",
    "ANSIBLE_VERBOSE_TO_STDERR": "True",
    "ANSIBLE_HOST_PATTERN_MISMATCH": "error",
}
# RunInventoryUpdate.build_env for a project source whose ansible.cfg sets no
# `collections_paths`: the project's requirements, then the EE's defaults.
INVENTORY_COLLECTIONS_PATH = ":".join(
    [f"{CONTAINER_ROOT}/requirements_collections", "~/.ansible/collections", "/usr/share/ansible/collections",
     "/usr/share/automation-controller/collections"]
)
# Never in a project checkout AWX syncs (.gitignore) or irrelevant to a job.
PROJECT_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", "build", "artifacts", "secrets", "runs", "__pycache__", ".pytest_cache", ".hypothesis", "*.tar.gz"
)


def podman_env():
    return dict(os.environ, CONTAINERS_CONF=str(REPO / "src" / "rackboot" / "lab" / "containers.conf"))


def ee_image():
    """$RACKBOOT_EE_IMAGE (an image built before), or build/reuse the EE with scripts/build-ee."""
    if os.environ.get("RACKBOOT_EE_IMAGE"):
        return os.environ["RACKBOOT_EE_IMAGE"]
    proc = subprocess.run([str(REPO / "scripts" / "build-ee")], cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"scripts/build-ee failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


def private_data_dir(tmp: Path, project: Path = REPO) -> Path:
    """A job's private data dir with ``project`` copied in as AWX's project sync leaves it."""
    pdd = tmp / "pdd"
    for sub in ("inventory", "env", "artifacts"):
        (pdd / sub).mkdir(parents=True, exist_ok=True)
    shutil.copytree(project, pdd / "project", symlinks=True, ignore=PROJECT_IGNORE)
    return pdd


def _run(pdd: Path, image: str, args: list[str], envvars: dict, passwords: dict | None = None,
         ssh_key: str | None = None, container_options: tuple[str, ...] = (), ident: str = "1"):
    (pdd / "args").write_text(" ".join(args))
    os.environ.setdefault("CONTAINERS_CONF", podman_env()["CONTAINERS_CONF"])
    return ansible_runner.run(
        private_data_dir=str(pdd),
        ident=ident,
        process_isolation=True,
        process_isolation_executable="podman",
        container_image=image,
        container_options=["--user=root", *container_options],
        envvars=envvars,
        passwords=passwords or {},
        ssh_key=ssh_key,
        quiet=True,
        settings={"suppress_ansible_output": True},
    )


def inventory_update(pdd: Path, image: str, source_path: str, update_id: int = 1):
    """AWX's update of a "Sourced from a Project" inventory source: (runner, output.json data or None)."""
    out = f"{CONTAINER_ROOT}/artifacts/{update_id}/output.json"
    source = f"{CONTAINER_ROOT}/project/{source_path}"
    playbook_dir = source if (pdd / "project" / source_path).is_dir() else os.path.dirname(source)
    args = ["ansible-inventory", "--list", "--export", "-i", source, "--output", out, "--playbook-dir", playbook_dir]
    env = {
        **STANDARD_INVENTORY_UPDATE_ENV,
        "INVENTORY_SOURCE_ID": "1",
        "INVENTORY_UPDATE_ID": str(update_id),
        "AWX_PRIVATE_DATA_DIR": CONTAINER_ROOT,
        "ANSIBLE_COLLECTIONS_PATH": INVENTORY_COLLECTIONS_PATH,
    }
    (pdd / "artifacts" / str(update_id)).mkdir(parents=True, exist_ok=True)
    runner = _run(pdd, image, args, env, ident=str(update_id))
    result = pdd / "artifacts" / str(update_id) / "output.json"
    # AWX imports output.json only when the update succeeded (post_run_hook).
    data = json.loads(result.read_text()) if runner.status == "successful" and result.exists() else None
    return runner, data


def write_job_inventory(pdd: Path, data: dict) -> str:
    """The inventory script AWX writes for a job (BaseTask.build_inventory): the imported data, printed."""
    script = pdd / "inventory" / "hosts"
    script.write_text("#! /usr/bin/env python3\n# -*- coding: utf-8 -*-\nprint(%r)\n" % json.dumps(data))
    script.chmod(0o700)
    return f"{CONTAINER_ROOT}/inventory/hosts"


def run_job(pdd: Path, image: str, playbook: str, *, vault_id: str, vault_password: str, extra: list[str] = (),
            ssh_key: str | None = None, container_options: tuple[str, ...] = (), ident: str = "2",
            task_env: dict | None = None):
    """A job template launch: ansible-playbook with AWX's inventory script and a Vault credential prompt."""
    args = ["ansible-playbook", "-i", f"{CONTAINER_ROOT}/inventory/hosts", "-u", "root",
            "--vault-id", f"{vault_id}@prompt", *extra, playbook]
    # RunJob.get_password_prompts for a Vault credential with a vault id.
    passwords = {rf"Vault password \({vault_id}\):\s*?$": vault_password}
    (pdd / "cp").mkdir(exist_ok=True)
    # RunJob.build_env: for jobs AWX reads the project's `collections_path` and
    # puts it first, so rackboot.metal resolves to the checkout (./collections).
    env = {
        "JOB_ID": ident, "INVENTORY_ID": "1",  # numbers, as AWX's ids (its callback reads them) "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": f"{CONTAINER_ROOT}/cp", "AWX_PRIVATE_DATA_DIR": CONTAINER_ROOT,
        "ANSIBLE_COLLECTIONS_PATH": f"{CONTAINER_ROOT}/requirements_collections:./collections:"
                                    "~/.ansible/collections:/usr/share/ansible/collections",
        "ANSIBLE_ROLES_PATH": f"{CONTAINER_ROOT}/requirements_roles:./roles:"
                              "~/.ansible/roles:/usr/share/ansible/roles:/etc/ansible/roles",
    }
    env.update(task_env or {})   # AWX's "Extra Environment Variables" (AWX_TASK_ENV)
    return _run(pdd, image, args, env, passwords=passwords, ssh_key=ssh_key,
                container_options=container_options, ident=ident)

