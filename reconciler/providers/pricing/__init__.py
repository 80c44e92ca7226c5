"""Refreshing price catalogs from the clouds' public price APIs.

``refresh_catalog(name)`` prices a shipped catalog's instance types from the AWS Price
List Query API (aws) or the Azure Retail Prices API (azure) and writes the result,
dated today, to the user catalog directory, where ``load_catalog`` prefers it over
the shipped copy. A private cloud's catalog (sim) declares its own prices and is not
refreshable. On any failure nothing is written.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from reconciler.model.errors import PermanentError
from reconciler.providers.catalog import (
    Catalog,
    clear_cache,
    load_shipped_catalog,
    refreshed_path,
)
from reconciler.providers.pricing import azure
from reconciler.providers.pricing.common import Fetched, RefreshResult, merge
from reconciler.providers.pricing.store import write_catalog

__all__ = ["NOT_REFRESHABLE", "RefreshResult", "refresh_catalog", "refreshable"]

NOT_REFRESHABLE = "not refreshable (a private cloud's prices are declared)"
REFRESHABLE_PROVIDERS = ("aws", "azure")


def refreshable(catalog: Catalog) -> bool:
    """True when a public price API exists for the catalog's provider."""
    return catalog.provider in REFRESHABLE_PROVIDERS


def _fetch(shipped: Catalog, aws_client: Any, fetch: azure.Fetch | None) -> Fetched:
    if shipped.provider == "aws":
        try:
            from reconciler.providers.pricing import aws
        except ImportError as exc:
            raise PermanentError(
                f"catalog {shipped.name}: refreshing AWS prices needs boto3 "
                "(pip install 'reconciler[aws]')",
                reason="MissingDependency",
            ) from exc
        client = aws_client if aws_client is not None else aws.make_client(shipped.name)
        return aws.fetch(shipped, client)
    return azure.fetch_prices(shipped, fetch)


def refresh_catalog(
    name: str,
    *,
    catalog_dir: Path | None = None,
    today: datetime.date | None = None,
    include_all: bool = False,
    aws_client: Any = None,
    fetch: azure.Fetch | None = None,
) -> RefreshResult:
    """Fetch current prices for catalog ``name`` and write them atomically.

    ``aws_client`` (a boto3 ``pricing`` client) and ``fetch`` (url -> parsed JSON) are
    the injectable HTTP layers; by default boto3's credential chain and urllib are used.
    Raises PermanentError/TransientError naming the catalog and the URL; nothing is
    written then. Only the shipped catalog's types are kept unless ``include_all``.
    """
    shipped = load_shipped_catalog(name)
    if not refreshable(shipped):
        raise PermanentError(f"catalog {name}: {NOT_REFRESHABLE}", reason="NotRefreshable")
    fetched = _fetch(shipped, aws_client, fetch)
    if not any(o.name in fetched.rows for o in shipped.offers) and not (
        include_all and fetched.rows
    ):
        raise PermanentError(
            f"catalog {name}: {fetched.source} returned no price for any of its "
            f"{len(shipped.offers)} instance types in {shipped.region}",
            reason="NoPrices",
        )
    merged = merge(shipped, fetched, today or datetime.date.today(), include_all)
    path = refreshed_path(name, catalog_dir)
    write_catalog(merged.catalog, path)
    clear_cache()
    return RefreshResult(
        name=name,
        path=path,
        offers=len(merged.catalog.offers),
        priced=merged.priced,
        carried=merged.carried,
        added=merged.added,
        ignored=merged.ignored,
        unknown=fetched.unknown,
        pages=fetched.pages,
    )
