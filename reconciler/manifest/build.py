"""Build the model (DesiredState) from schema- and reference-checked objects."""

from __future__ import annotations

from typing import Any

from reconciler.manifest.reader import Document
from reconciler.manifest.xref import Index
from reconciler.model.keys import ResourceKey, replica_key
from reconciler.model.specs import (
    BucketSpec,
    Capacity,
    CloudSelector,
    CloudSpec,
    DeletionPolicy,
    DesiredState,
    DriftPolicy,
    FaultInjection,
    ImageDisk,
    ImageSpec,
    LabelRequirement,
    MigrationStrategy,
    ObjectStorage,
    OfferSpec,
    PolicySpec,
    PowerState,
    Pricing,
    RateLimit,
    Rebalance,
    Resources,
    SecretRef,
    Simulation,
    Source,
    VMSetSpec,
    VMSpec,
    VolumeSpec,
    Window,
)

Raw = dict[str, Any]


def _opt_float(raw: Raw, field: str) -> float | None:
    value = raw.get(field)
    return None if value is None else float(value)


def _opt_int(raw: Raw, field: str) -> int | None:
    value = raw.get(field)
    return None if value is None else int(value)


def _object_storage(raw: Raw | None) -> ObjectStorage | None:
    if raw is None:
        return None
    return ObjectStorage(endpoint=raw["endpoint"], region=raw.get("region", "us-east-1"))


def _cloud(key: ResourceKey, doc: Document, source: Source) -> CloudSpec:
    spec: Raw = doc.data["spec"]
    ref = spec.get("credentialsSecretRef")
    cap = spec.get("capacity")
    rate = spec.get("rateLimit")
    pricing: Raw = spec.get("pricing") or {}
    offers = tuple(
        OfferSpec(
            name=o["name"],
            vcpus=int(o["vcpus"]),
            memory_gib=float(o["memoryGiB"]),
            price_per_hour=float(o["pricePerHour"]),
            gpus=int(o.get("gpus", 0)),
            available=_opt_int(o, "available"),
        )
        for o in pricing.get("offers") or ()
    )
    return CloudSpec(
        name=key.name,
        provider=spec["provider"],
        region=spec.get("region", ""),
        endpoint=spec.get("endpoint", ""),
        hosts=tuple(spec.get("hosts") or ()),
        settings={k: str(v) for k, v in (spec.get("settings") or {}).items()},
        object_storage=_object_storage(spec.get("objectStorage")),
        labels=dict(doc.data["metadata"].get("labels") or {}),
        credentials_secret_ref=SecretRef(ref["name"], ref.get("namespace", "")) if ref else None,
        capacity=Capacity(
            _opt_int(cap, "vcpus"), _opt_float(cap, "memoryGiB"), _opt_int(cap, "instances")
        )
        if cap is not None
        else None,
        pricing=Pricing(
            catalog=pricing.get("catalog"),
            offers=offers,
            mode=pricing.get("mode", "Extend"),
            egress_per_gib=_opt_float(pricing, "egressPerGiB"),
            block_storage_per_gib_month=_opt_float(pricing, "blockStoragePerGiBMonth"),
            object_storage_per_gib_month=_opt_float(pricing, "objectStoragePerGiBMonth"),
        ),
        rate_limit=RateLimit(float(rate["requestsPerSecond"]), int(rate.get("burst", 1)))
        if rate is not None
        else None,
        simulation=_simulation(spec["simulation"]) if "simulation" in spec else None,
        source=source,
    )


def _simulation(raw: Raw) -> Simulation:
    faults: Raw = raw.get("faults") or {}
    return Simulation(
        latency_ms=float(raw.get("latencyMs", 0.0)),
        server_rate_limit=_opt_float(raw, "serverRateLimit"),
        capabilities=tuple(raw.get("capabilities") or ()),
        faults=FaultInjection(
            transient_rate=float(faults.get("transientRate", 0.0)),
            permanent_rate=float(faults.get("permanentRate", 0.0)),
            seed=int(faults.get("seed", 0)),
            operations=tuple(faults.get("operations") or ()),
        ),
    )


