"""The `rackboot` progress view, summary and run record, from real runs.

Real hosts: a podman systemd container (the router test image), two local
hosts (one with a planned failure) and an SSH host on a port nobody listens
on (unreachable). The TTY view is read from a tmux screen.
"""
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import jsonschema
import pytest
import yaml
from rich.console import Console

from conftest import REPO, ansible_env
from rackboot.runs import BAD_INPUT, CHANGES, FAILED, OK, UNREACHABLE, load_events, run_playbook, state_of
from rackboot.view import LiveView, PlainView, print_summary

# Real test hosts (a podman container): the full suite, not --quick.
pytestmark = pytest.mark.hosts

PLAYBOOK = str(REPO / "tests/integration/cli/progress.yml")
IMAGE = "localhost/rackboot/router:bookworm"
SECRET = "w19-Secret-%s" % uuid.uuid4().hex[:12]
VAULT_PASSWORD = "w19-vault-%s" % uuid.uuid4().hex[:12]
UNREACHABLE_HOST = {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1,
                    "ansible_ssh_common_args": "-o ConnectTimeout=3 -o StrictHostKeyChecking=no"}


def _podman_env():
    return dict(os.environ, CONTAINERS_CONF=str(REPO / "src/rackboot/lab/containers.conf"))


@contextlib.contextmanager
def _frr_container(name, daemons=("bgpd",)):
    """A systemd container from the router test image (built by rackboot.lab on first use, then
    cached), FRR running ``daemons`` with no configuration."""
    from rackboot.lab import images

    os.environ.setdefault("CONTAINERS_CONF", str(REPO / "src/rackboot/lab/containers.conf"))
    images.ensure_refs([IMAGE.split("/", 1)[1]], "container")
    subprocess.run(["podman", "run", "-d", "--rm", "--name", name, "--network", "none", "--systemd=always",
                    "--privileged", IMAGE], check=True, env=_podman_env(), capture_output=True)
    try:
        enable = " ".join("-e 's/^%s=no/%s=yes/'" % (d, d) for d in daemons)
        subprocess.run(["podman", "exec", name, "sh", "-c",
                        "until systemctl is-active -q frr; do sleep 0.2; done; "
                        "sed -i %s /etc/frr/daemons && systemctl restart frr" % enable],
                       check=True, env=_podman_env(), capture_output=True, timeout=120)
        yield name
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "0", name], env=_podman_env(), capture_output=True)


@pytest.fixture(scope="module")
def container():
    # bgpd running and no configuration: `verify` finds its sessions missing.
    with _frr_container("rb19-cli-%d" % os.getpid()) as name:
        yield name


def _encrypt(value, password):
    from ansible.parsing.vault import VaultLib, VaultSecret

    return VaultLib([("test", VaultSecret(password.encode()))]).encrypt(value, vault_id="test").decode()


@pytest.fixture(scope="module")
def inventory(tmp_path_factory, container):
    inv = tmp_path_factory.mktemp("cli-inv")
    hosts = {"all": {"hosts": {
        "local1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        "failing": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
        container: {"ansible_connection": "containers.podman.podman"},
        "gone": UNREACHABLE_HOST}}}
    # A script inventory (ansible.cfg enables only the spec, host_list and
    # script plugins): the same hosts as a static file, printed as JSON.
    listing = {"all": {"hosts": sorted(hosts["all"]["hosts"])}, "_meta": {"hostvars": hosts["all"]["hosts"]}}
    script = inv / "hosts.py"
    script.write_text("#!%s\nimport sys\nprint(%r if '--list' in sys.argv else '{}')\n"
                      % (sys.executable, json.dumps(listing)))
    script.chmod(0o755)
    (inv / "group_vars" / "all").mkdir(parents=True)
    token = _encrypt(SECRET, VAULT_PASSWORD)
    (inv / "group_vars/all/vault.yml").write_text(
        "cli_test_secret: !vault |\n" + "".join("  %s\n" % line for line in token.splitlines()))
    pw = inv.parent / ("%s-vault-pass" % inv.name)
    pw.write_text(VAULT_PASSWORD)
    os.environ["CONTAINERS_CONF"] = str(REPO / "src/rackboot/lab/containers.conf")
    return inv, ["--vault-id", "test@%s" % pw]


