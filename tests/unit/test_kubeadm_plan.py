"""Who runs `kubeadm init`, who joins and how; parsing of kubeadm's output; the command lines."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.rackboot.metal.plugins.plugin_utils import kubeadm as kb
from ansible_collections.rackboot.metal.plugins.plugin_utils.cluster_model import build

TOKEN = "9a08jv.c0izixklcxtmnze7"
CA_HASH = "sha256:" + "0123456789abcdef" * 4
CERT_KEY = "f8902e114ef118304e561c3ecd4d0b543adc226b7a07f675f56564185ffe0c07"

# kubeadm's own output shapes (kubeadm token create --print-join-command;
# kubeadm init phase upload-certs --upload-certs).
JOIN_OUTPUT = "kubeadm join 10.10.0.5:6443 --token %s --discovery-token-ca-cert-hash %s \n" % (TOKEN, CA_HASH)
UPLOAD_OUTPUT = ("I1123 17:30:00.000000   1234 version.go:256] remote version is much newer\n"
                 "[upload-certs] Storing the certificates in Secret \"kubeadm-certs\" in the \"kube-system\" Namespace\n"
                 "[upload-certs] Using certificate key:\n%s\n" % CERT_KEY)


@pytest.fixture
def example(example_spec):
    example_spec["cluster"]["distribution"] = "kubeadm"
    for n in example_spec["nodes"]:
        n.pop("install_disk", None)
    return example_spec, build(example_spec, source="example")


def names(spec, role):
    return [n["name"] for n in spec["nodes"] if n["role"] == role]


def cp_state(spec, admin=(), kubelet=()):
    return {n: {"admin_conf": n in admin, "kubelet_conf": n in kubelet} for n in names(spec, "controlplane")}


def all_hosts(spec):
    return [n["name"] for n in spec["nodes"]]


def test_fresh_cluster_inits_on_the_first_control_plane(example):
    spec, model = example
    cps, workers = names(spec, "controlplane"), names(spec, "worker")
    plan = kb.join_plan(model.cluster, cp_state(spec), all_hosts(spec), {})
    assert plan["init"] == cps[0] == plan["source"]
    assert plan["join_controlplanes"] == cps[1:]
    assert plan["join_workers"] == workers
    assert plan["joined"] == []
    assert plan["needs_token"] and plan["needs_certificate_key"]


def test_healthy_cluster_changes_nothing(example):
    spec, model = example
    cps = names(spec, "controlplane")
    plan = kb.join_plan(model.cluster, cp_state(spec, cps, cps), all_hosts(spec),
                        {n: True for n in all_hosts(spec)})
    assert plan["init"] is None
    assert plan["join_controlplanes"] == [] and plan["join_workers"] == []
    assert plan["joined"] == all_hosts(spec)
    assert not plan["needs_token"] and not plan["needs_certificate_key"]


def test_new_worker_joins_with_a_token_only(example):
    spec, model = example
    cps, workers = names(spec, "controlplane"), names(spec, "worker")
    state = {n: True for n in all_hosts(spec)}
    state[workers[-1]] = False
    plan = kb.join_plan(model.cluster, cp_state(spec, cps, cps), all_hosts(spec), state)
    assert plan["init"] is None and plan["source"] == cps[0]
    assert plan["join_workers"] == [workers[-1]] and plan["join_controlplanes"] == []
    assert plan["needs_token"] and not plan["needs_certificate_key"]


def test_reinstalled_bootstrap_node_joins_instead_of_initializing(example):
    spec, model = example
    cps = names(spec, "controlplane")
    alive = cps[1:]
    plan = kb.join_plan(model.cluster, cp_state(spec, alive, alive), all_hosts(spec),
                        {n: n != cps[0] for n in all_hosts(spec)})
    assert plan["init"] is None
    assert plan["join_controlplanes"] == [cps[0]]
    assert plan["source"] == alive[0]


def test_fresh_cluster_needs_the_bootstrap_node_in_the_run(example):
    spec, model = example
    cps = names(spec, "controlplane")
    with pytest.raises(kb.KubeadmError, match="bootstrap node %s must be part of the run" % cps[0]):
        kb.join_plan(model.cluster, cp_state(spec), [h for h in all_hosts(spec) if h != cps[0]], {})


def test_limit_only_joins_hosts_in_the_run(example):
    spec, model = example
    cps, workers = names(spec, "controlplane"), names(spec, "worker")
    plan = kb.join_plan(model.cluster, cp_state(spec, cps, cps), cps + workers[:1], {})
    assert plan["join_workers"] == workers[:1]


def test_no_admin_conf_anywhere_is_an_error(example):
    spec, model = example
    cps, workers = names(spec, "controlplane"), names(spec, "worker")
    with pytest.raises(kb.KubeadmError, match="none has /etc/kubernetes/admin.conf"):
        kb.join_plan(model.cluster, cp_state(spec, (), cps), all_hosts(spec), {workers[0]: False})


def test_every_control_plane_must_be_looked_at(example):
    spec, model = example
    state = cp_state(spec)
    state.pop(names(spec, "controlplane")[-1])
    with pytest.raises(kb.KubeadmError, match="no state for control plane"):
        kb.join_plan(model.cluster, state, all_hosts(spec), {})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_plan_invariants(example, data):
    # The fixture is only read, never changed, so sharing it between examples is safe.
    example_spec, model = example
    cps, workers = names(example_spec, "controlplane"), names(example_spec, "worker")
    hosts = all_hosts(example_spec)
    state = {c: {"admin_conf": data.draw(st.booleans()), "kubelet_conf": data.draw(st.booleans())} for c in cps}
    play = data.draw(st.lists(st.sampled_from(hosts), unique=True, min_size=1))
    joined = {w: data.draw(st.booleans()) for w in workers}
    try:
        plan = kb.join_plan(model.cluster, state, play, joined)
    except kb.KubeadmError:
        return
    set_up = [c for c in cps if state[c]["admin_conf"] or state[c]["kubelet_conf"]]
    if plan["init"] is not None:
        assert plan["init"] == cps[0] and not set_up  # never a second init
    else:
        assert set_up
    if plan["needs_token"]:
        assert plan["init"] == plan["source"] or state[plan["source"]]["admin_conf"]
    groups = ([plan["init"]] if plan["init"] else []) + plan["join_controlplanes"] + plan["join_workers"] + plan["joined"]
    assert sorted(groups) == sorted(play)  # every host of the run in exactly one group
    assert set(plan["join_controlplanes"]) <= set(cps) and set(plan["join_workers"]) <= set(workers)
    for w in plan["joined"]:
        assert (w in cps and set_up and (state[w]["admin_conf"] or state[w]["kubelet_conf"])) or joined.get(w)


def test_parse_join_command():
    assert kb.parse_join_command(JOIN_OUTPUT) == {"token": TOKEN, "ca_cert_hashes": [CA_HASH]}
    equals_form = "kubeadm join 10.0.0.5:6443 --token=%s --discovery-token-ca-cert-hash=%s" % (TOKEN, CA_HASH)
    assert kb.parse_join_command(equals_form)["token"] == TOKEN
    with pytest.raises(kb.KubeadmError, match="no join command"):
        kb.parse_join_command("error: could not connect")
    with pytest.raises(kb.KubeadmError, match="ca-cert-hash"):
        kb.parse_join_command("kubeadm join 10.0.0.5:6443 --token %s" % TOKEN)


def test_parse_certificate_key():
    assert kb.parse_certificate_key(UPLOAD_OUTPUT) == CERT_KEY
    with pytest.raises(kb.KubeadmError, match="no certificate key"):
        kb.parse_certificate_key("[upload-certs] Storing the certificates\n")


def test_state_from_stat_loop_results(example):
    spec, model = example
    cps = names(spec, "controlplane")
    results = [{"item": [c, f], "stat": {"exists": c == cps[0]}} for c in cps for f in ("admin.conf", "kubelet.conf")]
    state = kb.state_from_stats(results)
    assert state == cp_state(spec, cps[:1], cps[:1])
    assert kb.join_plan(model.cluster, state, all_hosts(spec), {})["init"] is None


def test_command_lines_carry_no_secrets():
    cmds = kb.commands("/etc/kubernetes/kubeadm-config.yaml", "/etc/kubernetes/kubeadm-join.yaml", "15m")
    assert cmds["init"][:4] == ["kubeadm", "init", "--config", "/etc/kubernetes/kubeadm-config.yaml"]
    assert cmds["join_node"] == ["kubeadm", "join", "--config", "/etc/kubernetes/kubeadm-join.yaml"]
    assert cmds["token"][:3] == ["kubeadm", "token", "create"] and "--print-join-command" in cmds["token"]
    assert cmds["token"][cmds["token"].index("--ttl") + 1] == "15m"
    assert cmds["upload_certs"][:5] == ["kubeadm", "init", "phase", "upload-certs", "--upload-certs"]
    for argv in cmds.values():
        assert all(isinstance(a, str) for a in argv)
        assert not any(a.startswith(("--token", "--certificate-key", "--discovery-token")) for a in argv)
