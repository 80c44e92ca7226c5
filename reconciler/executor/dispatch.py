"""Turning one plan Action into provider calls."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from reconciler.model.errors import PermanentError
from reconciler.model.observed import Observed
from reconciler.model.plan import Action, ActionType
from reconciler.model.specs import PowerState
from reconciler.providers.base import (
    BucketRequest,
    Provider,
    VMRequest,
    VMUpdate,
    VolumeRequest,
)


class Resolver:
    """External ids of resources created during this apply, by resource key."""

    def __init__(self) -> None:
        self._ids: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(self, key: str, external_id: str) -> None:
        with self._lock:
            self._ids[key] = external_id

    def get(self, key: str, known: str | None) -> str:
        if known:
            return known
        with self._lock:
            found = self._ids.get(key)
        if not found:
            raise PermanentError(f"{key} has no id yet (its create did not succeed)")
        return found


#: What a call returns: the provider's record of the resource it left (None when it
#: is gone: delete, forget).
Call = Callable[[Provider, Action, Resolver], Observed | None]


def vm_request(params: Mapping[str, Any], image: str | None = None) -> VMRequest:
    """The create request in a VM's params (``image``: an imported image's id instead of
    the image named there)."""
    return VMRequest(
        name=params["name"],
        instance_type=params["instanceType"],
        image=image if image is not None else params.get("image", ""),
        power_state=PowerState(params.get("powerState", "Running")),
        tags=dict(params["tags"]),
        disk_gib=int(params.get("diskGiB", 0)),
    )


def _vm_create(p: Provider, a: Action, r: Resolver) -> Observed | None:
    imported = a.params.get("imageFrom")
    image = r.get(str(imported), None) if imported else None
    return p.create_vm(vm_request(a.params, image))


def _vm_update(p: Provider, a: Action, r: Resolver) -> Observed | None:
    tags = a.params.get("tags")
    update = VMUpdate(instance_type=a.params.get("instanceType"), tags=tags)
    return p.update_vm(r.get(str(a.key), a.external_id), update)


def _vm_power(p: Provider, a: Action, r: Resolver) -> Observed | None:
    state = PowerState(a.params["powerState"])
    return p.update_vm(r.get(str(a.key), a.external_id), VMUpdate(power_state=state))


def _vm_delete(p: Provider, a: Action, r: Resolver) -> Observed | None:
    p.delete_vm(r.get(str(a.key), a.external_id))
    return None


def _forget(p: Provider, a: Action, r: Resolver) -> Observed | None:
    p.forget(r.get(str(a.key), a.external_id))
    return None


def _volume_create(p: Provider, a: Action, r: Resolver) -> Observed | None:
    imported = a.params.get("sourceImageFrom")
    source = r.get(str(imported), None) if imported else a.params.get("sourceImage")
    req = VolumeRequest(
        name=a.params["name"],
        size_gib=int(a.params["sizeGiB"]),
        volume_class=a.params.get("class", "standard"),
        tags=dict(a.params["tags"]),
        source_image=source or None,
    )
    return p.create_volume(req)


def _volume_update(p: Provider, a: Action, r: Resolver) -> Observed | None:
    vol = r.get(str(a.key), a.external_id)
    return p.update_volume(vol, int(a.params["sizeGiB"]), None, False)


def _volume_attach(p: Provider, a: Action, r: Resolver) -> Observed | None:
    vol = r.get(str(a.key), a.external_id)
    vm = r.get(a.params["vmKey"], a.params.get("vmExternalId"))
    return p.update_volume(vol, None, vm, False)


def _volume_detach(p: Provider, a: Action, r: Resolver) -> Observed | None:
    return p.update_volume(r.get(str(a.key), a.external_id), None, None, True)


def _volume_delete(p: Provider, a: Action, r: Resolver) -> Observed | None:
    p.delete_volume(r.get(str(a.key), a.external_id))
    return None


def _image_delete(p: Provider, a: Action, r: Resolver) -> Observed | None:
    p.delete_image(r.get(str(a.key), a.external_id))
    return None


def _bucket_create(p: Provider, a: Action, r: Resolver) -> Observed | None:
    req = BucketRequest(
        name=a.params["name"], versioning=bool(a.params["versioning"]), tags=dict(a.params["tags"])
    )
    return p.create_bucket(req)


def _bucket_update(p: Provider, a: Action, r: Resolver) -> Observed | None:
    ext = r.get(str(a.key), a.external_id)
    return p.update_bucket(ext, bool(a.params["versioning"]))


def _bucket_delete(p: Provider, a: Action, r: Resolver) -> Observed | None:
    p.delete_bucket(r.get(str(a.key), a.external_id))
    return None


CALLS: dict[tuple[str, ActionType], Call] = {
    ("VirtualMachine", ActionType.CREATE): _vm_create,
    ("VirtualMachine", ActionType.UPDATE): _vm_update,
    ("VirtualMachine", ActionType.START): _vm_power,
    ("VirtualMachine", ActionType.STOP): _vm_power,
    ("VirtualMachine", ActionType.DELETE): _vm_delete,
    ("VirtualMachine", ActionType.FORGET): _forget,
    ("Volume", ActionType.CREATE): _volume_create,
    ("Volume", ActionType.UPDATE): _volume_update,
    ("Volume", ActionType.ATTACH): _volume_attach,
    ("Volume", ActionType.DETACH): _volume_detach,
    ("Volume", ActionType.DELETE): _volume_delete,
    ("Volume", ActionType.FORGET): _forget,
    ("Bucket", ActionType.CREATE): _bucket_create,
    ("Bucket", ActionType.UPDATE): _bucket_update,
    ("Bucket", ActionType.DELETE): _bucket_delete,
    ("Bucket", ActionType.FORGET): _forget,
    ("Image", ActionType.DELETE): _image_delete,
}


def call_for(action: Action) -> Call:
    """The provider call that carries out ``action`` (REPLACE is handled by the runner)."""
    try:
        return CALLS[(action.key.kind, action.type)]
    except KeyError:
        raise PermanentError(
            f"{action.type.value} of a {action.key.kind} is not something apply can do"
        ) from None
