"""playbooks/awx/configure.yml, validated offline (no AWX controller runs here).

The playbook runs for real with ansible-playbook; the awx.awx modules are
replaced by tests/integration/awx_offline/normal.py, which validates each
task's final arguments against the installed module's own argument spec
(what AnsibleModule does before the first API call) instead of calling the
API. The surveys are then checked against AWX's survey rules
(awx/api/views JobTemplateSurveySpec._validate_spec_data) and the workflow
against what awx.awx.workflow_job_template reads from each node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "awx" / "configure.yml"
OFFLINE = Path(__file__).with_name("awx_offline")
STAGES = ["validate", "render", "routers", "network", "nodes", "cluster", "stack", "verify"]

# AWX JobTemplateSurveySpec.ALLOWED_TYPES: question type -> type of its default.
SURVEY_TYPES = {
    "multiplechoice": str,
    "multiselect": str,
    "text": str,
    "textarea": str,
    "password": str,
    "integer": int,
    "float": (float, int),
}
# Node keys awx.awx.workflow_job_template reads (create_workflow_nodes and
# the related links), and the unified job template types it resolves.
NODE_KEYS = {
    "identifier", "unified_job_template", "related", "extra_data", "scm_branch", "job_type", "job_tags",
    "skip_tags", "limit", "diff_mode", "verbosity", "forks", "job_slice_count", "timeout",
    "all_parents_must_converge", "state", "execution_environment", "inventory",
}
RELATED_KEYS = {"success_nodes", "failure_nodes", "always_nodes", "credentials", "labels", "instance_groups"}
UJT_TYPES = {"job_template", "workflow_job_template", "project", "inventory_source", "workflow_approval"}


def survey_errors(spec):
    """AWX's survey spec validation, rule for rule; returns the messages it would give."""
    errors = []
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if field not in spec:
            errors.append(f"Field '{field}' is missing from survey spec.")
        elif not isinstance(spec[field], kind):
            errors.append(f"Expected {kind.__name__} for field '{field}'")
    if isinstance(spec.get("spec"), list) and not spec["spec"]:
        errors.append("'spec' doesn't contain any items.")
    if errors:
        return errors
    seen = set()
    for idx, item in enumerate(spec["spec"]):
        if not isinstance(item, dict):
            return [f"Survey question {idx} is not a json object."]
        for field in ("type", "question_name", "variable", "required"):
            if field not in item:
                return [f"'{field}' missing from survey question {idx}"]
            if not isinstance(item[field], bool if field == "required" else str):
                return [f"'{field}' in survey question {idx} has the wrong type"]
        if item["variable"] in seen:
            errors.append(f"'variable' '{item['variable']}' duplicated in survey question {idx}.")
        seen.add(item["variable"])
        qtype = item["type"]
        if qtype not in SURVEY_TYPES:
            errors.append(f"'{qtype}' in survey question {idx} is not an allowed question type")
            continue
        default = item.get("default", "")
        if default != "" and not isinstance(default, SURVEY_TYPES[qtype]):
            errors.append(f"Default value {default!r} in survey question {idx} expected to be {qtype}")
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                errors.append(f"The {key} limit in survey question {idx} expected to be integer.")
        if qtype in ("multiplechoice", "multiselect"):
            if "choices" not in item:
                errors.append(f"Survey question {idx} of type {qtype} must specify choices.")
                continue
            choices = item["choices"].splitlines() if isinstance(item["choices"], str) else item["choices"]
            if "default" in item:
                defaults = item["default"].splitlines() if isinstance(item["default"], str) else item["default"]
                if qtype == "multiplechoice" and len(defaults) > 1:
                    errors.append("Multiple Choice (Single Select) can only have one default value.")
                if any(d not in choices for d in defaults):
                    errors.append("Default choice must be answered from the choices listed.")
        # Not in AWX's checks, but AWX enforces them at launch: keep defaults launchable.
        if qtype in ("integer", "float") and isinstance(default, (int, float)):
            if item.get("min") is not None and default < item["min"] or item.get("max") is not None and default > item["max"]:
                errors.append(f"default {default} of survey question {idx} is outside min/max")
    return errors


