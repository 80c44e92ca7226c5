"""Run `reconciler operator` as a real process against the test API server, and
helpers to build objects, wait for conditions and read the simulated clouds."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kube.kubeserver import KubeServer, free_port, vm_body
from reconciler.operator.kube import KubeClient, NotFound, resource_path
from reconciler.providers.sim.records import SimResource
from reconciler.providers.sim.world import WORLD_DIR, SimWorld

T = TypeVar("T")
OPERATOR_NS = "reconciler-system"


class Env:
    """One test's world: its namespace, its sim Cloud and state, its operators."""

    def __init__(self, kube: KubeServer, namespace: str, tmp: Path) -> None:
        self.kube, self.ns, self.tmp = kube, namespace, tmp
        self.cloud = f"sim-{namespace}"[:63]
        self.state = tmp / "state"
        self.admin: KubeClient = kube.admin_client()
        self.operators: list[Operator] = []
        self.clouds: list[str] = []  # more Clouds the test made (removed afterwards)

    def operator(
        self, *extra: str, identity: str = "", env: dict[str, str] | None = None, wait: bool = True
    ) -> Operator:
        """Start an operator (``env``: extra environment; ``wait``: until ready)."""
        op = Operator(self.kube, self.state, self.ns, *extra, identity=identity, env=env)
        self.operators.append(op)
        return op.start(wait)

    def basics(self, **cloud_spec: object) -> None:
        create(self.admin, cloud_body(self.cloud, **cloud_spec))
        create(self.admin, policy_body(self.ns))
        create(self.admin, image_body(self.ns))

    def vm(self, name: str, **spec: object) -> dict[str, object]:
        return create(self.admin, vm_body(name, self.ns, **spec))

    def vms(self) -> list[object]:
        return sim_resources(self.state, self.cloud)

    def path(self, name: str, kind: str = "VirtualMachine") -> str:
        return resource_path(kind, self.ns, name)


class Operator:
    """One operator process (authenticated as the RBAC-limited operator user)."""

    def __init__(
        self,
        kube: KubeServer,
        state: Path,
        tag: str,
        *extra: str,
        identity: str = "",
        env: dict[str, str] | None = None,
    ):
        self.kube = kube
        self.env = dict(env or {})
        self.state = state
        self.identity = identity or f"op-{secrets.token_hex(3)}"
        self.port = free_port()
        self.log_path = state.parent / f"{self.identity}.log"
        self.argv = [
            sys.executable, "-m", "reconciler", "operator",
            "--kubeconfig", kube.operator_kubeconfig,
            "--namespace", OPERATOR_NS,
            "--metrics-addr", f"127.0.0.1:{self.port}",
            "--state", str(state),
            "--identity", self.identity,
            "--lease-name", f"lease-{tag}",
            "--journal-name", f"journal-{tag}",
            "--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1",
            "--resync", "5",
            *extra,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> Operator:
        log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        if wait:
            wait_for(lambda: self.http("/readyz") == "ok", 30, f"{self.identity} ready")
        return self

    def http(self, path: str) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return str(r.read().decode()).strip()
        except OSError:
            return None

    def metric(self, name: str, **labels: str) -> float:
        text = self.http("/metrics") or ""
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def cloud_body(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler.dev/v1alpha1",
        "kind": "Cloud",
        "metadata": {"name": name},
        "spec": {
            "provider": "sim",
            "region": "eu-west-1",
            "pricing": {"catalog": "aws-eu-west-1"},
            **spec,
        },
    }


def policy_body(namespace: str, name: str = "default", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "reconciler.dev/v1alpha1",
        "kind": "BrokerPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"objective": "Cost", **spec},
    }


def image_body(namespace: str, name: str = "ubuntu-24-04") -> dict[str, Any]:
    return {
        "apiVersion": "reconciler.dev/v1alpha1",
        "kind": "Image",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"format": "qcow2", "url": "https://example.com/ubuntu.qcow2", "os": "linux"},
    }


def create(client: KubeClient, body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return client.create(resource_path(body["kind"], meta.get("namespace", "")), body)


def get(client: KubeClient, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return client.get(resource_path(kind, namespace, name))
    except NotFound:
        return None


def cond(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return dict(c)
    return {}


def wait_condition(
    client: KubeClient, kind: str, ns: str, name: str, type_: str, status: str,
    reason: str | None = None, timeout: float = 30,
) -> dict[str, Any]:  # fmt: skip
    def check() -> dict[str, Any] | None:
        obj = get(client, kind, ns, name)
        c = cond(obj, type_)
        ok = c.get("status") == status and (reason is None or c.get("reason") == reason)
        return obj if ok else None

    return wait_for(check, timeout, f"{kind}/{ns}/{name} {type_}={status} {reason or ''}")


def sim_resources(state: Path, cloud: str, kind: str = "vm") -> list[SimResource]:
    world = SimWorld((state / WORLD_DIR).resolve())
    try:
        with world.reading():
            return [r for r in world.resources(cloud) if r.kind == kind]
    finally:
        world.close()


def sim_all(state: Path) -> list[SimResource]:
    """Every resource of every simulated cloud (VMs, volumes, buckets, objects, images)."""
    world = SimWorld((state / WORLD_DIR).resolve())
    try:
        with world.reading():
            return list(world.resources())
    finally:
        world.close()


def sim_write_disk(state: Path, rid: str, data: bytes) -> str:
    """Append ``data`` to a simulated VM's or volume's disk; returns its new SHA-256."""
    world = SimWorld((state / WORLD_DIR).resolve())
    try:
        return world.write_disk(rid, data)
    finally:
        world.close()


def events_for(client: KubeClient, namespace: str, name: str) -> list[dict[str, Any]]:
    items = client.list(resource_path("Event", namespace)).get("items") or []
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]


def cleanup(kube: KubeServer, namespace: str, clouds: list[str]) -> None:
    """Remove the test's objects (finalizers first) so later tests' operators never see them."""
    kube.reset(namespace)
    client = kube.admin_client()
    for name in clouds:
        path = resource_path("Cloud", "", name)
        try:
            client.merge_patch(path, {"metadata": {"finalizers": None}})
            client.delete(path)
        except NotFound:
            pass
    client.close()


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True)