def _plain():
    out = io.StringIO()
    return Console(file=out, width=200, force_terminal=False, highlight=False), out


@pytest.fixture(scope="module")
def full_run(inventory):
    inv, vault = inventory
    console, out = _plain()
    started = time.monotonic()
    code, state, folder = run_playbook(inv, "test", [PLAYBOOK], PlainView(console), vault_args=vault)
    print_summary(console, [state])
    return code, state, folder, out.getvalue(), time.monotonic() - started


def test_exit_code_is_unreachable_when_a_host_is_down(full_run):
    code, state, _, out, _ = full_run
    assert code == UNREACHABLE, out
    assert state.hosts["gone"].unreachable == 1
    assert state.hosts["failing"].failed == 1


def test_counts_agree_with_ansibles_own_recap(full_run, container):
    _, state, folder, out, _ = full_run
    stats = [e for e in load_events(folder) if e["event"] == "playbook_on_stats"][0]["event_data"]
    for name in ("local1", "failing", container, "gone"):
        h = state.hosts[name]
        assert h.changed == stats["changed"].get(name, 0), name
        assert h.failed == stats["failures"].get(name, 0), name
        assert h.unreachable == stats["dark"].get(name, 0), name
        # Ansible's "ok" counts changed results too.
        assert h.ok + h.changed == stats["ok"].get(name, 0), name
    assert state.hosts[container].changed == 1 and state.hosts[container].failed == 0


def test_plain_lines_are_one_per_changed_or_failed_result(full_run, container):
    _, state, _, out, _ = full_run
    lines = [line for line in out.splitlines() if line.startswith(("changed:", "failed:", "unreachable:"))]
    expected = sum(h.changed + h.failed + h.unreachable for h in state.hosts.values())
    assert len(lines) == expected
    assert "failed: failing: Fail on one host: planned failure on failing" in lines
    assert "changed: %s: Change something" % container in lines
    assert any(line.startswith("unreachable: gone: Say hello: ") for line in lines)


def test_secrets_never_reach_output_or_record(full_run, inventory):
    _, _, folder, out, _ = full_run
    assert SECRET not in out and VAULT_PASSWORD not in out
    for path in folder.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert SECRET not in text, path
            assert VAULT_PASSWORD not in text, path
    censored = [e for e in load_events(folder) if e["event"] == "runner_on_ok"
                and e["event_data"]["task"] == "Use the secret"]
    assert censored and all("censored" in e["event_data"]["res"] for e in censored)


def test_record_replays_the_same_summary(full_run):
    _, state, folder, out, _ = full_run
    assert (folder / "job_events").is_dir() and (folder / "rackboot.json").is_file()
    assert folder.parent.name == "runs" and folder.name.endswith("-test")
    replay = state_of(folder)
    for name, h in state.hosts.items():
        assert replay.hosts[name].as_dict() == h.as_dict()
    res = subprocess.run([sys.executable, "-m", "rackboot", "runs", "show", str(folder)], capture_output=True,
                         text=True, env=_cli_env(), cwd="/")
    assert res.returncode == 0, res.stderr
    for name in state.hosts:
        assert name in res.stdout


def test_runs_lists_every_run_and_matches_the_schema(full_run, inventory):
    inv, _ = inventory
    res = subprocess.run([sys.executable, "-m", "rackboot", "runs", str(inv), "--json"], capture_output=True,
                         text=True, env=_cli_env())
    assert res.returncode == 0, res.stderr
    listed = json.loads(res.stdout)
    schema = json.loads((REPO / "src/rackboot/schemas/runs.schema.json").read_text())
    jsonschema.validate(listed, schema)
    assert full_run[2].name in [r["id"] for r in listed]
    assert {r["id"] for r in listed} == {d.name for d in (inv / "runs").iterdir()}


