"""Cinder volume snapshots, owned through snapshot metadata like volumes.

A snapshot carries the request's tags as Cinder metadata (the same ``reconciler.dev:*``
encoding as volumes) and is found again by its uid, so a create retried after a lost
response returns the snapshot the first attempt made. An attached volume is snapshotted
with ``force`` (Cinder refuses an ``in-use`` volume otherwise before microversion 3.66):
the copy is crash-consistent, as on the other clouds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model.errors import PermanentError
from reconciler.model.keys import TAG_UID
from reconciler.providers.openstack.core import with_uid
from reconciler.providers.openstack.tags import encode_metadata
from reconciler.providers.openstack.volumes import VolumeMixin

#: Statuses a snapshot rests in (Cinder's snapshot statuses; see the block-storage API).
SNAPSHOT_RESTING = frozenset({"available", "error", "error_deleting"})


class SnapshotMixin(VolumeMixin):
    """snapshot_volume / list_snapshots / delete_snapshot on Cinder."""

    def _snapshots(self, what: str, **query: str) -> list[Any]:
        """Our snapshots (detailed list filtered server-side by ``query``, client-side
        by owner)."""
        listed = self.call(what, lambda: list(self.block().snapshots(details=True, **query)))
        return [s for s in listed if self.owns_resource(s)]

    def get_snapshot(self, snapshot_id: str) -> Any | None:
        return self.get_or_none(
            f"reading snapshot {snapshot_id}", lambda: self.block().get_snapshot(snapshot_id)
        )

    def _settle_snapshot(self, snapshot_id: str, what: str) -> Any:
        return self.wait_for(
            f"snapshot {snapshot_id} ({what})",
            lambda: self.get_snapshot(snapshot_id),
            lambda s: s is None or s.status in SNAPSHOT_RESTING,
        )

    def snapshot_volume(self, external_id: str, tags: Mapping[str, str]) -> str:
        """Snapshot our volume; idempotent by the uid tag; waits until ``available``."""
        owned = self.owned_tags(tags)
        vol = self.own_volume(external_id)
        snap = with_uid(
            self._snapshots(f"listing snapshots of volume {external_id}", volume_id=vol.id),
            owned[TAG_UID],
        )
        if snap is None:
            args = {
                "volume_id": vol.id,
                "name": f"{vol.name or vol.id}-{owned[TAG_UID]}"[:255],
                "metadata": encode_metadata(owned, self.name),
                "force": vol.status == "in-use",
            }
            snap = self.call(
                f"snapshotting volume {external_id}", lambda: self.block().create_snapshot(**args)
            )
        settled = self._settle_snapshot(snap.id, "creation")
        if settled is None:
            raise self.not_found("snapshot", snap.id)
        if settled.status != "available":
            raise PermanentError(
                f"snapshot {snap.id} of volume {external_id} went to {settled.status}",
                cloud=self.name,
                reason="SnapshotError",
            )
        return str(settled.id)

    def list_snapshots(self, volume_id: str) -> list[str]:
        """Ids of our snapshots of ``volume_id`` (Cinder filters by ``volume_id``)."""
        found = self._snapshots(f"listing snapshots of volume {volume_id}", volume_id=volume_id)
        return [str(s.id) for s in found if s.status != "deleting"]

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete our snapshot and wait until Cinder no longer has it; absent is success."""
        snap = self.get_snapshot(snapshot_id)
        if snap is None:
            return
        if not self.owns_resource(snap):
            raise self.not_managed("snapshot", snapshot_id)
        if snap.status not in SNAPSHOT_RESTING | {"deleting"}:
            snap = self._settle_snapshot(snapshot_id, "a task in progress")
        if snap is not None and snap.status != "deleting":
            self.call(
                f"deleting snapshot {snapshot_id}",
                lambda: self.block().delete_snapshot(snapshot_id, ignore_missing=True),
            )
        self.wait_for(
            f"snapshot {snapshot_id} deletion",
            lambda: self.get_snapshot(snapshot_id),
            lambda found: found is None,
        )
