"""OpenStackProvider: Nova servers, Cinder volumes and snapshots, Glance images (used and
imported), Swift containers.

All calls go through openstacksdk to the endpoints of the Keystone catalog
(spec.endpoint = the Keystone auth URL). A Hyper-V private cloud run by OpenStack's
Hyper-V compute driver is an OpenStack cloud to this driver: nothing Hyper-V specific.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reconciler.model.cloud import Capability, CloudInfo
from reconciler.model.keys import TAG_UID
from reconciler.model.observed import CloudInventory, Observed
from reconciler.providers.openstack.images import ImageMixin
from reconciler.providers.openstack.objects import ObjectMixin
from reconciler.providers.openstack.snapshots import SnapshotMixin
from reconciler.providers.openstack.tags import our_metadata_keys

_COMPUTE_CAPS = frozenset(
    {
        Capability.STOP,
        Capability.RESIZE,
        Capability.VOLUMES,
        Capability.VOLUME_SNAPSHOTS,
        Capability.IMAGE_IMPORT,
    }
)


class OpenStackProvider(ObjectMixin, SnapshotMixin, ImageMixin):
    """The ``spec.provider: openstack`` driver (thread-safe: one lazy Connection)."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return _COMPUTE_CAPS | self.swift_capabilities()

    def describe(self) -> CloudInfo:
        return self.prices.cloud_info(
            self.cloud,
            self.provider_name,
            self.capabilities,
            self.cloud.capacity,
            extra={"endpoint": self.cloud.endpoint, "interface": self.settings["interface"]},
        )

    def list_managed(self) -> CloudInventory:
        vms = self.owned_vms()
        volumes = tuple(self.volume_of(v) for v in self.owned_volumes())
        buckets = tuple(self.owned_buckets())
        return CloudInventory(self.name, vms, volumes, buckets)

    def find_by_uid(self, uid: str) -> Observed | None:
        server = self.server_by_uid(uid)
        if server is not None:
            return self.vm_of(server)
        vol = self.volume_by_uid(uid)
        if vol is not None:
            return self.volume_of(vol)
        return next((b for b in self.owned_buckets() if b.tags.get(TAG_UID) == uid), None)

    def forget(self, external_id: str) -> None:
        """Remove our reconciler.dev/* metadata from a server, volume or container.

        Absent, or not ours (e.g. a retry after a lost response), is success.
        """
        server = self.get_server(external_id)
        if server is not None:
            self._forget_metadata("server", server, self.compute().delete_server_metadata)
            return
        vol = self.get_volume(external_id)
        if vol is not None:
            self._forget_metadata("volume", vol, self.block().delete_volume_metadata)
            return
        if "/" not in external_id and Capability.BUCKETS in self.swift_capabilities():
            self.forget_bucket(external_id)

    def _forget_metadata(
        self, kind: str, resource: Any, delete: Callable[[Any, list[str]], object]
    ) -> None:
        """Delete our metadata keys from an owned server or volume."""
        keys = our_metadata_keys(resource.metadata or {})
        if keys and self.owns_resource(resource):
            self.call(f"forgetting {kind} {resource.id}", lambda: delete(resource, keys))
