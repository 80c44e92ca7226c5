"""Shared plumbing of the simulator provider: config, ownership checks, conversions."""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.model.cloud import Capability, Offer
from reconciler.model.errors import CapacityError, PermanentError
from reconciler.model.keys import HOURS_PER_MONTH, TAG_UID
from reconciler.model.observed import Observed, ObservedBucket, ObservedVM, ObservedVolume
from reconciler.model.specs import CloudSpec, PowerState, Simulation
from reconciler.providers.base import Provider, ProviderContext
from reconciler.providers.catalog import CloudPrices, build_offers, catalog_for, require_offer
from reconciler.providers.sim.chaos import Chaos
from reconciler.providers.sim.records import BUCKET, VM, VOLUME, SimResource, bucket_key
from reconciler.providers.sim.world import SimWorld, get_world


def parse_capabilities(cloud: CloudSpec) -> frozenset[Capability]:
    """All capabilities, or those listed in ``spec.simulation.capabilities``."""
    sim = cloud.simulation or Simulation()
    if not sim.capabilities:
        return frozenset(Capability)
    try:
        return frozenset(Capability(value) for value in sim.capabilities)
    except ValueError as exc:
        known = ", ".join(c.value for c in Capability)
        raise PermanentError(
            f"simulation.capabilities: {exc} (known: {known})",
            cloud=cloud.name,
            reason="InvalidConfig",
        ) from exc


class SimBase(Provider):
    """State and helpers every simulator operation uses."""

    provider_name = "sim"

    def __init__(
        self, cloud: CloudSpec, context: ProviderContext, world: SimWorld | None = None
    ) -> None:
        super().__init__(cloud, context)
        self.world = world if world is not None else get_world(context.state_dir)
        catalog = catalog_for(cloud)
        self._offers: dict[str, Offer] = {o.name: o for o in build_offers(cloud, catalog)}
        self.capabilities = parse_capabilities(cloud)
        self.chaos = Chaos(cloud, self.world)
        self.prices = CloudPrices.of(cloud, catalog)

    # -- checks --------------------------------------------------------------------
    def _need(self, capability: Capability, what: str) -> None:
        if capability not in self.capabilities:
            raise PermanentError(
                f"{what} needs capability '{capability.value}', which this simulated cloud "
                "does not offer (spec.simulation.capabilities)",
                cloud=self.cloud.name,
                reason="MissingCapability",
            )

    def _offer(self, instance_type: str) -> Offer:
        offer = require_offer(self._offers, instance_type, self.cloud.name)
        if offer.gpus > 0:
            self._need(Capability.GPUS, f"instance type {instance_type} (GPUs)")
        return offer

    def _ours(self, external_id: str, kind: str) -> SimResource | None:
        """Our resource of ``kind`` by id; None if absent; PermanentError if foreign."""
        key = bucket_key(self.cloud.name, external_id) if kind == BUCKET else external_id
        rec = self.world.get(key)
        if rec is None or rec.cloud != self.cloud.name or rec.kind != kind:
            return None
        if rec.owner != self.context.owner:
            raise self.not_managed(kind, external_id)
        return rec

    def _existing(self, external_id: str, kind: str) -> SimResource:
        rec = self._ours(external_id, kind)
        if rec is None:
            raise PermanentError(
                f"{kind} {external_id} not found", cloud=self.cloud.name, reason="NotFound"
            )
        return rec

    def _by_uid(self, tags: Mapping[str, str], kind: str) -> SimResource | None:
        """The resource an earlier create with the same uid made (idempotency)."""
        rec = self.world.by_uid(self.cloud.name, tags[TAG_UID])
        if rec is None:
            return None
        if rec.kind != kind or rec.owner != self.context.owner:
            raise PermanentError(
                f"uid {tags[TAG_UID]} already names {rec.kind} {rec.id}",
                cloud=self.cloud.name,
                reason="Conflict",
            )
        return rec

    def _check_capacity(self, offer: Offer, old: SimResource | None) -> None:
        """CapacityError when ``offer`` (replacing ``old``, if resizing) does not fit.

        Counts every VM in the cloud, foreign ones too.
        """
        name = self.cloud.name
        if offer.available is not None and (old is None or old.instance_type != offer.name):
            count = self.world.type_count(name, offer.name)
            if count + 1 > offer.available:
                raise CapacityError(
                    f"Cloud {name}: no capacity for instance type {offer.name}: "
                    f"{count} of {offer.available} in use",
                    cloud=name,
                )
        cap = self.cloud.capacity
        if cap is None:
            return
        used = self.world.usage(name)
        dv = offer.vcpus - (old.vcpus if old else 0)
        dm = offer.memory_gib - (old.memory_gib if old else 0.0)
        di = 0 if old else 1
        for label, limit, in_use, extra in (
            ("vCPUs", cap.vcpus, used.vcpus, dv),
            ("GiB of memory", cap.memory_gib, used.memory_gib, dm),
            ("instances", cap.instances, used.instances, di),
        ):
            if limit is not None and extra > 0 and in_use + extra > limit:
                raise CapacityError(
                    f"Cloud {name}: not enough capacity for {offer.name}: needs {extra:g} "
                    f"more {label}, {in_use:g} of {limit:g} in use",
                    cloud=name,
                )

    # -- conversions ---------------------------------------------------------------
    def _observe(self, rec: SimResource) -> Observed:
        if rec.kind == VM:
            return self._vm(rec)
        if rec.kind == VOLUME:
            return self._volume(rec)
        assert rec.kind == BUCKET
        return self._bucket(rec)

    def _vm(self, rec: SimResource) -> ObservedVM:
        offer = self._offers.get(rec.instance_type)
        running = rec.power_state == PowerState.RUNNING.value
        price = (offer.price_per_hour if offer else rec.price_per_hour) if running else 0.0
        return ObservedVM(
            cloud=rec.cloud,
            external_id=rec.id,
            instance_type=rec.instance_type,
            vcpus=rec.vcpus,
            memory_gib=rec.memory_gib,
            power_state=PowerState(rec.power_state),
            price_per_hour=price,
            tags=dict(rec.tags),
            image=rec.image,
            disk_gib=rec.disk_gib,
            gpus=rec.gpus,
        )

    def _volume(self, rec: SimResource) -> ObservedVolume:
        return ObservedVolume(
            cloud=rec.cloud,
            external_id=rec.id,
            size_gib=rec.size_gib,
            volume_class=rec.volume_class,
            attached_to=rec.attached_to,
            price_per_hour=rec.size_gib * self.prices.block_per_gib_month / HOURS_PER_MONTH,
            tags=dict(rec.tags),
        )

    def _bucket(self, rec: SimResource) -> ObservedBucket:
        return ObservedBucket(
            cloud=rec.cloud,
            external_id=rec.name,
            versioning=rec.versioning,
            price_per_hour=0.0,
            tags=dict(rec.tags),
        )