@pytest.mark.parametrize("limit,check,expected", [
    ("failing", False, FAILED),
    ("local1", True, CHANGES),
    ("local1", False, OK),
])
def test_exit_codes(inventory, limit, check, expected):
    inv, vault = inventory
    console, out = _plain()
    code, _, _ = run_playbook(inv, "test", [PLAYBOOK], PlainView(console), check=check, limit=limit, vault_args=vault)
    assert code == expected, out.getvalue()


def test_live_view_renders_real_events(inventory, container):
    """The live view fed by a real run on a (forced) terminal: failure lines and
    the final summary reach the screen; the transient table is gone at the end."""
    inv, vault = inventory
    out = io.StringIO()
    console = Console(file=out, width=160, force_terminal=True, color_system=None)
    code, state, _ = run_playbook(inv, "test", [PLAYBOOK], LiveView(console), vault_args=vault)
    print_summary(console, [state])
    text = out.getvalue()
    assert code == UNREACHABLE
    assert "FAILED failing: Fail on one host: planned failure on failing" in text
    assert "UNREACHABLE gone: Say hello" in text
    assert "elapsed" in text  # the live table was drawn at least once


def _cli_env():
    env = ansible_env()
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    env["CONTAINERS_CONF"] = str(REPO / "src/rackboot/lab/containers.conf")
    return env


@pytest.fixture
def lab_inventory(tmp_path, container):
    """The lab spec with real hosts behind it: node1 is this machine, rtr-frr
    the container (FRR installed, no sessions), node2 unreachable."""
    return _lab_inventory(tmp_path, container)


def _lab_inventory(tmp_path, container):
    inv = tmp_path / "lab"
    (inv / "host_vars").mkdir(parents=True)
    shutil.copy(REPO / "inventories/lab/cluster.yml", inv / "cluster.yml")
    shutil.copytree(REPO / "inventories/lab/group_vars", inv / "group_vars")
    shutil.copy(REPO / "inventories/lab/vault-password.txt", inv / "vault-password.txt")
    hv = {"node1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
          "rtr-frr": {"ansible_connection": "containers.podman.podman", "ansible_host": container},
          "node2": UNREACHABLE_HOST}
    for host, values in hv.items():
        (inv / "host_vars" / ("%s.yml" % host)).write_text(yaml.safe_dump(values))
    return inv


def _tmux(*args):
    return subprocess.run(["tmux", "-L", "rb19"] + list(args), capture_output=True, text=True)


def test_tty_view_in_tmux(lab_inventory):
    """`rackboot verify` on a real terminal (tmux): the live table with one row
    per host while it runs, failures as they happen, the summary at the end."""
    if not shutil.which("tmux"):
        pytest.fail("tmux is missing: ./scripts/bootstrap --dev installs it")
    session = "rb19-%d" % os.getpid()
    done = lab_inventory / "exit-code"
    env = _cli_env()
    cmd = "env -u COLUMNS -u LINES PYTHONPATH=%s PATH=%s CONTAINERS_CONF=%s %s -m rackboot verify %s --limit node1,node2,rtr-frr; echo $? > %s" % (
        env["PYTHONPATH"], env["PATH"], env["CONTAINERS_CONF"], sys.executable, lab_inventory, done)
    _tmux("kill-session", "-t", session)
    assert _tmux("new-session", "-d", "-s", session, "-x", "200", "-y", "60", cmd + "; sleep 600").returncode == 0
    live_screens = []
    try:
        deadline = time.monotonic() + 300
        while not done.exists() and time.monotonic() < deadline:
            screen = _tmux("capture-pane", "-p", "-t", session).stdout
            if "elapsed" in screen:
                live_screens.append(screen)
            time.sleep(0.1)
        time.sleep(0.5)
        final = _tmux("capture-pane", "-p", "-S", "-200", "-t", session).stdout
    finally:
        _tmux("kill-session", "-t", session)
    assert done.read_text().strip() == str(UNREACHABLE), final
    assert live_screens, "the live table never showed:\n" + final
    assert any("node1" in s and "stage verify" in s for s in live_screens)
    assert "FAILED rtr-frr: Check that every node's session is established: sessions not established: 10.77.100.11" in final
    assert "FAILED node1: Check every link of the model" in final
    assert "UNREACHABLE node2" in final
    assert "Summary" in final and "total" in final
    assert "\x1b" not in final


