"""Images on AWS: raw disk bytes imported as an AMI through the EBS direct API.

``import_image``: StartSnapshot (tagged with the image's tags plus its size and
SHA-256), the bytes streamed in with PutSnapshotBlock (blocks.py; each block with its
SHA-256, which EBS checks) while the whole stream is hashed, CompleteSnapshot only if
size and SHA-256 match the request, then RegisterImage of that snapshot as the root
device (/dev/xvda, x86_64, HVM, ENA; the boot mode is the instance type's default).
On a mismatch or any failure the snapshot is deleted: nothing is left behind.

Idempotent by the uid tag: a retry finds the AMI by uid (or, when a RegisterImage
response was lost, by its name, which carries the uid) and returns it without reading
the bytes; a snapshot a dead attempt left unregistered is deleted and made again.

The image's snapshot is tagged ``reconciler.dev/image: <ami id>`` after registration,
so ``delete_image`` (DeregisterImage, then DeleteSnapshot) and volumes made from the
image find it even where the AMI's block device mapping says otherwise (moto).
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from botocore.exceptions import ClientError

from reconciler.model.artifacts import Chunks, ObservedImage
from reconciler.model.errors import PermanentError
from reconciler.model.keys import GROUP, TAG_OWNER, TAG_UID
from reconciler.model.observed import ObservedVolume
from reconciler.providers.aws import blocks
from reconciler.providers.aws.core import tag_dict, tag_list
from reconciler.providers.aws.snapshots import GIB, TAG_SHA256, TAG_SIZE, AwsSnapshots
from reconciler.providers.base import ImageRequest, VolumeRequest
from reconciler.providers.botoerrors import error_code, mapped

#: On an image's snapshot: the AMI registered from it.
TAG_IMAGE = f"{GROUP}/image"
ROOT_DEVICE = "/dev/xvda"
_AMI_GONE = frozenset(
    {"InvalidAMIID.NotFound", "InvalidAMIID.Malformed", "InvalidAMIID.Unavailable"}
)
_LIVE = frozenset({"available", "pending"})


def ami_name(name: str, uid: str) -> str:
    """An AMI name (unique per account and region, 3-128 of [A-Za-z0-9()./_ -]) that
    carries the uid, so a lost RegisterImage response is found again by name."""
    safe = re.sub(r"[^A-Za-z0-9()./_-]", "-", name)[:60] or "image"
    return f"{safe}-{re.sub(r'[^A-Za-z0-9]', '', uid)[:64]}"


class AwsImages(AwsSnapshots):
    """Image import, lookup and deletion; volumes from images (VMs use run_instances)."""

    def _to_image(self, ami: dict[str, Any]) -> ObservedImage:
        tags = tag_dict(ami.get("Tags"))
        size = tags.get(TAG_SIZE, "0")
        return ObservedImage(
            cloud=self.cloud.name,
            external_id=str(ami["ImageId"]),
            name=str(ami.get("Name", "")),
            size_bytes=int(size) if size.isdigit() else 0,
            sha256=tags.get(TAG_SHA256, ""),
            tags=tags,
        )

    def _amis(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found = self.ec2.describe_images(Owners=["self"], Filters=filters)["Images"]
        return [dict(a) for a in found if a.get("State") in _LIVE]

    def _ami_by_uid(self, uid: str) -> dict[str, Any] | None:
        for ami in self._amis([{"Name": f"tag:{TAG_UID}", "Values": [uid]}]):
            if self.owns(tag_dict(ami.get("Tags"))):
                return ami
        return None

    def list_images(self) -> list[ObservedImage]:
        with mapped(self.cloud.name, "list images"):
            amis = self._amis([{"Name": f"tag:{TAG_OWNER}", "Values": [self.context.owner]}])
        return [self._to_image(a) for a in amis if self.owns(tag_dict(a.get("Tags")))]

    def find_image(self, uid: str) -> ObservedImage | None:
        with mapped(self.cloud.name, f"find image {uid}"):
            ami = self._ami_by_uid(uid)
        return self._to_image(ami) if ami is not None else None

    def import_image(self, request: ImageRequest, chunks: Chunks) -> ObservedImage:
        """Import the bytes as an AMI (see the module docstring)."""
        tags = self.owned_tags(request.tags)
        tags.update({TAG_SHA256: request.sha256, TAG_SIZE: str(request.size_bytes)})
        uid, name = tags[TAG_UID], ami_name(request.name, tags[TAG_UID])
        with mapped(self.cloud.name, f"import image {request.name}"):
            done = self._ami_by_uid(uid) or self._adopt(name, tags)
            if done is not None:
                return self._to_image(done)
            for snap in self.snapshots([{"Name": f"tag:{TAG_UID}", "Values": [uid]}]):
                if TAG_SHA256 in tag_dict(snap.get("Tags")):  # a dead attempt's upload
                    self.discard_snapshot(str(snap["SnapshotId"]))
        if request.size_bytes < 1:
            raise PermanentError(
                f"image {request.name}: size_bytes must be positive",
                cloud=self.cloud.name,
                reason="BadRequest",
            )
        snapshot_id = self._upload(request, tags, chunks)
        try:
            with mapped(self.cloud.name, f"register image {name}"):
                ami_id = self._register(name, request, tags, snapshot_id)
        except PermanentError:  # not registered: the snapshot is of no use
            self.discard_snapshot(snapshot_id)
            raise
        # A transient failure (a lost response) keeps the snapshot: the retry adopts the
        # AMI by name if it was registered, else deletes the snapshot and uploads again.
        with mapped(self.cloud.name, f"tag image {ami_id}"):
            # AWS tags the AMI atomically with RegisterImage; moto ignores its
            # TagSpecifications, so the tags are set again (a no-op on AWS).
            self.ec2.create_tags(Resources=[ami_id], Tags=tag_list(tags))
            mark = [{"Key": TAG_IMAGE, "Value": ami_id}]
            self.ec2.create_tags(Resources=[snapshot_id], Tags=mark)
        return self._to_image({"ImageId": ami_id, "Name": name, "Tags": tag_list(tags)})

    def _adopt(self, name: str, tags: dict[str, str]) -> dict[str, Any] | None:
        """The AMI a lost RegisterImage made (our account, the uid-bearing name), tagged
        now if it came back untagged; None if there is none. Another owner's is NameTaken."""
        for ami in self._amis([{"Name": "name", "Values": [name]}]):
            found = tag_dict(ami.get("Tags"))
            if found.get(TAG_UID) not in (None, tags[TAG_UID]):
                raise PermanentError(
                    f"an AMI named {name} already exists for another resource",
                    cloud=self.cloud.name,
                    reason="NameTaken",
                )
            if found != {**found, **tags}:
                self.ec2.create_tags(Resources=[ami["ImageId"]], Tags=tag_list(tags))
                ami["Tags"] = tag_list({**found, **tags})
            return ami
        return None

    def _upload(self, request: ImageRequest, tags: dict[str, str], chunks: Chunks) -> str:
        """Stream the bytes into a new snapshot, completed only if they match the
        request; the id of the completed snapshot. Deleted again on any failure."""
        action = f"import image {request.name}"
        with mapped(self.cloud.name, action):
            started = self.ebs.start_snapshot(
                VolumeSize=max(1, -(-request.size_bytes // GIB)),
                Tags=tag_list(tags),
                Description=f"reconciler image {request.name}",
                ClientToken=str(uuid.uuid4()),  # botocore's own retries reuse it
            )
        snapshot_id, block_size = str(started["SnapshotId"]), int(started["BlockSize"])
        written: blocks.Written | None = None
        try:
            with mapped(self.cloud.name, action):
                written = blocks.put_blocks(
                    self.ebs, snapshot_id, block_size, chunks, request.size_bytes
                )
            self._check(request, written)
            with mapped(self.cloud.name, action):
                self.ebs.complete_snapshot(
                    SnapshotId=snapshot_id, ChangedBlocksCount=written.blocks
                )
                self.wait("snapshot_completed", snapshot_id, SnapshotIds=[snapshot_id])
        except BaseException:
            self.discard_snapshot(snapshot_id, written.blocks if written is not None else 0)
            raise
        return snapshot_id

    def _check(self, request: ImageRequest, written: blocks.Written) -> None:
        if (written.size, written.sha256) == (request.size_bytes, request.sha256):
            return
        got = (
            f"more than {request.size_bytes} bytes"
            if written.size > request.size_bytes
            else f"{written.size} bytes with sha256 {written.sha256[:12]}..."
        )
        raise PermanentError(
            f"image {request.name}: received {got}, expected {request.size_bytes} bytes "
            f"with sha256 {request.sha256[:12]}...; nothing was kept",
            cloud=self.cloud.name,
            reason="ChecksumMismatch",
        )

    def _register(
        self, name: str, request: ImageRequest, tags: dict[str, str], snapshot_id: str
    ) -> str:
        """RegisterImage of the snapshot as the root device; the AMI id."""
        gib = max(1, -(-request.size_bytes // GIB))
        ebs = {"SnapshotId": snapshot_id, "VolumeSize": gib, "DeleteOnTermination": True}
        made = self.ec2.register_image(
            Name=name,
            Description=f"reconciler image {request.name}",
            Architecture="x86_64",
            VirtualizationType="hvm",
            EnaSupport=True,
            RootDeviceName=ROOT_DEVICE,
            BlockDeviceMappings=[{"DeviceName": ROOT_DEVICE, "Ebs": {**ebs, "VolumeType": "gp3"}}],
            TagSpecifications=[{"ResourceType": "image", "Tags": tag_list(tags)}],
        )
        return str(made["ImageId"])

    def delete_image(self, external_id: str) -> None:
        """Deregister our AMI and delete its snapshot(s); absent is success."""
        if not external_id.startswith("ami-"):
            return
        with mapped(self.cloud.name, f"delete image {external_id}"):
            try:
                found = self.ec2.describe_images(ImageIds=[external_id])["Images"]
            except ClientError as exc:
                if error_code(exc) not in _AMI_GONE:
                    raise
                found = []
            uid = ""
            for ami in (a for a in found if a.get("State") != "deregistered"):
                tags = tag_dict(ami.get("Tags"))
                if not self.owns(tags):
                    raise self.not_managed("image", external_id)
                uid = tags.get(TAG_UID, "")
                self.ec2.deregister_image(ImageId=external_id)
            for snapshot_id in self._image_snapshot_ids(external_id, uid):
                self.ec2.delete_snapshot(SnapshotId=snapshot_id)

    def _image_snapshot_ids(self, ami_id: str, uid: str) -> list[str]:
        """Our snapshots of image ``ami_id`` (tagged with it, or with its uid)."""
        found = self.snapshots([{"Name": f"tag:{TAG_IMAGE}", "Values": [ami_id]}])
        if uid:
            found += self.snapshots([{"Name": f"tag:{TAG_UID}", "Values": [uid]}])
        ids = {str(s["SnapshotId"]) for s in found if TAG_SHA256 in tag_dict(s.get("Tags"))}
        return sorted(ids)

    def create_volume(self, request: VolumeRequest) -> ObservedVolume:
        """An empty volume, or with ``source_image`` one made from our image's snapshot
        (at least the snapshot's size). A retry finds the volume by uid even after the
        image was deleted."""
        image = request.source_image
        if image is None:
            return super().create_volume(request)
        uid = [{"Name": f"tag:{TAG_UID}", "Values": [request.tags.get(TAG_UID, "")]}]
        with mapped(self.cloud.name, f"create volume {request.name} from image {image}"):
            done = self.volumes(uid)
            if done:
                return self.to_volume(done[0])
            snapshot = self._image_snapshot(image)
        return self._create_volume(request, snapshot)

    def _image_snapshot(self, image: str) -> tuple[str, int]:
        """(snapshot id, GiB) of our image ``image``; NotFound if there is none."""
        amis = self._amis([{"Name": "image-id", "Values": [image]}])
        tags = tag_dict(amis[0].get("Tags")) if amis else {}
        if not amis or not self.owns(tags):
            raise self.not_found("image", image)
        ids = self._image_snapshot_ids(image, tags.get(TAG_UID, ""))
        for snap in self.snapshots([{"Name": "snapshot-id", "Values": ids}]) if ids else []:
            return str(snap["SnapshotId"]), int(snap["VolumeSize"])
        raise self.not_found("snapshot of image", image)
