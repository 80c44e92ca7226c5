"""LibvirtProvider: a private KVM cloud of one or more libvirt hosts.

VMs are persistent domains named ``<name>-<uid[:8]>`` with ownership tags (and the
instance type, which libvirt lacks) in their ``<metadata>`` (see domxml.py). The driver
places each VM on the host with the most free memory that fits, enforcing host
capacity itself. Disks, images and snapshots: disks.py and images.py. See
docs/providers/libvirt.md.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import replace

import libvirt

from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import CloudInventory, Observed, ObservedVM, ObservedVolume
from reconciler.model.specs import Capacity, PowerState
from reconciler.providers.base import VMRequest, VMUpdate
from reconciler.providers.libvirt.core import Found
from reconciler.providers.libvirt.domxml import (
    KIB_PER_GIB,
    NS,
    PREFIX,
    Disk,
    VMRecord,
    domain_xml,
    tags_element,
)
from reconciler.providers.libvirt.hosts import Host
from reconciler.providers.libvirt.images import BootSource, LibvirtImages
from reconciler.providers.libvirt.volumes import VOLUME_PREFIX

_UNDEFINE_ALL = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
)


def domain_name(name: str, uid: str) -> str:
    """A host-unique, libvirt-safe domain name: ``<name>-<uid[:8]>``."""
    base = re.sub(r"[^A-Za-z0-9_.-]", "-", name).strip("-")[:48] or "vm"
    return f"{base}-{re.sub(r'[^A-Za-z0-9]', '', uid)[:8]}"


class LibvirtProvider(LibvirtImages):
    """The libvirt driver (``spec.provider: libvirt``); thread-safe (a lock per host)."""

    # -- read-only -------------------------------------------------------------------
    def describe(self) -> CloudInfo:
        """Capacity = sum over hosts of what is not used by FOREIGN domains (the broker
        accounts for our own VMs), capped by a declared ``spec.capacity``."""
        free = [self._free(host, except_ours=True) for host in self.hosts]
        vcpus = int(sum(max(f.vcpus, 0.0) for f in free))
        memory = round(sum(max(f.memory_gib, 0.0) for f in free), 3)
        declared = self.cloud.capacity or Capacity()
        capacity = Capacity(
            vcpus=vcpus if declared.vcpus is None else min(vcpus, declared.vcpus),
            memory_gib=memory if declared.memory_gib is None else min(memory, declared.memory_gib),
            instances=declared.instances,
        )
        caps = {Capability.STOP, Capability.RESIZE}
        volumes = all(self._has_pool(host) for host in self.hosts)
        if volumes:
            caps.add(Capability.VOLUMES)
        caps |= self._disk_capabilities(volumes)
        if self.cloud.object_storage is not None:
            caps |= {Capability.BUCKETS, Capability.BUCKET_VERSIONING}
        return self.prices.cloud_info(
            self.cloud,
            self.provider_name,
            frozenset(caps),
            capacity,
            extra={"hosts": str(len(self.hosts)), "pool": self.config.pool},
        )

    def offers(self) -> list[Offer]:
        return list(self._offers)

    def list_managed(self) -> CloudInventory:
        """Our VMs and volumes (one domain listing per host serves both) and buckets."""
        vms: list[ObservedVM] = []
        volumes: list[ObservedVolume] = []
        for host in self.hosts:
            domains = self._domains(host)
            vms.extend(self._observe(found) for found in domains if self._mine(found.view))
            volumes.extend(self._host_volumes(host, domains=domains))
        buckets = self._list_buckets()
        return CloudInventory(self.cloud.name, tuple(vms), tuple(volumes), buckets)

    def observe_vm(self, external_id: str) -> ObservedVM | None:
        found = self._lookup(external_id)
        if found is None or not self._mine(found.view):
            return None
        return self._observe(found)

    def find_by_uid(self, uid: str) -> Observed | None:
        found = self._find_vm(uid)
        if found is not None:
            return self._observe(found)
        volume = self._find_volume(uid)
        if volume is not None:
            return volume
        return self._find_bucket(uid)

    def _observe(self, found: Found) -> ObservedVM:
        view = found.view
        offer = self._offer_by_name.get(view.record.instance_type)
        return ObservedVM(
            cloud=self.cloud.name,
            external_id=found.external_id,
            instance_type=view.record.instance_type,
            vcpus=view.vcpus,
            memory_gib=round(view.memory_kib / KIB_PER_GIB, 6),
            power_state=PowerState.RUNNING if found.active else PowerState.STOPPED,
            price_per_hour=offer.price_per_hour if offer is not None and found.active else 0.0,
            tags=dict(view.tags or {}),
            image=view.record.image,
            disk_gib=view.record.disk_gib,
        )

    # -- create ----------------------------------------------------------------------
    def create_vm(self, request: VMRequest) -> ObservedVM:
        """Define (and start) a domain on the roomiest host (the image's host if it fits);
        idempotent by the uid tag: a retry finds the domain an earlier, lost call made
        and converges its power."""
        offer = self._offer(request.instance_type)
        tags = self.owned_tags(request.tags)
        with self.placement:
            found = self._find_vm(tags[TAG_UID])
            if found is None:
                source = self._boot_source(request.image)
                host = self._place(
                    offer.vcpus,
                    offer.memory_gib,
                    f"instance type {offer.name}",
                    prefer=source.host if source is not None else None,
                )
                found = self._define(host, request, offer, tags, source)
        self._power(found, PowerState(request.power_state))
        return self._refresh(found)

    def _define(
        self,
        host: Host,
        request: VMRequest,
        offer: Offer,
        tags: dict[str, str],
        source: BootSource | None,
    ) -> Found:
        name = domain_name(request.name, tags[TAG_UID])
        made = self._make_boot_volume(host, f"{name}-boot", request.disk_gib, source)
        boot = Disk("vda", self.config.pool, f"{name}-boot") if made else None
        record = VMRecord(offer.name, request.image, boot.volume if boot else "", request.disk_gib)
        xml = domain_xml(
            domain_type=self.config.domain_type_for(host.uri),
            name=name,
            vcpus=offer.vcpus,
            memory_kib=int(offer.memory_gib * KIB_PER_GIB),
            metadata=tags_element(tags, record),
            boot=boot,
            network=self.config.network,
        )
        with host.session("define domain", "create") as conn:
            domain = conn.defineXML(xml)
            if request.power_state == PowerState.RUNNING:
                domain.create()
            uuid = domain.UUIDString()
        found = self._lookup(f"{host.index}/{uuid}")
        assert found is not None
        return found

    def _refresh(self, found: Found) -> ObservedVM:
        again = self._existing(found.external_id)
        return self._observe(again)

    # -- update ----------------------------------------------------------------------
    def update_vm(self, external_id: str, update: VMUpdate) -> ObservedVM:
        """Resize (stop, change the persistent vCPUs/memory, start again: RESIZE without
        RESIZE_LIVE), start/stop, or merge tags; converges when repeated."""
        found = self._existing(external_id)
        if (
            update.instance_type is not None
            and update.instance_type != found.view.record.instance_type
        ):
            found = self._resize(found, self._offer(update.instance_type))
        if update.power_state is not None:
            self._power(found, PowerState(update.power_state))
        if update.tags:
            tags = {**(found.view.tags or {}), **update.tags}
            if not self.owns(tags):
                raise PermanentError(
                    f"update of VM {external_id} would change its owner tag; use forget()",
                    cloud=self.cloud.name,
                    reason="BadRequest",
                )
            found = self._existing(found.external_id)
            self._set_metadata(found, tags_element(tags, found.view.record))
        return self._refresh(found)

    def _resize(self, found: Found, offer: Offer) -> Found:
        with self.placement:
            self._check_growth(found, offer.vcpus, offer.memory_gib)
            was_running = found.active
            if was_running:
                self._stop(found)
            memory_kib = int(offer.memory_gib * KIB_PER_GIB)
            with found.host.session("resize domain", "update"):
                domain, view = found.domain, found.view
                vcpu_max, mem_max = libvirt.VIR_DOMAIN_VCPU_MAXIMUM, libvirt.VIR_DOMAIN_MEM_MAXIMUM
                self._set_size(domain.setVcpusFlags, view.vcpus, offer.vcpus, vcpu_max)
                self._set_size(domain.setMemoryFlags, view.memory_kib, memory_kib, mem_max)
            found = self._existing(found.external_id)
            record = replace(found.view.record, instance_type=offer.name)
            self._set_metadata(found, tags_element(found.view.tags or {}, record))
            if was_running:
                with found.host.session("start domain", "update"):
                    found.domain.create()
            return self._existing(found.external_id)

    @staticmethod
    def _set_size(setter: Callable[[int, int], object], old: int, new: int, maximum: int) -> None:
        """Set a persistent vCPU count or memory size (setVcpusFlags/setMemoryFlags) and
        its maximum (flag ``maximum``): the maximum first when growing, last when shrinking."""
        config = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        steps = [(new, config | maximum), (new, config)]
        for value, flags in steps if new >= old else reversed(steps):
            setter(value, flags)

    def _set_metadata(self, found: Found, content: str | None) -> None:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if found.active:
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        with found.host.session("set metadata", "update"):
            found.domain.setMetadata(
                libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                content,
                PREFIX if content is not None else None,
                NS,
                flags,
            )

    def _power(self, found: Found, state: PowerState) -> None:
        if state == PowerState.RUNNING and not found.active:
            with found.host.session("start domain", "update"):
                found.domain.create()
        elif state == PowerState.STOPPED and found.active:
            self._stop(found)

    def _stop(self, found: Found) -> None:
        """Graceful shutdown, then destroy after settings.shutdownTimeout seconds."""
        with found.host.session("shut down domain", "update"):
            found.domain.shutdown()
        deadline = time.monotonic() + self.config.shutdown_timeout
        while time.monotonic() < deadline:
            with found.host.session("poll domain", "read"):
                if not found.domain.isActive():
                    return
            time.sleep(0.2)
        with found.host.session("destroy domain", "update"):
            if found.domain.isActive():
                found.domain.destroy()

    # -- delete / forget -------------------------------------------------------------
    def delete_vm(self, external_id: str) -> None:
        """Destroy, undefine (with NVRAM/snapshot metadata) and delete the boot volume;
        data volumes stay (detached). Absent is success; foreign is refused."""
        found = self._ours(external_id)
        if found is None:
            return
        with found.host.session("delete domain", "delete") as conn:
            if found.domain.isActive():
                found.domain.destroy()
            try:
                found.domain.undefineFlags(_UNDEFINE_ALL)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (
                    libvirt.VIR_ERR_INVALID_ARG,
                    libvirt.VIR_ERR_NO_SUPPORT,
                ):
                    raise
                found.domain.undefineFlags(
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                )
            boot = found.view.record.boot_volume
            if boot and boot in self._pool(conn).listVolumes():
                self._pool(conn).storageVolLookupByName(boot).delete(0)

    def forget(self, external_id: str) -> None:
        """Remove our metadata element (VM), ledger entry (volume) or bucket tags; the
        resource keeps running and becomes foreign. Absent or not ours is success."""
        if "/" not in external_id:
            self._forget_bucket(external_id)
            return
        if external_id.startswith(VOLUME_PREFIX):
            try:
                self._forget_volume(external_id)
            except PermanentError as exc:
                if exc.reason != "NotManaged":
                    raise
            return
        found = self._lookup(external_id)
        if found is not None and self._mine(found.view):
            self._set_metadata(found, None)

    def close(self) -> None:
        """Close every host connection (tests; a long-lived provider keeps them)."""
        for host in self.hosts:
            host.close()
