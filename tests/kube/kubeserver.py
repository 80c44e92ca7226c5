"""A real etcd + kube-apiserver on loopback for integration tests (no mocks).

The operator user authenticates with a static token and is bound only to the ClusterRole
and Role from manifests/rbac.yaml, so tests prove that RBAC is enough (and not more).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from reconciler.model.keys import CLUSTER_SCOPED, KINDS
from reconciler.operator.kube import (
    Conflict,
    KubeClient,
    KubeError,
    NotFound,
    load_config,
    resource_path,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "reconciler" / "crds"
RBAC_FILE = ROOT / "manifests" / "rbac.yaml"
OPERATOR_USER = "reconciler-operator"
OPERATOR_NAMESPACE = "reconciler-system"

# kind -> collection path builder for the few non-reconciler kinds the fixture applies.
_RBAC = "/apis/rbac.authorization.k8s.io/v1"
_PATHS: dict[str, Callable[[str], str]] = {
    "ClusterRole": lambda ns: f"{_RBAC}/clusterroles",
    "ClusterRoleBinding": lambda ns: f"{_RBAC}/clusterrolebindings",
    "Role": lambda ns: f"{_RBAC}/namespaces/{ns}/roles",
    "RoleBinding": lambda ns: f"{_RBAC}/namespaces/{ns}/rolebindings",
    "CustomResourceDefinition": lambda ns: (
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    ),
    "Namespace": lambda ns: "/api/v1/namespaces",
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def find_apiserver() -> str:
    """Path of kube-apiserver, via the project's install script (builds once, then cached)."""
    script = ROOT / "scripts" / "install-kube-apiserver.sh"
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise RuntimeError(f"install-kube-apiserver.sh failed:\n{done.stdout}\n{done.stderr}")
    return lines[-1]


