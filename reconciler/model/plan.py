"""The Plan: data only. Its JSON form (``to_json``) is the versioned contract that
renderers, saved plans and other tools read; see docs/plan-format.md."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from reconciler.model.errors import PlanError
from reconciler.model.keys import HOURS_PER_MONTH, ResourceKey

FORMAT_VERSION = "1"


class ActionType(StrEnum):
    """The small set of things a plan can do (after OpenTofu's plans.Action)."""

    CREATE = "create"
    UPDATE = "update"  # in-place change: resize, retag, versioning
    START = "start"
    STOP = "stop"
    REPLACE = "replace"  # create elsewhere, then delete the old one
    MIGRATE = "migrate"  # move a VM (and its volumes) to another cloud with its data
    DELETE = "delete"
    FORGET = "forget"  # deletionPolicy Orphan: leave it running, stop managing it
    ATTACH = "attach"
    DETACH = "detach"
    SYNC = "sync"  # copy objects from a bucket's source copy to its other copies


DESTRUCTIVE = frozenset({ActionType.DELETE, ActionType.REPLACE})


@dataclass(frozen=True, slots=True)
class FieldChange:
    path: str
    before: Any
    after: Any


@dataclass(frozen=True, slots=True)
class Action:
    """One change to one resource in one cloud, with its reason and dependencies.

    ``params`` is everything the executor hands the provider (JSON-safe, no secrets).
    Prices are $/hour of the resource before and after the action.
    """

    id: str
    type: ActionType
    key: ResourceKey
    cloud: str
    reason: str
    depends_on: tuple[str, ...] = ()
    instance_type: str | None = None
    price_before: float = 0.0
    price_after: float = 0.0
    external_id: str | None = None
    changes: tuple[FieldChange, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def price_before_cloud(self) -> str:
        """The cloud ``price_before`` is paid in: where a replace or migrate moves from."""
        source = self.params.get("source")
        if isinstance(source, Mapping) and source.get("cloud"):
            return str(source["cloud"])
        return str(self.params.get("fromCloud") or self.cloud)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "action": self.type.value,
            "kind": self.key.kind,
            "key": str(self.key),
            "cloud": self.cloud,
            "reason": self.reason,
            "dependsOn": list(self.depends_on),
            "instanceType": self.instance_type,
            "pricePerHour": {"before": self.price_before, "after": self.price_after},
            "externalId": self.external_id,
            "changes": [
                {"path": c.path, "before": c.before, "after": c.after} for c in self.changes
            ],
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Action:
        prices = raw.get("pricePerHour", {})
        return cls(
            id=raw["id"],
            type=ActionType(raw["action"]),
            key=ResourceKey.parse(raw["key"]),
            cloud=raw["cloud"],
            reason=raw["reason"],
            depends_on=tuple(raw.get("dependsOn", ())),
            instance_type=raw.get("instanceType"),
            price_before=float(prices.get("before", 0.0)),
            price_after=float(prices.get("after", 0.0)),
            external_id=raw.get("externalId"),
            changes=tuple(
                FieldChange(c["path"], c["before"], c["after"]) for c in raw.get("changes", ())
            ),
            params=raw.get("params", {}),
        )


@dataclass(frozen=True, slots=True)
class CloudPrices:
    """A cloud in the plan, with where its prices came from and how old they are."""

    name: str
    provider: str
    region: str
    price_source: str
    price_as_of: str
    simulated: bool
    current_per_hour: float = 0.0
    planned_per_hour: float = 0.0


@dataclass(frozen=True, slots=True)
class DriftEntry:
    """A resource that differs from its spec and was left so (driftPolicy Report)."""

    key: ResourceKey
    cloud: str
    external_id: str
    changes: tuple[FieldChange, ...]
    policy: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": str(self.key),
            "cloud": self.cloud,
            "externalId": self.external_id,
            "policy": self.policy,
            "changes": [
                {"path": c.path, "before": c.before, "after": c.after} for c in self.changes
            ],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> DriftEntry:
        return cls(
            ResourceKey.parse(raw["key"]),
            raw["cloud"],
            raw["externalId"],
            tuple(FieldChange(c["path"], c["before"], c["after"]) for c in raw["changes"]),
            raw["policy"],
        )


@dataclass(frozen=True, slots=True)
class UnplacedEntry:
    key: ResourceKey
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """Desired x observed -> actions. ``inventory_fingerprint`` identifies the observed
    world the plan was made against; applying it elsewhere is refused."""

    created_at: str
    owner: str
    inventory_fingerprint: str
    clouds: tuple[CloudPrices, ...]
    actions: tuple[Action, ...]
    current_per_hour: float
    planned_per_hour: float
    unplaced: tuple[UnplacedEntry, ...] = ()
    warnings: tuple[str, ...] = ()
    forgotten: tuple[str, ...] = ()
    cloud_specs: tuple[Mapping[str, Any], ...] = ()
    drift: tuple[DriftEntry, ...] = ()
    rebalance: tuple[Mapping[str, Any], ...] = ()
    format_version: str = FORMAT_VERSION

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    def only(self, actions: Sequence[Action]) -> Plan:
        """This plan narrowed to ``actions`` (some of its own): the planned cost is the
        current one plus what those actions change, per cloud and in total, and no
        rebalancing round is completed by it (it carries out part of a round at most)."""
        delta: dict[str, float] = defaultdict(float)
        for action in actions:
            delta[action.price_before_cloud] -= action.price_before
            delta[action.cloud] += action.price_after
        clouds = tuple(
            replace(c, planned_per_hour=round(c.current_per_hour + delta.get(c.name, 0.0), 6))
            for c in self.clouds
        )
        return replace(
            self,
            actions=tuple(actions),
            clouds=clouds,
            planned_per_hour=round(self.current_per_hour + sum(delta.values()), 6),
            rebalance=(),
        )

    def counts(self) -> dict[str, int]:
        out = {t.value: 0 for t in ActionType}
        for action in self.actions:
            out[action.type.value] += 1
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "formatVersion": self.format_version,
            "createdAt": self.created_at,
            "owner": self.owner,
            "inventoryFingerprint": self.inventory_fingerprint,
            "clouds": [
                {
                    "name": c.name,
                    "provider": c.provider,
                    "region": c.region,
                    "priceSource": c.price_source,
                    "priceAsOf": c.price_as_of,
                    "simulated": c.simulated,
                    "costPerHour": {"current": c.current_per_hour, "planned": c.planned_per_hour},
                }
                for c in self.clouds
            ],
            "actions": [a.to_json() for a in self.actions],
            "summary": self.counts(),
            "cost": {
                "currency": "USD",
                "hoursPerMonth": HOURS_PER_MONTH,
                "currentPerHour": round(self.current_per_hour, 6),
                "plannedPerHour": round(self.planned_per_hour, 6),
                "currentPerMonth": round(self.current_per_hour * HOURS_PER_MONTH, 2),
                "plannedPerMonth": round(self.planned_per_hour * HOURS_PER_MONTH, 2),
                "deltaPerMonth": round(
                    (self.planned_per_hour - self.current_per_hour) * HOURS_PER_MONTH, 2
                ),
            },
            "unplaced": [{"key": str(u.key), "reasons": list(u.reasons)} for u in self.unplaced],
            "forgotten": list(self.forgotten),
            "warnings": list(self.warnings),
            "cloudSpecs": [dict(c) for c in self.cloud_specs],
            "drift": [d.to_json() for d in self.drift],
            "rebalance": [dict(r) for r in self.rebalance],
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Plan:
        version = raw.get("formatVersion")
        if version != FORMAT_VERSION:
            raise PlanError(
                f"plan formatVersion {version!r} is not supported (expected {FORMAT_VERSION!r})"
            )
        try:
            cost = raw["cost"]
            return cls(
                created_at=raw["createdAt"],
                owner=raw["owner"],
                inventory_fingerprint=raw["inventoryFingerprint"],
                clouds=tuple(
                    CloudPrices(
                        name=c["name"],
                        provider=c["provider"],
                        region=c["region"],
                        price_source=c["priceSource"],
                        price_as_of=c["priceAsOf"],
                        simulated=c["simulated"],
                        current_per_hour=c["costPerHour"]["current"],
                        planned_per_hour=c["costPerHour"]["planned"],
                    )
                    for c in raw["clouds"]
                ),
                actions=tuple(Action.from_json(a) for a in raw["actions"]),
                current_per_hour=float(cost["currentPerHour"]),
                planned_per_hour=float(cost["plannedPerHour"]),
                unplaced=tuple(
                    UnplacedEntry(ResourceKey.parse(u["key"]), tuple(u["reasons"]))
                    for u in raw.get("unplaced", ())
                ),
                warnings=tuple(raw.get("warnings", ())),
                forgotten=tuple(raw.get("forgotten", ())),
                cloud_specs=tuple(raw.get("cloudSpecs", ())),
                drift=tuple(DriftEntry.from_json(d) for d in raw.get("drift", ())),
                rebalance=tuple(raw.get("rebalance", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PlanError(f"not a valid reconciler plan: {exc!r}") from exc
