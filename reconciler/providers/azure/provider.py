"""AzureProvider: VMs and managed disks through Azure Resource Manager, buckets as Blob
containers. Real SDK code (azure-mgmt-compute, azure-mgmt-network, azure-storage-blob);
see docs/providers/azure.md for what is tested against what.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import replace

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from reconciler.model.artifacts import Chunks, ObjectInfo
from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.errors import PermanentError
from reconciler.model.observed import (
    CloudInventory,
    Observed,
    ObservedBucket,
    ObservedVM,
    ObservedVolume,
)
from reconciler.model.specs import CloudSpec
from reconciler.providers.azure.arm import Arm
from reconciler.providers.azure.blobs import Blobs
from reconciler.providers.azure.compute import VMs
from reconciler.providers.azure.credentials import arm_client_options, arm_credential, blob_service
from reconciler.providers.azure.disks import Disks
from reconciler.providers.azure.errors import azure_errors
from reconciler.providers.azure.settings import parse_settings
from reconciler.providers.azure.snapshots import Snapshots
from reconciler.providers.base import (
    BucketRequest,
    Provider,
    ProviderContext,
    VMRequest,
    VMUpdate,
    VolumeRequest,
)
from reconciler.providers.catalog import CloudPrices, build_offers, catalog_for


class AzureProvider(Provider):
    """One Azure subscription + resource group + location (+ optional storage account)."""

    provider_name = "azure"

    def __init__(self, cloud: CloudSpec, context: ProviderContext) -> None:
        super().__init__(cloud, context)
        self.settings = parse_settings(cloud)
        credential = arm_credential(cloud, self.settings, context.credentials)
        options = arm_client_options(self.settings, credential)
        sub = self.settings.subscription_id
        self.arm = Arm(
            cloud=cloud.name,
            owner=context.owner,
            settings=self.settings,
            compute=ComputeManagementClient(credential, sub, **options),
            network=NetworkManagementClient(credential, sub, **options),
        )
        self.catalog = catalog_for(cloud)
        self._offers: dict[str, Offer] | None = None
        self._lock = threading.Lock()
        self.vms = VMs(self.arm, self._offer_map)
        self.prices = CloudPrices.of(cloud, self.catalog)
        self.disks = Disks(self.arm, self.vms, self.prices.block_per_gib_month)
        self.snapshots = Snapshots(self.arm, self.disks)
        service = blob_service(cloud, context.credentials)
        self.blobs = Blobs(self.arm, service) if service is not None else None

    # -- read-only -----------------------------------------------------------------------
    def describe(self) -> CloudInfo:
        caps = {
            Capability.STOP,
            Capability.RESIZE,
            Capability.VOLUMES,
            Capability.VOLUME_SNAPSHOTS,
        }
        if self.blobs is not None:
            caps.add(Capability.BUCKETS)
            if self.settings.blob_versioning:
                caps.add(Capability.BUCKET_VERSIONING)
        return self.prices.cloud_info(
            self.cloud,
            self.provider_name,
            frozenset(caps),
            self.cloud.capacity,
            region=self.settings.location,
            extra={
                "subscriptionId": self.settings.subscription_id,
                "resourceGroup": self.settings.resource_group,
                "location": self.settings.location,
            },
        )

    def offers(self) -> list[Offer]:
        """Priced offers (catalog + inline) for the sizes this location serves, with the
        vCPU and memory Azure reports (vmSizes list); fetched once per provider."""
        return list(self._offer_map().values())

    def _offer_map(self) -> dict[str, Offer]:
        with self._lock:
            if self._offers is None:
                self._offers = self._joined()
            return self._offers

    def _joined(self) -> dict[str, Offer]:
        location = self.settings.location
        with azure_errors(self.cloud.name, f"listing VM sizes in {location}"):
            sizes = list(self.arm.compute.virtual_machine_sizes.list(location))
        served = {str(s.name): s for s in sizes if s.name}
        result: dict[str, Offer] = {}
        for offer in build_offers(self.cloud, self.catalog):
            size = served.get(offer.name)
            if size is None:
                continue
            vcpus = int(size.number_of_cores or offer.vcpus)
            memory = round(size.memory_in_mb / 1024, 3) if size.memory_in_mb else offer.memory_gib
            result[offer.name] = replace(offer, vcpus=vcpus, memory_gib=memory)
        return result

    def list_managed(self) -> CloudInventory:
        vms = tuple(self.vms.observed(vm) for vm in self.vms.list_owned())
        volumes = tuple(self.disks.observed(d) for d in self.disks.list_owned())
        buckets = tuple(self.blobs.list_owned()) if self.blobs else ()
        return CloudInventory(self.cloud.name, vms, volumes, buckets)

    def observe_vm(self, external_id: str) -> ObservedVM | None:
        vm = self.vms.ours(external_id)
        return self.vms.observed(vm) if vm is not None else None

    def find_by_uid(self, uid: str) -> Observed | None:
        vm = self.vms.by_uid(uid)
        if vm is not None:
            return self.vms.observed(vm)
        disk = self.disks.by_uid(uid)
        if disk is not None:
            return self.disks.observed(disk)
        return self.blobs.by_uid(uid) if self.blobs else None

    # -- VMs -----------------------------------------------------------------------------
    def create_vm(self, request: VMRequest) -> ObservedVM:
        return self.vms.create(request)

    def update_vm(self, external_id: str, update: VMUpdate) -> ObservedVM:
        return self.vms.update(external_id, update)

    def delete_vm(self, external_id: str) -> None:
        self.vms.delete(external_id)

    # -- volumes -------------------------------------------------------------------------
    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        return self.disks.create(request)

    def update_volume(
        self, external_id: str, size_gib: int | None, attach_to: str | None, detach: bool
    ) -> ObservedVolume:
        return self.disks.update(external_id, size_gib, attach_to, detach)

    def delete_volume(self, external_id: str) -> None:
        self.disks.delete(external_id)

    # -- snapshots -----------------------------------------------------------------------
    def snapshot_volume(self, external_id: str, tags: Mapping[str, str]) -> str:
        """A full managed-disk snapshot (createOption Copy), idempotent by the uid tag."""
        return self.snapshots.create(external_id, self.owned_tags(tags))

    def list_snapshots(self, volume_id: str) -> list[str]:
        return self.snapshots.of_volume(volume_id)

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.snapshots.delete(snapshot_id)

    # -- buckets -------------------------------------------------------------------------
    def _need_blobs(self) -> Blobs:
        if self.blobs is None:
            raise PermanentError(
                "buckets need storageConnectionString or "
                "storageAccountUrl + storageAccountKey in the Cloud's secret",
                self.cloud.name,
                "MissingCredentials",
            )
        return self.blobs

    def create_bucket(self, request: BucketRequest) -> ObservedBucket:
        return self._need_blobs().create(request)

    def update_bucket(self, external_id: str, versioning: bool) -> ObservedBucket:
        return self._need_blobs().update(external_id, versioning)

    def delete_bucket(self, external_id: str) -> None:
        if self.blobs is not None:
            self.blobs.delete(external_id)

    def _object_blobs(self) -> Blobs:
        """The Blob store for object calls; NotSupported without storage credentials."""
        if self.blobs is None:
            raise self.unsupported("objects", Capability.BUCKETS)
        return self.blobs

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """A block blob: one Put Blob, or staged 8 MiB blocks and one commit."""
        return self._object_blobs().put_object(bucket, key, chunks, metadata)

    def get_object(self, bucket: str, key: str) -> Chunks:
        return self._object_blobs().get_object(bucket, key)

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        return self._object_blobs().head_object(bucket, key)

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        return self._object_blobs().list_objects(bucket, prefix)

    def delete_object(self, bucket: str, key: str) -> None:
        self._object_blobs().delete_object(bucket, key)

    def forget(self, external_id: str) -> None:
        """Remove our tags (VM, disk) or metadata (container); absent is success."""
        if self.arm.name_of(external_id, "virtualMachines"):
            vm = self.vms.ours(external_id)
            if vm is not None:
                self.vms.forget(vm)
        elif self.arm.name_of(external_id, "disks"):
            disk = self.disks.ours(external_id)
            if disk is not None:
                self.disks.forget(disk)
        elif self.blobs is not None:
            self.blobs.forget(external_id)
