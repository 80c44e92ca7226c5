"""KubeClient against a real kube-apiserver: CRDs, CRUD, patches, apply, status, watch, RBAC."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kube.kubeserver import KubeServer, free_port, vm_body
from reconciler.operator import kube as kube_mod
from reconciler.operator.kube import (
    PLURALS,
    Conflict,
    Forbidden,
    Invalid,
    KubeClient,
    KubeConfig,
    KubeConfigError,
    KubeUnavailable,
    NotFound,
    Unauthorized,
    load_config,
    resource_path,
)

CRDS = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"


def test_resource_paths() -> None:
    assert resource_path("Cloud", name="aws") == "/apis/reconciler.dev/v1alpha1/clouds/aws"
    assert resource_path("VirtualMachine") == "/apis/reconciler.dev/v1alpha1/virtualmachines"
    assert (
        resource_path("VirtualMachine", "ns", "vm1", "status")
        == "/apis/reconciler.dev/v1alpha1/namespaces/ns/virtualmachines/vm1/status"
    )
    assert resource_path("Lease", "s", "l") == "/apis/coordination.k8s.io/v1/namespaces/s/leases/l"
    assert resource_path("Secret", "s", "x") == "/api/v1/namespaces/s/secrets/x"
    assert resource_path("Namespace", name="n") == "/api/v1/namespaces/n"
    assert set(PLURALS) == {
        "Cloud",
        "BrokerPolicy",
        "VirtualMachine",
        "VirtualMachineSet",
        "Volume",
        "Bucket",
        "Image",
    }
    for bad in (
        ("Pod",),
        ("Cloud", "ns"),
        ("VirtualMachine", "", "x"),
        ("Cloud", "", "", "status"),
    ):
        with pytest.raises(ValueError):
            resource_path(*bad)


def test_crds_established_and_invalid_vm_rejected(kube: KubeServer, namespace: str) -> None:
    client = kube.admin_client()
    names = {c["metadata"]["name"] for c in client.list(CRDS)["items"]}
    assert {f"{plural}.reconciler.dev" for plural in PLURALS.values()} <= names
    bad = vm_body("bad", namespace)
    bad["spec"]["resources"]["vcpus"] = "lots"
    with pytest.raises(Invalid) as err:
        client.create(resource_path("VirtualMachine", namespace), bad)
    assert err.value.status == 422 and "vcpus" in err.value.message
    missing = vm_body("missing", namespace)
    del missing["spec"]["resources"]
    with pytest.raises(Invalid):
        client.create(resource_path("VirtualMachine", namespace), missing)


def test_crud_patch_apply_and_status(kube: KubeServer, namespace: str) -> None:
    client = kube.admin_client()
    path = resource_path("VirtualMachine", namespace, "vm1")
    created = client.create(resource_path("VirtualMachine", namespace), vm_body("vm1", namespace))
    assert created["metadata"]["generation"] == 1
    assert client.get(path)["spec"]["resources"]["vcpus"] == 2
    with pytest.raises(Conflict) as dup:
        client.create(resource_path("VirtualMachine", namespace), vm_body("vm1", namespace))
    assert dup.value.reason == "AlreadyExists"

    patched = client.merge_patch(path, {"metadata": {"labels": {"app": "db"}}})
    assert patched["metadata"]["labels"] == {"app": "db"}
    stale = dict(created)
    with pytest.raises(Conflict):
        client.replace(path, stale)

    applied = client.apply(path, vm_body("vm1", namespace, vcpus=4), field_manager="test")
    assert applied["spec"]["resources"]["vcpus"] == 4
    assert applied["metadata"]["generation"] == 2
    assert any(m["manager"] == "test" for m in applied["metadata"]["managedFields"])

    status = {"status": {"observedGeneration": 2, "conditions": [_condition("Ready", "True")]}}
    after = client.merge_patch(resource_path("VirtualMachine", namespace, "vm1", "status"), status)
    assert after["status"]["observedGeneration"] == 2
    assert after["metadata"]["generation"] == 2  # status writes do not bump generation
    client.merge_patch(path, {"status": {"observedGeneration": 99}})  # main resource ignores status
    assert client.get(path)["status"]["observedGeneration"] == 2

    client.delete(path)
    with pytest.raises(NotFound):
        client.get(path)
    with pytest.raises(NotFound):
        client.delete(path)


def _condition(type_: str, status: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": "Test",
        "message": "ok",
        "lastTransitionTime": "2026-01-01T00:00:00Z",
    }


def test_watch_sees_create_modify_delete(kube: KubeServer, namespace: str) -> None:
    client = kube.admin_client()
    collection = resource_path("VirtualMachine", namespace)
    rv = client.list(collection)["metadata"]["resourceVersion"]
    stream = client.watch(collection, rv, timeout_seconds=30)
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def consume() -> None:
        for event in stream:
            if event["type"] != "BOOKMARK":
                seen.append((event["type"], event["object"]["metadata"]["name"]))
            if event["type"] == "DELETED":
                done.set()
                return

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    client.create(collection, vm_body("w1", namespace))
    client.merge_patch(
        resource_path("VirtualMachine", namespace, "w1"), {"spec": {"protect": True}}
    )
    client.delete(resource_path("VirtualMachine", namespace, "w1"))
    assert done.wait(10)
    stream.close()
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_watch_close_from_another_thread_ends_quietly(kube: KubeServer, namespace: str) -> None:
    client = kube.admin_client()
    collection = resource_path("VirtualMachine", namespace)
    stream = client.watch(collection, client.list(collection)["metadata"]["resourceVersion"])
    ended = threading.Event()

    def drain() -> None:
        for _ in stream:
            pass
        ended.set()

    threading.Thread(target=drain, daemon=True).start()
    threading.Timer(0.3, stream.close).start()
    assert ended.wait(5)


def test_operator_rbac_is_enough_and_no_more(kube: KubeServer, namespace: str) -> None:
    admin, op = kube.admin_client(), kube.operator_client()
    admin.create(resource_path("VirtualMachine", namespace), vm_body("r1", namespace))
    path = resource_path("VirtualMachine", namespace, "r1")
    assert op.list(resource_path("VirtualMachine"))["items"]
    op.merge_patch(path, {"metadata": {"finalizers": ["reconciler.dev/cleanup"]}})
    op.merge_patch(
        resource_path("VirtualMachine", namespace, "r1", "status"),
        {"status": {"observedGeneration": 1}},
    )
    op.list(resource_path("Cloud"))
    admin.create(resource_path("Secret", "reconciler-system"), _secret("creds"))
    assert op.get(resource_path("Secret", "reconciler-system", "creds"))["data"]
    refused: list[Callable[[], object]] = [
        lambda: op.list(resource_path("Secret")),
        lambda: op.get(resource_path("Secret", namespace, "x")),
        lambda: op.create(resource_path("VirtualMachine", namespace), vm_body("r2", namespace)),
        lambda: op.delete(path),
        lambda: op.delete(f"{CRDS}/virtualmachines.reconciler.dev"),
    ]
    for forbidden in refused:
        with pytest.raises(Forbidden):
            forbidden()
    admin.merge_patch(path, {"metadata": {"finalizers": None}})


def _secret(name: str) -> dict[str, Any]:
    data = {"token": base64.b64encode(b"s3cr3t").decode()}
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": data}


def test_errors_never_show_the_token(kube: KubeServer, tmp_path: Path) -> None:
    good = load_config(kube.admin_kubeconfig)
    assert good.token and good.token not in repr(good)
    bad = KubeConfig(server=kube.url, token="wrong-token-value", ca_file=kube.ca_file)
    with pytest.raises(Unauthorized) as err:
        KubeClient(bad).list(resource_path("VirtualMachine"))
    assert "wrong-token-value" not in str(err.value)
    down = KubeConfig(server=f"https://127.0.0.1:{free_port()}", token="tok-secret")
    with pytest.raises(KubeUnavailable) as err2:
        KubeClient(down, timeout=2).get("/version")
    assert "tok-secret" not in str(err2.value)


def test_kubeconfig_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(KubeConfigError, match="not found"):
        load_config(str(tmp_path / "nope"))
    broken = tmp_path / "broken"
    broken.write_text("clusters: [\n  token: abc: def\n")
    with pytest.raises(KubeConfigError, match="not valid YAML") as err:
        load_config(str(broken))
    assert "abc" not in str(err.value)
    empty = tmp_path / "empty"
    empty.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "contexts": []}))
    with pytest.raises(KubeConfigError):
        load_config(str(empty), context="missing")


def test_kubeconfig_with_inline_ca_data(kube: KubeServer, tmp_path: Path) -> None:
    config = yaml.safe_load(Path(kube.admin_kubeconfig).read_text())
    cluster = config["clusters"][0]["cluster"]
    ca = Path(cluster.pop("certificate-authority")).read_bytes()
    cluster["certificate-authority-data"] = base64.b64encode(ca).decode()
    path = tmp_path / "inline"
    path.write_text(yaml.safe_dump(config))
    assert KubeClient(load_config(str(path))).get("/version")["major"] == "1"


def test_in_cluster_token_is_reread(
    kube: KubeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("stale-token\n")
    (tmp_path / "ca.crt").write_bytes(Path(kube.ca_file).read_bytes())
    monkeypatch.setattr(kube_mod, "_SA_DIR", tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", kube.url.rsplit(":", 1)[1])
    config = load_config()
    assert config.server == kube.url and config.token_file == str(tmp_path / "token")
    client = KubeClient(config)
    with pytest.raises(Unauthorized):
        client.get("/version")
    (tmp_path / "token").write_text(kube.admin_token)
    monkeypatch.setattr(kube_mod, "_TOKEN_REREAD_SECONDS", 0.0)
    assert client.get("/version")["major"] == "1"
