"""The Provider contract: one driver per cloud, all behind this interface.

Guarantees every implementation gives (tested by the conformance suite):

* ``describe``, ``offers``, ``list_managed`` and ``observe_*`` never mutate anything.
* ``list_managed`` returns only resources carrying ``TAG_OWNER == context.owner``;
  resources the reconciler does not own are invisible and never touched.
* ``create_*`` is idempotent: the request carries ownership tags with a ``uid``; if a
  resource with that uid already exists (a retry after a lost response) it is returned
  instead of making a second one.
* ``delete_*`` of an absent resource succeeds.
* ``update_vm`` converges: applying the same update twice is harmless.
* Every SDK/transport error is mapped at the edge to ``TransientError(retry_after)``
  or ``PermanentError(reason)``; capacity or quota exhaustion is a ``CapacityError``.
* Capabilities are declared in ``describe().capabilities``; callers use no other.
  The optional operations below (disks, images, objects) raise a ``PermanentError``
  with reason ``NotSupported`` unless the driver declares their capability.
* No secret ever appears in a return value, an exception message or a log line.

Providers are constructed per Cloud object and must be thread-safe: the executor
calls them from several worker threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from reconciler.model.artifacts import Chunks, DiskRef, ObjectInfo, ObservedImage
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_OWNER, TAG_UID
from reconciler.model.observed import (
    CloudInventory,
    Observed,
    ObservedBucket,
    ObservedVM,
    ObservedVolume,
)
from reconciler.model.specs import CloudSpec, PowerState


@dataclass(frozen=True)
class ProviderContext:
    """What every provider gets besides its Cloud spec.

    ``owner`` is the value of the ``reconciler.dev/owner`` tag this installation uses;
    ``state_dir`` is where local providers (the simulator) keep their state;
    ``credentials`` are resolved secrets (never logged).
    """

    owner: str = "reconciler"
    state_dir: Path = Path(".reconciler")
    credentials: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True, slots=True)
class VMRequest:
    """Create a VM. ``tags`` include the ownership tags (owner, key, uid)."""

    name: str
    instance_type: str
    image: str
    power_state: PowerState
    tags: Mapping[str, str]
    disk_gib: int = 0


@dataclass(frozen=True, slots=True)
class VMUpdate:
    """Change a VM in place; None fields are left as they are."""

    instance_type: str | None = None
    power_state: PowerState | None = None
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class VolumeRequest:
    """Create a volume, empty or (``source_image``, an image id in the same cloud made
    by ``import_image``) holding that image's bytes."""

    name: str
    size_gib: int
    volume_class: str
    tags: Mapping[str, str]
    source_image: str | None = None


@dataclass(frozen=True, slots=True)
class ImageRequest:
    """Import raw disk bytes as an image. ``tags`` include the ownership tags (owner,
    key, uid); ``size_bytes`` and ``sha256`` describe the bytes that will be streamed,
    and the import fails (leaving nothing behind) when what arrives differs."""

    name: str
    size_bytes: int
    sha256: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class BucketRequest:
    name: str
    versioning: bool
    tags: Mapping[str, str]


