"""Glance images imported from raw disk bytes (Capability.IMAGE_IMPORT).

``import_image`` creates a private image record (``disk_format`` raw, ``container_format``
bare) whose properties carry our tags (the ``reconciler.dev:*`` encoding of server
metadata) and the SHA-256 the request promises (``owner_specified.openstack.sha256``, the
property openstacksdk's own uploads set), then streams the bytes with one
``PUT /v2/images/{id}/file`` (chunked transfer encoding: nothing is held in memory). The
bytes are checked while they stream: more than ``size_bytes``, or a different size or
SHA-256 at the end, aborts the upload before its last chunk, so Glance never activates
the image, and the image record is deleted (``PermanentError`` ChecksumMismatch). After
the upload Glance's own size and MD5 ``checksum`` must match what was sent.
Servers (``VMRequest.image``) and volumes (``VolumeRequest.source_image``) then use the
image id like any Glance image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

from openstack import exceptions as sdk
from openstack.image.v2.image import Image

from reconciler.model.artifacts import Chunks, ObservedImage
from reconciler.model.errors import PermanentError, TransientError
from reconciler.model.keys import GROUP, TAG_UID
from reconciler.providers.base import ImageRequest
from reconciler.providers.openstack.errors import edge
from reconciler.providers.openstack.tags import (
    META_OWNER,
    META_UID,
    decode_metadata,
    encode_metadata,
)
from reconciler.providers.openstack.volumes import VolumeMixin

#: The image property holding the SHA-256 of the raw bytes (openstacksdk's key).
SHA256_PROPERTY = "owner_specified.openstack.sha256"
#: Glance statuses an image rests in (anything else is an upload or import under way).
IMAGE_RESTING = frozenset({"active", "queued", "killed", "deactivated"})


class ChecksumMismatch(Exception):
    """The streamed bytes differ from the request's size or SHA-256 (aborts the upload).
    Not an OSError, so no HTTP layer mistakes it for a network failure."""


class Replayed(Exception):
    """The HTTP layer asked for the bytes a second time (say, a re-authentication):
    they cannot be read again."""


class VerifiedStream:
    """The request's bytes, counted and hashed (SHA-256 and MD5) while they stream."""

    def __init__(self, chunks: Chunks, request: ImageRequest) -> None:
        self._chunks = chunks
        self._request = request
        self._used = False
        self.size = 0
        self.sha256 = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)

    def __iter__(self) -> Iterator[bytes]:
        if self._used:
            raise Replayed("the image bytes were asked for twice")
        self._used = True
        limit = self._request.size_bytes
        for chunk in self._chunks:
            if not chunk:
                continue
            self.size += len(chunk)
            if self.size > limit:
                raise ChecksumMismatch(f"more than the {limit} bytes promised arrived")
            self.sha256.update(chunk)
            self.md5.update(chunk)
            yield chunk
        if self.size != limit or self.sha256.hexdigest() != self._request.sha256:
            raise ChecksumMismatch(
                f"{self.size} bytes with SHA-256 {self.sha256.hexdigest()} arrived; "
                f"{limit} bytes with SHA-256 {self._request.sha256} were promised"
            )


