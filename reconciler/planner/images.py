"""Images imported into a cloud on demand, and imported copies no longer wanted.

An Image with ``import: OnDemand`` is imported into a cloud before the first VM made
from it there (its boot disk) or the first Volume made from one of its disks (an OVF
package's data disk). Each (Image version, disk, cloud) has a deterministic uid: an
import already observed there is used as it is (no action), one this plan adds is
shared by every VM and Volume that needs it. Imported copies whose Image is gone, no
longer imported on demand, or changed (another url or checksum: another uid) are
deleted; VMs and volumes made from them keep running (they hold their own copies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.model.artifacts import TAG_IMAGE_DISK, ObservedImage, bucket_url
from reconciler.model.cloud import Capability
from reconciler.model.keys import TAG_UID, ResourceKey, ownership_tags
from reconciler.model.plan import ActionType
from reconciler.model.specs import ImageDisk, ImageSpec, VMSpec, VolumeSpec
from reconciler.planner.buckets import bucket_copies
from reconciler.planner.collect import Collector, action_id, resource_uid
from reconciler.planner.inputs import PlanInput


@dataclass(frozen=True, slots=True)
class ImageSource:
    """Where a new VM or volume in a cloud takes an Image's bytes from: an image
    already imported there (``image_id``), or the import action this plan runs first
    (``action``; its id is recorded under ``resolve`` when it has run)."""

    image_id: str = ""
    action: str = ""
    resolve: str = ""

    def params(self, image_param: str, resolve_param: str) -> dict[str, str]:
        """The create action's params naming the image (known id or resolver key)."""
        if self.image_id:
            return {image_param: self.image_id}
        return {resolve_param: self.resolve}

    @property
    def depends_on(self) -> tuple[str, ...]:
        return (self.action,) if self.action else ()


def _version(image: ImageSpec) -> str:
    return image.checksum or (image.disks[0].sha256 if image.disks else "") or image.url


def _disk(image: ImageSpec, name: str) -> ImageDisk | None:
    """The disk called ``name`` ("": the boot disk, None for a single-file Image)."""
    if not name:
        return image.disks[0] if image.disks else None
    return next((d for d in image.disks if d.name == name), None)


def _disk_name(image: ImageSpec, name: str | None) -> str:
    """ "" for the boot disk (however it is named), else the disk's name."""
    if not name or (image.disks and image.disks[0].name == name):
        return ""
    return name


def image_uid(owner: str, image: ImageSpec, cloud: str, disk: str) -> str:
    salt = f"image:{_version(image)}" + (f":disk:{disk}" if disk else "")
    return resource_uid(owner, image.key, cloud, salt)


def _bucket_copies(inp: PlanInput, image: ImageSpec, cloud: str) -> dict[str, list[dict[str, str]]]:
    """For each Bucket a ``bucket:`` url of ``image`` names: its copies as observed
    (cloud, bucket id), the one on ``cloud`` first (read there: no egress)."""
    names = {
        named[0] for u in (image.url, *(d.url for d in image.disks)) if (named := bucket_url(u))
    }
    if not names:
        return {}
    copies = bucket_copies(inp.inventory)
    out: dict[str, list[dict[str, str]]] = {}
    for name in sorted(names):
        found = copies.get(ResourceKey("Bucket", image.key.namespace, name), [])
        ordered = sorted(found, key=lambda b: (b.cloud != cloud, b.cloud))
        out[name] = [{"cloud": b.cloud, "bucket": b.external_id} for b in ordered]
    return out


def _import_params(
    inp: PlanInput, col: Collector, image: ImageSpec, cloud: str, disk: str
) -> dict[str, Any]:
    uid = image_uid(col.owner, image, cloud, disk)
    disks = [
        {
            "name": d.name,
            "file": d.file,
            "url": d.url,
            "format": d.format,
            "compression": d.compression,
            "sha256": d.sha256,
            "sizeBytes": d.size_bytes,
        }
        for d in image.disks
    ]
    tags = ownership_tags(col.owner, image.key, uid)
    if disk:
        tags[TAG_IMAGE_DISK] = disk
    suffix = f"-{disk}" if disk else ""
    return {
        "name": f"{image.key.namespace}-{image.key.name}{suffix}-{uid[:8]}"[:63],
        "image": {
            "key": str(image.key),
            "format": image.format,
            "url": image.url,
            "checksum": image.checksum,
            "disk": disk,
            "disks": disks,
            "bucketCopies": _bucket_copies(inp, image, cloud),
        },
        "tags": tags,
    }


