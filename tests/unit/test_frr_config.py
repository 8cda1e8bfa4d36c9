# -*- coding: utf-8 -*-
"""rackboot.metal.frr_config: check mode, diff, masking, idempotence, roll back on a failed reload.

FRR's tools are replaced by small stand-ins with FRR's interface (``vtysh -C -f``,
``frr-reload.py --test|--reload``) that keep the "running config" in a file, so every path of
the module runs here without a daemon. The live behaviour against a real FRR is the Molecule
scenario roles/bgp_router/molecule/frr.
"""

from __future__ import annotations

import getpass
import grp
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

MODULE = REPO / "plugins" / "modules" / "frr_config.py"
SECRET = "Sup3r-Secret-MD5"

FAKE_VTYSH = r"""#!/usr/bin/env python3
import os, sys
args = sys.argv[1:]
path = args[args.index("-f") + 1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("vtysh " + path + "\n")
text = open(path).read()
for n, line in enumerate(text.splitlines(), 1):
    if line.startswith("BROKEN"):
        print("line %d: %% Unknown command: %s" % (n, line))
        sys.exit(2)
"""

# frr-reload.py stand-in: the running config lives in $FAKE_RUNNING; every call is logged.
FAKE_RELOAD = r"""#!/usr/bin/env python3
import os, sys
args = sys.argv[1:]
path = args[-1]
running_path = os.environ["FAKE_RUNNING"]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(" ".join(args) + "\n")
running = open(running_path).read().splitlines() if os.path.exists(running_path) else []
wanted = open(path).read().splitlines()
if "--test" in args:
    delete = [l for l in running if l not in wanted and l.strip() not in ("", "!")]
    add = [l for l in wanted if l not in running and l.strip() not in ("", "!")]
    if delete or add:
        print("\nLines To Delete\n===============")
        for l in delete:
            print("no " + l)
        print("\nLines To Add\n============")
        for l in add:
            print(l)
    sys.exit(0)
if any("FAILRELOAD" in l for l in wanted):
    print("vtysh failed: % Unknown command", file=sys.stderr)
    sys.exit(1)
open(running_path, "w").write("\n".join(wanted) + "\n")
"""

CONF = """frr defaults traditional
hostname rtr
!
router bgp 65000
 neighbor K8S-NODES peer-group
 neighbor K8S-NODES password {pw}
 neighbor 10.0.0.11 peer-group K8S-NODES
exit
!
""".format(pw=SECRET)


@pytest.fixture
def frr(tmp_path):
    tools = tmp_path / "tools"
    tools.mkdir()
    for name, text in (("vtysh", FAKE_VTYSH), ("frr-reload.py", FAKE_RELOAD)):
        p = tools / name
        p.write_text(text)
        p.chmod(0o755)
    etc = tmp_path / "etc"
    etc.mkdir()
    env = dict(os.environ, FAKE_RUNNING=str(tmp_path / "running"), FAKE_LOG=str(tmp_path / "calls"),
               PYTHONPATH=str(REPO / "collections"))

    class Frr(object):
        dest = etc / "frr.conf"
        running = tmp_path / "running"
        calls = tmp_path / "calls"

        def run(self, content, check=False, diff=True, **extra):
            args = dict(content=content, dest=str(self.dest), owner=getpass.getuser(),
                        group=grp.getgrgid(os.getgid()).gr_name, vtysh=str(tools / "vtysh"),
                        frr_reload=str(tools / "frr-reload.py"), secrets=[SECRET],
                        _ansible_check_mode=check, _ansible_diff=diff)
            args.update(extra)
            argfile = tmp_path / "args.json"
            argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
            proc = subprocess.run([sys.executable, str(MODULE), str(argfile)], capture_output=True, text=True,
                                  env=env, cwd=str(tmp_path))
            assert SECRET not in proc.stdout + proc.stderr, "password leaked"
            out = json.loads(proc.stdout)
            return out

        def reloads(self):
            return [l for l in (self.calls.read_text().splitlines() if self.calls.exists() else [])
                    if l.startswith("--reload")]

    return Frr()


def test_check_mode_shows_masked_diff_and_changes_nothing(frr):
    out = frr.run(CONF, check=True)
    assert out["changed"] is True
    assert not frr.dest.exists() and not frr.running.exists()
    assert frr.reloads() == []
    text = json.dumps(out["diff"])
    assert "password ********" in text
    assert any("peer-group K8S-NODES" in block for block in out["reload_diff"]["add"])
    # the staged candidate is cleaned up
    assert [p.name for p in frr.dest.parent.iterdir()] == []


