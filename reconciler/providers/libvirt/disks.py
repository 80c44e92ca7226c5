"""Disk export and volume snapshots of the libvirt driver.

* ``read_disk`` / ``disk_size``: a VM's boot volume (only while the VM is stopped) or one
  of our volumes (only while detached or its VM stopped), streamed with
  virStorageVol.download (streams.py).
* A volume snapshot is a FULL COPY of the volume in the same pool (createXMLFrom), named
  ``rcs-<uid>`` and listed in the artifacts ledger (artifacts.py) with the volume it was
  taken of. A copy, not a qcow2 overlay backed by the volume: a raw pool volume keeps
  taking writes, which would change what an overlay shows, and a copy stays valid after
  the volume is deleted. A volume attached to a running VM is not copied (DiskInUse):
  a file copied while the guest writes is torn, not even crash-consistent.

Capabilities: VOLUME_SNAPSHOTS wherever every host has the pool (the test driver copies
volumes too); IMAGE_EXPORT and IMAGE_IMPORT only when every host's hypervisor driver is
QEMU, whose storage driver serves upload/download streams (the test driver does not).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import libvirt

from reconciler.model.artifacts import Chunks, DiskRef
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedVolume
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import ProviderContext
from reconciler.providers.libvirt import artifacts, streams
from reconciler.providers.libvirt.artifacts import SNAPSHOT, Artifact
from reconciler.providers.libvirt.buckets import LibvirtBuckets
from reconciler.providers.libvirt.domxml import volume_xml
from reconciler.providers.libvirt.errors import is_absent
from reconciler.providers.libvirt.hosts import Host
from reconciler.providers.libvirt.volumes import VOLUME_PREFIX

#: Hypervisor drivers (virConnect.getType) whose hosts serve volume streams.
STREAM_TYPES = frozenset({"QEMU"})


class LibvirtDisks(LibvirtBuckets):
    """Disk reads, copies between pool volumes, the artifacts ledger and snapshots."""

    def __init__(self, cloud: CloudSpec, context: ProviderContext) -> None:
        super().__init__(cloud, context)
        self._stream_hosts: dict[int, bool] = {}
        self._stream_lock = threading.Lock()

    # -- capabilities ----------------------------------------------------------------
    def _streams(self, host: Host) -> bool:
        """True if ``host`` serves upload/download streams (its driver type, cached)."""
        with self._stream_lock:
            known = self._stream_hosts.get(host.index)
        if known is None:
            with host.session("read hypervisor type") as conn:
                known = str(conn.getType()) in STREAM_TYPES
            with self._stream_lock:
                self._stream_hosts[host.index] = known
        return known

    def _disk_capabilities(self, volumes: bool) -> set[Capability]:
        """The disk capabilities of this Cloud, given whether it has VOLUMES."""
        if not volumes:
            return set()
        caps = {Capability.VOLUME_SNAPSHOTS}
        if all(self._streams(host) for host in self.hosts):
            caps |= {Capability.IMAGE_EXPORT, Capability.IMAGE_IMPORT}
        return caps

    def _need(self, capability: Capability, what: str) -> None:
        volumes = all(self._has_pool(host) for host in self.hosts)
        if capability not in self._disk_capabilities(volumes):
            raise self.unsupported(what, capability)

    # -- pool volumes ----------------------------------------------------------------
    @contextmanager
    def _bulk(self, host: Host, what: str, operation: str) -> Iterator[libvirt.virConnect]:
        """A connection for a long call (a volume copy): a dedicated one where volumes
        stream, so the copy does not hold the host's lock; the host's own on the test
        driver, where every connection is a world of its own."""
        if self._streams(host):
            with streams.connection(host, what) as conn:
                yield conn
        else:
            with host.session(what, operation) as conn:
                yield conn

    def _capacity(self, host: Host, name: str) -> int:
        with host.session("read volume") as conn:
            return int(self._pool(conn).storageVolLookupByName(name).info()[1])

    def _drop_volume(self, host: Host, name: str) -> None:
        """Delete pool volume ``name`` on ``host``; absent is fine."""
        with host.session("delete volume", "delete") as conn:
            try:
                self._pool(conn).storageVolLookupByName(name).delete(0)
            except libvirt.libvirtError as exc:
                if not is_absent(exc):
                    raise

    def _copy(self, source: Host, name: str, target: Host, new: str, capacity: int) -> None:
        """Make pool volume ``new`` on ``target``, ``capacity`` bytes, starting with the
        bytes of volume ``name`` on ``source``: createXMLFrom on one host, a download
        streamed into an upload between two. A failed copy leaves no volume ``new``."""
        xml = volume_xml(new, 0, capacity)
        try:
            if source.index == target.index:
                with self._bulk(target, f"copy volume {name}", "prepare") as conn:
                    pool = self._pool(conn)
                    pool.createXMLFrom(xml, pool.storageVolLookupByName(name), 0)
                return
            size = self._capacity(source, name)
            with target.session("create volume", "prepare") as conn:
                self._pool(conn).createXML(xml, 0)
            pool = self.config.pool
            streams.upload(
                target, pool, new, streams.download(source, pool, name, size), size, None
            )
        except BaseException:
            self._drop_volume(target, new)
            raise

    # -- the artifacts ledger --------------------------------------------------------
    def _put_artifact(self, host: Host, name: str, art: Artifact | None) -> None:
        with host.session("record artifact in ledger", "update") as conn:
            domain_type = self.config.domain_type_for(host.uri)
            artifacts.put(conn, self.context.owner, domain_type, name, art)

    def _artifacts(self, kind: str) -> Iterator[tuple[Host, Artifact]]:
        """Our artifacts of ``kind`` that exist (entry and pool volume), host by host."""
        for host in self.hosts:
            with host.session("list artifacts") as conn:
                found = artifacts.read(conn, self.context.owner)
                mine = [a for a in found.values() if a.kind == kind]
                if not mine or self.config.pool not in conn.listStoragePools():
                    continue
                present = set(self._pool(conn).listVolumes())
            yield from ((host, art) for art in mine if art.name in present)

    def _artifact(self, kind: str, uid: str = "", name: str = "") -> tuple[Host, Artifact] | None:
        """Our existing artifact of ``kind`` with that uid tag or volume name."""
        for host, art in self._artifacts(kind):
            if (uid and art.tags.get(TAG_UID) == uid) or (name and art.name == name):
                return host, art
        return None

    def _claim_name(self, kind: str, name: str, external_id: str) -> None:
        """Before deleting artifact ``name``: a pool volume of that name that our ledger
        does not list is someone else's (NotManaged)."""
        for host in self.hosts:
            with host.session("look up volume") as conn:
                if self.config.pool not in conn.listStoragePools():
                    continue
                if name in self._pool(conn).listVolumes():
                    raise self.not_managed(kind, external_id, "entry in the artifacts ledger")

    def _clear_leftover(self, host: Host, name: str) -> None:
        """Delete the half-made volume an earlier attempt at artifact ``name`` left (its
        ledger entry is written only once the volume is complete)."""
        with host.session("look up volume") as conn:
            leftover = name in self._pool(conn).listVolumes()
        if leftover:
            self._drop_volume(host, name)

    # -- disk export -----------------------------------------------------------------
    def _disk(self, ref: DiskRef) -> tuple[Host, str]:
        """(host, pool volume name) of a disk that may be read now (see read_disk)."""
        if ref.kind == "vm":
            vm = self._existing(ref.external_id)
            if vm.active:
                raise self._in_use(ref, ref.external_id)
            if not vm.view.record.boot_volume:
                raise PermanentError(
                    f"VM {ref.external_id} has no boot disk (made from no image volume and "
                    "without diskGiB)",
                    cloud=self.cloud.name,
                    reason="NoDisk",
                )
            return vm.host, vm.view.record.boot_volume
        if ref.kind == "volume":
            found = self._volume(ref.external_id)
            if found is None:
                raise self.not_found("volume", ref.external_id)
            self._not_in_use(ref, found[1])
            return found[0], ref.external_id.removeprefix(VOLUME_PREFIX)
        raise PermanentError(
            f"unknown disk kind {ref.kind!r} (vm or volume)",
            cloud=self.cloud.name,
            reason="BadRequest",
        )

    def _not_in_use(self, ref: DiskRef, volume: ObservedVolume) -> None:
        """DiskInUse if ``volume`` is attached to a running VM."""
        if volume.attached_to is not None:
            user = self._lookup(volume.attached_to)
            if user is not None and user.active:
                raise self._in_use(ref, volume.attached_to)

    def _in_use(self, ref: DiskRef, vm_id: str) -> PermanentError:
        return PermanentError(
            f"{ref} is in use by running VM {vm_id}; stop the VM first",
            cloud=self.cloud.name,
            reason="DiskInUse",
        )

    def disk_size(self, ref: DiskRef) -> int:
        """The capacity of the disk's pool volume, in bytes (what read_disk yields)."""
        self._need(Capability.IMAGE_EXPORT, "reading disks")
        host, name = self._disk(ref)
        return self._capacity(host, name)

    def read_disk(self, ref: DiskRef) -> Chunks:
        """The disk's bytes, streamed from its pool volume. Checked now (absent, not
        ours, in use); the stream opens when first read."""
        self._need(Capability.IMAGE_EXPORT, "reading disks")
        host, name = self._disk(ref)
        return streams.download(host, self.config.pool, name, self._capacity(host, name))

    # -- snapshots -------------------------------------------------------------------
    def snapshot_volume(self, external_id: str, tags: Mapping[str, str]) -> str:
        """A full copy of our volume in its pool (see the module docstring); idempotent by
        the uid in ``tags``. Its id is ``snap/rcs-<uid>``."""
        self._need(Capability.VOLUME_SNAPSHOTS, "volume snapshots")
        owned = self.owned_tags(tags)
        done = self._artifact(SNAPSHOT, uid=owned[TAG_UID])
        if done is not None:
            return done[1].external_id
        found = self._volume(external_id)
        if found is None:
            raise self.not_found("volume", external_id)
        host = found[0]
        self._not_in_use(DiskRef("volume", external_id), found[1])
        source = external_id.removeprefix(VOLUME_PREFIX)
        name = artifacts.artifact_name(SNAPSHOT, owned[TAG_UID])
        self._clear_leftover(host, name)
        size = self._capacity(host, source)
        self._copy(host, source, host, name, size)
        art = Artifact(SNAPSHOT, name, owned, size=size, volume=source)
        self._put_artifact(host, name, art)
        return art.external_id

    def list_snapshots(self, volume_id: str) -> list[str]:
        self._need(Capability.VOLUME_SNAPSHOTS, "volume snapshots")
        source = volume_id.removeprefix(VOLUME_PREFIX)
        found = [art.external_id for _, art in self._artifacts(SNAPSHOT) if art.volume == source]
        return sorted(found)

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete our snapshot's volume, then its ledger entry; absent is success."""
        self._need(Capability.VOLUME_SNAPSHOTS, "volume snapshots")
        self._delete_artifact(SNAPSHOT, snapshot_id)

    def _delete_artifact(self, kind: str, external_id: str) -> None:
        """Delete our image or snapshot (volume first, then its entry); absent is
        success, a volume of that name that is not ours is refused."""
        name = artifacts.name_of(external_id, kind)
        if name is None:
            return
        found = self._artifact(kind, name=name)
        if found is None:
            self._drop_stale_entry(kind, name)
            self._claim_name(kind, name, external_id)
            return
        self._drop_volume(found[0], name)
        self._put_artifact(found[0], name, None)

    def _drop_stale_entry(self, kind: str, name: str) -> None:
        """Remove a ledger entry whose volume is gone (a delete that died in between)."""
        for host in self.hosts:
            with host.session("read artifacts") as conn:
                entry = artifacts.read(conn, self.context.owner).get(name)
            if entry is not None and entry.kind == kind:
                self._put_artifact(host, name, None)
