"""Moving disk bytes between clouds for a migration: through a staging bucket (or
straight across), checksummed on the way, imported as images in the target.

Each operation is idempotent: a staged object is reused when its etag and size match
the record; an image is found by its uid and kept when its checksum matches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.executor.migration_store import Record
from reconciler.model.artifacts import DiskRef
from reconciler.model.keys import TAG_KEY, TAG_MIGRATION, TAG_OWNER, TAG_SYSTEM, TAG_UID
from reconciler.providers.base import BucketRequest, ImageRequest, Provider

#: Runs one provider call for a cloud with the apply's rate limit and retries.
Caller = Callable[[str, Callable[[], Any]], Any]


@dataclass(frozen=True)
class Disk:
    """One disk that moves: the boot disk or an attached volume."""

    name: str
    ref: DiskRef
    image_uid: str
    key: str  # resource key (of the VM or the Volume)
    volume: Mapping[str, Any] | None = None  # the volume's params, None for the boot disk


class _Hashing:
    """Wraps a stream: counts and checksums what passes through."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = chunks
        self.sha = hashlib.sha256()
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._chunks:
            self.sha.update(chunk)
            self.size += len(chunk)
            yield chunk


class Transfer:
    """Export, import and clean up the disks of one migration (``record["disks"]`` keeps
    each disk's size, checksum, staged etag and image id)."""

    def __init__(
        self,
        migration_id: str,
        params: Mapping[str, Any],
        providers: Mapping[str, Provider],
        record: Record,
        call: Caller,
    ) -> None:
        self.id, self.params, self.record, self.call = migration_id, params, record, call
        self.src_cloud, self.dst_cloud = params["source"]["cloud"], params["target"]["cloud"]
        self.src, self.dst = providers[self.src_cloud], providers[self.dst_cloud]
        staging = params.get("staging")
        self.stage_cloud: str | None = staging["cloud"] if staging else None
        self.stage = providers[staging["cloud"]] if staging else None

    def _on(self, cloud: str, fn: Callable[[], Any]) -> Any:
        return self.call(cloud, fn)

    # -- disks ---------------------------------------------------------------------------
    def entry(self, disk: Disk) -> dict[str, Any]:
        entry: dict[str, Any] = self.record["disks"].setdefault(disk.name, {})
        return entry

    def _object_key(self, disk: Disk) -> str:
        return f"migrations/{self.id}/{hashlib.sha256(disk.name.encode()).hexdigest()[:12]}.raw"

    def _staging_bucket(self) -> str:
        assert self.stage is not None and self.stage_cloud is not None
        if "stagingBucket" in self.record:
            return str(self.record["stagingBucket"])
        name = self.params["staging"]["bucket"]
        uid = hashlib.sha256(f"staging|{name}".encode()).hexdigest()[:20]
        owner = self.params["target"]["tags"][TAG_OWNER]
        tags = {
            TAG_OWNER: owner,
            TAG_KEY: f"Bucket/reconciler-system/{name}",
            TAG_UID: uid,
            TAG_SYSTEM: "staging",
        }
        stage = self.stage
        bucket = self._on(
            self.stage_cloud, lambda: stage.create_bucket(BucketRequest(name, False, tags))
        )
        self.record["stagingBucket"] = bucket.external_id
        return str(bucket.external_id)

    def export(self, disk: Disk) -> None:
        """Read the disk from the source into staging (or just checksum it)."""
        entry = self.entry(disk)
        if self.stage is None:
            if "sha256" not in entry:

                def checksum() -> tuple[int, str]:
                    hashing = _Hashing(self.src.read_disk(disk.ref))
                    for _ in hashing:
                        pass
                    return hashing.size, hashing.sha.hexdigest()

                entry["size"], entry["sha256"] = self._on(self.src_cloud, checksum)
            return
        bucket, key, stage = self._staging_bucket(), self._object_key(disk), self.stage
        assert self.stage_cloud is not None
        if "etag" in entry:
            head = self._on(self.stage_cloud, lambda: stage.head_object(bucket, key))
            if head is not None and head.etag == entry["etag"] and head.size == entry["size"]:
                return  # staged by an earlier attempt

        def upload() -> tuple[int, str, str]:
            hashing = _Hashing(self.src.read_disk(disk.ref))
            info = stage.put_object(bucket, key, hashing, {"reconciler-migration": self.id})
            return hashing.size, hashing.sha.hexdigest(), info.etag

        size, sha, etag = self._on(self.stage_cloud, upload)
        entry.update(size=size, sha256=sha, etag=etag, object=key)

    def _chunks(self, disk: Disk) -> Iterable[bytes]:
        if self.stage is None:
            return self.src.read_disk(disk.ref)
        return self.stage.get_object(self._staging_bucket(), self._object_key(disk))

    def _image_tags(self, disk: Disk) -> dict[str, str]:
        owner = self.params["target"]["tags"][TAG_OWNER]
        return {
            TAG_OWNER: owner,
            TAG_KEY: disk.key,
            TAG_UID: disk.image_uid,
            TAG_MIGRATION: self.id,
        }

    def import_disk(self, disk: Disk) -> None:
        """Make the disk an image in the target from staging (or straight from the source)."""
        entry = self.entry(disk)
        found = self._on(self.dst_cloud, lambda: self.dst.find_image(disk.image_uid))
        if found is not None and found.sha256 == entry["sha256"]:
            entry["imageId"] = found.external_id
            return
        if found is not None:  # made from other bytes (the source changed): start over
            self._on(self.dst_cloud, lambda: self.dst.delete_image(found.external_id))
        name = f"{self.params['target']['name']}-{disk.image_uid[:8]}"
        request = ImageRequest(
            name, int(entry["size"]), str(entry["sha256"]), self._image_tags(disk)
        )
        image = self._on(self.dst_cloud, lambda: self.dst.import_image(request, self._chunks(disk)))
        entry["imageId"] = image.external_id

    def drop(self, disk: Disk) -> None:
        """Delete the disk's imported image and staged object (absent is fine)."""
        image = self._on(self.dst_cloud, lambda: self.dst.find_image(disk.image_uid))
        if image is not None:
            self._on(self.dst_cloud, lambda: self.dst.delete_image(image.external_id))
        if self.stage is not None and self.stage_cloud is not None:
            bucket, key, stage = self._staging_bucket(), self._object_key(disk), self.stage
            self._on(self.stage_cloud, lambda: stage.delete_object(bucket, key))
