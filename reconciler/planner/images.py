"""Images imported into a cloud on demand, before the first VM made from them there."""

from __future__ import annotations

from typing import Any

from reconciler.model.cloud import Capability
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.plan import ActionType
from reconciler.model.specs import ImageSpec, VMSpec
from reconciler.planner.collect import Collector, action_id, resource_uid
from reconciler.planner.inputs import PlanInput


def _image_params(col: Collector, image: ImageSpec, cloud: str) -> dict[str, Any]:
    version = image.checksum or (image.disks[0].sha256 if image.disks else "") or image.url
    uid = resource_uid(col.owner, image.key, cloud, f"image:{version}")
    disks = [
        {"name": d.name, "file": d.file, "format": d.format, "compression": d.compression}
        for d in image.disks
    ]
    return {
        "name": f"{image.key.namespace}-{image.key.name}-{uid[:8]}"[:63],
        "image": {
            "key": str(image.key),
            "format": image.format,
            "url": image.url,
            "disks": disks,
        },
        "tags": ownership_tags(col.owner, image.key, uid),
    }


def import_for(inp: PlanInput, col: Collector, spec: VMSpec, cloud: str) -> str | None:
    """The id of the action importing ``spec``'s Image into ``cloud`` (added once per
    plan), or None when the VM boots from an image the cloud already names."""
    if not spec.image:
        return None
    key = ResourceKey("Image", spec.key.namespace, spec.image)
    image = inp.desired.images.get(key)
    info = inp.clouds.get(cloud)
    if image is None or not image.url or not image.import_on_demand or info is None:
        return None
    if Capability.IMAGE_IMPORT not in info.capabilities:
        return None
    ident = action_id(ActionType.CREATE, key, cloud, None)
    if not col.has(ident):
        col.add(
            ActionType.CREATE,
            key,
            cloud,
            f"imported on demand: {spec.key} boots from it on {cloud} (found again by uid if "
            "imported before)",
            params=_image_params(col, image, cloud),
        )
    return ident