def test_apply_check_on_a_real_router_reports_pending_changes(lab_inventory):
    """The routers stage (the real bgp_router role) in check mode on a fresh
    FRR container: changes pending (exit 2), nothing applied, the run recorded."""
    res = subprocess.run([sys.executable, "-m", "rackboot", "apply", str(lab_inventory), "--stage", "routers", "--check",
                          "--limit", "rtr-frr"], capture_output=True, text=True, env=_cli_env(), timeout=900)
    assert res.returncode == CHANGES, res.stdout[-3000:] + res.stderr[-3000:]
    assert "changed: rtr-frr: Apply frr.conf" in res.stdout
    # What would change, from the modules' diffs (the BGP password masked), and no raw Ansible output.
    changes = res.stdout.split("\nChanges\n", 1)[1].split("\nSummary\n", 1)[0]
    assert "~ rtr-frr: Apply frr.conf" in changes and "+ neighbor K8S-NODES password ********" in changes
    assert "PLAY RECAP" not in res.stdout
    runs = list((lab_inventory / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-routers")
    meta = json.loads((runs[0] / "rackboot.json").read_text())
    assert meta["check"] is True and meta["exit"] == CHANGES and meta["playbooks"] == ["routers.yml"]
    vault_password = (REPO / "inventories/lab/vault-password.txt").read_text().strip()
    from ansible.parsing.vault import VaultLib, VaultSecret
    token = yaml.safe_load((REPO / "inventories/lab/group_vars/all/vault.yml").read_text().replace("!vault", ""))
    bgp_password = VaultLib([("lab", VaultSecret(vault_password.encode()))]).decrypt(
        token["rackboot_bgp_password"]).decode()
    assert len(bgp_password) >= 6
    for path in runs[0].rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            assert vault_password not in text and bgp_password not in text, path
    assert vault_password not in res.stdout + res.stderr and bgp_password not in res.stdout + res.stderr


def test_routers_stage_takes_bfd_back_to_the_defaults_on_real_frr(tmp_path):
    """BFD 100 ms, then FRR's defaults (300 ms x 3), then a second run: FRR 8.4 cannot unset a
    profile's interval (`no transmit-interval` does not exist), so frr-reload left the old
    value running and reported a change on every run; the profile named by its values is
    replaced instead. Read back from the daemon's running-config and its BFD peers."""
    with _frr_container("rb-bfd-%d" % os.getpid(), ("bgpd", "bfdd")) as name:
        inv = _lab_inventory(tmp_path, name)
        spec = yaml.safe_load((inv / "cluster.yml").read_text())

        def apply(interval_ms):
            spec["load_balancer"]["bgp"]["bfd"] = {"interval_ms": interval_ms, "multiplier": 3}
            (inv / "cluster.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
            res = subprocess.run([sys.executable, "-m", "rackboot", "apply", str(inv), "--stage", "routers",
                                  "--limit", "rtr-frr"], capture_output=True, text=True, env=_cli_env(), timeout=900)
            assert res.returncode == OK, res.stdout[-3000:] + res.stderr[-3000:]
            vtysh = ["podman", "exec", name, "vtysh", "-c"]
            running = subprocess.run(vtysh + ["show running-config"], env=_podman_env(), capture_output=True,
                                     text=True, check=True).stdout
            peers = subprocess.run(vtysh + ["show bfd peers"], env=_podman_env(), capture_output=True, text=True,
                                   check=True).stdout
            return res.stdout, running, peers

        out, running, peers = apply(100)
        assert "changed: rtr-frr: Apply frr.conf" in out
        assert "profile rackboot_100x3\n  transmit-interval 100\n  receive-interval 100" in running, running
        assert "Transmission interval: 100ms" in peers, peers
        out, running, peers = apply(300)
        assert "changed: rtr-frr: Apply frr.conf" in out and "differs from FRR's running-config" not in out, out
        assert "profile rackboot_300x3" in running and "interval 100" not in running, running
        assert "Transmission interval: 300ms" in peers and "100ms" not in peers, peers
        out, _, _ = apply(300)
        assert "changed: rtr-frr" not in out, out
