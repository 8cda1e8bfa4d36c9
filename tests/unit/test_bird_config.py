# -*- coding: utf-8 -*-
"""rackboot.metal.bird_config: parse before apply, soft reconfigure, masking, roll back.

The first tests use a stand-in birdc (BIRD's answers to ``configure soft``) with the real
``bird -p`` parser; the last one runs a real BIRD in a private network namespace
(``unshare -n``, nothing reaches the host's routing table) and applies two configurations
through the module, checking that a filter change does not restart the BGP protocols.
"""

from __future__ import annotations

import getpass
import grp
import json
import os
import shutil
import stat
import subprocess
import sys
import time

import pytest
from conftest import REPO

MODULE = REPO / "plugins" / "modules" / "bird_config.py"
BIRD = shutil.which("bird") or ("/usr/sbin/bird" if os.path.exists("/usr/sbin/bird") else None)
BIRDC = shutil.which("birdc") or ("/usr/sbin/birdc" if os.path.exists("/usr/sbin/birdc") else None)
SECRET = "Bird-Secret-MD5"
pytestmark = pytest.mark.skipif(not BIRD, reason="bird not installed (apt-get install bird2)")

CONF = """router id 10.0.0.1;
protocol device {{ }}
filter nodes_in {{
  if net ~ [ {pool}{{32,32}} ] then accept;
  reject;
}}
template bgp nodes {{
  local 10.0.0.1 as 65000;
  password "{pw}";
  ipv4 {{ import filter nodes_in; export none; import limit 5 action disable; }};
}}
protocol bgp node_a from nodes {{ neighbor 10.0.0.11 as 65001; }}
protocol bgp node_b from nodes {{ neighbor 10.0.0.12 as 65001; }}
"""

# birdc stand-in: answers like BIRD; "REJECTME" in the file makes the reconfigure fail.
FAKE_BIRDC = r"""#!/usr/bin/env python3
import os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
if os.path.exists(os.environ["FAKE_DEAD"]):
    print("Unable to connect to server control socket (%s): Connection refused" % args[1])
    sys.exit(1)
if args[2:] == ["show", "status"]:
    print("BIRD 2.0.12\nDaemon is up and running")
    sys.exit(0)
path = args[-1].strip('"')
print("BIRD 2.0.12 ready.")
print("Reading configuration from " + path)
if "REJECTME" in open(path).read():
    print(path + ":3:1 Unknown option")
else:
    print("Reconfigured")
"""


def _run(tmp_path, env, content, check=False, **extra):
    args = dict(content=content, owner=getpass.getuser(), group=grp.getgrgid(os.getgid()).gr_name,
                bird=BIRD, secrets=[SECRET], _ansible_check_mode=check, _ansible_diff=True)
    args.update(extra)
    argfile = tmp_path / "args.json"
    argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    proc = subprocess.run([sys.executable, str(MODULE), str(argfile)], capture_output=True, text=True,
                          env=env, cwd=str(tmp_path))
    assert SECRET not in proc.stdout + proc.stderr, "password leaked"
    return json.loads(proc.stdout)


@pytest.fixture
def fake(tmp_path):
    birdc = tmp_path / "birdc"
    birdc.write_text(FAKE_BIRDC)
    birdc.chmod(0o755)
    sock = tmp_path / "bird.ctl"
    sock.write_text("")
    env = dict(os.environ, FAKE_LOG=str(tmp_path / "calls"), FAKE_DEAD=str(tmp_path / "dead"),
               PYTHONPATH=str(REPO / "collections"))
    dest = tmp_path / "etc" / "bird.conf"
    dest.parent.mkdir()

    def run(content, **kw):
        kw.setdefault("birdc", str(birdc))
        kw.setdefault("socket", str(sock))
        return _run(tmp_path, env, content, dest=str(dest), **kw)

    def calls():
        """birdc calls other than the `show status` liveness probe."""
        log = tmp_path / "calls"
        return [c for c in (log.read_text().splitlines() if log.exists() else []) if not c.endswith("show status")]

    return run, dest, calls, sock


def test_check_mode_parses_and_changes_nothing(fake):
    run, dest, calls, _ = fake
    out = run(CONF.format(pool="198.51.100.0/28", pw=SECRET), check=True)
    assert out["changed"] is True and not dest.exists() and calls() == []
    assert 'password "********"' in out["diff"]["after"]
    assert [p.name for p in dest.parent.iterdir()] == []


