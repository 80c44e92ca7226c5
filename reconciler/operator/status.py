"""Status of each object from a pass report: conditions, placement, candidates.

Conventions (what Argo CD, Flux's kstatus and ``kubectl wait`` read): ``Ready`` is
True when the cloud resources exist as declared, Unknown while changes are being
applied, False when something is wrong (with a reason saying what). ``Synced`` is
True when no change is pending; ``Placed`` (VMs) when the broker found an offer.
Conditions keep their ``lastTransitionTime`` while their status does not change, so
an unchanged object produces an identical status and no write. A VM moving to another
cloud is ``Migrating`` (Ready Unknown) and shows ``status.migration``; a BrokerPolicy
shows its rebalancing round (see ``migrations``); an Image the clouds it was imported
into, with each cloud's image id (``status.clouds``).
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.manifest import object_label
from reconciler.model.artifacts import ObservedImage
from reconciler.model.keys import ResourceKey, replica_key
from reconciler.model.placement import Candidate
from reconciler.model.plan import Action
from reconciler.model.specs import PowerState
from reconciler.operator.desired import ABORT_ANNOTATION
from reconciler.operator.informer import CachedObject
from reconciler.operator.migrations import (
    MigrationView,
    current_vm,
    current_volume,
    is_start,
    migration_view,
    rebalance_status,
)
from reconciler.operator.report import PassReport

MAX_CANDIDATES = 12
MAX_MESSAGE = 1000
Condition = dict[str, Any]


def condition(type_: str, status: str, reason: str, message: str, generation: int) -> Condition:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message[:MAX_MESSAGE],
        "observedGeneration": generation,
    }


def merge_conditions(old: list[Condition], new: list[Condition], now: str) -> list[Condition]:
    """``new`` with each lastTransitionTime carried over while its status is unchanged."""
    before = {c.get("type"): c for c in old if isinstance(c, dict)}
    out = []
    for cond in new:
        prev = before.get(cond["type"])
        same = prev is not None and prev.get("status") == cond["status"]
        stamp = prev.get("lastTransitionTime") if same and prev else None
        out.append({**cond, "lastTransitionTime": stamp or now})
    return out


def _describe(actions: list[Action]) -> str:
    return "; ".join(f"{a.type.value} on {a.cloud}: {a.reason}" for a in actions[:5])


def label(obj: CachedObject) -> str:
    """How diagnostics name the object (``Kind/ns/name``)."""
    return object_label(obj.kind, obj.namespace, obj.name)


def sync_condition(
    obj: CachedObject, key: ResourceKey, rep: PassReport, view: MigrationView | None = None
) -> Condition:
    """Synced, and the most important reason it is not (``key`` may be a replica's;
    ``view`` its migration in flight)."""
    gen = obj.generation
    if label(obj) in rep.invalid:
        text = "; ".join(f"{d.path}: {d.message}" for d in rep.invalid[label(obj)])
        return condition("Synced", "False", "InvalidSpec", text, gen)
    if rep.plan_error:
        return condition("Synced", "False", "PlanRefused", rep.plan_error, gen)
    if key in rep.blocked:
        return condition("Synced", "False", "DeletionBlocked", rep.blocked[key], gen)
    if key in rep.failed:
        return condition("Synced", "False", "ActionFailed", rep.failed[key], gen)
    if key in rep.paused:
        pending = rep.pending.get(key, [])
        text = f"paused; would: {_describe(pending)}" if pending else "paused; no drift"
        return condition("Synced", "False", "Paused", text, gen)
    if view is not None:
        return condition("Synced", "False", "Migrating", view.message(), gen)
    held = [a for a in rep.pending.get(key, ()) if is_start(a)] if key in rep.abort else []
    if held:
        text = f"{ABORT_ANNOTATION} is set, so no migration starts; would: {_describe(held)}"
        return condition("Synced", "False", "MigrationHeld", text, gen)
    if rep.pending.get(key):
        reason = "DriftDetected" if rep.observe_only else "Pending"
        return condition("Synced", "False", reason, _describe(rep.pending[key]), gen)
    if rep.applying.get(key):
        return condition("Synced", "False", "Applying", _describe(rep.applying[key]), gen)
    return condition("Synced", "True", "UpToDate", "the cloud matches the spec", gen)


def ready_from_sync(sync: Condition, exists: bool, what: str, gen: int) -> Condition:
    """Ready derived from Synced and whether the resource exists as declared (a held
    migration leaves it as available as it was)."""
    if sync["status"] == "True" or sync["reason"] == "MigrationHeld":
        if exists:
            return condition("Ready", "True", "Available", what, gen)
        return condition("Ready", "False", "NotFound", "not found in any cloud", gen)
    if sync["reason"] in ("Applying", "Pending", "Migrating"):
        return condition("Ready", "Unknown", sync["reason"], sync["message"], gen)
    return condition("Ready", "False", sync["reason"], sync["message"], gen)


def vm_status(obj: CachedObject, rep: PassReport) -> dict[str, Any]:
    return replica_status(obj, obj.key, obj.spec, rep)


def replica_status(
    obj: CachedObject, key: ResourceKey, spec: dict[str, Any], rep: PassReport
) -> dict[str, Any]:
    """A VM's status; for a set's replica ``obj`` is the set and ``spec`` its template."""
    gen = obj.generation
    view = migration_view(key, rep)
    sync = sync_condition(obj, key, rep, view)
    want = PowerState(spec.get("powerState", "Running"))
    vm = current_vm(rep.vms(key))
    exists = vm is not None and vm.power_state is want
    what = f"{want.value} on {vm.cloud} as {vm.instance_type}" if vm else ""
    conditions = [ready_from_sync(sync, exists, what, gen), sync]
    status: dict[str, Any] = {"observedGeneration": gen}
    placed = rep.result.placements.get(key) if rep.result else None
    unplaced = rep.result.unplaced.get(key) if rep.result else None
    if placed is not None:
        offer = placed.offer
        text = f"{offer.cloud} {offer.name} ${offer.price_per_hour:.4f}/h: {placed.reason}"
        conditions.append(condition("Placed", "True", "Placed", text, gen))
        candidates = placed.candidates
    elif unplaced is not None:
        conditions.append(
            condition("Placed", "False", "Unplaced", "; ".join(unplaced.reasons), gen)
        )
        candidates = unplaced.candidates
    else:
        candidates = ()
    if vm is not None:
        info = rep.clouds.get(vm.cloud)
        status["placement"] = {
            "cloud": vm.cloud,
            "region": info.region if info else "",
            "instanceType": vm.instance_type,
            "externalId": vm.external_id,
            "pricePerHour": round(vm.price_per_hour, 6),
        }
    if candidates:
        status["candidates"] = [_candidate(c) for c in candidates[:MAX_CANDIDATES]]
    if view is not None:
        status["migration"] = view.status()
    status["conditions"] = conditions
    return status


def _candidate(c: Candidate) -> dict[str, Any]:
    row: dict[str, Any] = {
        "cloud": c.cloud,
        "offer": c.offer,
        "pricePerHour": round(c.price_per_hour, 6),
        "outcome": c.outcome.value,
    }
    if c.detail:
        row["detail"] = c.detail
    return row


def set_status(obj: CachedObject, rep: PassReport) -> dict[str, Any]:
    gen = obj.generation
    key, spec = obj.key, obj.spec
    sync = sync_condition(obj, key, rep)
    replicas = int(spec.get("replicas", 0))
    template = (spec.get("template") or {}).get("spec") or {}
    ready = 0
    for i in range(replicas):
        replica = replica_status(obj, replica_key(key, i), template, rep)["conditions"]
        ready += replica[0]["status"] == "True"
        if sync["status"] == "True":
            sync = replica[1]
    exists = ready == replicas
    conditions = [ready_from_sync(sync, exists, f"{ready}/{replicas} replicas ready", gen), sync]
    if sync["status"] == "True" and not exists:
        conditions[0] = condition(
            "Ready", "False", "ReplicasNotReady", f"{ready}/{replicas} replicas ready", gen
        )
    return {
        "observedGeneration": gen,
        "replicas": replicas,
        "readyReplicas": ready,
        "conditions": conditions,
    }


def volume_status(obj: CachedObject, rep: PassReport) -> dict[str, Any]:
    gen = obj.generation
    sync = sync_condition(obj, obj.key, rep)
    found = rep.volumes(obj.key)
    status: dict[str, Any] = {"observedGeneration": gen}
    attach_to = obj.spec.get("attachTo")
    owner = ResourceKey("VirtualMachine", obj.namespace, attach_to) if attach_to else None
    vol = current_volume(found, current_vm(rep.vms(owner)) if owner else None)
    if vol is not None:
        status.update(cloud=vol.cloud, externalId=vol.external_id)
        if vol.attached_to:
            status["attachedTo"] = vol.attached_to
    what = f"{vol.size_gib} GiB on {vol.cloud}" if vol else ""
    status["conditions"] = [ready_from_sync(sync, bool(found), what, gen), sync]
    return status


def bucket_status(obj: CachedObject, rep: PassReport) -> dict[str, Any]:
    gen = obj.generation
    sync = sync_condition(obj, obj.key, rep)
    found = sorted(rep.buckets(obj.key), key=lambda b: b.cloud)
    copies = int(obj.spec.get("copies", 1))
    status: dict[str, Any] = {
        "observedGeneration": gen,
        "copies": [{"cloud": b.cloud, "externalId": b.external_id} for b in found],
    }
    what = f"{len(found)} copies on {', '.join(b.cloud for b in found)}"
    status["conditions"] = [ready_from_sync(sync, len(found) >= copies, what, gen), sync]
    return status


def cloud_status(obj: CachedObject, rep: PassReport) -> dict[str, Any]:
    gen = obj.generation
    name = obj.name
    info = rep.clouds.get(name)
    status: dict[str, Any] = {"observedGeneration": gen}
    if label(obj) in rep.invalid or rep.cloud_errors.get(name):
        sync = sync_condition(obj, obj.key, rep)
        if rep.cloud_errors.get(name):
            sync = condition("Synced", "False", "CloudUnavailable", rep.cloud_errors[name], gen)
        ready = condition("Ready", "False", sync["reason"], sync["message"], gen)
    elif obj.key in rep.blocked:
        sync = condition("Synced", "False", "DeletionBlocked", rep.blocked[obj.key], gen)
        ready = condition("Ready", "True", "Available", "still in use", gen)
    elif info is None:
        sync = condition("Synced", "Unknown", "NotObserved", "not observed yet", gen)
        ready = condition("Ready", "Unknown", "NotObserved", "not observed yet", gen)
    else:
        offers = len(rep.offers.get(name, ()))
        text = f"{offers} offers, prices from {info.price_source} as of {info.price_as_of}"
        sync = condition("Synced", "True", "Observed", text, gen)
        ready = condition("Ready", "True", "Available", text, gen)
        status.update(offers=offers, priceAsOf=info.price_as_of)
    status["conditions"] = [ready, sync]
    return status


def accepted_status(obj: CachedObject, rep: PassReport) -> dict[str, Any]:
    """Policies and Images: Ready when they are valid and usable; a policy also shows
    its rebalancing round when known."""
    gen = obj.generation
    sync = sync_condition(obj, obj.key, rep)
    if sync["reason"] in ("PlanRefused", "Pending", "Applying"):
        sync = condition("Synced", "True", "Accepted", "valid", gen)
    status: dict[str, Any] = {"observedGeneration": gen}
    found = rep.rounds.get(obj.key) if rep.rounds is not None else None
    rebalance = rebalance_status(found) if found is not None else None
    if rebalance is not None:
        status["rebalance"] = rebalance
    status["conditions"] = [ready_from_sync(sync, True, "valid", gen), sync]
    return status


def image_status(obj: CachedObject, rep: PassReport) -> dict[str, Any]:
    """An Image: accepted when valid, and where it was imported (per-cloud ids)."""
    status = accepted_status(obj, rep)
    found = sorted(rep.images(obj.key), key=lambda i: (i.cloud, i.disk, i.external_id))
    if found:
        status["clouds"] = [_imported(image) for image in found]
    return status


def _imported(image: ObservedImage) -> dict[str, Any]:
    row: dict[str, Any] = {"cloud": image.cloud, "imageId": image.external_id}
    if image.disk:
        row["disk"] = image.disk
    if re.fullmatch(r"[0-9a-f]{64}", image.sha256):
        row["sha256"] = image.sha256
    if image.size_bytes:
        row["sizeBytes"] = image.size_bytes
    return row


_BY_KIND = {
    "VirtualMachine": vm_status,
    "VirtualMachineSet": set_status,
    "Volume": volume_status,
    "Bucket": bucket_status,
    "Cloud": cloud_status,
    "BrokerPolicy": accepted_status,
    "Image": image_status,
}


def _without_empty(value: dict[str, Any]) -> dict[str, Any]:
    """Drop empty strings (top level, conditions, placement): optional fields are left
    out rather than sent as "" (some API servers turn "" into null and reject it).
    Candidates are built without empty fields in the first place."""
    out = {k: v for k, v in value.items() if v != ""}
    if "conditions" in out:
        out["conditions"] = [{k: v for k, v in c.items() if v != ""} for c in out["conditions"]]
    if isinstance(out.get("placement"), dict):
        out["placement"] = {k: v for k, v in out["placement"].items() if v != ""}
    return out


def vm_signature(obj: CachedObject, rep: PassReport) -> tuple[object, ...]:
    """Everything a VM's status is computed from: equal signatures, equal status, so a
    converged pass skips the work (and the write) for each of 10k unchanged VMs."""
    key = obj.key
    vm = current_vm(rep.vms(key))
    placed = rep.result.placements.get(key) if rep.result else None
    unplaced = rep.result.unplaced.get(key) if rep.result else None
    return (
        obj.resource_version,
        (vm.cloud, vm.external_id, vm.instance_type, vm.power_state, vm.price_per_hour)
        if vm
        else None,
        (placed.offer, placed.reason, placed.candidates) if placed else None,
        unplaced,
        rep.invalid.get(label(obj)) is not None,
        rep.plan_error,
        rep.blocked.get(key),
        rep.failed.get(key),
        key in rep.paused,
        tuple(a.id for a in rep.pending.get(key, ())),
        tuple(a.id for a in rep.applying.get(key, ())),
        migration_view(key, rep),
        key in rep.abort,
        rep.observe_only,
        tuple(sorted(c.get("type", "") for c in obj.status.get("conditions") or ())),
    )


def desired_status(obj: CachedObject, rep: PassReport, now: str) -> dict[str, Any]:
    """The status ``obj`` should have after this pass (times carried over)."""
    status = _BY_KIND[obj.kind](obj, rep)
    old = obj.status.get("conditions") or []
    status["conditions"] = merge_conditions(old, status["conditions"], now)
    return _without_empty(status)