def run_offline(playbook, tmp_path, *extra):
    """Run ``playbook`` with the offline awx.awx stand-in; return (rc, {task name: [results]})."""
    env = dict(
        os.environ,
        ANSIBLE_ACTION_PLUGINS=str(OFFLINE),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_LOCALHOST_WARNING="false",
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    )
    proc = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", str(playbook), *extra],
        cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=300,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON report (rc {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    tasks = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            res = task["hosts"]["localhost"]
            tasks[task["task"]["name"]] = res.get("results", [res])
    return proc.returncode, tasks, proc


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    rc, tasks, proc = run_offline(PLAYBOOK, tmp_path_factory.mktemp("awx"))
    failed = {name: [r.get("msg") for r in res if r.get("failed")] for name, res in tasks.items()}
    failed = {k: v for k, v in failed.items() if v}
    assert rc == 0 and not failed, f"rc {rc}; failed tasks: {failed}\n{proc.stderr[-2000:]}"
    return tasks


def awx_calls(tasks, module):
    return [r["awx_args"] for res in tasks.values() for r in res if r.get("awx_module") == f"awx.awx.{module}"]


def test_every_task_is_an_awx_module_validated_offline(offline):
    # Every task of the play went through the validator (none was skipped or ran elsewhere).
    for name, results in offline.items():
        assert results and all("awx_args" in r for r in results), name
    modules = {r["awx_module"] for res in offline.values() for r in res}
    assert modules == {
        "awx.awx.organization", "awx.awx.execution_environment", "awx.awx.credential_type", "awx.awx.credential",
        "awx.awx.project", "awx.awx.inventory", "awx.awx.inventory_source", "awx.awx.job_template",
        "awx.awx.workflow_job_template",
    }


def test_a_bad_argument_is_caught(tmp_path):
    # The validator is the one Ansible uses: a typo and a bad choice fail the task.
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "- hosts: localhost\n  connection: local\n  gather_facts: false\n  tasks:\n"
        "    - name: Bad\n      awx.awx.job_template:\n        name: x\n        job_type: plan\n        ask_diff: true\n"
        "        playbok: site.yml\n"
    )
    rc, tasks, _ = run_offline(bad, tmp_path)
    (res,) = tasks["Bad"]
    assert rc != 0 and res["failed"]
    assert "playbok" in res["msg"] and "job_type" in res["msg"] and "plan" in res["msg"]


def test_inventory_source_is_the_spec_in_the_project(offline):
    (src,) = awx_calls(offline, "inventory_source")
    (proj,) = awx_calls(offline, "project")
    assert src["source"] == "scm" and src["source_project"] == proj["name"]
    assert src["source_path"].endswith("/cluster.yml")
    assert src["overwrite"] and src["overwrite_vars"] and src["update_on_launch"]
    assert (REPO / "inventories" / "example" / "cluster.yml").is_file()


def test_one_job_template_per_stage_with_check_and_diff_prompts(offline):
    jts = {j["name"].rsplit(" ", 1)[1]: j for j in awx_calls(offline, "job_template")}
    assert list(jts) == STAGES
    for stage, jt in jts.items():
        assert jt["ask_job_type_on_launch"] and jt["ask_diff_mode_on_launch"] and jt["ask_limit_on_launch"], stage
        assert jt["job_type"] == "run"
        assert any(c.endswith(" vault") for c in jt["credentials"]) and any(c.endswith(" ssh") for c in jt["credentials"])


@pytest.mark.parametrize("stage", STAGES)
def test_stage_playbook_exists(offline, stage):
    (jt,) = [j for j in awx_calls(offline, "job_template") if j["name"].endswith(" " + stage)]
    path = REPO / jt["playbook"]
    if not path.exists() and jt["playbook"] in ("playbooks/nodes.yml", "playbooks/verify.yml"):
        pytest.xfail(f"{jt['playbook']} comes with the rackboot CLI (issue 19), not on this branch yet")
    assert path.is_file(), f"{stage}: {jt['playbook']} does not exist"


def test_surveys_follow_awx_rules_and_name_role_variables(offline):
    surveys = [j["survey_spec"] for j in awx_calls(offline, "job_template") if j.get("survey_spec")]
    surveys += [w["survey_spec"] for w in awx_calls(offline, "workflow_job_template")]
    assert surveys
    defaults = (REPO / "roles" / "node_network" / "defaults" / "main.yml").read_text()
    for spec in surveys:
        assert survey_errors(spec) == [], spec
        for q in spec["spec"]:
            # Each survey variable is one the role documents (a typo would be ignored silently).
            assert f"\n{q['variable']}:" in defaults or q["variable"] == "node_network_serial", q["variable"]
    variables = {q["variable"] for s in surveys for q in s["spec"]}
    assert "node_network_rollback_timeout" in variables


def test_survey_checker_rejects_what_awx_rejects():
    good = {"name": "n", "description": "d", "spec": [
        {"question_name": "q", "variable": "v", "type": "integer", "required": True, "default": 5, "min": 1, "max": 9}]}
    assert survey_errors(good) == []
    bad_choice = {"name": "n", "description": "d", "spec": [
        {"question_name": "q", "variable": "v", "type": "multiplechoice", "required": True, "choices": ["a"], "default": "b"}]}
    assert survey_errors(bad_choice) == ["Default choice must be answered from the choices listed."]
    assert survey_errors({"name": "n", "spec": []})[0] == "Field 'description' is missing from survey spec."


def test_workflow_chains_the_stages_and_stops_on_failure(offline):
    (wf,) = awx_calls(offline, "workflow_job_template")
    nodes = {n["identifier"]: n for n in wf["workflow_nodes"]}
    assert len(nodes) == len(wf["workflow_nodes"])
    jt_names = {j["name"] for j in awx_calls(offline, "job_template")}
    for node in wf["workflow_nodes"]:
        assert set(node) <= NODE_KEYS and set(node["related"]) <= RELATED_KEYS
        ujt = node["unified_job_template"]
        assert ujt["type"] in UJT_TYPES
        if ujt["type"] == "job_template":
            assert ujt["name"] in jt_names and ujt["organization"]["name"] == wf["organization"]
        # No failure or always paths: a failed stage ends the workflow.
        assert node["related"]["failure_nodes"] == [] and node["related"]["always_nodes"] == []
        assert all(link["identifier"] in nodes for link in node["related"]["success_nodes"])
    # One chain from the first node through every node.
    children = {i: [s["identifier"] for s in n["related"]["success_nodes"]] for i, n in nodes.items()}
    roots = set(nodes) - {c for cs in children.values() for c in cs}
    order, cur = [], roots.pop()
    while cur:
        order.append(cur)
        cur = children[cur][0] if children[cur] else None
    assert order == ["validate", "render", "approve", "routers", "network", "nodes", "cluster", "verify"]
    assert nodes["approve"]["unified_job_template"]["type"] == "workflow_approval"