def test_apply_then_unchanged(fake):
    run, dest, calls, _ = fake
    conf = CONF.format(pool="198.51.100.0/28", pw=SECRET)
    out = run(conf)
    assert out["changed"] is True and out["reconfigure"].endswith("Reconfigured")
    assert dest.read_text() == conf and stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert calls() == ["-s %s configure soft \"%s\"" % (fake[3], dest)]
    assert run(conf)["changed"] is False
    assert len(calls()) == 1


def test_parse_error_applies_nothing(fake):
    run, dest, calls, _ = fake
    good = CONF.format(pool="198.51.100.0/28", pw=SECRET)
    run(good)
    out = run(good.replace("import limit", "import limits"))
    assert out["failed"] is True and "bird -p" in out["msg"]
    assert dest.read_text() == good and len(calls()) == 1


def test_rejected_reconfigure_restores_the_previous_file(fake):
    run, dest, calls, _ = fake
    good = CONF.format(pool="198.51.100.0/28", pw=SECRET)
    run(good)
    out = run(good + "# REJECTME\n")
    assert out["failed"] is True and out["rolled_back"] is True
    assert dest.read_text() == good
    assert len(calls()) == 3  # good, rejected, restore


def test_not_running_installs_for_the_next_start(fake, tmp_path):
    run, dest, calls, _ = fake
    out = run(CONF.format(pool="198.51.100.0/28", pw=SECRET), socket=str(tmp_path / "absent.ctl"))
    assert out["changed"] is True and "not running" in out["reconfigure"]
    assert dest.exists() and calls() == []


def test_stale_socket_of_a_dead_bird_installs_without_reconfigure(fake, tmp_path):
    run, dest, calls, _ = fake
    (tmp_path / "dead").write_text("")
    out = run(CONF.format(pool="198.51.100.0/28", pw=SECRET))
    assert out["changed"] is True and "not running" in out["reconfigure"]
    assert dest.exists() and calls() == []


def _protocols(sock):
    out = subprocess.run([BIRDC, "-s", str(sock), "show", "protocols"], capture_output=True, text=True).stdout
    return {line.split()[0]: line.split()[3:5] for line in out.splitlines() if " BGP " in line}


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not BIRDC,
                    reason="needs root, unshare and birdc to run BIRD in a private network namespace")
def test_real_bird_soft_reconfigure_keeps_protocols(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    dest, sock, pid = tmp_path / "bird.conf", tmp_path / "bird.ctl", tmp_path / "bird.pid"
    first = CONF.format(pool="198.51.100.0/28", pw=SECRET).replace("router id", "timeformat protocol iso long;\nrouter id")
    dest.write_text(first)
    proc = subprocess.Popen(["unshare", "-n", BIRD, "-f", "-c", str(dest), "-s", str(sock), "-P", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.1)
        before = _protocols(sock)
        assert set(before) == {"node_a", "node_b"}
        time.sleep(1.1)  # "since" has a one-second resolution
        second = first.replace("198.51.100.0/28", "198.51.100.0/27")
        out = _run(tmp_path, env, second, dest=str(dest), socket=str(sock), birdc=BIRDC)
        assert out["changed"] is True and "Reconfigured" in out["reconfigure"]
        assert _protocols(sock) == before, "a filter change restarted a BGP protocol"
        assert _run(tmp_path, env, second, dest=str(dest), socket=str(sock), birdc=BIRDC)["changed"] is False
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.parametrize("check", [True, False])
def test_missing_dest_folder_is_a_clear_error(fake, tmp_path, check):
    run, _, _, _ = fake
    out = _run(tmp_path, dict(os.environ, PYTHONPATH=str(REPO / "collections")), CONF.format(pool="198.51.100.0/28", pw=SECRET),
               check=check, dest=str(tmp_path / "no-such-dir" / "bird.conf"), birdc=BIRD)
    assert out["failed"] is True
    assert "no-such-dir" in out["msg"] and "does not exist" in out["msg"] and "Errno" not in out["msg"]


def test_diff_of_a_file_without_password_is_readable(fake):
    run, _, _, _ = fake
    text = CONF.format(pool="198.51.100.0/28", pw=SECRET)
    plain = "\n".join(line for line in text.splitlines() if "password" not in line) + "\n"
    out = run(plain, check=True)
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" not in json.dumps(out["diff"])
    assert "198.51.100.0/28" in out["diff"]["after"]
