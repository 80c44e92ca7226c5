"""Observing the world: every cloud described, priced and listed, in parallel.

The listing is of the resources we own and, where the cloud can import images, of
the images we imported there (Image status shows them; the planner reuses them).

A cloud that cannot be observed fails the whole plan: planning without knowing what
runs there could create duplicates or miss deletions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from reconciler.executor.retry import RetryPolicy, call_with_retry
from reconciler.model.artifacts import BucketDrift
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.errors import PlanError, ProviderError
from reconciler.model.keys import ResourceKey
from reconciler.model.observed import CloudInventory, Inventory
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import Provider, ProviderContext
from reconciler.providers.registry import build_provider


@dataclass(frozen=True)
class CloudView:
    info: CloudInfo
    offers: tuple[Offer, ...]
    inventory: CloudInventory


@dataclass(frozen=True)
class World:
    """What every cloud said, plus the providers to act through."""

    providers: Mapping[str, Provider]
    clouds: Mapping[str, CloudInfo]
    offers: Mapping[str, tuple[Offer, ...]]
    inventory: Inventory
    #: How replicated Buckets' copies differ (executor.copies.with_bucket_drift).
    bucket_drift: Mapping[ResourceKey, BucketDrift] = dataclasses.field(default_factory=dict)


def build_providers(
    clouds: Mapping[str, CloudSpec],
    context: ProviderContext,
    credentials: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, Provider]:
    """One provider per Cloud; a Cloud whose driver cannot be built fails the run.

    ``credentials`` maps a Cloud's name to its resolved secret (never logged).
    """
    providers: dict[str, Provider] = {}
    problems: list[str] = []
    for name, spec in sorted(clouds.items()):
        own = (credentials or {}).get(name)
        ctx = dataclasses.replace(context, credentials=own) if own is not None else context
        try:
            providers[name] = build_provider(spec, ctx)
        except ProviderError as exc:
            problems.append(str(exc))
    if problems:
        raise PlanError("cannot use these clouds:\n  - " + "\n  - ".join(problems))
    return providers


def _view(provider: Provider, retry: RetryPolicy) -> CloudView:
    info = call_with_retry(provider.describe, retry)
    offers = call_with_retry(provider.offers, retry)
    inventory = call_with_retry(provider.list_managed, retry)
    if Capability.IMAGE_IMPORT in info.capabilities:
        images = call_with_retry(provider.list_images, retry)
        inventory = dataclasses.replace(inventory, images=tuple(images))
    return CloudView(info, tuple(offers), inventory)


def observe(
    providers: Mapping[str, Provider],
    retry: RetryPolicy | None = None,
    parallelism: int = 8,
) -> World:
    """Describe, price and list every cloud (in parallel); raise PlanError on failure."""
    policy = retry or RetryPolicy(attempts=4)
    names = sorted(providers)
    views: dict[str, CloudView] = {}
    problems: list[str] = []
    with ThreadPoolExecutor(max_workers=max(1, min(parallelism, len(names) or 1))) as pool:
        futures = {name: pool.submit(_view, providers[name], policy) for name in names}
        for name, future in futures.items():
            try:
                views[name] = future.result()
            except ProviderError as exc:
                problems.append(f"{name}: {exc}")
    if problems:
        raise PlanError(
            "cannot observe every cloud, so no plan is made (nothing was changed):\n  - "
            + "\n  - ".join(problems)
        )
    return World(
        providers=dict(providers),
        clouds={n: v.info for n, v in views.items()},
        offers={n: v.offers for n, v in views.items()},
        inventory=Inventory({n: v.inventory for n, v in views.items()}),
    )
