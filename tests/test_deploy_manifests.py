"""The install manifests, the Dockerfile and the GitOps examples, checked without a cluster.

`kubectl kustomize manifests/` must render the CRDs exactly as reconciler/crds/ ships them
(the one copy the CLI validates against), plus a locked-down operator Deployment.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.manifest import crd_dir
from reconciler.model.keys import KINDS

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
GITOPS = ROOT / "examples" / "gitops"
NAMESPACE = "reconciler-system"
COMMON_LABELS = {
    "app.kubernetes.io/name": "reconciler",
    "app.kubernetes.io/part-of": "reconciler",
}
ARGS = [
    "operator",
    "--namespace",
    NAMESPACE,
    "--metrics-addr",
    "0.0.0.0:8080",
    "--state",
    "/var/lib/reconciler",
]

Doc = dict[str, Any]


def _load_all(text: str) -> list[Doc]:
    return [doc for doc in yaml.load_all(text, Loader=yaml.CSafeLoader) if doc]


def _source_crds() -> dict[str, Doc]:
    """CRD name -> document, as shipped in reconciler/crds/."""
    out: dict[str, Doc] = {}
    for path in sorted(crd_dir().glob("*.yaml")):
        for doc in _load_all(path.read_text(encoding="utf-8")):
            out[doc["metadata"]["name"]] = doc
    return out


@pytest.fixture(scope="module")
def rendered() -> list[Doc]:
    """The objects `kubectl apply -k manifests/` would send."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return _load_all(result.stdout)


def _only(docs: list[Doc], kind: str, name: str | None = None) -> Doc:
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _container(docs: list[Doc]) -> Doc:
    pod = _only(docs, "Deployment", "reconciler")["spec"]["template"]["spec"]
    containers: list[Doc] = pod["containers"]
    assert len(containers) == 1
    return containers[0]


def test_crd_kustomization_lists_every_shipped_crd() -> None:
    kustomization = yaml.safe_load((crd_dir() / "Kustomization").read_text(encoding="utf-8"))
    shipped = sorted(path.name for path in crd_dir().glob("*.yaml"))
    assert sorted(kustomization["resources"]) == shipped
    assert len(shipped) == len(KINDS)


def test_renders_the_shipped_crds_unchanged(rendered: list[Doc]) -> None:
    source = _source_crds()
    crds = {d["metadata"]["name"]: d for d in rendered if d["kind"] == "CustomResourceDefinition"}
    assert sorted(crds) == sorted(source)
    assert sorted(d["spec"]["names"]["kind"] for d in crds.values()) == sorted(KINDS)
    for name, doc in crds.items():
        stripped = copy.deepcopy(doc)
        labels = stripped["metadata"].get("labels", {})
        for key in COMMON_LABELS:
            labels.pop(key, None)
        if not labels:
            stripped["metadata"].pop("labels", None)
        assert stripped == source[name], f"{name} differs from reconciler/crds/"