def _selectors(items: list[Raw] | None) -> tuple[CloudSelector, ...]:
    out: list[CloudSelector] = []
    for item in items or ():
        if "name" in item:
            out.append(CloudSelector(name=item["name"]))
            continue
        sel: Raw = item.get("selector") or {}
        out.append(
            CloudSelector(
                match_labels=dict(sel.get("matchLabels") or {}),
                match_expressions=tuple(
                    LabelRequirement(e["key"], e["operator"], tuple(e.get("values") or ()))
                    for e in sel.get("matchExpressions") or ()
                ),
            )
        )
    return tuple(out)


def _window(raw: Raw) -> Window:
    hours, minutes = str(raw["start"]).split(":")
    return Window(
        days=tuple(raw.get("days") or ()),
        start_minute=int(hours) * 60 + int(minutes),
        duration_hours=int(raw["durationHours"]),
    )


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def duration_seconds(text: str) -> int:
    """``30s``, ``15m``, ``24h``, ``7d`` (the CRD's pattern) in seconds."""
    return int(text[:-1]) * _SECONDS[text[-1]]


def _policy(key: ResourceKey, doc: Document, source: Source) -> PolicySpec:
    spec: Raw = doc.data["spec"]
    clouds: Raw = spec.get("clouds") or {}
    reb: Raw = spec.get("rebalance") or {}
    defaults = Rebalance()
    return PolicySpec(
        key=key,
        allow=_selectors(clouds.get("allow")),
        deny=_selectors(clouds.get("deny")),
        jurisdictions=tuple(spec.get("jurisdictions") or ()),
        max_per_cloud=_opt_int(spec.get("spread") or {}, "maxPerCloud"),
        objective=spec.get("objective", "Cost"),
        rebalance=Rebalance(
            interval=reb.get("interval", defaults.interval),
            min_savings_percent=float(reb.get("minSavingsPercent", 0.0)),
            min_savings_per_month=float(reb.get("minSavingsPerMonth", 0.0)),
            horizon_days=int(reb.get("horizonDays", defaults.horizon_days)),
            cooldown_hours=int(reb.get("cooldownHours", defaults.cooldown_hours)),
            max_concurrent_migrations=int(
                reb.get("maxConcurrentMigrations", defaults.max_concurrent_migrations)
            ),
            windows=tuple(_window(w) for w in reb.get("windows") or ()),
            conversion_cost=float((reb.get("migrationCost") or {}).get("conversion", 0.0)),
            downtime_cost=float((reb.get("migrationCost") or {}).get("downtime", 0.0)),
        ),
        max_monthly_budget=_opt_float(spec.get("budget") or {}, "maxMonthly"),
        source=source,
    )


def vm_spec(
    key: ResourceKey,
    spec: Raw,
    source: Source,
    labels: Raw | None = None,
    owner: ResourceKey | None = None,
) -> VMSpec:
    """A VMSpec from a VirtualMachine spec mapping (also a set's template spec)."""
    res: Raw = spec["resources"]
    migration: Raw = spec.get("migration") or {}
    retain = migration.get("retainSourceFor")
    return VMSpec(
        key=key,
        resources=Resources(
            int(res["vcpus"]),
            float(res["memoryGiB"]),
            int(res.get("diskGiB", 0)),
            int(res.get("gpus", 0)),
        ),
        image=spec.get("image"),
        policy_ref=spec["policyRef"]["name"] if "policyRef" in spec else None,
        pinned_cloud=(spec.get("placement") or {}).get("cloud"),
        instance_type=spec.get("instanceType"),
        power_state=PowerState(spec.get("powerState", "Running")),
        deletion_policy=DeletionPolicy(spec.get("deletionPolicy", "Delete")),
        protect=bool(spec.get("protect", False)),
        labels=labels if labels is not None else {},
        owner_set=owner,
        migration_strategy=MigrationStrategy(migration.get("strategy", "Cold")),
        retain_source_seconds=duration_seconds(retain) if retain else 86_400,
        drift_policy=DriftPolicy(spec.get("driftPolicy", "Correct")),
        source=source,
    )


def _storage_common(spec: Raw) -> tuple[DeletionPolicy, bool]:
    return DeletionPolicy(spec.get("deletionPolicy", "Delete")), bool(spec.get("protect", False))