class KubeServer:
    """etcd + kube-apiserver in a temp dir, with CRDs and RBAC installed."""

    def __init__(self) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="reconciler-kube-"))
        self.admin_token = secrets.token_hex(16)
        self.operator_token = secrets.token_hex(16)
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca_file = str(self.tmpdir / "certs" / "apiserver.crt")
        self.admin_kubeconfig = str(self.tmpdir / "admin.kubeconfig")
        self.operator_kubeconfig = str(self.tmpdir / "operator.kubeconfig")
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(self, timeout: float = 60.0) -> KubeServer:
        """Start both processes, wait for /readyz, install CRDs and RBAC."""
        try:
            binary = find_apiserver()
            etcd_url = self._start_etcd()
            self._write_credentials()
            self._start_apiserver(binary, etcd_url)
            self._wait_ready(timeout)
            self._write_kubeconfig(self.admin_kubeconfig, "admin", self.admin_token)
            self._write_kubeconfig(self.operator_kubeconfig, OPERATOR_USER, self.operator_token)
            self._install()
        except BaseException:
            self.stop()
            raise
        return self

    def admin_client(self) -> KubeClient:
        """A client authenticated as a system:masters user."""
        return KubeClient(load_config(self.admin_kubeconfig))

    def operator_client(self) -> KubeClient:
        """A client authenticated as the operator user (rbac.yaml permissions only)."""
        return KubeClient(load_config(self.operator_kubeconfig))

    def stop(self) -> None:
        """Kill both processes by PID and remove the temp dir."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self._procs.clear()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def reset(self, namespace: str) -> None:
        """Delete every reconciler.dev object in ``namespace``, removing finalizers first."""
        client = self.admin_client()
        for kind in KINDS:
            if kind in CLUSTER_SCOPED:
                continue
            for item in client.list(resource_path(kind, namespace)).get("items", []):
                path = resource_path(kind, namespace, item["metadata"]["name"])
                try:
                    if item["metadata"].get("finalizers"):
                        client.merge_patch(path, {"metadata": {"finalizers": None}})
                    client.delete(path)
                except NotFound:
                    pass
        client.close()

    def apply_document(self, client: KubeClient, doc: dict[str, Any]) -> dict[str, Any]:
        """Create ``doc`` (RBAC, CRD or Namespace) or replace it if it exists."""
        meta = doc["metadata"]
        base = _PATHS[doc["kind"]](meta.get("namespace", ""))
        try:
            return client.create(base, doc)
        except Conflict:
            current = client.get(f"{base}/{meta['name']}")
            meta["resourceVersion"] = current["metadata"]["resourceVersion"]
            return client.replace(f"{base}/{meta['name']}", doc)

    def _start_etcd(self) -> str:
        client_port, peer_port = free_port(), free_port()
        url = f"http://127.0.0.1:{client_port}"
        self._spawn(
            "etcd",
            [
                shutil.which("etcd") or "etcd",
                f"--data-dir={self.tmpdir / 'etcd'}",
                f"--listen-client-urls={url}",
                f"--advertise-client-urls={url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                "--unsafe-no-fsync",
            ],
        )
        return url

    def _write_credentials(self) -> None:
        key, pub = self.tmpdir / "sa.key", self.tmpdir / "sa.pub"
        subprocess.run(
            ["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True
        )
        subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)],
            check=True,
            capture_output=True,
        )
        (self.tmpdir / "tokens.csv").write_text(
            f'{self.admin_token},admin,admin-uid,"system:masters"\n'
            f"{self.operator_token},{OPERATOR_USER},operator-uid\n"
        )

    def _start_apiserver(self, binary: str, etcd_url: str) -> None:
        d = self.tmpdir
        self._spawn(
            "kube-apiserver",
            [
                binary,
                f"--etcd-servers={etcd_url}",
                f"--secure-port={self.port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--cert-dir={d / 'certs'}",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={d / 'sa.pub'}",
                f"--service-account-signing-key-file={d / 'sa.key'}",
                f"--token-auth-file={d / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--enable-priority-and-fairness=false",
            ],
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.tmpdir / f"{name}.log", "wb")  # noqa: SIM115 - owned by the process
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        self._procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env))
        log.close()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    raise RuntimeError(f"{proc.args!r} exited:\n{self.logs()}")
            if Path(self.ca_file).is_file():
                self._write_kubeconfig(self.admin_kubeconfig, "admin", self.admin_token)
                client = KubeClient(load_config(self.admin_kubeconfig), timeout=5.0)
                try:
                    client.get("/readyz")
                except ValueError:  # 200 with the plain-text body "ok": ready
                    return
                except KubeError:  # not listening yet, or 500 while hooks start
                    pass
                finally:
                    client.close()
            time.sleep(0.2)
        raise RuntimeError(f"kube-apiserver not ready after {timeout}s:\n{self.logs()}")

    def logs(self, tail: int = 40) -> str:
        """The last lines of both processes' logs, for failure messages."""
        out = []
        for name in ("etcd", "kube-apiserver"):
            path = self.tmpdir / f"{name}.log"
            if path.is_file():
                lines = path.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)

    def _write_kubeconfig(self, path: str, user: str, token: str) -> None:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "test",
                    "cluster": {"server": self.url, "certificate-authority": self.ca_file},
                }
            ],
            "users": [{"name": user, "user": {"token": token}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": user}}],
            "current-context": "test",
        }
        Path(path).write_text(yaml.safe_dump(config))

    def _install(self) -> None:
        client = self.admin_client()
        self.apply_document(client, namespace_body(OPERATOR_NAMESPACE))
        crds = [
            doc
            for path in sorted(CRD_DIR.glob("*.yaml"))
            for doc in yaml.safe_load_all(path.read_text())
            if doc
        ]
        for crd in crds:
            self.apply_document(client, crd)
        for doc in yaml.safe_load_all(RBAC_FILE.read_text()):
            if doc:
                self.apply_document(client, doc)
        for kind, scoped in (("ClusterRoleBinding", ""), ("RoleBinding", OPERATOR_NAMESPACE)):
            self.apply_document(client, _user_binding(kind, scoped))
        self._wait_established(client, [crd["metadata"]["name"] for crd in crds])
        client.close()

    def _wait_established(
        self, client: KubeClient, names: list[str], timeout: float = 30.0
    ) -> None:
        base = _PATHS["CustomResourceDefinition"]("")
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                conditions = client.get(f"{base}/{name}").get("status", {}).get("conditions", [])
                if any(c["type"] == "Established" and c["status"] == "True" for c in conditions):
                    pending.discard(name)
            time.sleep(0.1)
        if pending:
            raise RuntimeError(f"CRDs not Established: {sorted(pending)}")


def namespace_body(name: str) -> dict[str, Any]:
    """A Namespace object."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def _user_binding(kind: str, namespace: str) -> dict[str, Any]:
    """Bind rbac.yaml's ClusterRole (or Role) to the operator's token user."""
    meta: dict[str, Any] = {"name": f"{OPERATOR_USER}-user"}
    if namespace:
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role" if namespace else "ClusterRole",
            "name": OPERATOR_USER,
        },
        "subjects": [
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": OPERATOR_USER}
        ],
    }


def vm_body(name: str, namespace: str, vcpus: int = 2, **spec: Any) -> dict[str, Any]:
    """A valid VirtualMachine object (extra ``spec`` keys merged in)."""
    return {
        "apiVersion": "reconciler.dev/v1alpha1",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "image": "ubuntu-24-04",
            "resources": {"vcpus": vcpus, "memoryGiB": 4, "diskGiB": 20},
            "policyRef": {"name": "default"},
            **spec,
        },
    }
