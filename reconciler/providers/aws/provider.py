"""AwsProvider: EC2 instances, EBS volumes and S3 buckets of one account and region."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.model.artifacts import Chunks, ObjectInfo
from reconciler.model.keys import GROUP, TAG_OWNER, TAG_UID
from reconciler.model.observed import CloudInventory, Observed, ObservedBucket
from reconciler.providers.aws.core import tag_dict
from reconciler.providers.aws.images import AwsImages
from reconciler.providers.base import BucketRequest
from reconciler.providers.botoerrors import mapped


def _ours_only(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k} for k in sorted(tags) if k.startswith(GROUP + "/")]


class AwsProvider(AwsImages):
    """The AWS driver (``spec.provider: aws``); thread-safe, one boto3 client per service.

    VMs are EC2 instances, volumes EBS volumes, buckets S3 buckets; everything carries the
    reconciler.dev/* ownership tags and nothing without our owner tag is ever touched.
    """

    def list_managed(self) -> CloudInventory:
        owner = [{"Name": f"tag:{TAG_OWNER}", "Values": [self.context.owner]}]
        with mapped(self.cloud.name, "list managed resources"):
            instances = [i for i in self.instances(owner) if self.owns(tag_dict(i.get("Tags")))]
            sizes = self.root_sizes(instances)
            vms = tuple(self.to_vm(i, sizes.get(str(i["InstanceId"]), 0)) for i in instances)
            volumes = tuple(self.to_volume(v) for v in self.volumes(owner))
        buckets = tuple(self.buckets.list_managed())
        return CloudInventory(self.cloud.name, vms, volumes, buckets)

    def find_by_uid(self, uid: str) -> Observed | None:
        with mapped(self.cloud.name, f"find uid {uid}"):
            inst = self._by_uid(uid)
            if inst is not None:
                return self.observed(inst)
            for vol in self.volumes([{"Name": f"tag:{TAG_UID}", "Values": [uid]}]):
                return self.to_volume(vol)
        return self.buckets.find_by_uid(uid)

    # -- buckets ---------------------------------------------------------------------
    def create_bucket(self, request: BucketRequest) -> ObservedBucket:
        """An S3 bucket named from ``request.name`` (lowercased, DNS-valid), tagged."""
        return self.buckets.create(request)

    def update_bucket(self, external_id: str, versioning: bool) -> ObservedBucket:
        return self.buckets.update(external_id, versioning)

    def delete_bucket(self, external_id: str) -> None:
        """Delete our empty bucket (a non-empty one is PermanentError BucketNotEmpty)."""
        self.buckets.delete(external_id)

    def put_object(
        self, bucket: str, key: str, chunks: Chunks, metadata: Mapping[str, str]
    ) -> ObjectInfo:
        """PutObject, or a multipart upload beyond 8 MiB (see s3store)."""
        return self.buckets.objects.put_object(bucket, key, chunks, metadata)

    def get_object(self, bucket: str, key: str) -> Chunks:
        return self.buckets.objects.get_object(bucket, key)

    def head_object(self, bucket: str, key: str) -> ObjectInfo | None:
        return self.buckets.objects.head_object(bucket, key)

    def list_objects(self, bucket: str, prefix: str = "") -> list[ObjectInfo]:
        return self.buckets.objects.list_objects(bucket, prefix)

    def delete_object(self, bucket: str, key: str) -> None:
        self.buckets.objects.delete_object(bucket, key)

    # -- forget ----------------------------------------------------------------------
    def _untag(self, resource_ids: list[str], tags: Mapping[str, str]) -> None:
        keys = _ours_only(tags)
        if resource_ids and keys:
            self.ec2.delete_tags(Resources=resource_ids, Tags=keys)

    def _forget_instance(self, inst: Mapping[str, Any]) -> None:
        tags = tag_dict(inst.get("Tags"))
        ids = [str(inst["InstanceId"])]
        flt = [
            {"Name": "attachment.instance-id", "Values": ids},
            {"Name": f"tag:{TAG_UID}", "Values": [tags.get(TAG_UID, "")]},
        ]
        for page in self.ec2.get_paginator("describe_volumes").paginate(Filters=flt):
            ids.extend(str(v["VolumeId"]) for v in page["Volumes"])
        self._untag(ids, tags)

    def forget(self, external_id: str) -> None:
        """Remove our reconciler.dev/* tags (a VM's boot disk too); absent or foreign is a
        no-op."""
        with mapped(self.cloud.name, f"forget {external_id}"):
            if external_id.startswith("i-"):
                inst = self.instance(external_id)
                if inst is not None and self.owns(tag_dict(inst.get("Tags"))):
                    self._forget_instance(inst)
                return
            if external_id.startswith("vol-"):
                vol = self.volume(external_id)
                tags = tag_dict(vol.get("Tags")) if vol else {}
                if vol is not None and self.owns(tags):
                    self._untag([external_id], tags)
                return
        self.buckets.forget(external_id)
