"""Informer + Cache against a real kube-apiserver: list, watch, 410 re-list, reconnects."""

from __future__ import annotations

import json
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kube.kubeserver import KubeServer, vm_body
from reconciler.model.keys import ResourceKey
from reconciler.operator.informer import (
    LAST_APPLIED,
    Cache,
    CachedObject,
    Informer,
    start_informers,
    wait_synced,
)
from reconciler.operator.kube import KubeClient, KubeConfig, resource_path

VM = "VirtualMachine"


class Recorder:
    """Collects on_change keys, thread-safely."""

    def __init__(self) -> None:
        self.keys: list[ResourceKey] = []
        self._lock = threading.Lock()

    def __call__(self, key: ResourceKey) -> None:
        with self._lock:
            self.keys.append(key)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def server_state(client: KubeClient, namespace: str) -> dict[str, str]:
    items = client.list(resource_path(VM, namespace))["items"]
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in items}


def cache_state(cache: Cache, namespace: str) -> dict[str, str]:
    return {o.name: o.resource_version for o in cache.objects(VM) if o.namespace == namespace}


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_cached_object_is_slim() -> None:
    raw = vm_body("a", "ns")
    raw["metadata"].update(
        uid="u1",
        generation=3,
        resourceVersion="42",
        annotations={LAST_APPLIED: "{...}", "keep": "me"},
        managedFields=[{"manager": "kubectl"}],
        finalizers=["reconciler.dev/cleanup"],
    )
    obj = CachedObject.from_raw(VM, raw)
    assert obj.key == ResourceKey(VM, "ns", "a")
    assert obj.annotations == {"keep": "me"} and obj.finalizers == ("reconciler.dev/cleanup",)
    assert (obj.generation, obj.resource_version, obj.status) == (3, "42", {})
    cloud = CachedObject.from_raw("Cloud", {"metadata": {"name": "aws", "namespace": "x"}})
    assert cloud.key == ResourceKey("Cloud", "", "aws")
    cache = Cache()
    assert cache.upsert(obj) and not cache.upsert(obj)
    assert len(cache) == 1 and cache.get(obj.key) is obj
    assert cache.remove(obj.key) is obj and len(cache) == 0


def test_informer_keeps_cache_equal_to_server(
    kube: KubeServer, namespace: str, stop: threading.Event
) -> None:
    admin = kube.admin_client()
    collection = resource_path(VM, namespace)
    for i in range(5):
        admin.create(collection, vm_body(f"pre{i}", namespace))
    cache, changes = Cache(), Recorder()
    informers = start_informers(
        kube.operator_client(), [VM], cache, changes, stop, namespace=namespace, page_size=2
    )
    assert wait_synced(informers, 10)
    assert cache_state(cache, namespace) == server_state(admin, namespace)
    assert len(changes.keys) == 5

    admin.create(collection, vm_body("new", namespace))
    admin.merge_patch(resource_path(VM, namespace, "pre0"), {"spec": {"protect": True}})
    admin.delete(resource_path(VM, namespace, "pre1"))
    eventually(lambda: cache_state(cache, namespace) == server_state(admin, namespace))
    assert cache.get(ResourceKey(VM, namespace, "pre0")).spec["protect"] is True  # type: ignore[union-attr]
    eventually(lambda: len(changes.keys) == 8)
    assert informers[0].last_error is None


def test_gone_relists_and_reports_vanished_objects(
    kube: KubeServer, namespace: str, stop: threading.Event
) -> None:
    admin = kube.admin_client()
    admin.create(resource_path(VM, namespace), vm_body("keep", namespace))
    cache, changes = Cache(), Recorder()
    informer = Informer(kube.operator_client(), VM, cache, changes, stop, namespace=namespace)
    informer.start()
    assert informer.synced.wait(10)
    # An object the informer believes in but that vanished while it was not watching.
    ghost = CachedObject.from_raw(
        VM,
        vm_body("ghost", namespace)
        | {"metadata": {"name": "ghost", "namespace": namespace, "resourceVersion": "1"}},
    )
    cache.upsert(ghost)
    relists = informer.relists
    informer.resource_version = "1"  # far older than the watch cache: the server answers 410

    def relisted() -> bool:
        informer.reconnect()  # again until the watch in flight (from the real version) is dropped
        return informer.relists > relists

    eventually(relisted)
    eventually(lambda: cache.get(ghost.key) is None)
    assert ghost.key in changes.keys
    assert cache_state(cache, namespace) == server_state(admin, namespace)
    admin.create(resource_path(VM, namespace), vm_body("after", namespace))
    eventually(lambda: "after" in cache_state(cache, namespace))


