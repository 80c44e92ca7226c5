"""Price catalogs shipped with reconciler, and the offers a Cloud ends up with.

A catalog is a YAML file in ``reconciler/providers/data/``: instance types with $/hour
list prices plus storage and egress prices, with the public page they come from
(``source``) and the date those prices were published (``asOf``). A Cloud's offers
are its catalog's offers extended (or replaced) by the offers declared inline in
its manifest.

``reconciler catalog refresh`` writes refreshed copies, in the same format, to the user
catalog directory (``RECONCILER_CATALOG_DIR``, default ``~/.cache/reconciler/catalogs``).
``load_catalog`` prefers a refreshed copy whose ``asOf`` is later than the shipped one's;
``Catalog.origin`` says which was used.
"""

from __future__ import annotations

import datetime
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.errors import PermanentError
from reconciler.model.specs import Capacity, CloudSpec

_DATA_PACKAGE = "reconciler.providers"
_DATA_DIR = "data"
CATALOG_DIR_ENV = "RECONCILER_CATALOG_DIR"
SHIPPED = "shipped"


@dataclass(frozen=True, slots=True)
class CatalogOffer:
    """One instance type of a catalog; ``as_of`` overrides the catalog's date."""

    name: str
    vcpus: int
    memory_gib: float
    price_per_hour: float
    gpus: int = 0
    as_of: str = ""


@dataclass(frozen=True, slots=True)
class Catalog:
    """A parsed price catalog (prices in USD; storage per GiB-month, egress per GiB)."""

    name: str
    provider: str
    region: str
    source: str
    as_of: str
    offers: tuple[CatalogOffer, ...]
    currency: str = "USD"
    notes: str = ""
    block_storage_per_gib_month: float = 0.0
    object_storage_per_gib_month: float = 0.0
    egress_per_gib: float = 0.0
    origin: str = SHIPPED
    fetched_at: str = ""

    @property
    def refreshed(self) -> bool:
        """True when this copy was read from the user catalog directory."""
        return self.origin != SHIPPED

    def offer(self, name: str) -> CatalogOffer | None:
        """The offer called ``name``, if the catalog has it."""
        return next((o for o in self.offers if o.name == name), None)


def user_catalog_dir() -> Path:
    """Where refreshed catalogs live: $RECONCILER_CATALOG_DIR or ~/.cache/reconciler/catalogs."""
    env = os.environ.get(CATALOG_DIR_ENV, "")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "reconciler" / "catalogs"


def refreshed_path(name: str, catalog_dir: Path | None = None) -> Path:
    """The file a refreshed copy of catalog ``name`` is (or would be) stored in."""
    return (catalog_dir or user_catalog_dir()) / f"{name}.yaml"


def catalog_names() -> list[str]:
    """Names of every catalog shipped with this build, sorted."""
    folder = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR)
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in folder.iterdir()
        if entry.name.endswith(".yaml")
    )