class ImageMixin(VolumeMixin):
    """import_image / find_image / delete_image on Glance v2."""

    def image_api(self) -> Any:
        return self.conn.proxy("image")

    def image_of(self, image: Any) -> ObservedImage:
        """The image as an ObservedImage; ``tags`` are its reconciler.dev/* properties."""
        properties = dict(image.properties or {})
        ours = {k: v for k, v in properties.items() if k.startswith(GROUP + ":")}
        tags = decode_metadata(ours)
        return ObservedImage(
            cloud=self.name,
            external_id=str(image.id),
            name=str(image.name or ""),
            size_bytes=int(image.size or 0),
            sha256=str(properties.get(SHA256_PROPERTY, "")),
            tags=tags,
        )

    def _owned_images(self) -> list[Any]:
        """Our images: the project's private images carrying our owner property."""
        listed = self.call(
            "listing Glance images", lambda: list(self.image_api().images(visibility="private"))
        )
        return [i for i in listed if (i.properties or {}).get(META_OWNER) == self.context.owner]

    def _image_by_uid(self, uid: str) -> Any | None:
        owned = self._owned_images()
        return next((i for i in owned if (i.properties or {}).get(META_UID) == uid), None)

    def get_image(self, image_id: str) -> Any | None:
        return self.get_or_none(
            f"reading image {image_id}", lambda: self.image_api().get_image(image_id)
        )

    def list_images(self) -> list[ObservedImage]:
        """Our ``active`` images (unfinished imports are not images yet)."""
        return [self.image_of(i) for i in self._owned_images() if i.status == "active"]

    def find_image(self, uid: str) -> ObservedImage | None:
        """Our ``active`` image with this uid; an unfinished import is not an image yet."""
        image = self._image_by_uid(uid)
        return self.image_of(image) if image is not None and image.status == "active" else None

    def import_image(self, request: ImageRequest, chunks: Chunks) -> ObservedImage:
        tags = self.owned_tags(request.tags)
        found = self._image_by_uid(tags[TAG_UID])
        if found is not None and found.status == "active":
            return self.image_of(found)
        if found is not None:  # an earlier attempt that did not finish: start again
            self._delete_image(found.id)
        properties = encode_metadata(tags, self.name)
        properties[SHA256_PROPERTY] = request.sha256
        made = self.call(
            f"creating image {request.name}",
            lambda: Image.new(
                name=request.name,
                disk_format="raw",
                container_format="bare",
                visibility="private",
                **properties,
            ).create(self.image_api()),
        )
        stream = VerifiedStream(chunks, request)
        try:
            self._upload_data(made, stream, request.size_bytes)
        except PermanentError:  # a mismatch, or Glance refused the data: leave nothing
            self._delete_image(made.id)
            raise
        image = self._settle_image(made.id, "upload")
        md5 = stream.md5.hexdigest()
        if int(image.size or 0) != stream.size or (image.checksum and image.checksum != md5):
            self._delete_image(made.id)
            raise self._image_mismatch(request.name, "Glance stored other bytes than were sent")
        return self.image_of(image)

    def _upload_data(self, image: Any, stream: VerifiedStream, size: int) -> None:
        """PUT the bytes; a mismatch is PermanentError(ChecksumMismatch), a replay a
        TransientError, anything else mapped at the edge."""
        what = f"uploading image {image.id}"
        try:
            with edge(self.name, what):
                response = image.upload(self.image_api(), data=stream, size=size)
                sdk.raise_from_response(response)
        except ChecksumMismatch as exc:
            raise self._image_mismatch(str(image.name), str(exc)) from exc
        except Replayed as exc:
            raise TransientError(f"{what}: {exc}", self.name, 1.0) from exc

    def _image_mismatch(self, name: str, detail: str) -> PermanentError:
        return PermanentError(
            f"importing image {name}: the bytes do not match the request: {detail}",
            cloud=self.name,
            reason="ChecksumMismatch",
        )

    def _settle_image(self, image_id: str, what: str) -> Any:
        image = self.wait_for(
            f"image {image_id} ({what})",
            lambda: self.get_image(image_id),
            lambda i: i is None or i.status in IMAGE_RESTING,
        )
        if image is None:
            raise self.not_found("image", image_id)
        if image.status != "active":
            raise PermanentError(
                f"image {image_id} is {image.status} after {what}",
                cloud=self.name,
                reason="ImageError",
            )
        return image

    def delete_image(self, external_id: str) -> None:
        """Delete our image; absent is success, another owner's is refused."""
        image = self.get_image(external_id)
        if image is None:
            return
        if (image.properties or {}).get(META_OWNER) != self.context.owner:
            raise self.not_managed("image", external_id, "reconciler.dev/owner property")
        self._delete_image(external_id)

    def _delete_image(self, image_id: str) -> None:
        self.call(
            f"deleting image {image_id}",
            lambda: self.image_api().delete_image(image_id, ignore_missing=True),
        )
