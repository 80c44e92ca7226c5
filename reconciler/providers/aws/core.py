"""Shared state of the AWS driver: clients, offers (catalog joined with EC2), conversions."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.errors import PermanentError
from reconciler.model.keys import HOURS_PER_MONTH
from reconciler.model.specs import CloudSpec
from reconciler.providers.aws.session import AwsClients, parse_settings
from reconciler.providers.base import Provider, ProviderContext
from reconciler.providers.botoerrors import mapped
from reconciler.providers.catalog import (
    Catalog,
    CloudPrices,
    build_offers,
    catalog_for,
    catalog_names,
    inline_source,
    load_catalog,
)
from reconciler.providers.s3store import S3BucketStore

CAPABILITIES = frozenset(
    {
        Capability.STOP,
        Capability.RESIZE,
        Capability.VOLUMES,
        Capability.BUCKETS,
        Capability.BUCKET_VERSIONING,
        Capability.VOLUME_SNAPSHOTS,
        Capability.IMAGE_IMPORT,
    }
)
#: How many instance types one DescribeInstanceTypes filter carries.
_TYPE_CHUNK = 100


def region_catalog(cloud: CloudSpec) -> Catalog | None:
    """``spec.pricing.catalog``, else the shipped ``aws-<region>`` catalog if there is one."""
    named = catalog_for(cloud)
    if named is not None or cloud.pricing.catalog:
        return named
    default = f"aws-{cloud.region}"
    return load_catalog(default) if default in catalog_names() else None


class AwsBase(Provider):
    """Configuration, clients, offers and ownership helpers every AWS operation uses."""

    provider_name = "aws"

    def __init__(self, cloud: CloudSpec, context: ProviderContext) -> None:
        super().__init__(cloud, context)
        self.settings = parse_settings(cloud)
        self.clients = AwsClients(cloud, context.credentials)
        self.catalog = region_catalog(cloud)
        self.prices = CloudPrices.of(cloud, self.catalog)
        self._lock = threading.Lock()
        self._offers: dict[str, Offer] | None = None
        self._zone = self.settings.availability_zone
        self._buckets: S3BucketStore | None = None

    # -- clients -------------------------------------------------------------------
    @property
    def ec2(self) -> Any:
        return self.clients.client("ec2")

    @property
    def ebs(self) -> Any:
        """The EBS direct API (snapshot blocks)."""
        return self.clients.client("ebs")

    @property
    def buckets(self) -> S3BucketStore:
        """The S3 bucket store of this Cloud's account and region."""
        with self._lock:
            if self._buckets is None:
                self._buckets = S3BucketStore(
                    self.cloud.name,
                    self.context.owner,
                    self.clients.client("s3"),
                    self.prices.object_per_gib_month,
                    region=self.cloud.region,
                )
            return self._buckets

    def zone(self) -> str:
        """settings.availabilityZone, else the region's first available zone (cached)."""
        with self._lock:
            if self._zone:
                return self._zone
        with mapped(self.cloud.name, "describe availability zones"):
            zones = self.ec2.describe_availability_zones(
                Filters=[{"Name": "state", "Values": ["available"]}]
            )["AvailabilityZones"]
        names = sorted(str(z["ZoneName"]) for z in zones)
        if not names:
            raise PermanentError(
                f"region {self.cloud.region} has no available zone",
                cloud=self.cloud.name,
                reason="InvalidCloud",
            )
        with self._lock:
            self._zone = names[0]
        return names[0]

    # -- offers --------------------------------------------------------------------
    def _served_types(self, names: list[str]) -> dict[str, tuple[int, float, int]]:
        """(vcpus, memory GiB, gpus) of each of ``names`` this region serves."""
        served: dict[str, tuple[int, float, int]] = {}
        paginator = self.ec2.get_paginator("describe_instance_types")
        for start in range(0, len(names), _TYPE_CHUNK):
            chunk = names[start : start + _TYPE_CHUNK]
            pages = paginator.paginate(Filters=[{"Name": "instance-type", "Values": chunk}])
            for page in pages:
                for item in page["InstanceTypes"]:
                    gpus = sum(
                        int(g.get("Count", 0)) for g in item.get("GpuInfo", {}).get("Gpus", [])
                    )
                    served[str(item["InstanceType"])] = (
                        int(item["VCpuInfo"]["DefaultVCpus"]),
                        int(item["MemoryInfo"]["SizeInMiB"]) / 1024,
                        gpus,
                    )
        return served

    def offers(self) -> list[Offer]:
        """Catalog offers the region serves (sizes from EC2, prices from the catalog) plus
        inline offers as declared; computed once per provider."""
        return list(self.offers_by_name().values())

    def offers_by_name(self) -> dict[str, Offer]:
        """``offers()`` by instance type name (computed once, shared: do not mutate)."""
        with self._lock:
            if self._offers is not None:
                return self._offers
        base = build_offers(self.cloud, self.catalog)
        inline = inline_source(self.cloud)
        names = sorted(o.name for o in base if o.price_source != inline)
        with mapped(self.cloud.name, "describe instance types"):
            served = self._served_types(names) if names else {}
        result = {}
        for offer in base:
            if offer.price_source == inline:
                result[offer.name] = offer
            elif offer.name in served:
                vcpus, memory, gpus = served[offer.name]
                result[offer.name] = replace(offer, vcpus=vcpus, memory_gib=memory, gpus=gpus)
        with self._lock:
            self._offers = result
        return result

    def offer(self, instance_type: str) -> Offer:
        """The offer for ``instance_type``; PermanentError(UnknownInstanceType) if none."""
        found = self.offers_by_name().get(instance_type)
        if found is None:
            raise PermanentError(
                f"instance type '{instance_type}' is not offered in {self.cloud.region} "
                "(not in the price catalog, inline offers, or not served by this region)",
                cloud=self.cloud.name,
                reason="UnknownInstanceType",
            )
        return found

    def capabilities(self) -> frozenset[Capability]:
        """CAPABILITIES, plus IMAGE_EXPORT when settings.imageExport is true."""
        if self.settings.image_export:
            return CAPABILITIES | {Capability.IMAGE_EXPORT}
        return CAPABILITIES

    def describe(self) -> CloudInfo:
        return self.prices.cloud_info(
            self.cloud,
            self.provider_name,
            self.capabilities(),
            extra={"endpoint": self.cloud.endpoint} if self.cloud.endpoint else {},
        )

    def volume_price(self, size_gib: int) -> float:
        return size_gib * self.prices.block_per_gib_month / HOURS_PER_MONTH


def tag_dict(raw: list[Mapping[str, Any]] | None) -> dict[str, str]:
    """EC2's [{"Key":..,"Value":..}] as a dict."""
    return {str(t["Key"]): str(t.get("Value", "")) for t in raw or []}


def tag_list(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]