def _require(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise ValueError(f"{where}: missing '{key}'")
    return raw[key]


def _parse_offer(raw: Mapping[str, Any], where: str) -> CatalogOffer:
    name = str(_require(raw, "name", where))
    here = f"{where} offer {name}"
    offer = CatalogOffer(
        name=name,
        vcpus=int(_require(raw, "vcpus", here)),
        memory_gib=float(_require(raw, "memoryGiB", here)),
        price_per_hour=float(_require(raw, "pricePerHour", here)),
        gpus=int(raw.get("gpus", 0) or 0),
        as_of=str(raw.get("asOf", "") or ""),
    )
    if offer.vcpus < 1 or offer.memory_gib <= 0 or offer.price_per_hour < 0:
        raise ValueError(f"{here}: vcpus, memoryGiB must be positive and price >= 0")
    return offer


def parse_catalog(raw: Mapping[str, Any], where: str) -> Catalog:
    """Build a Catalog from its YAML mapping; ValueError naming ``where`` if malformed."""
    offers = tuple(_parse_offer(o, where) for o in _require(raw, "offers", where))
    names = [o.name for o in offers]
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: duplicate offer names")
    return Catalog(
        name=str(_require(raw, "name", where)),
        provider=str(_require(raw, "provider", where)),
        region=str(raw.get("region", "") or ""),
        source=str(_require(raw, "source", where)),
        as_of=str(_require(raw, "asOf", where)),
        offers=offers,
        currency=str(raw.get("currency", "USD")),
        notes=str(raw.get("notes", "") or ""),
        block_storage_per_gib_month=float(raw.get("blockStoragePerGiBMonth", 0.0) or 0.0),
        object_storage_per_gib_month=float(raw.get("objectStoragePerGiBMonth", 0.0) or 0.0),
        egress_per_gib=float(raw.get("egressPerGiB", 0.0) or 0.0),
        fetched_at=str(raw.get("fetchedAt", "") or ""),
    )


def load_catalog(name: str, catalog_dir: Path | None = None) -> Catalog:
    """The catalog called ``name``: the refreshed copy if its asOf is later, else the shipped one.

    ``catalog_dir`` defaults to ``user_catalog_dir()``. Results are cached per file
    version (path and mtime), so a refresh is seen at once; ``clear_cache`` empties it.
    Raises PermanentError(reason="UnknownCatalog") listing the known catalogs, and
    ValueError naming the file when a catalog file is malformed.
    """
    path = refreshed_path(name, catalog_dir)
    try:
        stamp: int | None = path.stat().st_mtime_ns
    except OSError:
        stamp = None
    return _load(name, str(path), stamp)


def load_shipped_catalog(name: str) -> Catalog:
    """The catalog called ``name`` exactly as shipped with this build (cached)."""
    return _load_shipped(name)


def clear_cache() -> None:
    """Forget every parsed catalog (called after a refresh rewrites a file)."""
    _load.cache_clear()
    _load_shipped.cache_clear()


def _parse_text(text: str, name: str, where: str) -> Catalog:
    raw = yaml.load(text, Loader=yaml.CSafeLoader)
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: not a mapping")
    catalog = parse_catalog(raw, where)
    if catalog.name != name:
        raise ValueError(f"{where}: file declares name '{catalog.name}'")
    return catalog


@functools.lru_cache(maxsize=64)
def _load_shipped(name: str) -> Catalog:
    known = catalog_names()
    if name not in known:
        raise PermanentError(
            f"unknown price catalog '{name}' (known: {', '.join(known)})",
            reason="UnknownCatalog",
        )
    path = resources.files(_DATA_PACKAGE).joinpath(_DATA_DIR, f"{name}.yaml")
    return _parse_text(path.read_text(encoding="utf-8"), name, f"catalog {name}")


@functools.lru_cache(maxsize=128)
def _load(name: str, path: str, stamp: int | None) -> Catalog:
    shipped = _load_shipped(name)
    if stamp is None:
        return shipped
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return shipped
    refreshed = _parse_text(text, name, f"refreshed catalog {path}")
    if refreshed.provider != shipped.provider:
        raise ValueError(
            f"refreshed catalog {path}: provider '{refreshed.provider}' "
            f"differs from the shipped catalog's '{shipped.provider}'"
        )
    if _date(refreshed.as_of, path) <= _date(shipped.as_of, name):
        return shipped
    return replace(refreshed, origin=f"refreshed {path}")


def _date(text: str, where: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f"catalog {where}: asOf '{text}' is not a YYYY-MM-DD date") from exc


def catalog_for(cloud: CloudSpec) -> Catalog | None:
    """The catalog a Cloud names in ``spec.pricing.catalog`` (None if it names none).

    An unknown name raises PermanentError naming the Cloud and the known catalogs.
    """
    name = cloud.pricing.catalog
    if not name:
        return None
    try:
        return load_catalog(name)
    except PermanentError as exc:
        raise PermanentError(str(exc), cloud=cloud.name, reason=exc.reason) from exc


def inline_source(cloud: CloudSpec) -> str:
    """The ``price_source`` of offers declared inline on a Cloud."""
    return f"inline (Cloud {cloud.name})"


@dataclass(frozen=True, slots=True)
class CloudPrices:
    """What a Cloud's resources cost besides instance hours, and where its prices come
    from. A price declared on the Cloud (``spec.pricing``) wins over its catalog's;
    without either it is 0."""

    source: str
    as_of: str
    egress_per_gib: float
    block_per_gib_month: float
    object_per_gib_month: float

    @classmethod
    def of(cls, cloud: CloudSpec, catalog: Catalog | None) -> CloudPrices:
        pricing = cloud.pricing

        def pick(declared: float | None, listed: float) -> float:
            return declared if declared is not None else listed

        return cls(
            source=catalog.source if catalog else inline_source(cloud),
            as_of=catalog.as_of if catalog else "",
            egress_per_gib=pick(pricing.egress_per_gib, catalog.egress_per_gib if catalog else 0.0),
            block_per_gib_month=pick(
                pricing.block_storage_per_gib_month,
                catalog.block_storage_per_gib_month if catalog else 0.0,
            ),
            object_per_gib_month=pick(
                pricing.object_storage_per_gib_month,
                catalog.object_storage_per_gib_month if catalog else 0.0,
            ),
        )

    def cloud_info(
        self,
        cloud: CloudSpec,
        provider: str,
        capabilities: frozenset[Capability],
        capacity: Capacity | None = None,
        simulated: bool = False,
        extra: Mapping[str, str] | None = None,
        region: str | None = None,
    ) -> CloudInfo:
        """The CloudInfo a driver's ``describe()`` returns, with these prices
        (``region`` defaults to the Cloud's)."""
        return CloudInfo(
            name=cloud.name,
            provider=provider,
            region=cloud.region if region is None else region,
            labels=dict(cloud.labels),
            capabilities=capabilities,
            capacity=capacity,
            price_source=self.source,
            price_as_of=self.as_of,
            egress_per_gib=self.egress_per_gib,
            block_storage_per_gib_month=self.block_per_gib_month,
            object_storage_per_gib_month=self.object_per_gib_month,
            simulated=simulated,
            extra=dict(extra or {}),
        )


def require_offer(offers: Mapping[str, Offer], name: str, cloud: str) -> Offer:
    """The offer called ``name``; PermanentError(UnknownInstanceType) listing the others."""
    offer = offers.get(name)
    if offer is None:
        raise PermanentError(
            f"unknown instance type '{name}' (this cloud offers: "
            f"{', '.join(sorted(offers)) or 'none'})",
            cloud=cloud,
            reason="UnknownInstanceType",
        )
    return offer


def build_offers(cloud: CloudSpec, catalog: Catalog | None) -> list[Offer]:
    """A Cloud's offers: the catalog's, extended by inline ``pricing.offers``.

    An inline offer with a catalog offer's name wins over it; with ``pricing.mode ==
    "Replace"`` the catalog is ignored. Inline offers carry ``price_source``
    "inline (Cloud <name>)" and an empty ``price_as_of`` (the price is as declared in
    the manifest, renderers show "declared").
    """
    result: dict[str, Offer] = {}
    if catalog is not None and cloud.pricing.mode != "Replace":
        for item in catalog.offers:
            result[item.name] = Offer(
                cloud=cloud.name,
                name=item.name,
                vcpus=item.vcpus,
                memory_gib=item.memory_gib,
                price_per_hour=item.price_per_hour,
                gpus=item.gpus,
                price_source=catalog.source,
                price_as_of=item.as_of or catalog.as_of,
            )
    for spec in cloud.pricing.offers:
        result[spec.name] = Offer(
            cloud=cloud.name,
            name=spec.name,
            vcpus=spec.vcpus,
            memory_gib=spec.memory_gib,
            price_per_hour=spec.price_per_hour,
            gpus=spec.gpus,
            available=spec.available,
            price_source=inline_source(cloud),
            price_as_of="",
        )
    return list(result.values())