def _observed(inp: PlanInput, cloud: str, uid: str) -> ObservedImage | None:
    inventory = inp.inventory.clouds.get(cloud)
    images = inventory.images if inventory is not None else ()
    return next((i for i in images if i.tags.get(TAG_UID) == uid), None)


def _importable(inp: PlanInput, image: ImageSpec | None, cloud: str) -> bool:
    info = inp.clouds.get(cloud)
    if image is None or not image.url or not image.import_on_demand or info is None:
        return False
    return Capability.IMAGE_IMPORT in info.capabilities


def _source(
    inp: PlanInput, col: Collector, image: ImageSpec, cloud: str, disk: str, user: str
) -> ImageSource:
    """The imported image (found, or imported by an action added once per plan)."""
    uid = image_uid(col.owner, image, cloud, disk)
    found = _observed(inp, cloud, uid)
    if found is not None:
        return ImageSource(image_id=found.external_id)
    what = f"disk {disk} of " if disk else ""
    ident = action_id(ActionType.CREATE, image.key, cloud, f"disk:{disk}" if disk else None)
    if not col.has(ident):
        col.add(
            ActionType.CREATE,
            image.key,
            cloud,
            f"imported on demand: {user} is made from {what}it on {cloud}",
            id_suffix=f"disk:{disk}" if disk else None,
            params=_import_params(inp, col, image, cloud, disk),
        )
    resolve = f"{image.key}@{cloud}" + (f"#{disk}" if disk else "")
    return ImageSource(action=ident, resolve=resolve)


def import_for(inp: PlanInput, col: Collector, spec: VMSpec, cloud: str) -> ImageSource | None:
    """Where a VM created in ``cloud`` boots from, when its Image is imported on demand;
    None when the VM boots from an image the cloud already names."""
    if not spec.image:
        return None
    image = inp.desired.images.get(ResourceKey("Image", spec.key.namespace, spec.image))
    if image is None or not _importable(inp, image, cloud):
        return None
    return _source(inp, col, image, cloud, "", str(spec.key))


def volume_source(
    inp: PlanInput, col: Collector, spec: VolumeSpec, cloud: str
) -> ImageSource | None:
    """Where a Volume made from an Image's disk takes its bytes from in ``cloud``; None
    for a blank volume (no image, or a disk with no file: a blank disk)."""
    if not spec.image:
        return None
    image = inp.desired.images.get(ResourceKey("Image", spec.key.namespace, spec.image))
    if image is None or not _importable(inp, image, cloud):
        return None
    disk = _disk_name(image, spec.image_disk)
    found = _disk(image, disk)
    if disk and (found is None or not (found.file or found.url)):
        return None
    return _source(inp, col, image, cloud, disk, str(spec.key))


def _wanted_uids(inp: PlanInput, owner: str, image: ImageSpec, cloud: str) -> set[str]:
    names = [""] + [d.name for d in image.disks[1:]]
    return {image_uid(owner, image, cloud, n) for n in names}


def plan_image_cleanup(inp: PlanInput, col: Collector) -> None:
    """Delete imported copies of Images that are gone, changed, or no longer imported
    (a migration's images are its own business: only Image keys are considered)."""
    for cloud, inventory in sorted(inp.inventory.clouds.items()):
        for found in inventory.images:
            key = found.key
            if key is None or key.kind != "Image":
                continue
            image = inp.desired.images.get(key)
            if image is None:
                why = "no manifest declares its Image"
            elif not _importable(inp, image, cloud):
                why = "its Image is no longer imported on demand"
            elif found.tags.get(TAG_UID) not in _wanted_uids(inp, col.owner, image, cloud):
                why = "its Image changed (another url, checksum or disk): a new copy replaces it"
            else:
                continue
            col.add(
                ActionType.DELETE,
                key,
                cloud,
                f"imported copy {found.name} ({found.external_id}): {why}",
                external_id=found.external_id,
            )
