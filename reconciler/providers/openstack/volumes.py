"""Cinder volumes, attached to servers through Nova's os-volume_attachments; empty, or
made from a Glance image (``imageRef``: Cinder copies the image's bytes onto the volume,
``downloading`` until done)."""

from __future__ import annotations

from typing import Any

from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import ObservedVolume
from reconciler.providers.base import VolumeRequest
from reconciler.providers.openstack.compute import ComputeMixin
from reconciler.providers.openstack.core import with_uid
from reconciler.providers.openstack.tags import decode_metadata, encode_metadata

#: Cinder statuses a volume rests in.
RESTING = frozenset({"available", "in-use", "error", "error_extending"})


class VolumeMixin(ComputeMixin):
    """Volume operations; the model's default class "standard" uses settings.volumeType."""

    def block(self) -> Any:
        return self.conn.proxy("block_storage")

    def volume_of(self, vol: Any) -> ObservedVolume:
        attached = [a.get("server_id") for a in (vol.attachments or []) if a.get("server_id")]
        return ObservedVolume(
            cloud=self.name,
            external_id=vol.id,
            size_gib=int(vol.size or 0),
            volume_class=str(vol.volume_type or ""),
            attached_to=attached[0] if attached else None,
            price_per_hour=self.volume_price(int(vol.size or 0)),
            tags=decode_metadata(vol.metadata or {}),
        )

    def owned_volumes(self) -> list[Any]:
        listed = self.call("listing Cinder volumes", lambda: list(self.block().volumes()))
        return [v for v in listed if self.owns_resource(v)]

    def volume_by_uid(self, uid: str) -> Any | None:
        return with_uid(self.owned_volumes(), uid)

    def get_volume(self, volume_id: str) -> Any | None:
        return self.get_or_none(
            f"reading volume {volume_id}", lambda: self.block().get_volume(volume_id)
        )

    def own_volume(self, volume_id: str) -> Any:
        return self.checked("volume", volume_id, self.get_volume(volume_id))

    def settle_volume(self, volume_id: str, what: str, done: frozenset[str] = RESTING) -> Any:
        vol = self.wait_for(
            f"volume {volume_id} ({what})",
            lambda: self.get_volume(volume_id),
            lambda v: v is None or v.status in done,
        )
        if vol is None:
            raise self.not_found("volume", volume_id)
        if vol.status.startswith("error"):
            raise PermanentError(
                f"volume {volume_id} went to {vol.status} during {what}",
                cloud=self.name,
                reason="VolumeError",
            )
        return vol

    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        tags = self.owned_tags(request.tags)
        if request.size_gib < 1:
            raise PermanentError(
                f"volume size must be >= 1 GiB, got {request.size_gib}",
                cloud=self.name,
                reason="BadRequest",
            )
        vol = self.volume_by_uid(tags[TAG_UID])
        if vol is None:
            args: dict[str, Any] = {
                "name": request.name,
                "size": request.size_gib,
                "metadata": encode_metadata(tags, self.name),
            }
            standard = request.volume_class == "standard"
            args["volume_type"] = (
                self.settings.get("volumeType") or None if standard else request.volume_class
            )
            if self.settings.get("availabilityZone"):
                args["availability_zone"] = self.settings["availabilityZone"]
            if request.source_image:
                args["image_id"] = request.source_image  # the volume's imageRef
            vol = self.call(
                f"creating volume {request.name}", lambda: self.block().create_volume(**args)
            )
        return self.volume_of(self.settle_volume(vol.id, "creation"))

    def update_volume(
        self, external_id: str, size_gib: int | None, attach_to: str | None, detach: bool
    ) -> ObservedVolume:
        """Grow (os-extend), detach, attach; converges when repeated."""
        vol = self.settle_volume(self.own_volume(external_id).id, "a task in progress")
        current = self.volume_of(vol)
        if size_gib is not None and size_gib != current.size_gib:
            if size_gib < current.size_gib:
                raise PermanentError(
                    f"volume {external_id} cannot shrink from {current.size_gib} to {size_gib} GiB",
                    cloud=self.name,
                    reason="VolumeShrink",
                )
            self.call(
                f"extending volume {external_id}",
                lambda: self.block().extend_volume(vol, size_gib),
            )
            self.wait_for(
                f"volume {external_id} extension",
                lambda: self.get_volume(external_id),
                lambda v: v is None or (v.status in RESTING and int(v.size or 0) >= size_gib),
            )
        if detach and current.attached_to is not None:
            server_id = current.attached_to
            self.call(
                f"detaching volume {external_id}",
                lambda: self.compute().delete_volume_attachment(server_id, external_id),
            )
            self.settle_volume(external_id, "detach", frozenset({"available", "error"}))
            current = self.volume_of(self.own_volume(external_id))
        if attach_to is not None and attach_to != current.attached_to:
            self._attach(external_id, current.attached_to, attach_to)
        return self.volume_of(self.own_volume(external_id))

    def _attach(self, volume_id: str, attached_to: str | None, server_id: str) -> None:
        if attached_to is not None:
            raise PermanentError(
                f"volume {volume_id} is attached to {attached_to}; detach it first",
                cloud=self.name,
                reason="VolumeInUse",
            )
        if self.observe_vm(server_id) is None:
            raise PermanentError(
                f"cannot attach volume {volume_id}: VM {server_id} not found",
                cloud=self.name,
                reason="NotFound",
            )
        self.call(
            f"attaching volume {volume_id} to {server_id}",
            lambda: self.compute().create_volume_attachment(server_id, volume=volume_id),
        )
        self.settle_volume(volume_id, "attach", frozenset({"in-use", "error"}))

    def delete_volume(self, external_id: str) -> None:
        """Delete and wait until Cinder no longer has it; absent is success."""
        vol = self.get_volume(external_id)
        if vol is None:
            return
        if not self.owns_resource(vol):
            raise self.not_managed("volume", external_id)
        if vol.attachments:
            raise PermanentError(
                f"volume {external_id} is attached to {self.volume_of(vol).attached_to}; "
                "detach it first",
                cloud=self.name,
                reason="VolumeInUse",
            )
        self.call(
            f"deleting volume {external_id}",
            lambda: self.block().delete_volume(vol, ignore_missing=True),
        )
        self.wait_for(
            f"volume {external_id} deletion",
            lambda: self.get_volume(external_id),
            lambda found: found is None,
        )
