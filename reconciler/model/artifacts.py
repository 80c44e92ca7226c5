"""Disk images and objects: what migration and bucket copies move between clouds.

These are records providers return; the bytes themselves travel as iterators of
chunks (``Chunks``) and are never held whole in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.model.keys import TAG_KEY, ResourceKey

#: Object metadata key under which reconciler records the SHA-256 of what it wrote
#: (stores spell metadata differently: S3 ``x-amz-meta-``, Swift ``X-Object-Meta-``,
#: Azure blob metadata; drivers translate).
META_SHA256 = "reconciler-sha256"
#: On a bucket copy's object: the ETag of the object it was copied from.
META_SOURCE_ETAG = "reconciler-source-etag"
#: On an image imported from an Image: which of its disks it holds (absent: the boot
#: disk, the only disk of a single-file Image).
TAG_IMAGE_DISK = "reconciler.dev/image-disk"

#: An Image url naming an object in a declared Bucket: ``bucket:<Bucket name>/<key>``.
BUCKET_URL_SCHEME = "bucket"


def bucket_url(url: str) -> tuple[str, str] | None:
    """(Bucket name, object key) of a ``bucket:`` url; None for any other url."""
    prefix = BUCKET_URL_SCHEME + ":"
    if not url.startswith(prefix):
        return None
    name, _, key = url[len(prefix) :].partition("/")
    return (name, key) if name and key else None


#: A stream of bytes, in chunks of any size (drivers choose; 8 MiB is typical).
Chunks = Iterable[bytes]


@dataclass(frozen=True, slots=True)
class DiskRef:
    """A disk whose bytes can be read: a VM's boot disk (``kind`` "vm") or a block
    volume (``kind`` "volume"), by its external id."""

    kind: str
    external_id: str

    def __str__(self) -> str:
        return f"{self.kind} {self.external_id}"


@dataclass(frozen=True, slots=True)
class ObservedImage:
    """A VM image a provider holds for us (imported by a migration or an Image).

    ``sha256`` is the digest of the raw disk bytes it was made from, as recorded at
    import; ``tags`` carry the ownership tags (owner, key, uid)."""

    cloud: str
    external_id: str
    name: str
    size_bytes: int
    sha256: str
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def key(self) -> ResourceKey | None:
        """The resource it was imported for (an Image, or the VM a migration moves)."""
        try:
            return ResourceKey.parse(self.tags.get(TAG_KEY, ""))
        except ValueError:
            return None

    @property
    def disk(self) -> str:
        """The Image disk it holds ("" for the boot disk)."""
        return self.tags.get(TAG_IMAGE_DISK, "")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object in a bucket. ``etag`` is the store's own (not comparable across
    stores); ``metadata`` holds user metadata with the store's prefix removed (for
    example ``META_SHA256``), when the listing or call returned it."""

    key: str
    size: int
    etag: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return self.metadata.get(META_SHA256, "")


@dataclass(frozen=True, slots=True)
class ReplicaDrift:
    """How one copy of a bucket differs from the source copy (object counts, and a few
    of the keys for display)."""

    cloud: str
    bucket: str
    missing: int
    stale: int
    extra: int
    sample: tuple[str, ...] = ()
    #: Why this copy could not be compared (then its counts mean nothing).
    error: str = ""

    @property
    def total(self) -> int:
        return self.missing + self.stale + self.extra


@dataclass(frozen=True, slots=True)
class BucketDrift:
    """A Bucket's copies compared with its source copy (observed before planning)."""

    source_cloud: str
    source_bucket: str
    objects: int
    replicas: tuple[ReplicaDrift, ...]

    @property
    def total(self) -> int:
        return sum(r.total for r in self.replicas)