def test_renders_every_expected_object(rendered: list[Doc]) -> None:
    kinds = sorted(d["kind"] for d in rendered)
    expected = ["CustomResourceDefinition"] * len(KINDS) + [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Namespace",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    assert kinds == sorted(expected)
    assert _only(rendered, "Namespace")["metadata"]["name"] == NAMESPACE


def test_every_object_has_the_common_labels(rendered: list[Doc]) -> None:
    for doc in rendered:
        labels = doc["metadata"].get("labels", {})
        assert COMMON_LABELS.items() <= labels.items(), doc["metadata"]["name"]
    template = _only(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert COMMON_LABELS.items() <= template.items()


def test_namespaced_objects_live_in_the_operator_namespace(rendered: list[Doc]) -> None:
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for doc in rendered:
        namespace = doc["metadata"].get("namespace")
        assert namespace == (None if doc["kind"] in cluster_scoped else NAMESPACE), doc["kind"]


def test_rbac_binds_the_service_account(rendered: list[Doc]) -> None:
    account = _only(rendered, "ServiceAccount")["metadata"]["name"]
    assert _only(rendered, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == (
        account
    )
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = _only(rendered, kind)
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
        assert binding["roleRef"]["kind"] == role_kind
        _only(rendered, role_kind, binding["roleRef"]["name"])


def test_deployment_shape(rendered: list[Doc]) -> None:
    deployment = _only(rendered, "Deployment", "reconciler")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    assert spec["replicas"] == 2
    selector = spec["selector"]["matchLabels"]
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    assert pod["terminationGracePeriodSeconds"] == 60
    container = _container(rendered)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"ghcr.io/reconciler-dev/reconciler:{version}"
    assert container["args"] == ARGS
    env = {e["name"]: e for e in container["env"]}
    assert env["RECONCILER_OWNER"]["value"] == "reconciler"
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert container["resources"] == {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "1Gi"},
    }
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": 8080}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 8080}
    assert {"name": "metrics", "containerPort": 8080, "protocol": "TCP"} in container["ports"]


def test_deployment_is_locked_down(rendered: list[Doc]) -> None:
    pod = _only(rendered, "Deployment")["spec"]["template"]["spec"]
    # The container's securityContext wins over the pod's for fields both can set.
    effective = {**pod.get("securityContext", {}), **_container(rendered)["securityContext"]}
    assert effective["runAsNonRoot"] is True
    assert effective["runAsUser"] == 65532
    assert effective["readOnlyRootFilesystem"] is True
    assert effective["allowPrivilegeEscalation"] is False
    assert effective["capabilities"]["drop"] == ["ALL"]
    assert effective["seccompProfile"] == {"type": "RuntimeDefault"}
    assert not effective.get("privileged", False)


def test_writable_paths_are_empty_dirs(rendered: list[Doc]) -> None:
    pod = _only(rendered, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in _container(rendered)["volumeMounts"]}
    assert set(mounts) == {"/var/lib/reconciler", "/tmp"}
    for name in mounts.values():
        assert "emptyDir" in volumes[name]


def test_replicas_prefer_different_nodes(rendered: list[Doc]) -> None:
    template = _only(rendered, "Deployment")["spec"]["template"]
    pod, labels = template["spec"], template["metadata"]["labels"]
    spreads = [
        c
        for c in pod.get("topologySpreadConstraints", [])
        if c["topologyKey"] == "kubernetes.io/hostname"
    ]
    anti = pod.get("affinity", {}).get("podAntiAffinity", {})
    preferred = anti.get("preferredDuringSchedulingIgnoredDuringExecution", [])
    assert spreads or preferred
    for constraint in spreads:
        assert constraint["labelSelector"]["matchLabels"].items() <= labels.items()


def test_metrics_service(rendered: list[Doc]) -> None:
    service = _only(rendered, "Service", "reconciler-metrics")
    (port,) = service["spec"]["ports"]
    assert (port["name"], port["port"]) == ("metrics", 8080)
    container_ports = {p["name"]: p["containerPort"] for p in _container(rendered)["ports"]}
    assert container_ports.get(port["targetPort"], port["targetPort"]) == 8080
    pod_labels = _only(rendered, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "8080"
    assert annotations["prometheus.io/path"] == "/metrics"


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages == ["python:3.11-slim", "python:3.11-slim"]
    assert "pip wheel" in text
    assert "--no-index" in text
    assert "[dev]" not in text
    assert re.search(r"^USER 65532", text, re.M)
    assert re.search(r'^ENTRYPOINT \["reconciler"\]$', text, re.M)
    assert re.search(r'^CMD \["operator"\]$', text, re.M)
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    for needed in ("pyproject.toml", readme, "reconciler/"):
        assert f"!{needed}" in ignored


def test_argocd_application() -> None:
    (app,) = _load_all((GITOPS / "argocd-application.yaml").read_text(encoding="utf-8"))
    assert (app["apiVersion"], app["kind"]) == ("argoproj.io/v1alpha1", "Application")
    source = app["spec"]["source"]
    assert source["repoURL"] == "https://github.com/example/infra.git"
    assert source["path"] == "clusters/prod/reconciler"
    policy = app["spec"]["syncPolicy"]
    assert policy["automated"] == {"prune": True, "selfHeal": True}
    assert "ServerSideApply=true" in policy["syncOptions"]


def test_flux_kustomization() -> None:
    docs = _load_all((GITOPS / "flux-kustomization.yaml").read_text(encoding="utf-8"))
    repo = _only(docs, "GitRepository")
    kustomization = _only(docs, "Kustomization")
    assert repo["apiVersion"].startswith("source.toolkit.fluxcd.io/")
    assert repo["spec"]["url"] == "https://github.com/example/infra.git"
    assert kustomization["apiVersion"].startswith("kustomize.toolkit.fluxcd.io/")
    spec = kustomization["spec"]
    assert spec["sourceRef"] == {"kind": "GitRepository", "name": repo["metadata"]["name"]}
    assert spec["path"].strip("./") == "clusters/prod/reconciler"
    assert spec["interval"] == "1m"
    assert spec["prune"] is True
    assert spec["wait"] is True or spec.get("healthChecks")


def test_argocd_health_snippet_covers_every_kind() -> None:
    text = (GITOPS / "README.md").read_text(encoding="utf-8")
    match = re.search(r"```yaml\n(.*?)```", text, re.S)
    assert match is not None
    data = yaml.safe_load(match.group(1))["data"]
    prefix = "resource.customizations.health.reconciler.dev_"
    assert sorted(data) == sorted(prefix + kind for kind in KINDS)
    (script,) = set(data.values())
    assert 'condition.type == "Ready"' in script
    assert "observedGeneration" in script
