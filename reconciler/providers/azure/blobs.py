"""Buckets = Blob containers (azure-storage-blob); ownership in container metadata.

Metadata keys must be C# identifiers, so tag keys are encoded (names.encode_meta_key).
Blob versioning is a storage-ACCOUNT setting made through the management plane, not a
container property: the driver reports every container's versioning as the Cloud's
``settings.blobVersioning`` says, and refuses to change it per container.
"""

from __future__ import annotations

from collections.abc import Mapping

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedBucket
from reconciler.providers.azure.arm import Arm, without_ours
from reconciler.providers.azure.errors import azure_errors, or_none
from reconciler.providers.azure.names import container_name, decode_map, encode_map, encode_meta_key
from reconciler.providers.base import BucketRequest


class Blobs:
    """Container operations of one storage account (one Cloud); versioning is the
    account's, as ``settings.blobVersioning`` declares it."""

    def __init__(self, arm: Arm, service: BlobServiceClient) -> None:
        self.arm = arm
        self.cloud = arm.cloud
        self.service = service
        self.versioning = arm.settings.blob_versioning

    def _observed(self, name: str, metadata: Mapping[str, str] | None) -> ObservedBucket:
        return ObservedBucket(self.cloud, name, self.versioning, 0.0, decode_map(metadata))

    def list_owned(self) -> list[ObservedBucket]:
        with azure_errors(self.cloud, "listing blob containers"):
            listed = list(self.service.list_containers(include_metadata=True))
        return [self._observed(c.name, c.metadata) for c in listed if self.arm.owns(c.metadata)]

    def metadata(self, name: str) -> dict[str, str] | None:
        """The container's raw metadata, or None if it does not exist."""
        props = or_none(
            self.cloud,
            f"reading container {name}",
            lambda: self.service.get_container_client(name).get_container_properties(),
        )
        return None if props is None else dict(props.metadata or {})

    def ours(self, name: str) -> dict[str, str] | None:
        meta = self.metadata(name) if container_name(name) == name else None
        return meta if meta is not None and self.arm.owns(meta) else None

    def by_uid(self, uid: str) -> ObservedBucket | None:
        return next((b for b in self.list_owned() if b.tags.get(TAG_UID) == uid), None)

    def create(self, request: BucketRequest) -> ObservedBucket:
        self._check_versioning(request.versioning)
        name = container_name(request.name)
        if name is None:
            raise PermanentError(
                f"{request.name!r} cannot be a blob container name", self.cloud, "InvalidName"
            )
        meta = encode_map(request.tags, encode_meta_key)
        try:
            with azure_errors(self.cloud, f"creating container {name}"):
                self.service.create_container(name, metadata=meta)
        except PermanentError as exc:
            if not isinstance(exc.__cause__, ResourceExistsError):
                raise
            existing = self.metadata(name) or {}
            uid = request.tags.get(TAG_UID)
            if decode_map(existing).get(TAG_UID) != uid or not self.arm.owns(existing):
                raise PermanentError(
                    f"container {name} exists and is not this bucket", self.cloud, "AlreadyExists"
                ) from None
            return self._observed(name, existing)
        return self._observed(name, meta)

    def update(self, external_id: str, versioning: bool) -> ObservedBucket:
        meta = self.ours(external_id)
        if meta is None:
            raise self.arm.not_found("bucket", external_id)
        self._check_versioning(versioning)
        return self._observed(external_id, meta)

    def _check_versioning(self, wanted: bool) -> None:
        if wanted != self.versioning:
            state = "enabled" if self.versioning else "disabled"
            raise PermanentError(
                f"blob versioning is an account setting, {state} for this storage account "
                "(settings.blobVersioning); it cannot be changed per container",
                self.cloud,
                "Unsupported",
            )

    def delete(self, external_id: str) -> None:
        if self.ours(external_id) is not None:
            or_none(
                self.cloud,
                f"deleting container {external_id}",
                lambda: self.service.delete_container(external_id),
            )

    def forget(self, external_id: str) -> None:
        """Drop our metadata; absent or not ours is success."""
        meta = self.ours(external_id)
        if meta is None:
            return
        with azure_errors(self.cloud, f"forgetting container {external_id}"):
            self.service.get_container_client(external_id).set_container_metadata(
                without_ours(meta)
            )
