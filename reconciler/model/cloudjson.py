"""CloudSpec <-> JSON, so a saved plan can rebuild its providers without manifests.

A CloudSpec holds no secret (only ``credentialsSecretRef``), so embedding it in a
plan file is safe.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

from reconciler.model.specs import (
    Capacity,
    CloudSpec,
    FaultInjection,
    ObjectStorage,
    OfferSpec,
    Pricing,
    RateLimit,
    SecretRef,
    Simulation,
    Source,
)


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    return value


def cloud_to_json(spec: CloudSpec) -> dict[str, Any]:
    out: dict[str, Any] = _plain(spec)
    return out


def _opt(cls: Any, raw: dict[str, Any] | None) -> Any:
    return None if raw is None else cls(**raw)


def cloud_from_json(raw: dict[str, Any]) -> CloudSpec:
    pricing = dict(raw.get("pricing") or {})
    pricing["offers"] = tuple(OfferSpec(**o) for o in pricing.get("offers", ()))
    simulation = raw.get("simulation")
    if simulation is not None:
        simulation = dict(simulation)
        faults = dict(simulation.get("faults") or {})
        if "operations" in faults:
            faults["operations"] = tuple(faults["operations"])
        simulation["faults"] = FaultInjection(**faults)
        if "capabilities" in simulation:
            simulation["capabilities"] = tuple(simulation["capabilities"])
        simulation = Simulation(**simulation)
    return CloudSpec(
        name=raw["name"],
        provider=raw["provider"],
        region=raw.get("region", ""),
        endpoint=raw.get("endpoint", ""),
        hosts=tuple(raw.get("hosts") or ()),
        settings=dict(raw.get("settings") or {}),
        object_storage=_opt(ObjectStorage, raw.get("object_storage")),
        labels=dict(raw.get("labels") or {}),
        credentials_secret_ref=_opt(SecretRef, raw.get("credentials_secret_ref")),
        capacity=_opt(Capacity, raw.get("capacity")),
        pricing=Pricing(**pricing),
        rate_limit=_opt(RateLimit, raw.get("rate_limit")),
        simulation=simulation,
        source=Source(**(raw.get("source") or {})),
    )