class Provider(ABC):
    """A stateless-by-contract driver for one Cloud object (see module docstring)."""

    #: The ``spec.provider`` value this class serves.
    provider_name: ClassVar[str]

    def __init__(self, cloud: CloudSpec, context: ProviderContext) -> None:
        self.cloud = cloud
        self.context = context

    def owns(self, tags: Mapping[str, str]) -> bool:
        """True if ``tags`` carry this installation's owner tag."""
        return tags.get(TAG_OWNER) == self.context.owner

    def not_managed(
        self, kind: str, external_id: str, mark: str = "reconciler.dev/owner tag"
    ) -> PermanentError:
        """The error for touching a resource we do not own (``mark``: what it lacks)."""
        return PermanentError(
            f"{kind} {external_id} is not managed by '{self.context.owner}' (no matching "
            f"{mark}); refusing to touch it",
            cloud=self.cloud.name,
            reason="NotManaged",
        )

    def not_found(self, kind: str, external_id: str) -> PermanentError:
        return PermanentError(
            f"{kind} {external_id} not found", cloud=self.cloud.name, reason="NotFound"
        )

    def owned_tags(self, tags: Mapping[str, str]) -> dict[str, str]:
        """A create request's tags with our owner set. Refuses another owner's tags, and a
        request without a uid (creates are idempotent by it), before any cloud call."""
        result = dict(tags)
        owner = result.setdefault(TAG_OWNER, self.context.owner)
        if owner != self.context.owner:
            raise PermanentError(
                f"refusing to create a resource owned by '{owner}' (this reconciler is "
                f"'{self.context.owner}')",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        if not result.get(TAG_UID):
            raise PermanentError(
                f"create request without a '{TAG_UID}' tag",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        return result

    @abstractmethod
    def describe(self) -> CloudInfo:
        """Capabilities, labels, capacity available to us, price provenance."""

    @abstractmethod
    def offers(self) -> list[Offer]:
        """Instance types with $/hour prices (catalog joined with inline offers)."""

    @abstractmethod
    def list_managed(self) -> CloudInventory:
        """Every VM, volume and bucket tagged with our owner. Never mutates."""

    @abstractmethod
    def observe_vm(self, external_id: str) -> ObservedVM | None:
        """One managed VM by id, or None if absent. Never mutates."""

    @abstractmethod
    def find_by_uid(self, uid: str) -> Observed | None:
        """The managed resource carrying ``reconciler.dev/uid == uid``, if any."""

    @abstractmethod
    def create_vm(self, request: VMRequest) -> ObservedVM:
        """Create (idempotently, by the uid tag) and return the VM."""

    @abstractmethod
    def update_vm(self, external_id: str, update: VMUpdate) -> ObservedVM:
        """Resize, start/stop or retag in place; raises PermanentError if absent."""

    @abstractmethod
    def delete_vm(self, external_id: str) -> None:
        """Delete; absent is success."""

    @abstractmethod
    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        """Create (idempotently, by the uid tag) a block volume."""

    @abstractmethod
    def update_volume(
        self, external_id: str, size_gib: int | None, attach_to: str | None, detach: bool
    ) -> ObservedVolume:
        """Grow, attach to a VM (external id) or detach; converges when repeated."""

    @abstractmethod
    def delete_volume(self, external_id: str) -> None:
        """Delete; absent is success."""

    @abstractmethod
    def create_bucket(self, request: BucketRequest) -> ObservedBucket:
        """Create (idempotently) an object-storage bucket."""

    @abstractmethod
    def update_bucket(self, external_id: str, versioning: bool) -> ObservedBucket:
        """Turn versioning on or off."""

    @abstractmethod
    def delete_bucket(self, external_id: str) -> None:
        """Delete; absent is success."""

    @abstractmethod
    def forget(self, external_id: str) -> None:
        """Stop managing a VM, volume or bucket (deletionPolicy Orphan): remove our
        ownership tags so it keeps running but is invisible to later plans. Absent is
        success."""

    # -- optional: disks and images (Capability.IMAGE_EXPORT / IMAGE_IMPORT) ---------
    def unsupported(self, what: str, capability: Capability) -> PermanentError:
        """The error for an optional operation this driver does not offer."""
        return PermanentError(
            f"{what} is not supported by the {self.provider_name} driver "
            f"(no '{capability.value}' capability)",
            cloud=self.cloud.name,
            reason="NotSupported",
        )

    def disk_size(self, ref: DiskRef) -> int:
        """Size in bytes of the disk ``ref`` (what ``read_disk`` yields). Never mutates."""
        raise self.unsupported("reading disks", Capability.IMAGE_EXPORT)

    def read_disk(self, ref: DiskRef) -> Chunks:
        """The raw bytes of one of our disks, streamed. A VM's boot disk is read only
        while the VM is stopped and a volume only while detached or its VM stopped
        (``PermanentError`` reason ``DiskInUse`` otherwise), so the bytes are
        consistent. Never mutates; may be called again to read the disk again."""
        raise self.unsupported("reading disks", Capability.IMAGE_EXPORT)

    def import_image(self, request: ImageRequest, chunks: Chunks) -> ObservedImage:
        """Make an image from raw disk bytes. Idempotent by the uid tag: a retry returns
        the image already made (without reading ``chunks``). If the bytes that arrive
        differ from ``request.size_bytes``/``sha256`` nothing is left behind and
        ``PermanentError`` reason ``ChecksumMismatch`` is raised. A VM created with
        ``VMRequest.image`` = the returned id boots from those bytes."""
        raise self.unsupported("importing images", Capability.IMAGE_IMPORT)

    def find_image(self, uid: str) -> ObservedImage | None:
        """Our image carrying ``reconciler.dev/uid == uid``, if any. Never mutates."""
        raise self.unsupported("importing images", Capability.IMAGE_IMPORT)

    def list_images(self) -> list[ObservedImage]:
        """Every usable image we own in this cloud (an import that did not finish is
        not one). Never mutates."""
        raise self.unsupported("importing images", Capability.IMAGE_IMPORT)

    def delete_image(self, external_id: str) -> None:
        """Delete one of our images; absent is success. VMs and volumes made from it
        keep running (they are copies, or hold their own reference)."""
        raise self.unsupported("importing images", Capability.IMAGE_IMPORT)

    def disk_sha256(self, ref: DiskRef) -> str | None:
        """The SHA-256 of a disk's bytes if the cloud can tell without reading them
        (the simulator can; real clouds return None and callers read the disk)."""
        return None

    # -- optional: volume snapshots (Capability.VOLUME_SNAPSHOTS) ---------------------
    def snapshot_volume(self, external_id: str, tags: Mapping[str, str]) -> str:
        """Snapshot one of our volumes; returns the snapshot id. Idempotent by the uid in
        ``tags`` (a retry returns the snapshot already made); the snapshot carries
        ``tags`` with our owner. ``PermanentError`` if the volume is absent or not ours."""
        raise self.unsupported("volume snapshots", Capability.VOLUME_SNAPSHOTS)

    def list_snapshots(self, volume_id: str) -> list[str]:
        """Ids of our snapshots of ``volume_id``. Never mutates."""
        raise self.unsupported("volume snapshots", Capability.VOLUME_SNAPSHOTS)

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete one of our snapshots; absent is success."""
        raise self.unsupported("volume snapshots", Capability.VOLUME_SNAPSHOTS)

    # -- optional: objects in our buckets (Capability.BUCKETS) -----------------------
    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """Write an object into our bucket ``bucket`` (an external id), replacing any
        object of that key; large objects go up in parts. ``metadata`` is stored as the
        store's user metadata. Raises ``PermanentError`` if the bucket is not ours."""
        raise self.unsupported("objects", Capability.BUCKETS)

    def get_object(self, bucket: str, key: str) -> Chunks:
        """The bytes of an object in our bucket, streamed (``PermanentError`` reason
        ``NotFound`` if absent)."""
        raise self.unsupported("objects", Capability.BUCKETS)

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        """One object's size, etag and metadata, or None if absent. Never mutates."""
        raise self.unsupported("objects", Capability.BUCKETS)

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        """Every object in our bucket under ``prefix``, sorted by key (latest versions
        only; metadata included where the listing returns it). Never mutates."""
        raise self.unsupported("objects", Capability.BUCKETS)

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete an object from our bucket; absent is success."""
        raise self.unsupported("objects", Capability.BUCKETS)
