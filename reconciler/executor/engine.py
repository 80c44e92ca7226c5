"""The engine the CLI (and later the operator) drives: observe, broker, plan, apply.

This is the layer that does I/O through providers; the broker and planner below it
are pure functions of what it gathered.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.broker import RebalanceContext, place
from reconciler.executor.clock import now, now_iso
from reconciler.executor.copies import with_bucket_drift
from reconciler.executor.journal import (
    InFlight,
    Journal,
    JournalSink,
    close_interrupted,
    read_in_flight,
)
from reconciler.executor.migration_store import FileMigrationStore, MigrationStore
from reconciler.executor.rounds import completed_rounds, load_rounds, save_rounds
from reconciler.executor.runner import ActionEvent, ApplyResult, ExecOptions, execute
from reconciler.executor.world import World, build_providers, observe
from reconciler.model.errors import StalePlanError
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import ObservedVM
from reconciler.model.placement import BrokerResult
from reconciler.model.plan import Plan
from reconciler.model.specs import CloudSpec, DesiredState
from reconciler.planner import PlanInput, build_plan
from reconciler.providers.base import Provider, ProviderContext
from reconciler.providers.ratelimit import TokenBucket

JOURNAL_FILE = "journal.jsonl"
MIGRATIONS_DIR = "migrations"
CredentialSource = Callable[[Mapping[str, CloudSpec]], Mapping[str, Mapping[str, str]]]


@dataclass(frozen=True)
class Settings:
    """Where state lives and who we are. ``state_dir`` holds the simulator's world and
    the apply journal; ``owner`` is the value of the reconciler.dev/owner tag."""

    state_dir: Path
    owner: str = "reconciler"
    parallelism: int = 8
    #: Resolves the credentials of the declared Clouds when providers are built (the CLI
    #: reads Secrets from files or the environment); None: no credentials.
    credential_source: CredentialSource | None = field(default=None, repr=False)

    @property
    def context(self) -> ProviderContext:
        return ProviderContext(owner=self.owner, state_dir=self.state_dir)

    @property
    def journal_path(self) -> Path:
        return self.state_dir / JOURNAL_FILE


@dataclass(frozen=True)
class Planned:
    desired: DesiredState
    world: World
    result: BrokerResult
    plan: Plan


def record_rounds(plan: Plan, settings: Settings) -> None:
    """Remember the rebalancing rounds ``plan`` completes (after it was carried out, or
    when it had nothing to do)."""
    save_rounds(settings.state_dir, completed_rounds(plan))


def providers_for(desired: DesiredState, settings: Settings) -> dict[str, Provider]:
    source = settings.credential_source
    resolved = source(desired.clouds) if source is not None else None
    return build_providers(desired.clouds, settings.context, resolved)


def observe_declared(
    desired: DesiredState, settings: Settings, providers: dict[str, Provider] | None = None
) -> World:
    """Describe, price and list every declared cloud."""
    return observe(providers if providers is not None else providers_for(desired, settings))


def place_declared(desired: DesiredState, settings: Settings) -> tuple[World, BrokerResult]:
    """Observe every declared cloud and place every declared resource (rebalancing as a
    plan made now would)."""
    world = observe_declared(desired, settings)
    ctx = RebalanceContext(now(), load_rounds(settings.state_dir))
    result = place(
        desired, world.clouds, world.offers, world.inventory, owner=settings.owner, rebalance=ctx
    )
    return world, result


def plan_world(
    desired: DesiredState,
    world: World,
    owner: str,
    created_at: str | None = None,
    *,
    refuse_protected: bool = True,
    hold: frozenset[ResourceKey] = frozenset(),
    retire_as: Mapping[ResourceKey, str] | None = None,
    occupied: Sequence[ObservedVM] = (),
    checkpoint: Callable[[], None] = lambda: None,
    rounds: Mapping[ResourceKey, str] | None = None,
    abort: frozenset[ResourceKey] = frozenset(),
    migrating: frozenset[ResourceKey] = frozenset(),
) -> Planned:
    """Place and plan against an observed ``world``. ``rounds`` are the rebalancing
    rounds already completed (None: no cost-driven moves at all); ``abort`` names VMs
    whose migration is to be rolled back; ``migrating`` VMs being migrated (see
    RebalanceContext). The other keyword arguments are the
    operator's (see PlanInput and broker.place; ``checkpoint`` runs between placing
    and planning and may raise to abandon the work)."""
    stamp = created_at or now_iso()
    ctx = None
    if rounds is not None:
        ctx = RebalanceContext(
            dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")), rounds, migrating
        )
    result = place(
        desired,
        world.clouds,
        world.offers,
        world.inventory,
        owner=owner,
        occupied=occupied,
        rebalance=ctx,
    )
    checkpoint()
    plan = build_plan(
        PlanInput(
            desired=desired,
            inventory=world.inventory,
            result=result,
            clouds=world.clouds,
            owner=owner,
            created_at=stamp,
            refuse_protected=refuse_protected,
            hold=hold,
            retire_as=retire_as or {},
            abort=abort,
            bucket_drift=world.bucket_drift,
            offers=world.offers,
        )
    )
    return Planned(desired, world, result, plan)


def make_plan(
    desired: DesiredState,
    settings: Settings,
    providers: dict[str, Provider] | None = None,
    created_at: str | None = None,
    abort: frozenset[ResourceKey] = frozenset(),
) -> Planned:
    """Observe, place, and plan the difference between desired and observed (with the
    rebalancing rounds completed so far, and the migrations asked to abort)."""
    world = with_bucket_drift(desired, observe_declared(desired, settings, providers))
    return plan_world(
        desired,
        world,
        settings.owner,
        created_at,
        rounds=load_rounds(settings.state_dir),
        abort=abort,
    )


def check_fresh(plan: Plan, world: World, settings: Settings) -> None:
    """Refuse a saved plan made by another owner or against a different world."""
    if plan.owner != settings.owner:
        raise StalePlanError(
            f"the plan was made for owner {plan.owner!r}, not {settings.owner!r}; re-plan"
        )
    if world.inventory.fingerprint() != plan.inventory_fingerprint:
        raise StalePlanError(
            "the clouds changed since this plan was made (what runs is not what the plan "
            "was computed against); nothing was applied. Run `reconciler plan` again."
        )


def rate_limits(clouds: dict[str, CloudSpec]) -> dict[str, TokenBucket]:
    return {
        name: TokenBucket(spec.rate_limit.requests_per_second, spec.rate_limit.burst)
        for name, spec in clouds.items()
        if spec.rate_limit is not None
    }


def resolve_in_flight(items: Sequence[InFlight], providers: Mapping[str, Provider]) -> list[str]:
    """Look up what became of calls an interrupted apply left in flight.

    Each in-flight create is looked up by its uid tag. Either way the next plan is
    computed from what the clouds report, so nothing is created twice.
    """
    notes: list[str] = []
    for item in items:
        provider = providers.get(item.cloud)
        if item.uid and provider is not None:
            found = provider.find_by_uid(item.uid)
            state = f"completed ({found.external_id})" if found else "did not happen"
        else:
            state = "will be re-checked against what the cloud reports"
        notes.append(f"interrupted apply: {item.action_id} {state}")
    return notes


def recover(settings: Settings, providers: dict[str, Provider]) -> list[str]:
    """Resolve the calls an interrupted apply (local journal) left in flight."""
    path = settings.journal_path
    in_flight = read_in_flight(path)
    notes = resolve_in_flight(in_flight, providers)
    close_interrupted(path, in_flight)
    return notes


def apply(
    plan: Plan,
    world: World,
    desired: DesiredState,
    settings: Settings,
    on_event: Callable[[ActionEvent], None] = lambda _e: None,
    journal: JournalSink | None = None,
    stop: threading.Event | None = None,
    migrations: MigrationStore | None = None,
) -> ApplyResult:
    """Carry out ``plan`` through the providers of ``world``, journaling every call.

    ``journal`` defaults to the local file under ``settings.state_dir``; setting
    ``stop`` lets calls in flight finish and starts no more.
    """
    sink = journal if journal is not None else Journal(settings.journal_path)
    try:
        options = ExecOptions(
            parallelism=settings.parallelism,
            rate_limits=rate_limits(dict(desired.clouds)),
            stop=stop if stop is not None else threading.Event(),
            migrations=migrations or FileMigrationStore(settings.state_dir / MIGRATIONS_DIR),
            work_dir=settings.state_dir / "work",
        )
        result = execute(plan, world.providers, sink, options, on_event)
        if result.ok:
            record_rounds(plan, settings)
        return result
    finally:
        if journal is None:
            sink.close()
