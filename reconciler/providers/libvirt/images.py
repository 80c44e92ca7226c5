"""Images of the libvirt driver: imported disk bytes as pool volumes, and boot disks.

``import_image`` creates pool volume ``rci-<uid>`` of exactly the announced size, fills
it with virStorageVol.upload while hashing what streams in, and lists it in the
artifacts ledger (with its size, sha256 and tags) only once the bytes matched; on a
mismatch the upload is aborted and the volume deleted (ChecksumMismatch). Its id is
``img/rci-<uid>``.

A VM's ``image`` is resolved to the volume its boot disk is copied from: one of our
imported images (by id), else a volume of that name in the Cloud's pool (a base image an
operator uploaded, e.g. with ``virsh vol-upload``), else nothing (a blank boot volume of
``diskGiB``, or no disk at all, as before images existed). A volume made with
``source_image`` is a copy of the image too. Copies are raw and at least ``diskGiB``
(or the volume's size) large; an image on another host is streamed across.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.artifacts import Chunks, ObservedImage
from reconciler.model.cloud import Capability
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedVolume
from reconciler.providers.base import ImageRequest, VolumeRequest
from reconciler.providers.libvirt import artifacts, ledger, streams
from reconciler.providers.libvirt.artifacts import IMAGE, IMAGE_ID, OUR_PREFIXES, Artifact
from reconciler.providers.libvirt.disks import LibvirtDisks
from reconciler.providers.libvirt.domxml import GIB, volume_xml
from reconciler.providers.libvirt.hosts import Host
from reconciler.providers.libvirt.volumes import VOLUME_PREFIX


@dataclass(frozen=True, slots=True)
class BootSource:
    """The pool volume a new boot disk or volume is copied from."""

    host: Host
    name: str
    size: int


class LibvirtImages(LibvirtDisks):
    """Image import, lookup and deletion; VMs and volumes made from images."""

    def _image(self, art: Artifact) -> ObservedImage:
        return ObservedImage(
            self.cloud.name, art.external_id, art.label, art.size, art.sha256, dict(art.tags)
        )

    def import_image(self, request: ImageRequest, chunks: Chunks) -> ObservedImage:
        """Upload the bytes into a new pool volume, verified while they stream (see the
        module docstring); a retry with the same uid returns the image without reading."""
        self._need(Capability.IMAGE_IMPORT, "importing images")
        tags = self.owned_tags(request.tags)
        done = self._artifact(IMAGE, uid=tags[TAG_UID])
        if done is not None:
            return self._image(done[1])
        if request.size_bytes < 1:
            raise PermanentError(
                f"image {request.name}: size_bytes must be positive",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        host = self._volume_host()
        name = artifacts.artifact_name(IMAGE, tags[TAG_UID])
        self._clear_leftover(host, name)
        with host.session("create image volume", "create") as conn:
            self._pool(conn).createXML(volume_xml(name, 0, request.size_bytes), 0)
        try:
            streams.upload(host, self.config.pool, name, chunks, request.size_bytes, request.sha256)
        except BaseException:
            self._drop_volume(host, name)
            raise
        art = Artifact(
            IMAGE, name, tags, size=request.size_bytes, sha256=request.sha256, label=request.name
        )
        self._put_artifact(host, name, art)
        return self._image(art)

    def list_images(self) -> list[ObservedImage]:
        self._need(Capability.IMAGE_IMPORT, "importing images")
        return [self._image(art) for _, art in self._artifacts(IMAGE)]

    def find_image(self, uid: str) -> ObservedImage | None:
        self._need(Capability.IMAGE_IMPORT, "importing images")
        found = self._artifact(IMAGE, uid=uid)
        return self._image(found[1]) if found is not None else None

    def delete_image(self, external_id: str) -> None:
        """Delete our image's volume, then its entry; absent is success. VMs and volumes
        made from it keep their own copies."""
        self._need(Capability.IMAGE_IMPORT, "importing images")
        self._delete_artifact(IMAGE, external_id)

    # -- boot disks and volumes from images ------------------------------------------
    def _boot_source(self, image: str) -> BootSource | None:
        """The volume a VM with ``image`` boots from a copy of (module docstring)."""
        if image.startswith(IMAGE_ID):
            name = artifacts.name_of(image, IMAGE)
            found = self._artifact(IMAGE, name=name) if name else None
            if found is None:
                raise self.not_found("image", image)
            return BootSource(found[0], found[1].name, found[1].size)
        if not image or "/" in image or image.startswith(OUR_PREFIXES) or image.endswith("-boot"):
            return None
        for host in self.hosts:
            with host.session("look up image volume") as conn:
                if self.config.pool not in conn.listStoragePools():
                    continue
                pool = self._pool(conn)
                if image in pool.listVolumes():
                    size = int(pool.storageVolLookupByName(image).info()[1])
                    return BootSource(host, image, size)
        return None

    def _make_boot_volume(
        self, host: Host, name: str, disk_gib: int, source: BootSource | None
    ) -> bool:
        """Create the boot volume ``name`` on ``host``: a copy of ``source`` (at least
        ``disk_gib``), else blank if ``disk_gib`` > 0; False when the VM gets no disk. A
        copy left by an attempt that died before defining the domain is made again."""
        if source is None and disk_gib <= 0:
            return False
        with host.session("create boot volume", "prepare") as conn:
            pool = self._pool(conn)
            if name in pool.listVolumes():
                if source is None:
                    return True
                pool.storageVolLookupByName(name).delete(0)
            if source is None:
                pool.createXML(volume_xml(name, disk_gib), 0)
                return True
        self._copy(source.host, source.name, host, name, max(disk_gib * GIB, source.size))
        return True

    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        """An empty volume (LibvirtVolumes), or with ``source_image`` a copy of our image
        on the image's host, marked used (it holds data: never relocated). The copy is
        made before the ledger entry, so a half-made copy is never taken as the volume."""
        if request.source_image is None:
            return super().create_volume(request)
        self._need(Capability.IMAGE_IMPORT, "volumes from images")
        tags = self._volume_tags(request)
        with self.placement:
            existing = self._find_volume(tags[TAG_UID])
            if existing is not None:
                return existing
            name = artifacts.name_of(request.source_image, IMAGE)
            found = self._artifact(IMAGE, name=name) if name else None
            if found is None:
                raise self.not_found("image", request.source_image)
            host, image = found
            volume = ledger.volume_name(tags[TAG_UID])
            self._clear_leftover(host, volume)
            self._copy(host, image.name, host, volume, max(request.size_gib * GIB, image.size))
            entry = ledger.Entry(volume, request.volume_class, tags, used=True)
            with host.session("record volume in ledger", "update") as conn:
                self._put_entry(conn, host, volume, entry)
            made = self._volume(VOLUME_PREFIX + volume)
        assert made is not None
        return made[1]
