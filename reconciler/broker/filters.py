"""Per-VM filters: policy (allow/deny/jurisdiction), pin, capabilities, instance fit.

Every check returns ``None`` (passes) or ``(Outcome, detail)`` so the explanation
layer can show exactly why an offer or a whole cloud was rejected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.keys import ResourceKey
from reconciler.model.placement import Outcome
from reconciler.model.specs import CloudSelector, PolicySpec

Verdict = tuple[Outcome, str] | None


def selector_matches(selector: CloudSelector, name: str, labels: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics, plus an optional exact cloud name.

    Every given part must match (AND); an empty selector matches every cloud.
    ``NotIn`` matches a cloud without the label, as in Kubernetes.
    """
    if selector.name is not None and selector.name != name:
        return False
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for req in selector.match_expressions:
        present = req.key in labels
        if req.operator == "In":
            ok = present and labels[req.key] in req.values
        elif req.operator == "NotIn":
            ok = not present or labels[req.key] not in req.values
        elif req.operator == "Exists":
            ok = present
        elif req.operator == "DoesNotExist":
            ok = not present
        else:
            ok = False  # an unknown operator never matches (fail closed)
        if not ok:
            return False
    return True


def describe_selector(selector: CloudSelector) -> str:
    """Short human form of a selector, for reasons."""
    parts: list[str] = []
    if selector.name is not None:
        parts.append(f"name={selector.name}")
    parts.extend(f"{k}={v}" for k, v in sorted(selector.match_labels.items()))
    for req in selector.match_expressions:
        vals = ",".join(req.values)
        parts.append(f"{req.key} {req.operator} ({vals})" if vals else f"{req.key} {req.operator}")
    return " ".join(parts) or "any cloud"


def policy_verdict(policy: PolicySpec | None, name: str, labels: Mapping[str, str]) -> Verdict:
    """Deny list, then allow list, then jurisdiction (a cloud without the label fails)."""
    if policy is None:
        return None
    pname = policy.key.name
    for sel in policy.deny:
        if selector_matches(sel, name, labels):
            return Outcome.DENIED, f"denied by policy {pname} ({describe_selector(sel)})"
    if policy.allow and not any(selector_matches(s, name, labels) for s in policy.allow):
        return Outcome.NOT_ALLOWED, f"not in the allow list of policy {pname}"
    if policy.jurisdictions:
        juris = labels.get("jurisdiction")
        if juris not in policy.jurisdictions:
            wanted = ", ".join(policy.jurisdictions)
            got = juris if juris is not None else "unset"
            return Outcome.JURISDICTION, f"jurisdiction {got} not in [{wanted}] (policy {pname})"
    return None


@dataclass(frozen=True, slots=True)
class Need:
    """Everything that decides where a VM may go; identical Needs form one group."""

    vcpus: int
    memory_gib: float
    gpus: int
    namespace: str
    policy_ref: str | None
    pin: str | None
    instance_type: str | None
    needs_stop: bool
    needs_volumes: bool
    spread_set: ResourceKey | None = None
    spread_max: int | None = None

    def resources_text(self) -> str:
        gpu = f", {self.gpus} GPU" if self.gpus else ""
        return f"{self.vcpus} vCPU, {self.memory_gib:g} GiB{gpu}"


def required_capabilities(need: Need) -> list[Capability]:
    """Capabilities a cloud must declare to host a VM with this need."""
    caps: list[Capability] = []
    if need.gpus > 0:
        caps.append(Capability.GPUS)
    if need.needs_stop:
        caps.append(Capability.STOP)
    if need.needs_volumes:
        caps.append(Capability.VOLUMES)
    return caps


def cloud_verdict(
    need: Need, policy: PolicySpec | None, info: CloudInfo, labels: Mapping[str, str]
) -> Verdict:
    """Cloud-level checks, in order: policy, pin, capabilities."""
    verdict = policy_verdict(policy, info.name, labels)
    if verdict is not None:
        return verdict
    if need.pin is not None and need.pin != info.name:
        return Outcome.PINNED_ELSEWHERE, f"VM is pinned to cloud {need.pin}"
    missing = [c.value for c in required_capabilities(need) if c not in info.capabilities]
    if missing:
        return Outcome.MISSING_CAPABILITY, f"cloud lacks capability {', '.join(missing)}"
    return None


def offer_verdict(need: Need, offer: Offer) -> Verdict:
    """Offer-level checks: explicit instance type, then vCPUs, memory, GPUs."""
    if need.instance_type is not None and offer.name != need.instance_type:
        return Outcome.INSTANCE_TYPE, f"VM asks for instance type {need.instance_type}"
    short: list[str] = []
    if offer.vcpus < need.vcpus:
        short.append(f"{offer.vcpus} vCPU < {need.vcpus}")
    if offer.memory_gib < need.memory_gib:
        short.append(f"{offer.memory_gib:g} GiB < {need.memory_gib:g}")
    if offer.gpus < need.gpus:
        short.append(f"{offer.gpus} GPU < {need.gpus}")
    if short:
        return Outcome.TOO_SMALL, "; ".join(short)
    return None


def observed_fits(need: Need, instance_type: str, vcpus: int, mem: float, gpus: int) -> str | None:
    """Why a running VM's current type no longer fits, or None when it still does."""
    if need.instance_type is not None and instance_type != need.instance_type:
        return f"runs {instance_type} but the VM asks for {need.instance_type}"
    short: list[str] = []
    if vcpus < need.vcpus:
        short.append(f"{vcpus} < {need.vcpus} vCPU")
    if mem < need.memory_gib:
        short.append(f"{mem:g} < {need.memory_gib:g} GiB")
    if gpus < need.gpus:
        short.append(f"{gpus} < {need.gpus} GPU")
    if short:
        return f"{instance_type} is too small ({', '.join(short)})"
    return None
