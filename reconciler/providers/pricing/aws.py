"""AWS prices from the Price List Query API (``pricing`` GetProducts, us-east-1).

One region-wide query for Linux, shared-tenancy, no-preinstalled-software, on-demand
EC2 instances (``operation=RunInstances``, ``capacitystatus=Used``), paginated with
NextToken; each PriceList entry is a JSON document whose OnDemand term holds the
$/hour and whose product attributes hold vcpu, memory and gpu. A second query prices
gp3 block storage ($/GB-month). Credentials come from boto3's default chain.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from reconciler.model.errors import PermanentError, TransientError
from reconciler.providers.catalog import Catalog
from reconciler.providers.pricing.common import Fetched, PriceRow

PRICING_REGION = "us-east-1"
PRICING_URL = "https://api.pricing.us-east-1.amazonaws.com"
METHOD = (
    "AWS Price List Query API GetProducts, ServiceCode=AmazonEC2, operatingSystem=Linux, "
    "tenancy=Shared, preInstalledSw=NA, capacitystatus=Used, operation=RunInstances, "
    "OnDemand USD per hour"
)
_THROTTLED = {"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}
_AUTH = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "SignatureDoesNotMatch",
}
_MEMORY = re.compile(r"^\s*([\d,.]+)\s*GiB\s*$")
MAX_PAGES = 500


def make_client(catalog: str) -> Any:
    """A ``pricing`` client from boto3's default credential chain; clear error if none."""
    import boto3

    session = boto3.session.Session()
    if session.get_credentials() is None:
        raise PermanentError(
            f"catalog {catalog}: the AWS Price List API needs AWS credentials "
            "(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws/credentials); "
            "none were found",
            reason="MissingCredentials",
        )
    return session.client("pricing", region_name=PRICING_REGION)


def _filters(region: str, **fields: str) -> list[dict[str, str]]:
    pairs = {"regionCode": region, **fields}
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in pairs.items()]


def instance_filters(region: str) -> list[dict[str, str]]:
    """The GetProducts filters for Linux on-demand shared-tenancy instances in ``region``."""
    return _filters(
        region,
        productFamily="Compute Instance",
        operatingSystem="Linux",
        tenancy="Shared",
        preInstalledSw="NA",
        capacitystatus="Used",
        operation="RunInstances",
    )


def storage_filters(region: str) -> list[dict[str, str]]:
    """The GetProducts filters for gp3 volumes in ``region``."""
    return _filters(region, productFamily="Storage", volumeApiName="gp3")


def _call(client: Any, catalog: str, kwargs: dict[str, Any]) -> Mapping[str, Any]:
    url = getattr(getattr(client, "meta", None), "endpoint_url", PRICING_URL)
    where = f"catalog {catalog}: AWS Price List API {url}"
    try:
        result: Mapping[str, Any] = client.get_products(**kwargs)
        return result
    except NoCredentialsError as exc:
        raise PermanentError(f"{where}: no AWS credentials", reason="MissingCredentials") from exc
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
        if code in _THROTTLED:
            raise TransientError(f"{where}: throttled ({code})", retry_after=5.0) from exc
        if code in _AUTH:
            raise PermanentError(
                f"{where}: not authorized ({code})", reason="Unauthorized"
            ) from exc
        raise PermanentError(f"{where}: request failed ({code})", reason=code) from exc
    except BotoCoreError as exc:
        raise TransientError(f"{where}: cannot reach the API ({exc})", retry_after=5.0) from exc


def get_products(
    client: Any, catalog: str, filters: list[dict[str, str]], fetched: Fetched
) -> Iterator[Mapping[str, Any]]:
    """Every product document GetProducts returns for ``filters``, following NextToken.

    Counts the pages in ``fetched.pages``.
    """
    token = ""
    for _ in range(MAX_PAGES):
        kwargs: dict[str, Any] = {
            "ServiceCode": "AmazonEC2",
            "Filters": filters,
            "FormatVersion": "aws_v1",
            "MaxResults": 100,
        }
        if token:
            kwargs["NextToken"] = token
        page = _call(client, catalog, kwargs)
        fetched.pages += 1
        for item in page.get("PriceList", []):
            yield json.loads(item) if isinstance(item, str) else item
        token = str(page.get("NextToken", "") or "")
        if not token:
            return
    raise PermanentError(f"catalog {catalog}: more than {MAX_PAGES} pages from {PRICING_URL}")


def on_demand_usd(doc: Mapping[str, Any], unit: str) -> float | None:
    """The OnDemand USD price per ``unit`` ("Hrs", "GB-Mo") of one product document."""
    for term in doc.get("terms", {}).get("OnDemand", {}).values():
        for dim in term.get("priceDimensions", {}).values():
            if dim.get("unit") == unit and "USD" in dim.get("pricePerUnit", {}):
                return float(dim["pricePerUnit"]["USD"])
    return None


def parse_instance(doc: Mapping[str, Any]) -> PriceRow | None:
    """A PriceRow from one EC2 product document; None if its attributes are unusable."""
    attrs = doc.get("product", {}).get("attributes", {})
    memory = _MEMORY.match(str(attrs.get("memory", "")))
    price = on_demand_usd(doc, "Hrs")
    try:
        vcpus = int(attrs.get("vcpu", ""))
        gpus = int(attrs.get("gpu", "0") or 0)
    except ValueError:
        return None
    if not attrs.get("instanceType") or memory is None or price is None or vcpus < 1:
        return None
    return PriceRow(
        name=str(attrs["instanceType"]),
        vcpus=vcpus,
        memory_gib=float(memory.group(1).replace(",", "")),
        gpus=gpus,
        price_per_hour=price,
    )


def fetch(shipped: Catalog, client: Any) -> Fetched:
    """Price every on-demand Linux instance type (and gp3) in the catalog's region."""
    result = Fetched(source=PRICING_URL, method=METHOD)
    for doc in get_products(client, shipped.name, instance_filters(shipped.region), result):
        row = parse_instance(doc)
        if row is None:
            result.unknown += 1
        else:
            result.add(row)
    for doc in get_products(client, shipped.name, storage_filters(shipped.region), result):
        price = on_demand_usd(doc, "GB-Mo")
        if price is not None and price > 0:
            result.block_storage_per_gib_month = price
    return result
