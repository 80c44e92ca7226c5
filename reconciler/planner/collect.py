"""Accumulates actions, costs, warnings and protect violations while planning."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from reconciler.model.keys import TAG_DELETION_POLICY, TAG_PROTECT, ResourceKey, owning_set
from reconciler.model.plan import Action, ActionType, DriftEntry, FieldChange
from reconciler.model.specs import DriftPolicy


def action_id(kind: ActionType, key: ResourceKey, cloud: str, external_id: str | None) -> str:
    """A stable, unique id: the same change planned twice gets the same id."""
    suffix = f"#{external_id}" if external_id else ""
    return f"{kind.value}:{key}@{cloud}{suffix}"


def resource_uid(owner: str, key: ResourceKey, cloud: str, salt: str) -> str:
    """Deterministic uid for a resource to be created (idempotency token)."""
    raw = f"{owner}|{key}|{cloud}|{salt}".encode()
    return hashlib.sha256(raw).hexdigest()[:20]


def cloud_name(key: ResourceKey) -> str:
    """The name a VM or volume gets in its cloud: ``<namespace>-<name>``, at most 63."""
    return f"{key.namespace}-{key.name}"[:63]


def is_protected(tags: Mapping[str, str]) -> bool:
    return tags.get(TAG_PROTECT) == "true"


def is_orphan_policy(tags: Mapping[str, str]) -> bool:
    return tags.get(TAG_DELETION_POLICY) == "Orphan"


def covered(keys: Collection[ResourceKey], key: ResourceKey) -> bool:
    """Whether ``key`` is in ``keys``, or is a replica ``<set>-<i>`` of a set in it."""
    if not keys:
        return False
    return key in keys or owning_set(key) in keys


@dataclass
class Collector:
    """Mutable scratchpad of one planning run; ``build`` freezes it into a Plan."""

    owner: str
    salt: str
    actions: list[Action] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    protected: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    current: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    planned: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    hold: frozenset[ResourceKey] = frozenset()
    retire_as: Mapping[ResourceKey, str] = field(default_factory=dict)
    drift: list[DriftEntry] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)

    def has(self, ident: str) -> bool:
        """Whether an action with this id was added already."""
        return ident in self._ids

    def wait_for(self, ident: str, first: str) -> None:
        """Make the added action ``ident`` wait until the action ``first`` is done."""
        self.actions = [
            replace(a, depends_on=(*a.depends_on, first)) if a.id == ident else a
            for a in self.actions
        ]

    def note_drift(
        self,
        key: ResourceKey,
        cloud: str,
        external_id: str,
        changes: tuple[FieldChange, ...],
        policy: DriftPolicy,
    ) -> None:
        """A difference left uncorrected by driftPolicy Report (recorded and warned) or
        Ignore (not even recorded)."""
        if not changes or policy is DriftPolicy.IGNORE:
            return
        self.drift.append(DriftEntry(key, cloud, external_id, changes, policy.value))
        what = ", ".join(f"{c.path} is {c.before!r} (spec: {c.after!r})" for c in changes)
        self.warnings.append(
            f"drift on {key} ({external_id} on {cloud}): {what}; driftPolicy Report"
        )

    def add(
        self,
        kind: ActionType,
        key: ResourceKey,
        cloud: str,
        reason: str,
        *,
        external_id: str | None = None,
        depends_on: tuple[str, ...] = (),
        instance_type: str | None = None,
        price_before: float = 0.0,
        price_after: float = 0.0,
        changes: tuple[FieldChange, ...] = (),
        params: Mapping[str, Any] | None = None,
        id_suffix: str | None = None,
    ) -> str:
        """Record an action and return its id (for others to depend on); ``id_suffix``
        tells apart two creates of one key in one cloud (an Image's disks)."""
        ident = action_id(kind, key, cloud, external_id or id_suffix)
        self._ids.add(ident)
        self.actions.append(
            Action(
                id=ident,
                type=kind,
                key=key,
                cloud=cloud,
                reason=reason,
                depends_on=depends_on,
                instance_type=instance_type,
                price_before=round(price_before, 6),
                price_after=round(price_after, 6),
                external_id=external_id,
                changes=changes,
                params=dict(params or {}),
            )
        )
        return ident

    def uid(self, key: ResourceKey, cloud: str) -> str:
        return resource_uid(self.owner, key, cloud, self.salt)

    def cost(self, cloud: str, current: float, planned: float) -> None:
        self.current[cloud] += current
        self.planned[cloud] += planned

    def retire(
        self,
        key: ResourceKey,
        cloud: str,
        external_id: str,
        tags: Mapping[str, str],
        reason: str,
        *,
        price: float = 0.0,
        instance_type: str | None = None,
        detach_first: bool = False,
        orphan_allowed: bool = True,
    ) -> None:
        """Take away a resource we own that should not stay where it is.

        The one place that decides: a protected resource is refused (collected for the
        plan's error and left costing what it costs), a deletionPolicy Orphan one is
        forgotten, anything else deleted (detached first when ``detach_first``).
        Duplicates pass ``orphan_allowed=False``: the resource they duplicate is kept.
        """
        where = f"{key} ({external_id} on {cloud})"
        if covered(self.hold, key):
            self.cost(cloud, price, price)
            return
        declared = self.retire_as.get(key) or self.retire_as.get(owning_set(key) or key)
        if declared is None and is_protected(tags):
            self.protected.append(f"{where}: {reason}")
            self.cost(cloud, price, price)
            return
        self.cost(cloud, price, 0.0)
        orphan = declared == "Orphan" if declared is not None else is_orphan_policy(tags)
        if orphan_allowed and orphan:
            self.add(
                ActionType.FORGET,
                key,
                cloud,
                f"{reason}; deletionPolicy Orphan: left in place, no longer managed",
                external_id=external_id,
                instance_type=instance_type,
                price_before=price,
            )
            self.forgotten.append(where)
            return
        deps: tuple[str, ...] = ()
        if detach_first:
            deps = (
                self.add(
                    ActionType.DETACH,
                    key,
                    cloud,
                    f"{reason}; detach before delete",
                    external_id=external_id,
                ),
            )
        self.add(
            ActionType.DELETE,
            key,
            cloud,
            reason,
            external_id=external_id,
            depends_on=deps,
            instance_type=instance_type,
            price_before=price,
        )
