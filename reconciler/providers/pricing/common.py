"""What the price fetchers return, and merging it with the shipped catalog.

A fetcher (aws.py, azure.py) turns a public price API into ``PriceRow``s keyed by
instance type. ``merge`` builds the refreshed Catalog: the shipped catalog's types
priced from the API (types the API did not price keep their shipped price and date,
so a refresh never silently drops an offer), plus, with ``include_all``, every other
type the API priced.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field, replace
from pathlib import Path

from reconciler.providers.catalog import Catalog, CatalogOffer


@dataclass(frozen=True, slots=True)
class PriceRow:
    """One instance type as priced by a public API (USD per hour)."""

    name: str
    vcpus: int
    memory_gib: float
    gpus: int
    price_per_hour: float


@dataclass(slots=True)
class Fetched:
    """A fetcher's result: rows by type, and what it skipped and how."""

    source: str
    method: str
    rows: dict[str, PriceRow] = field(default_factory=dict)
    unknown: int = 0
    pages: int = 0
    block_storage_per_gib_month: float | None = None

    def add(self, row: PriceRow) -> None:
        """Keep the lowest positive price seen for a type (duplicates are meter variants)."""
        if row.price_per_hour <= 0:
            return
        old = self.rows.get(row.name)
        if old is None or row.price_per_hour < old.price_per_hour:
            self.rows[row.name] = row


@dataclass(frozen=True, slots=True)
class RefreshResult:
    """What a refresh wrote: counts for the CLI's summary line."""

    name: str
    path: Path
    offers: int
    priced: int
    carried: tuple[str, ...]
    added: int
    ignored: int
    unknown: int
    pages: int


@dataclass(frozen=True, slots=True)
class Merged:
    """A refreshed catalog and how its offers were obtained."""

    catalog: Catalog
    priced: int
    carried: tuple[str, ...]
    added: int
    ignored: int


def _offer(row: PriceRow) -> CatalogOffer:
    return CatalogOffer(row.name, row.vcpus, row.memory_gib, row.price_per_hour, row.gpus)


def merge(shipped: Catalog, fetched: Fetched, today: datetime.date, include_all: bool) -> Merged:
    """The refreshed catalog (dated ``today``) and its counts."""
    offers: list[CatalogOffer] = []
    carried: list[str] = []
    for old in shipped.offers:
        row = fetched.rows.get(old.name)
        if row is None:
            carried.append(old.name)
            offers.append(replace(old, as_of=old.as_of or shipped.as_of))
        else:
            offers.append(_offer(row))
    extra = sorted(set(fetched.rows) - {o.name for o in shipped.offers})
    if include_all:
        offers.extend(_offer(fetched.rows[name]) for name in extra)
    block = fetched.block_storage_per_gib_month
    if block is None:
        block = shipped.block_storage_per_gib_month
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    notes = (
        f"Refreshed by `reconciler catalog refresh` from {fetched.source} ({fetched.method}); "
        f"{len(offers) - len(carried)} offers priced by the API on {today.isoformat()}. "
        + (
            f"Not priced by the API, kept at the shipped price and date: {', '.join(carried)}. "
            if carried
            else ""
        )
        + (
            "Block storage from the API; "
            if fetched.block_storage_per_gib_month is not None
            else "Block storage, "
        )
        + f"object storage and egress are the shipped catalog's (asOf {shipped.as_of})."
    )
    catalog = Catalog(
        name=shipped.name,
        provider=shipped.provider,
        region=shipped.region,
        source=fetched.source,
        as_of=today.isoformat(),
        offers=tuple(offers),
        currency="USD",
        notes=notes,
        block_storage_per_gib_month=block,
        object_storage_per_gib_month=shipped.object_storage_per_gib_month,
        egress_per_gib=shipped.egress_per_gib,
        fetched_at=now,
    )
    return Merged(
        catalog=catalog,
        priced=len(offers) - len(carried),
        carried=tuple(carried),
        added=len(extra) if include_all else 0,
        ignored=0 if include_all else len(extra),
    )
