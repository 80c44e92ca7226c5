"""Crash safety and high availability: a killed operator resumes without duplicates,
two replicas elect one leader and fail over; credentials stay secret; plan --cluster."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time

import pytest

from kube.ophelp import (
    OPERATOR_NS,
    Env,
    cond,
    events_for,
    get,
    wait_condition,
    wait_for,
)
from reconciler.operator.kube import resource_path

pytestmark = pytest.mark.timeout(240)


def _lease_holder(e: Env) -> str:
    lease = e.admin.get(resource_path("Lease", OPERATOR_NS, f"lease-{e.ns}"))
    return str((lease.get("spec") or {}).get("holderIdentity") or "")


def test_killed_mid_apply_resumes_without_duplicates(env: Env) -> None:
    env.basics(simulation={"latencyMs": 400})
    for i in range(6):
        env.vm(f"w{i}")
    first = env.operator("--parallelism", "2")
    wait_for(lambda: len(env.vms()) >= 1, 60, "the first VM created")
    first.kill()  # SIGKILL mid-apply: calls in flight, intents in the journal ConfigMap
    created_before = len(env.vms())
    assert created_before < 6
    env.operator("--parallelism", "2")
    for i in range(6):
        wait_condition(env.admin, "VirtualMachine", env.ns, f"w{i}", "Ready", "True", timeout=90)
    keys = sorted(vm.tags["reconciler.dev/key"] for vm in env.vms())
    assert keys == sorted(f"VirtualMachine/{env.ns}/w{i}" for i in range(6))  # no duplicates
    journal = env.admin.get(resource_path("ConfigMap", OPERATOR_NS, f"journal-{env.ns}"))
    assert json.loads(journal["data"]["inflight.json"]) == {}


def test_two_replicas_elect_one_leader_and_fail_over(env: Env) -> None:
    env.basics()
    env.vm("ha0")
    a = env.operator(identity=f"a-{env.ns}"[:40])
    b = env.operator(identity=f"b-{env.ns}"[:40])
    wait_condition(env.admin, "VirtualMachine", env.ns, "ha0", "Ready", "True")
    leader, standby = (a, b) if _lease_holder(env) == a.identity else (b, a)
    assert _lease_holder(env) == leader.identity
    assert leader.metric("reconciler_is_leader") == 1.0
    assert standby.metric("reconciler_is_leader") == 0.0
    assert standby.metric("reconciler_actions_total") == 0.0  # only the leader acts
    leader.kill()
    killed = time.monotonic()
    wait_for(lambda: _lease_holder(env) == standby.identity, 20, "standby takes the lease")
    took = time.monotonic() - killed
    assert took <= 15.0, took
    env.vm("ha1")
    wait_condition(env.admin, "VirtualMachine", env.ns, "ha1", "Ready", "True", timeout=30)
    assert len(env.vms()) == 2  # ha0 was not created again
    assert standby.metric("reconciler_actions_total", action="create") == 1.0
    assert standby.terminate() == 0
    assert _lease_holder(env) == ""  # released on SIGTERM


def test_credentials_come_from_a_secret_and_never_leak(env: Env) -> None:
    value = "s3cr3t-value-that-must-not-leak"
    env.basics(credentialsSecretRef={"name": f"creds-{env.ns}"[:60]})
    env.vm("c1")
    op = env.operator()
    missing = wait_condition(env.admin, "Cloud", "", env.cloud, "Ready", "False")
    assert "not found" in cond(missing, "Synced")["message"]
    assert env.vms() == []  # nothing is done while a cloud cannot be used
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"creds-{env.ns}"[:60], "namespace": OPERATOR_NS},
        "data": {"token": base64.b64encode(value.encode()).decode()},
    }
    env.admin.create(resource_path("Secret", OPERATOR_NS), secret)
    try:
        wait_condition(env.admin, "VirtualMachine", env.ns, "c1", "Ready", "True", timeout=90)
        objects = [
            get(env.admin, "Cloud", "", env.cloud),
            get(env.admin, "VirtualMachine", env.ns, "c1"),
            *events_for(env.admin, env.ns, "c1"),
            *events_for(env.admin, "default", env.cloud),
        ]
        everything = json.dumps(objects)
        assert value not in everything
        assert value not in op.logs()
        assert op.terminate() == 0
        assert value not in op.logs()
    finally:
        env.admin.delete(resource_path("Secret", OPERATOR_NS, secret["metadata"]["name"]))


def test_plan_cluster_shows_what_the_operator_would_do(env: Env) -> None:
    env.basics()
    env.vm("pc1")
    env.vm("pc2", paused=True)
    out = subprocess.run(
        [sys.executable, "-m", "reconciler", "plan", "--cluster", "--kubeconfig",
         env.kube.operator_kubeconfig, "--state", str(env.state), "-o", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    ids = [a["id"] for a in plan["actions"]]
    assert any(i.startswith(f"create:VirtualMachine/{env.ns}/pc1@") for i in ids)
    assert not any("/pc2@" in i for i in ids)
    assert "paused" in out.stderr and "pc2" in out.stderr
    assert env.vms() == []  # planning changes nothing


def test_sigterm_finishes_the_action_in_flight_and_exits_0(env: Env) -> None:
    env.basics(simulation={"latencyMs": 1500})
    for i in range(4):
        env.vm(f"t{i}")
    op = env.operator("--parallelism", "1")
    wait_for(lambda: '"msg": "action start"' in op.logs(), 60, "an action in flight")
    assert op.terminate(timeout=60) == 0
    logs = op.logs()
    assert '"msg": "action done"' in logs  # the call in flight was finished, not cut
    journal = env.admin.get(resource_path("ConfigMap", OPERATOR_NS, f"journal-{env.ns}"))
    assert json.loads(journal["data"]["inflight.json"]) == {}  # and its outcome journaled
    done = len(env.vms())
    assert 1 <= done < 4
    env.operator("--parallelism", "4")
    for i in range(4):
        wait_condition(env.admin, "VirtualMachine", env.ns, f"t{i}", "Ready", "True", timeout=90)
    assert len(env.vms()) == 4
