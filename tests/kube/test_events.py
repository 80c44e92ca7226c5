"""EventRecorder on a real kube-apiserver, as the operator user: create, aggregate, drop."""

from __future__ import annotations

import socket
from typing import Any

from kube.kubeserver import KubeServer, vm_body
from reconciler.operator.events import MAX_MESSAGE, EventRecorder, ObjectRef
from reconciler.operator.kube import KubeClient, KubeConfig, resource_path


def events_for(kube: KubeServer, namespace: str, uid: str) -> list[dict[str, Any]]:
    items = kube.admin_client().list(resource_path("Event", namespace))["items"]
    return [e for e in items if e["involvedObject"].get("uid") == uid]


def test_events_are_created_and_aggregated(kube: KubeServer, namespace: str) -> None:
    vm = kube.admin_client().create(
        resource_path("VirtualMachine", namespace), vm_body("ev", namespace)
    )
    ref = ObjectRef("VirtualMachine", namespace, "ev", vm["metadata"]["uid"])
    recorder = EventRecorder(kube.operator_client(), instance="pod-a")
    for _ in range(4):
        recorder.record(ref, "Normal", "Created", "created on sim-eu")
    recorder.record(ref, "Warning", "CreateFailed", "x" * 5000)
    assert recorder.flush(10)
    events = sorted(events_for(kube, namespace, ref.uid), key=lambda e: e["reason"])
    assert [(e["reason"], e["count"]) for e in events] == [("CreateFailed", 1), ("Created", 4)]
    created = events[1]
    assert created["type"] == "Normal" and created["message"] == "created on sim-eu"
    assert created["involvedObject"]["kind"] == "VirtualMachine"
    assert created["involvedObject"]["apiVersion"] == "reconciler.dev/v1alpha1"
    assert created["source"] == {"component": "reconciler", "host": "pod-a"}
    assert len(events[0]["message"]) == MAX_MESSAGE
    assert (recorder.sent, recorder.failed, recorder.dropped) == (5, 0, 0)
    recorder.close()


def test_cluster_scoped_objects_get_events_in_default(kube: KubeServer) -> None:
    ref = ObjectRef("Cloud", "", "sim-eu", "cloud-uid-1")
    recorder = EventRecorder(kube.operator_client())
    recorder.record(ref, "Warning", "Unreachable", "endpoint timed out")
    assert recorder.flush(10)
    events = events_for(kube, "default", "cloud-uid-1")
    assert len(events) == 1 and "namespace" not in events[0]["involvedObject"]
    recorder.close()


def test_full_queue_drops_and_never_blocks_or_raises() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = KubeClient(KubeConfig(server=f"http://127.0.0.1:{port}"), timeout=0.5)
        recorder = EventRecorder(client, queue_size=2)
        ref = ObjectRef("VirtualMachine", "ns", "vm", "uid")
        for i in range(20):
            recorder.record(ref, "Normal", "Tick", f"tick {i}")
        assert recorder.dropped >= 10
        assert recorder.flush(10)
        assert recorder.failed == 20 - recorder.dropped and recorder.sent == 0
        recorder.close()