def test_reconnects_after_server_timeout_and_dropped_connection(
    kube: KubeServer, namespace: str, stop: threading.Event
) -> None:
    admin = kube.admin_client()
    cache, changes = Cache(), Recorder()
    informer = Informer(
        kube.operator_client(), VM, cache, changes, stop, namespace=namespace, watch_timeout=1
    )
    informer.start()
    assert informer.synced.wait(10)
    time.sleep(2.5)  # the server ended the watch at least twice
    admin.create(resource_path(VM, namespace), vm_body("late", namespace))
    eventually(lambda: "late" in cache_state(cache, namespace))
    informer.reconnect()  # the connection drops mid-watch
    admin.create(resource_path(VM, namespace), vm_body("later", namespace))
    eventually(lambda: "later" in cache_state(cache, namespace))
    assert informer.relists == 1  # resumed from its resourceVersion, no re-list
    stop.set()
    informer.join(5)


def test_unreachable_server_reports_error_and_backs_off(
    kube: KubeServer, stop: threading.Event
) -> None:
    bad = KubeClient(KubeConfig(server=kube.url, token="nope", ca_file=kube.ca_file))
    informer = Informer(bad, VM, Cache(), Recorder(), stop, backoff=(0.05, 0.2))
    informer.start()
    eventually(lambda: informer.last_error is not None)
    assert "401" in str(informer.last_error) and not informer.synced.is_set()
    assert not wait_synced([informer], 0.2)
    stop.set()
    informer.join(5)


def _raw_vm(i: int) -> dict[str, Any]:
    """What the API server sends for one VM (managedFields included) with a ~10 field spec."""
    raw = vm_body(f"vm-{i:05d}", f"team-{i % 20}", vcpus=2 + i % 4)
    raw["spec"].update(
        powerState="Running",
        deletionPolicy="Delete",
        protect=False,
        placement={"cloud": f"cloud-{i % 3}"},
        volumes=[{"name": "data", "sizeGiB": 50}],
        migration={"strategy": "ColdMigrate", "retainSourceFor": "24h"},
    )
    raw["metadata"].update(
        uid=f"2a1c4e0e-5b8d-4d51-9a6f-{i:012d}",
        generation=1,
        resourceVersion=str(100000 + i),
        creationTimestamp="2026-11-25T10:00:00Z",
        labels={"app": "web", "tier": "frontend"},
        finalizers=["reconciler.dev/cleanup"],
        managedFields=[{"manager": "kubectl", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
    )
    raw["status"] = {
        "observedGeneration": 1,
        "conditions": [
            {
                "type": t,
                "status": "True",
                "reason": "Reconciled",
                "message": "ok",
                "lastTransitionTime": "2026-11-25T10:00:00Z",
            }
            for t in ("Ready", "Synced", "Placed")
        ],
        "placement": {
            "cloud": f"cloud-{i % 3}",
            "region": "eu-west-1",
            "instanceType": "m5.large",
            "externalId": f"i-{i:017x}",
            "pricePerHour": 0.096,
        },
    }
    return raw


def test_memory_per_cached_vm_under_10kb() -> None:
    """10k VMs decoded one event at a time (no key sharing) stay under 10 KB each."""
    events = [json.dumps({"type": "ADDED", "object": _raw_vm(i)}).encode() for i in range(10_000)]
    cache = Cache()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for line in events:
        cache.upsert(CachedObject.from_raw(VM, json.loads(line)["object"]))
    per_object = (tracemalloc.get_traced_memory()[0] - before) / len(cache)
    tracemalloc.stop()
    print(f"cached VirtualMachine: {per_object:.0f} bytes/object")
    assert len(cache) == 10_000
    assert per_object < 10_000
