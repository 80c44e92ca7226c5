"""From the cached custom resources to what the planner needs.

Deletion, pause and protection are decided here, per object, before planning:
- an object being deleted leaves the desired state, so its resources are retired
  (forgotten instead when its deletionPolicy is Orphan; the spec's current protect
  and deletionPolicy win over the tags on the resource), unless it is protected or
  paused: then it stays, and its deletion is reported as blocked;
- a paused object stays desired (so nothing depends on it vanishing) and the
  controller drops its actions from the plan;
- an object that fails validation or references is left out *and held*: its cloud
  resources are neither changed nor deleted, because a typo must never destroy;
- a VirtualMachine (or a set, for all its replicas) annotated
  ``reconciler.dev/migration-abort: "true"`` has its migration in flight rolled back,
  and no new migration of it starts while the annotation stays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.manifest import load_objects, object_label
from reconciler.model.errors import Diagnostic
from reconciler.model.keys import API_VERSION, ResourceKey, replica_key
from reconciler.model.specs import DesiredState
from reconciler.operator.informer import CachedObject

FINALIZER = "reconciler.dev/cleanup"
PAUSED_ANNOTATION = "reconciler.dev/paused"
ABORT_ANNOTATION = "reconciler.dev/migration-abort"
#: Kinds whose deletion must clean up cloud resources (or, for a Cloud, wait for them).
FINALIZED_KINDS = frozenset({"VirtualMachine", "VirtualMachineSet", "Volume", "Bucket", "Cloud"})


@dataclass
class ClusterDesired:
    """The desired state plus what the planner and status must treat specially."""

    desired: DesiredState
    invalid: dict[str, list[Diagnostic]] = field(default_factory=dict)
    hold: frozenset[ResourceKey] = frozenset()
    retire_as: dict[ResourceKey, str] = field(default_factory=dict)
    paused: frozenset[ResourceKey] = frozenset()
    blocked: dict[ResourceKey, str] = field(default_factory=dict)
    deleting: dict[ResourceKey, CachedObject] = field(default_factory=dict)
    #: VMs (a set's: its replicas) whose migration is to be rolled back, not started.
    abort: frozenset[ResourceKey] = frozenset()


def _vm_fields(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec fields that decide protect and deletionPolicy (a set's template)."""
    if kind == "VirtualMachineSet":
        template: dict[str, Any] = (spec.get("template") or {}).get("spec") or {}
        return template
    return spec


def is_paused(obj: CachedObject, spec: dict[str, Any]) -> bool:
    """Whether ``obj`` (whose decoded spec is ``spec``) is paused."""
    return bool(spec.get("paused")) or obj.annotations.get(PAUSED_ANNOTATION) == "true"


def abort_keys(obj: CachedObject, spec: dict[str, Any]) -> list[ResourceKey]:
    """The VM keys whose migration the object's abort annotation rolls back."""
    if obj.annotations.get(ABORT_ANNOTATION) != "true":
        return []
    if obj.kind == "VirtualMachine":
        return [obj.key]
    if obj.kind == "VirtualMachineSet":
        count = spec.get("replicas")
        return [replica_key(obj.key, i) for i in range(count if isinstance(count, int) else 0)]
    return []


def to_raw(obj: CachedObject, spec: dict[str, Any]) -> dict[str, Any]:
    """The object (with its decoded ``spec``) as the manifest layer reads it."""
    meta: dict[str, Any] = {"name": obj.name}
    if obj.namespace:
        meta["namespace"] = obj.namespace
    if obj.labels:
        meta["labels"] = obj.labels
    if obj.annotations:
        meta["annotations"] = obj.annotations
    return {"apiVersion": API_VERSION, "kind": obj.kind, "metadata": meta, "spec": spec}


def _deletion_blocker(protected: bool, paused: bool) -> str:
    if protected:
        return (
            "deletion blocked: protect: true keeps the cloud resources; set protect: false "
            "to let the deletion proceed"
        )
    if paused:
        return "deletion waits: the object is paused; unpause it to let the deletion proceed"
    return ""


class SchemaMemo:
    """Which objects passed the schema check at which resourceVersion."""

    def __init__(self) -> None:
        self._passed: dict[str, str] = {}

    def checked(self, versions: Mapping[str, str]) -> set[str]:
        """Labels (of ``label -> resourceVersion``) that passed at that same version."""
        return {label for label, rv in versions.items() if self._passed.get(label) == rv}

    def record(self, versions: Mapping[str, str], invalid: Mapping[str, object]) -> None:
        self._passed = {label: rv for label, rv in versions.items() if label not in invalid}


def build_desired(
    objects: Iterable[CachedObject], memo: SchemaMemo | None = None
) -> ClusterDesired:
    """Split the cached objects into desired, held, orphaned, paused and blocked."""
    objects = list(objects)
    raw: list[dict[str, Any]] = []
    retire_as: dict[ResourceKey, str] = {}
    paused: set[ResourceKey] = set()
    blocked: dict[ResourceKey, str] = {}
    deleting: dict[ResourceKey, CachedObject] = {}
    abort: list[ResourceKey] = []
    for obj in objects:
        key, spec = obj.key, obj.spec  # decoded once per object and pass
        pause = is_paused(obj, spec)
        if obj.annotations:
            abort.extend(abort_keys(obj, spec))
        if obj.deletion_timestamp and obj.kind in FINALIZED_KINDS - {"Cloud"}:
            fields = _vm_fields(obj.kind, spec)
            blocker = _deletion_blocker(bool(fields.get("protect")), pause)
            if blocker:
                blocked[key] = blocker
            else:
                deleting[key] = obj
                orphan = fields.get("deletionPolicy") == "Orphan"
                retire_as[key] = "Orphan" if orphan else "Delete"
                continue
        if pause:
            paused.add(key)
        raw.append(to_raw(obj, spec))
    versions = {
        object_label(o.kind, o.namespace, o.name): o.resource_version
        for o in objects
        if o.key not in deleting
    }
    desired, invalid = load_objects(raw, memo.checked(versions) if memo else ())
    if memo is not None:
        memo.record(versions, invalid)
    hold = frozenset(ResourceKey.parse(label) for label in invalid)
    return ClusterDesired(
        desired=desired,
        invalid=invalid,
        hold=hold,
        retire_as=retire_as,
        paused=frozenset(paused),
        blocked=blocked,
        deleting=deleting,
        abort=frozenset(abort),
    )
