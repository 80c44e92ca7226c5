"""Block volumes: raw volumes in the Cloud's storage pool, owned via the ledger.

A volume lives in one host's pool; external_id is ``vol/<volume name>`` (names are
unique: ``rcl-<uid>``), found by scanning the hosts' ledgers, so it survives a move.
Pools are per host: attaching a never-attached (empty) volume to a VM on another host
relocates it there (new volume, ledger entry moved); a volume that was ever attached
(it may hold data) must be on the VM's host (HostMismatch). Attach and detach
use attachDeviceFlags/detachDeviceFlags on the persistent config (and the live domain
when it runs); drivers without hotplug (the test driver) get the persistent definition
rewritten instead. Growing uses virStorageVol.resize where the pool supports it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import replace

import libvirt

from reconciler.model.errors import PermanentError
from reconciler.model.keys import HOURS_PER_MONTH, TAG_UID
from reconciler.model.observed import ObservedVolume
from reconciler.providers.base import VolumeRequest
from reconciler.providers.libvirt import ledger
from reconciler.providers.libvirt.core import Found, LibvirtBase
from reconciler.providers.libvirt.domxml import GIB, Disk, disk_xml, volume_xml
from reconciler.providers.libvirt.errors import is_absent
from reconciler.providers.libvirt.hosts import Host

VOLUME_PREFIX = "vol/"


class LibvirtVolumes(LibvirtBase):
    """Volume operations of the libvirt driver."""

    # -- reads -----------------------------------------------------------------------
    def _pool(self, conn: libvirt.virConnect, name: str | None = None) -> libvirt.virStoragePool:
        pool_name = name or self.config.pool
        try:
            return conn.storagePoolLookupByName(pool_name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise PermanentError(
                    f"Cloud {self.cloud.name}: storage pool '{pool_name}' does not exist "
                    "(settings.pool)",
                    cloud=self.cloud.name,
                    reason="InvalidCloud",
                ) from exc
            raise

    def _has_pool(self, host: Host) -> bool:
        with host.session("look up pool") as conn:
            return self.config.pool in conn.listStoragePools() + conn.listDefinedStoragePools()

    def _attachments(self, domains: list[Found]) -> dict[str, str]:
        """Volume name -> external id of the domain whose definition uses it."""
        result = {}
        for found in domains:
            for disk in found.view.disks:
                if disk.pool == self.config.pool:
                    result[disk.volume] = found.external_id
        return result

    def _observe_volume(
        self, host: Host, entry: ledger.Entry, size_bytes: int, attached: dict[str, str]
    ) -> ObservedVolume:
        size_gib = max(1, round(size_bytes / GIB))
        return ObservedVolume(
            cloud=self.cloud.name,
            external_id=f"{VOLUME_PREFIX}{entry.name}",
            size_gib=size_gib,
            volume_class=entry.volume_class,
            attached_to=attached.get(entry.name),
            price_per_hour=size_gib * self.prices.block_per_gib_month / HOURS_PER_MONTH,
            tags=dict(entry.tags),
        )

    def _host_volumes(
        self,
        host: Host,
        keep: Callable[[ledger.Entry], bool] = lambda entry: True,
        domains: list[Found] | None = None,
    ) -> list[ObservedVolume]:
        """Our volumes on one host (listed in our ledger and present in the pool) whose
        entry passes ``keep``. Pool sizes and domains (``domains``, when the caller has
        listed them already) are read only if some entry is kept."""
        with host.session("list volumes") as conn:
            entries = {n: e for n, e in ledger.read(conn, self.context.owner).items() if keep(e)}
            if not entries or self.config.pool not in conn.listStoragePools():
                return []
            sizes = {
                v.name(): int(v.info()[1])
                for v in self._pool(conn).listAllVolumes(0)
                if v.name() in entries
            }
            attached = self._attachments(self._domains(host) if domains is None else domains)
        return [
            self._observe_volume(host, entry, sizes[name], attached)
            for name, entry in sorted(entries.items())
            if name in sizes
        ]

    def _find_volume(self, uid: str) -> ObservedVolume | None:
        for host in self.hosts:
            found = self._host_volumes(host, lambda entry: entry.tags.get(TAG_UID) == uid)
            if found:
                return found[0]
        return None

    def _volume(self, external_id: str) -> tuple[Host, ObservedVolume] | None:
        """Our volume by id; None if absent; PermanentError(NotManaged) if foreign."""
        name = external_id.removeprefix(VOLUME_PREFIX)
        if not external_id.startswith(VOLUME_PREFIX) or not name:
            return None
        for host in self.hosts:
            found = self._host_volumes(host, lambda entry: entry.name == name)
            if found:
                return host, found[0]
        for host in self.hosts:
            with host.session("look up volume") as conn:
                if name in self._pool(conn).listVolumes():
                    raise self.not_managed("volume", external_id, "entry in the volume ledger")
        return None

    # -- create / delete -------------------------------------------------------------
    def _volume_tags(self, request: VolumeRequest) -> dict[str, str]:
        """A create request's tags with our owner, once its size is checked."""
        if request.size_gib < 1:
            raise PermanentError(
                "volume size must be at least 1 GiB", cloud=self.cloud.name, reason="BadRequest"
            )
        return self.owned_tags(request.tags)

    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        """Ledger entry first, then the pool volume (both idempotent by the uid)."""
        tags = self._volume_tags(request)
        with self.placement:
            existing = self._find_volume(tags[TAG_UID])
            if existing is not None:
                return existing
            host = self._volume_host()
            name = ledger.volume_name(tags[TAG_UID])
            entry = ledger.Entry(name, request.volume_class, tags)
            with host.session("record volume in ledger", "prepare") as conn:
                self._put_entry(conn, host, name, entry)
            with host.session("create volume", "create") as conn:
                pool = self._pool(conn)
                if name not in pool.listVolumes():
                    pool.createXML(volume_xml(name, request.size_gib), 0)
            found = self._volume(VOLUME_PREFIX + name)
        assert found is not None
        return found[1]

    def _volume_host(self) -> Host:
        """The host whose pool has the most free space (ties: the first host)."""
        best: tuple[int, int] | None = None
        for host in self.hosts:
            with host.session("read pool") as conn:
                available = int(self._pool(conn).info()[3])
            if best is None or available > best[0]:
                best = (available, host.index)
        assert best is not None
        return self.hosts[best[1]]

    def delete_volume(self, external_id: str) -> None:
        """Detach if attached, delete the pool volume, drop the ledger entry."""
        found = self._volume(external_id)
        if found is None:
            return
        host, volume = found
        if volume.attached_to is not None:
            self._detach(volume)
        name = external_id.removeprefix(VOLUME_PREFIX)
        with host.session("delete volume", "delete") as conn:
            try:
                self._pool(conn).storageVolLookupByName(name).delete(0)
            except libvirt.libvirtError as exc:
                if not is_absent(exc):
                    raise
            self._put_entry(conn, host, name, None)

    def _forget_volume(self, external_id: str) -> None:
        found = self._volume(external_id)
        if found is None:
            return
        host = found[0]
        with host.session("forget volume", "update") as conn:
            self._put_entry(conn, host, external_id.removeprefix(VOLUME_PREFIX), None)

    def _put_entry(
        self, conn: libvirt.virConnect, host: Host, name: str, entry: ledger.Entry | None
    ) -> None:
        """Set (None: drop) our ledger entry ``name`` on ``host``; no write if it already is."""
        entries = ledger.read(conn, self.context.owner)
        if entries.get(name) == entry:
            return
        if entry is None:
            del entries[name]
        else:
            entries[name] = entry
        ledger.write(conn, self.context.owner, self.config.domain_type_for(host.uri), entries)

    # -- update ----------------------------------------------------------------------
    def update_volume(
        self, external_id: str, size_gib: int | None, attach_to: str | None, detach: bool
    ) -> ObservedVolume:
        """Grow, attach to a VM on the same host, or detach; converges when repeated."""
        found = self._volume(external_id)
        if found is None:
            raise self.not_found("volume", external_id)
        host, volume = found
        if size_gib is not None and size_gib != volume.size_gib:
            self._grow(host, volume, size_gib)
        if detach and volume.attached_to is not None:
            self._detach(volume)
        if attach_to is not None and volume.attached_to != attach_to:
            if volume.attached_to is not None:
                raise PermanentError(
                    f"volume {external_id} is attached to {volume.attached_to}; detach it first",
                    cloud=self.cloud.name,
                    reason="InUse",
                )
            self._attach(host, volume, attach_to)
        again = self._volume(external_id)
        assert again is not None
        return again[1]

    def _grow(self, host: Host, volume: ObservedVolume, size_gib: int) -> None:
        if size_gib < volume.size_gib:
            raise PermanentError(
                f"volume {volume.external_id} cannot shrink ({volume.size_gib} -> {size_gib} GiB)",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        with host.session("resize volume", "update") as conn:
            name = volume.external_id.removeprefix(VOLUME_PREFIX)
            vol = self._pool(conn).storageVolLookupByName(name)
            vol.resize(size_gib * GIB, 0)

    def _attach(self, host: Host, volume: ObservedVolume, vm_id: str) -> None:
        vm = self._existing(vm_id)
        name = volume.external_id.removeprefix(VOLUME_PREFIX)
        if vm.host.index != host.index:
            self._relocate(host, vm.host, name, volume)
        with vm.host.session("mark volume used", "update") as conn:
            entries = ledger.read(conn, self.context.owner)
            entries[name] = replace(entries[name], used=True)
            ledger.write(
                conn, self.context.owner, self.config.domain_type_for(vm.host.uri), entries
            )
        used = {d.target for d in vm.view.disks}
        target = next(f"vd{c}" for c in "bcdefghijklmnopqrstuvwxyz" if f"vd{c}" not in used)
        self._change_disk(vm, Disk(target, self.config.pool, name), attach=True)

    def _relocate(self, source: Host, target: Host, name: str, volume: ObservedVolume) -> None:
        """Move a never-attached volume to ``target``: entry + volume there, then remove
        them from ``source`` (a retry after a failure in between converges)."""
        with source.session("read ledger") as conn:
            entry = ledger.read(conn, self.context.owner)[name]
        if entry.used:
            raise PermanentError(
                f"volume {volume.external_id} is on host {source.index} but the VM is on host "
                f"{target.index}; libvirt pools are per host and the volume may hold data",
                cloud=self.cloud.name,
                reason="HostMismatch",
            )
        with target.session("relocate volume", "update") as conn:
            self._put_entry(conn, target, name, entry)
            pool = self._pool(conn)
            if name not in pool.listVolumes():
                pool.createXML(volume_xml(name, volume.size_gib), 0)
        with source.session("relocate volume", "update") as conn:
            self._pool(conn).storageVolLookupByName(name).delete(0)
            self._put_entry(conn, source, name, None)

    def _detach(self, volume: ObservedVolume) -> None:
        assert volume.attached_to is not None
        vm = self._lookup(volume.attached_to)
        if vm is None:
            return
        name = volume.external_id.removeprefix(VOLUME_PREFIX)
        disk = next(d for d in vm.view.disks if d.volume == name)
        self._change_disk(vm, disk, attach=False)

    def _change_disk(self, vm: Found, disk: Disk, attach: bool) -> None:
        """Hotplug where the driver can; else rewrite the persistent definition."""
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if vm.active:
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        with vm.host.session("attach disk" if attach else "detach disk", "update") as conn:
            try:
                if attach:
                    vm.domain.attachDeviceFlags(disk_xml(disk), flags)
                else:
                    vm.domain.detachDeviceFlags(disk_xml(disk), flags)
                return
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
            root = ET.fromstring(vm.domain.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            devices = root.find("devices")
            if devices is None:
                devices = ET.SubElement(root, "devices")
            if attach:
                devices.append(ET.fromstring(disk_xml(disk)))
            else:
                for element in devices.findall("disk"):
                    source = element.find("source")
                    if source is not None and source.get("volume") == disk.volume:
                        devices.remove(element)
            conn.defineXML(ET.tostring(root, encoding="unicode"))
