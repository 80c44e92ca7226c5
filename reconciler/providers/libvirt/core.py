"""Shared plumbing of the libvirt driver: hosts, offers, ownership checks, domain reads
and host capacity.

external_id of a VM is ``<host index>/<domain uuid>``: the index into ``spec.hosts``
sends observe/update/delete straight to the right host; if the hosts were reordered the
uuid (unique everywhere) is looked up on the other hosts too.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

import libvirt

from reconciler.model.cloud import Offer
from reconciler.model.errors import CapacityError, PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import Provider, ProviderContext
from reconciler.providers.catalog import CloudPrices, build_offers, catalog_for, require_offer
from reconciler.providers.libvirt.config import parse_config
from reconciler.providers.libvirt.domxml import KIB_PER_GIB, DomainView, parse_domain
from reconciler.providers.libvirt.errors import is_absent
from reconciler.providers.libvirt.hosts import Host

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True, slots=True)
class Found:
    """A domain located on a host, with its parsed persistent definition."""

    host: Host
    domain: libvirt.virDomain
    view: DomainView
    active: bool

    @property
    def external_id(self) -> str:
        return f"{self.host.index}/{self.view.uuid}"


@dataclass(frozen=True, slots=True)
class Free:
    """Room left on one host for new or growing VMs."""

    host: Host
    vcpus: float
    memory_gib: float


def read_domain(domain: libvirt.virDomain) -> tuple[DomainView, bool]:
    """A domain's persistent definition (what it boots with) and whether it runs."""
    view = parse_domain(domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    return view, bool(domain.isActive())


class LibvirtBase(Provider):
    """Config, hosts, offers and the reads every operation shares."""

    provider_name = "libvirt"

    def __init__(self, cloud: CloudSpec, context: ProviderContext) -> None:
        super().__init__(cloud, context)
        self.config = parse_config(cloud)
        #: One Host per ``spec.hosts`` entry (the conformance target reaches them here).
        self.hosts: tuple[Host, ...] = tuple(
            Host(cloud.name, index, uri) for index, uri in enumerate(self.config.hosts)
        )
        self.catalog = catalog_for(cloud)
        self._offers = build_offers(cloud, self.catalog)
        self._offer_by_name: dict[str, Offer] = {o.name: o for o in self._offers}
        self.prices = CloudPrices.of(cloud, self.catalog)
        #: Serializes placement (choose a host, then define on it) across threads.
        self.placement = threading.RLock()

    # -- checks ----------------------------------------------------------------------
    def _offer(self, instance_type: str) -> Offer:
        offer = require_offer(self._offer_by_name, instance_type, self.cloud.name)
        if offer.gpus > 0:
            raise PermanentError(
                f"instance type {instance_type} needs GPUs; the libvirt driver does not "
                "pass GPUs through",
                cloud=self.cloud.name,
                reason="Unsupported",
            )
        return offer

    def _mine(self, view: DomainView) -> bool:
        return view.tags is not None and self.owns(view.tags)

    # -- domain reads ----------------------------------------------------------------
    def _domains(self, host: Host) -> list[Found]:
        """Every domain on ``host`` (ours, foreign and ledgers), parsed."""
        found = []
        with host.session("list domains") as conn:
            for domain in conn.listAllDomains(0):
                try:
                    view, active = read_domain(domain)
                except libvirt.libvirtError as exc:
                    if is_absent(exc):  # undefined between list and read
                        continue
                    raise
                found.append(Found(host, domain, view, active))
        return found

    def _lookup(self, external_id: str) -> Found | None:
        """The domain ``external_id`` names (any owner), or None if it does not exist."""
        index, _, uuid = external_id.partition("/")
        if not index.isdigit() or not _UUID.match(uuid):
            return None
        first = int(index)
        order = sorted(self.hosts, key=lambda h: h.index != first)
        for host in order:
            with host.session("look up domain") as conn:
                try:
                    domain = conn.lookupByUUIDString(uuid)
                    view, active = read_domain(domain)
                except libvirt.libvirtError as exc:
                    if is_absent(exc):
                        continue
                    raise
                return Found(host, domain, view, active)
        return None

    def _ours(self, external_id: str) -> Found | None:
        """Our VM by id; None if absent; PermanentError(NotManaged) if foreign."""
        found = self._lookup(external_id)
        if found is None:
            return None
        if not self._mine(found.view) or found.view.ledger:
            raise self.not_managed("VM", external_id, "reconciler owner metadata in its domain")
        return found

    def _existing(self, external_id: str) -> Found:
        found = self._ours(external_id)
        if found is None:
            raise self.not_found("VM", external_id)
        return found

    def _find_vm(self, uid: str) -> Found | None:
        for host in self.hosts:
            for found in self._domains(host):
                view = found.view
                if self._mine(view) and view.tags is not None and view.tags.get(TAG_UID) == uid:
                    return found
        return None

    # -- capacity --------------------------------------------------------------------
    def _free(self, host: Host, except_ours: bool = False) -> Free:
        """Host totals (cpus x cpuAllocationRatio, memory) minus what its domains use:
        every domain, running or not (a stopped VM keeps its claim), except ledgers and,
        with ``except_ours``, our own VMs."""
        with host.session("read host info") as conn:
            info = conn.getInfo()
        vcpus = float(info[2]) * self.config.cpu_ratio
        memory = float(info[1]) / 1024.0
        for found in self._domains(host):
            view = found.view
            if view.ledger or (except_ours and self._mine(view)):
                continue
            vcpus -= view.vcpus
            memory -= view.memory_kib / KIB_PER_GIB
        return Free(host, vcpus, memory)

    def _place(self, vcpus: int, memory_gib: float, what: str, prefer: Host | None = None) -> Host:
        """``prefer`` if it fits (the host holding the VM's image: no copy between hosts),
        else the host with the most free memory that fits; CapacityError if none does."""
        free = [self._free(host) for host in self.hosts]
        fits = [f for f in free if f.vcpus >= vcpus - 1e-9 and f.memory_gib >= memory_gib - 1e-9]
        if prefer is not None and any(f.host.index == prefer.index for f in fits):
            return prefer
        if fits:
            return max(fits, key=lambda f: (f.memory_gib, -f.host.index)).host
        best = max(free, key=lambda f: f.memory_gib)
        raise CapacityError(
            f"Cloud {self.cloud.name}: no host has room for {what} ({vcpus} vCPU, "
            f"{memory_gib:g} GiB); the largest free host (host {best.host.index}) has "
            f"{max(best.vcpus, 0):g} vCPU and {max(best.memory_gib, 0):g} GiB free",
            cloud=self.cloud.name,
        )

    def _check_growth(self, found: Found, vcpus: int, memory_gib: float) -> None:
        """CapacityError if resizing ``found`` to vcpus/memory does not fit its host."""
        free = self._free(found.host)
        extra_v = vcpus - found.view.vcpus
        extra_m = memory_gib - found.view.memory_gib
        short = (extra_v > 0 and free.vcpus < extra_v - 1e-9) or (
            extra_m > 0 and free.memory_gib < extra_m - 1e-9
        )
        if short:
            raise CapacityError(
                f"Cloud {self.cloud.name}: host {found.host.index} has no room to grow VM "
                f"{found.external_id} to {vcpus} vCPU/{memory_gib:g} GiB (needs "
                f"{max(extra_v, 0)} vCPU and {max(extra_m, 0):g} GiB more; free: "
                f"{max(free.vcpus, 0):g} vCPU, {max(free.memory_gib, 0):g} GiB)",
                cloud=self.cloud.name,
            )