def _image_disk(raw: Raw) -> ImageDisk:
    return ImageDisk(
        name=raw["name"],
        format=raw["format"],
        capacity_gib=float(raw["capacityGiB"]),
        file=raw.get("file", ""),
        url=raw.get("url", ""),
        size_bytes=_opt_int(raw, "sizeBytes"),
        compression=raw.get("compression", ""),
        sha256=raw.get("sha256", ""),
    )


def build_desired(index: Index) -> DesiredState:
    """Turn checked objects into the DesiredState, expanding set replicas into ``vms``."""
    clouds: dict[str, CloudSpec] = {}
    policies: dict[ResourceKey, PolicySpec] = {}
    vms: dict[ResourceKey, VMSpec] = {}
    sets: dict[ResourceKey, VMSetSpec] = {}
    volumes: dict[ResourceKey, VolumeSpec] = {}
    buckets: dict[ResourceKey, BucketSpec] = {}
    images: dict[ResourceKey, ImageSpec] = {}
    for key, doc in index.objects.items():
        source = Source(doc.file, doc.line)
        kind = key.kind
        spec: Raw = doc.data["spec"]
        if kind == "VirtualMachine":
            labels = doc.data["metadata"].get("labels")
            vms[key] = vm_spec(key, spec, source, dict(labels) if labels else None)
        elif kind == "Cloud":
            clouds[key.name] = _cloud(key, doc, source)
        elif kind == "BrokerPolicy":
            policies[key] = _policy(key, doc, source)
        elif kind == "VirtualMachineSet":
            sets[key] = _vm_set(key, spec, source, vms)
        elif kind == "Volume":
            deletion, protect = _storage_common(spec)
            volumes[key] = VolumeSpec(
                key=key,
                size_gib=int(spec["sizeGiB"]),
                volume_class=spec.get("class", "standard"),
                attach_to=index.attachments.get(key),
                cloud=spec.get("cloud"),
                policy_ref=(spec.get("policyRef") or {}).get("name"),
                deletion_policy=deletion,
                protect=protect,
                drift_policy=DriftPolicy(spec.get("driftPolicy", "Correct")),
                source=source,
                image=(spec.get("image") or {}).get("name"),
                image_disk=(spec.get("image") or {}).get("disk"),
            )
        elif kind == "Bucket":
            deletion, protect = _storage_common(spec)
            buckets[key] = BucketSpec(
                key=key,
                policy_ref=(spec.get("policyRef") or {}).get("name"),
                clouds=tuple(spec.get("clouds") or ()),
                copies=int(spec.get("copies", 1)),
                versioning=bool(spec.get("versioning", False)),
                deletion_policy=deletion,
                protect=protect,
                drift_policy=DriftPolicy(spec.get("driftPolicy", "Correct")),
                source=source,
            )
        elif kind == "Image":
            images[key] = ImageSpec(
                key=key,
                format=spec["format"],
                url=spec.get("url", ""),
                os=spec.get("os", ""),
                min_disk_gib=int(spec.get("minDiskGiB", 0)),
                checksum=spec.get("checksum", ""),
                disks=tuple(_image_disk(d) for d in spec.get("disks") or ()),
                ovf_system=(spec.get("ovf") or {}).get("virtualSystem", ""),
                import_on_demand=spec.get(
                    "import", "OnDemand" if spec["format"] in ("ova", "ovf") else "Never"
                )
                == "OnDemand",
                source=source,
            )
    return DesiredState(clouds, policies, vms, sets, volumes, buckets, images)


def _vm_set(
    key: ResourceKey, spec: Raw, source: Source, vms: dict[ResourceKey, VMSpec]
) -> VMSetSpec:
    """The VMSetSpec; each replica ``<set>-<i>`` is added to ``vms``."""
    template: Raw = spec["template"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    base = vm_spec(key, template["spec"], source, labels, owner=key)
    for i in range(int(spec["replicas"])):
        rkey = replica_key(key, i)
        vms[rkey] = vm_spec(rkey, template["spec"], source, labels, owner=key)
    return VMSetSpec(
        key=key,
        replicas=int(spec["replicas"]),
        template=base,
        max_per_cloud=_opt_int(spec.get("spread") or {}, "maxPerCloud"),
        source=source,
    )
