"""Writing a refreshed catalog: the shipped YAML format, written atomically.

The file is written to a temporary name in the same directory and renamed over the
old one, so a reader (or a crash) never sees half a catalog.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from reconciler.providers.catalog import Catalog, CatalogOffer, parse_catalog


def _offer_line(offer: CatalogOffer) -> str:
    item: dict[str, Any] = {
        "name": offer.name,
        "vcpus": offer.vcpus,
        "memoryGiB": _number(offer.memory_gib),
        "gpus": offer.gpus,
        "pricePerHour": _number(offer.price_per_hour),
    }
    if offer.as_of:
        item["asOf"] = offer.as_of
    text = yaml.safe_dump(item, default_flow_style=True, sort_keys=False, width=1000)
    return f"  - {text.strip()}\n"


def _number(value: float) -> float | int:
    """Whole numbers as ints (``memoryGiB: 8``), others as given."""
    return int(value) if float(value).is_integer() else value


def render_catalog(catalog: Catalog) -> str:
    """The catalog as YAML text in the shipped format (flow-style offers, one a line)."""
    header: dict[str, Any] = {
        "name": catalog.name,
        "provider": catalog.provider,
        "region": catalog.region,
        "currency": catalog.currency,
        "source": catalog.source,
        "asOf": catalog.as_of,
        "fetchedAt": catalog.fetched_at,
        "notes": catalog.notes,
        "blockStoragePerGiBMonth": catalog.block_storage_per_gib_month,
        "objectStoragePerGiBMonth": catalog.object_storage_per_gib_month,
        "egressPerGiB": catalog.egress_per_gib,
    }
    text = yaml.safe_dump(header, sort_keys=False, width=88, allow_unicode=True)
    return text + "offers:\n" + "".join(_offer_line(o) for o in catalog.offers)


def write_catalog(catalog: Catalog, path: Path) -> None:
    """Write ``catalog`` to ``path`` atomically (temporary file + rename).

    The text is parsed back first, so a catalog that would not load is never written.
    """
    text = render_catalog(catalog)
    parse_catalog(yaml.safe_load(text), f"refreshed catalog {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
