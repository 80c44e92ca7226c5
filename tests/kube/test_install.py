"""`kubectl apply -k manifests/` installs on a real API server, twice (idempotent)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from kube.kubeserver import KubeServer
from reconciler.operator.kube import resource_path

ROOT = Path(__file__).resolve().parents[2]


def test_kubectl_apply_k_manifests_installs_everything(kube: KubeServer) -> None:
    for _ in range(2):
        argv = ["kubectl", "--kubeconfig", kube.admin_kubeconfig, "apply", "-k"]
        out = subprocess.run(
            [*argv, str(ROOT / "manifests")], capture_output=True, text=True, timeout=120
        )
        assert out.returncode == 0, out.stderr
    client = kube.admin_client()
    deploy = client.get("/apis/apps/v1/namespaces/reconciler-system/deployments/reconciler")
    assert deploy["spec"]["replicas"] == 2
    client.get("/api/v1/namespaces/reconciler-system/serviceaccounts/reconciler")
    client.get("/api/v1/namespaces/reconciler-system/services/reconciler-metrics")
    client.get("/apis/rbac.authorization.k8s.io/v1/clusterroles/reconciler-operator")
    crds = client.list("/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]
    assert {c["spec"]["names"]["kind"] for c in crds} >= {
        "Cloud", "BrokerPolicy", "VirtualMachine", "VirtualMachineSet", "Volume", "Bucket", "Image",
    }  # fmt: skip
    client.list(resource_path("VirtualMachine"))
    client.close()