def test_apply_then_second_run_is_unchanged(frr):
    first = frr.run(CONF)
    assert first["changed"] is True
    assert frr.dest.read_text() == CONF
    assert stat.S_IMODE(frr.dest.stat().st_mode) == 0o600
    assert frr.running.read_text().splitlines() == CONF.splitlines()
    assert len(frr.reloads()) == 1
    second = frr.run(CONF)
    assert second["changed"] is False
    assert second["reload_diff"] == {"delete": [], "add": []}
    assert len(frr.reloads()) == 1, "an unchanged config must not be reloaded"


def test_running_config_drift_is_repaired_even_when_the_file_matches(frr):
    frr.run(CONF)
    frr.running.write_text(CONF.replace("10.0.0.11", "10.0.0.99"))
    out = frr.run(CONF)
    assert out["changed"] is True and out["file_changed"] is False
    assert "10.0.0.11" in frr.running.read_text() and "10.0.0.99" not in frr.running.read_text()


def test_syntax_error_applies_nothing_and_masks_the_message(frr):
    frr.run(CONF)
    bad = CONF + "BROKEN neighbor K8S-NODES password %s\n" % SECRET
    out = frr.run(bad)
    assert out["failed"] is True
    assert "vtysh -C" in out["msg"] and "BROKEN" in out["msg"] and "********" in out["msg"]
    assert frr.dest.read_text() == CONF
    assert len(frr.reloads()) == 1


def test_failed_reload_restores_and_reloads_the_previous_file(frr):
    frr.run(CONF)
    out = frr.run(CONF.replace("hostname rtr", "hostname rtr\nFAILRELOAD"))
    assert out["failed"] is True and out["rolled_back"] is True
    assert frr.dest.read_text() == CONF
    assert frr.running.read_text().splitlines() == CONF.splitlines()
    assert len(frr.reloads()) == 3  # the first apply, the failed one, the restore


def test_password_lines_masked_in_diff_without_secrets_param(frr):
    out = frr.run(CONF, check=True, secrets=[])
    assert "password ********" in json.dumps(out["diff"])


def test_missing_frr_tools_is_a_clear_error(frr, tmp_path):
    out = frr.run(CONF, frr_reload=str(tmp_path / "nope.py"))
    assert out["failed"] is True and "frr-pythontools" in out["msg"]


def test_masker_handles_both_syntaxes():
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.rackboot.metal.plugins.module_utils.config_apply import Masker

    mask = Masker(["xyzzy"])
    assert mask(" neighbor K8S-NODES password s3cr3t\n") == " neighbor K8S-NODES password ********\n"
    assert mask('  password "s3 cr;et";\n') == '  password "********";\n'
    assert mask(" neighbor X password 7 0a1b2c\n") == " neighbor X password 7 ********\n"
    assert mask("the secret is xyzzy") == "the secret is ********"


def test_check_mode_stages_outside_the_dest_folder(frr):
    """Check mode touches nothing on the target: the candidate the parser reads is not in dest's folder."""
    frr.run(CONF)
    before = {p.name for p in frr.dest.parent.iterdir()}
    frr.calls.write_text("")
    out = frr.run(CONF.replace("hostname rtr", "hostname rtr2"), check=True)
    assert out["changed"] is True and "hostname rtr2" not in frr.dest.read_text()
    checked = [line.split(" ", 1)[1] for line in frr.calls.read_text().splitlines() if line.startswith("vtysh ")]
    assert checked and all(os.path.dirname(path) != str(frr.dest.parent) for path in checked)
    assert all(not os.path.exists(path) for path in checked)
    assert {p.name for p in frr.dest.parent.iterdir()} == before


@pytest.mark.parametrize("check", [True, False])
def test_missing_dest_folder_is_a_clear_error(frr, tmp_path, check):
    out = frr.run(CONF, check=check, dest=str(tmp_path / "no-such-dir" / "frr.conf"))
    assert out["failed"] is True
    assert "no-such-dir" in out["msg"] and "does not exist" in out["msg"] and "Errno" not in out["msg"]


def test_diff_of_a_file_without_password_is_readable(frr):
    """Only the secret is masked: the rest of the diff is shown (content is not no_log as a whole)."""
    plain = CONF.replace(" neighbor K8S-NODES password %s\n" % SECRET, "")
    out = frr.run(plain, check=True)
    text = json.dumps(out["diff"])
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" not in text
    assert "neighbor 10.0.0.11 peer-group K8S-NODES" in text


def test_password_in_content_is_masked_in_the_invocation_without_secrets(frr):
    out = frr.run(CONF, check=True, secrets=[])
    assert SECRET not in json.dumps(out)
