"""Azure prices from the public Retail Prices API (no credentials needed).

``GET https://prices.azure.com/api/retail/prices?$filter=serviceName eq 'Virtual
Machines' and armRegionName eq '<region>' and priceType eq 'Consumption'``, following
``NextPageLink``. Spot, Low Priority and Windows meters are skipped, as are meters of
a non-primary region. The API has no vCPU/memory, so each ``armSkuName`` is sized from
the shipped catalog or ``SIZES`` below; sizes unknown to both are skipped and counted.
The HTTP layer is injectable (``fetch``); the default uses urllib.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.model.errors import PermanentError, TransientError
from reconciler.providers.catalog import Catalog
from reconciler.providers.pricing.common import Fetched, PriceRow

RETAIL_URL = "https://prices.azure.com/api/retail/prices"
METHOD = (
    "Azure Retail Prices API, serviceName 'Virtual Machines', priceType 'Consumption', "
    "Linux meters only (no Spot, Low Priority or Windows), USD per hour"
)
MAX_PAGES = 1000
TIMEOUT_S = 30.0

Fetch = Callable[[str], Mapping[str, Any]]
Size = tuple[int, float, int]  # vcpus, memory GiB, gpus


def _family(pattern: str, gib_per_vcpu: int) -> dict[str, Size]:
    """Sizes 2..32 vCPUs of a family whose memory is a fixed multiple of its vCPUs."""
    return {pattern.format(n=n): (n, float(n * gib_per_vcpu), 0) for n in (2, 4, 8, 16, 32)}


_FOUR_GIB: tuple[str, ...] = (
    "D{n}_v5",
    "D{n}s_v5",
    "D{n}as_v5",
    "D{n}ds_v5",
    "D{n}ads_v5",
    "D{n}s_v4",
    "D{n}as_v4",
    "D{n}_v3",
    "D{n}s_v3",
)
_EIGHT_GIB = tuple(fam.replace("D", "E", 1) for fam in _FOUR_GIB)

# Sizes beyond the shipped catalogs (used with --all), from Azure's published size
# tables; only 2..32 vCPUs, where each family's GiB-per-vCPU ratio holds exactly.
SIZES: dict[str, Size] = {
    "Standard_B1ls": (1, 0.5, 0),
    "Standard_B1s": (1, 1.0, 0),
    "Standard_B1ms": (1, 2.0, 0),
    "Standard_B2s": (2, 4.0, 0),
    "Standard_B2ms": (2, 8.0, 0),
    "Standard_B4ms": (4, 16.0, 0),
    "Standard_B8ms": (8, 32.0, 0),
    "Standard_B12ms": (12, 48.0, 0),
    "Standard_B16ms": (16, 64.0, 0),
    "Standard_B20ms": (20, 80.0, 0),
    **_family("Standard_D{n}ls_v5", 2),
    **_family("Standard_F{n}s_v2", 2),
    **{k: v for fam in _FOUR_GIB for k, v in _family("Standard_" + fam, 4).items()},
    **{k: v for fam in _EIGHT_GIB for k, v in _family("Standard_" + fam, 8).items()},
}


def first_url(region: str) -> str:
    """The first page's URL for Linux/Windows consumption VM meters in ``region``."""
    query = (
        f"serviceName eq 'Virtual Machines' and armRegionName eq '{region}' "
        "and priceType eq 'Consumption'"
    )
    return f"{RETAIL_URL}?$filter={urllib.parse.quote(query, safe=chr(39))}"


def urllib_fetch(url: str) -> Mapping[str, Any]:
    """GET ``url`` and parse its JSON body (the default HTTP layer)."""
    request = urllib.request.Request(
        url, headers={"Accept": "application/json", "User-Agent": "reconciler-catalog"}
    )
    with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
        body = json.loads(response.read().decode("utf-8"))
    if not isinstance(body, Mapping):
        raise ValueError("response is not a JSON object")
    return body


def _get(fetch: Fetch, catalog: str, url: str) -> Mapping[str, Any]:
    where = f"catalog {catalog}: Azure Retail Prices API {url}"
    try:
        return fetch(url)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise TransientError(f"{where}: HTTP {exc.code}", retry_after=5.0) from exc
        reason = "Unauthorized" if exc.code in (401, 403) else f"HTTP{exc.code}"
        raise PermanentError(f"{where}: HTTP {exc.code}", reason=reason) from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
        detail = getattr(exc, "reason", exc)
        raise TransientError(f"{where}: cannot reach the API ({detail})", retry_after=5.0) from exc
    except ValueError as exc:
        raise PermanentError(f"{where}: malformed response ({exc})", reason="BadResponse") from exc


def usable(item: Mapping[str, Any]) -> bool:
    """True for a pay-as-you-go Linux hourly meter of the primary region."""
    text = f"{item.get('skuName', '')} {item.get('meterName', '')}"
    return (
        bool(item.get("armSkuName"))
        and item.get("type") == "Consumption"
        and item.get("unitOfMeasure") == "1 Hour"
        and item.get("currencyCode", "USD") == "USD"
        and item.get("isPrimaryMeterRegion", True) is not False
        and "Windows" not in str(item.get("productName", ""))
        and "Spot" not in text
        and "Low Priority" not in text
    )


def fetch_prices(
    shipped: Catalog, fetch: Fetch | None = None, sizes: Mapping[str, Size] | None = None
) -> Fetched:
    """Price every VM size in the catalog's region, following NextPageLink."""
    known: dict[str, Size] = {**SIZES, **(sizes or {})}
    known.update({o.name: (o.vcpus, o.memory_gib, o.gpus) for o in shipped.offers})
    result = Fetched(source=RETAIL_URL, method=METHOD)
    unknown: set[str] = set()
    url: str = first_url(shipped.region)
    seen: set[str] = set()
    while url:
        if url in seen or len(seen) >= MAX_PAGES:
            raise PermanentError(f"catalog {shipped.name}: NextPageLink loops at {url}")
        seen.add(url)
        page = _get(fetch or urllib_fetch, shipped.name, url)
        result.pages += 1
        for item in page.get("Items", []) or []:
            if not usable(item):
                continue
            name = str(item["armSkuName"])
            size = known.get(name)
            if size is None:
                unknown.add(name)
                continue
            price = float(item.get("retailPrice", item.get("unitPrice", 0.0)))
            result.add(PriceRow(name, size[0], size[1], size[2], price))
        url = str(page.get("NextPageLink") or "")
    result.unknown = len(unknown)
    return result
