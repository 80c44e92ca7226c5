"""Cinder snapshots and the Glance v2 image API (create, upload, read, delete) of the fake
OpenStack (tests/servers/fake_openstack.py), with shapes recorded from the API reference
(tests/data/openstack/cinder_snapshot.json, glance_image.json: the samples of
block-storage v3.65 ``snapshot-show-response`` and image v2 ``image-create-response``).

What a real server checks and this one does too: a snapshot of an absent volume is 404;
of a volume that is neither ``available`` nor (with ``force``, or from microversion 3.66)
``in-use`` is 400; a snapshot is ``creating`` and then ``available`` by the clock; only an
``available``/``error`` snapshot can be deleted, and it is ``deleting`` until gone; unknown
list filters are 400 from 3.31. A new image is ``queued`` (no size, no checksum) until its
data is uploaded; an upload needs ``Content-Type: application/octet-stream`` (415) and a
``queued`` image (409); Glance computes size, md5 ``checksum`` and sha512
``os_hash_value`` from what arrives; an upload cut off mid-body puts the image back to
``queued``; read-only attributes are refused on create (403); listing pages by 25.
"""

from __future__ import annotations

import copy
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from servers.fake_openstack_services import (
    HttpError,
    Response,
    _parse_mv,
    error,
    fault,
    fill,
    load,
    metadata_items,
    now,
)

if TYPE_CHECKING:
    from servers.fake_openstack import FakeOpenStack

_DISK_FORMATS = {"ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"}
_CONTAINER_FORMATS = {"ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"}
_READ_ONLY = {
    "checksum",
    "created_at",
    "direct_url",
    "file",
    "id",
    "locations",
    "os_hash_algo",
    "os_hash_value",
    "schema",
    "self",
    "size",
    "status",
    "updated_at",
    "virtual_size",
}
#: Query keys every Cinder list accepts besides the resource's filters.
_LIST_KEYS = {"limit", "marker", "offset", "sort", "sort_key", "sort_dir", "with_count"}
_SNAPSHOT_FILTERS = {"name", "status", "volume_id", "metadata", "availability_zone"}
GLANCE_PAGE = 25


# -- Cinder snapshots ------------------------------------------------------------------------
def snapshot_view(fake: FakeOpenStack, snap: dict[str, Any]) -> dict[str, Any]:
    """The snapshot as Cinder shows it now (transitions complete by the clock)."""
    pending = snap.get("_pending")
    if pending is not None and time.monotonic() >= pending[1]:
        if pending[0] == "gone":
            fake.state.snapshots.pop(snap["id"], None)
        else:
            snap["status"], snap["os-extended-snapshot-attributes:progress"] = pending[0], "100%"
            snap["updated_at"] = now()
        snap.pop("_pending")
    return {k: v for k, v in snap.items() if not k.startswith("_")}


def live_snapshots(fake: FakeOpenStack) -> list[dict[str, Any]]:
    views = [snapshot_view(fake, s) for s in list(fake.state.snapshots.values())]
    return [v for v in views if v["id"] in fake.state.snapshots]


def snapshots(
    fake: FakeOpenStack,
    method: str,
    parts: list[str],
    query: dict[str, str],
    body: Any,
    mv: str,
) -> tuple[int, Any]:
    """``/v3/{project}/snapshots[/detail|/{id}[/metadata...]]``."""
    if parts == [] and method == "POST":
        return create_snapshot(fake, (body or {}).get("snapshot", {}), mv)
    if parts in ([], ["detail"]) and method == "GET":
        unknown = set(query) - _LIST_KEYS - _SNAPSHOT_FILTERS - {"all_tenants"}
        if unknown and _parse_mv(mv) >= (3, 31):
            raise error(400, "cinder_400_filters", filters=",".join(sorted(unknown)))
        found = [
            s
            for s in live_snapshots(fake)
            if all(s.get(k) == query[k] for k in ("name", "status", "volume_id") if k in query)
        ]
        if parts == []:
            keep = ("id", "name", "status", "size", "volume_id", "created_at", "metadata")
            found = [{k: s[k] for k in keep} for s in found]
        return 200, {"snapshots": found}
    snap = fake.state.snapshots.get(parts[0]) if parts else None
    if snap is None or snap["id"] not in {s["id"] for s in live_snapshots(fake)}:
        raise error(404, "cinder_404_snapshot", id=parts[0] if parts else "")
    rest = parts[1:]
    if not rest and method == "GET":
        return 200, {"snapshot": snapshot_view(fake, snap)}
    if not rest and method == "DELETE":
        if snapshot_view(fake, snap)["status"] not in ("available", "error"):
            raise error(400, "cinder_400_snapshot_delete")
        snap["status"] = "deleting"
        snap["_pending"] = ("gone", time.monotonic() + fake.state.settle)
        return 202, None
    if rest[:1] == ["metadata"]:
        return metadata_items(snap["metadata"], method, rest[1:], body, check_cinder_metadata, 200)
    raise fault(404, "itemNotFound", "The resource could not be found.")


def check_cinder_metadata(metadata: Any) -> dict[str, str]:
    """Cinder's check_metadata_properties: string keys of 1-255 and values up to 255."""
    if not isinstance(metadata, dict):
        raise fault(400, "badRequest", "Invalid input received: metadata must be a dict")
    for key, value in metadata.items():
        if not key or len(key) > 255 or not isinstance(value, str) or len(value) > 255:
            raise fault(400, "badRequest", f"Invalid input received: metadata item {key!r}")
    return dict(metadata)


def create_snapshot(fake: FakeOpenStack, spec: dict[str, Any], mv: str) -> tuple[int, Any]:
    from servers.fake_openstack_services import volume_view

    vid = str(spec.get("volume_id") or "")
    vol = fake.state.volumes.get(vid)
    if vol is None:
        raise error(404, "cinder_404", id=vid)
    force = str(spec.get("force", False)).lower() in ("true", "1", "yes")
    allowed = ["available", "in-use"] if force or _parse_mv(mv) >= (3, 66) else ["available"]
    status = volume_view(fake, vol)["status"]
    if status not in allowed:
        raise error(
            400, "cinder_400_snapshot_status", id=vid, allowed=", ".join(allowed), status=status
        )
    metadata = check_cinder_metadata(spec.get("metadata") or {})
    sid = str(uuid.uuid4())
    snap = fill(
        load("cinder_snapshot"),
        id=sid,
        name=str(spec.get("name") or ""),
        now=now(),
        volume_id=vid,
        project_id=fake.project_id,
        user_id=fake.account.user_id,
    )
    snap.update(size=vol["size"], metadata=metadata, description=spec.get("description"))
    snap["_pending"] = ("available", time.monotonic() + fake.state.settle)
    fake.state.snapshots[sid] = snap
    return 202, {"snapshot": snapshot_view(fake, snap)}


# -- Glance ----------------------------------------------------------------------------------
@dataclass
class Upload:
    """The hashes of image data as it arrives (what Glance computes while storing)."""

    size: int = 0
    md5: Any = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    sha512: Any = field(default_factory=hashlib.sha512)

    def add(self, data: bytes) -> None:
        self.size += len(data)
        self.md5.update(data)
        self.sha512.update(data)


def glance_error(code: int, name: str, **values: str) -> HttpError:
    return error(code, name, **values)


def find_image(fake: FakeOpenStack, image_id: str) -> dict[str, Any] | None:
    return next((i for i in fake.state.images if i["id"] == image_id), None)


def image(
    fake: FakeOpenStack, method: str, path: str, query: dict[str, str], body: Any, headers: Any
) -> Response:
    """``/image[/v2/images[/{id}[/file]]]`` (see the module docstring)."""
    doc = fill(load("glance_versions"), url=f"{fake.url}/image")
    if path.rstrip("/") == "":
        return 300, doc, {}
    parts = [p for p in path.split("/") if p]
    if parts[:2] != ["v2", "images"]:
        raise glance_error(404, "glance_404", id=path)
    rest = parts[2:]
    if not rest and method == "GET":
        return 200, list_images(fake, query), {}
    if not rest and method == "POST":
        return 201, create_image(fake, body if isinstance(body, dict) else {}), {}
    found = find_image(fake, rest[0])
    if found is None:
        raise glance_error(404, "glance_404", id=rest[0])
    if len(rest) == 1 and method == "GET":
        return 200, copy.deepcopy(found), {}
    if len(rest) == 1 and method == "DELETE":
        if found.get("protected"):
            raise HttpError(
                403, {"message": f"Image {rest[0]} is protected and cannot be deleted."}
            )
        fake.state.images.remove(found)
        return 204, None, {}
    if rest[1:] == ["file"] and method == "PUT":
        return begin_upload(found, headers), None, {}
    raise glance_error(404, "glance_404", id=path)


def list_images(fake: FakeOpenStack, query: dict[str, str]) -> dict[str, Any]:
    wanted = {k: query[k] for k in ("name", "status", "visibility", "owner") if k in query}
    found = [i for i in fake.state.images if all(i.get(k) == v for k, v in wanted.items())]
    if "marker" in query:
        ids = [i["id"] for i in found]
        if query["marker"] not in ids:
            raise glance_error(400, "glance_400", detail=f"marker {query['marker']} not found")
        found = found[ids.index(query["marker"]) + 1 :]
    limit = min(int(query.get("limit", GLANCE_PAGE)), 1000)
    page = found[:limit]
    result: dict[str, Any] = {"images": page, "schema": "/v2/schemas/images"}
    result["first"] = "/v2/images"
    if len(found) > limit:
        result["next"] = f"/v2/images?marker={page[-1]['id']}&limit={limit}"
    return result


def create_image(fake: FakeOpenStack, spec: dict[str, Any]) -> dict[str, Any]:
    for key, value in spec.items():
        if key in _READ_ONLY or key.startswith("os_glance"):
            raise glance_error(403, "glance_403", key=key)
        known = key in ("min_disk", "min_ram", "protected", "tags", "os_hidden")
        if not known and value is not None and not isinstance(value, str):
            raise glance_error(400, "glance_400", detail=f"{value!r} is not of type 'string'")
    disk, container = spec.get("disk_format"), spec.get("container_format")
    if disk is not None and disk not in _DISK_FORMATS:
        raise glance_error(400, "glance_400", detail=f"Invalid disk format '{disk}' for image.")
    if container is not None and container not in _CONTAINER_FORMATS:
        detail = f"Invalid container format '{container}' for image."
        raise glance_error(400, "glance_400", detail=detail)
    image_id = str(uuid.uuid4())
    made = fill(
        load("glance_image"),
        id=image_id,
        name=str(spec.get("name") or ""),
        now=now(),
        project_id=fake.project_id,
    )
    made.update({k: v for k, v in spec.items() if k != "id"})
    fake.state.images.append(made)
    return copy.deepcopy(made)


def begin_upload(found: dict[str, Any], headers: Any) -> int:
    """Check an upload may start and mark the image ``saving``; 100 = read the data."""
    content_type = {k.lower(): v for k, v in dict(headers).items()}.get("content-type", "")
    if content_type.split(";")[0].strip() != "application/octet-stream":
        raise glance_error(415, "glance_415", content_type=content_type or "none")
    if found["status"] != "queued":
        raise glance_error(409, "glance_409", status=found["status"])
    if not found.get("disk_format") or not found.get("container_format"):
        detail = "Properties disk_format, container_format must be set prior to saving data."
        raise glance_error(400, "glance_400", detail=detail)
    found["status"] = "saving"
    return 100


def finish_upload(fake: FakeOpenStack, image_id: str, upload: Upload | None) -> Response:
    """Store what arrived (None: the body was cut off: the image goes back to queued)."""
    found = find_image(fake, image_id)
    if found is None or found["status"] != "saving":
        return (-1, None, {}) if upload is None else (410, {"message": "image gone"}, {})
    if upload is None:
        found["status"] = "queued"
        return -1, None, {}
    found.update(
        status="active",
        size=upload.size,
        virtual_size=upload.size if found["disk_format"] == "raw" else None,
        checksum=upload.md5.hexdigest(),
        os_hash_algo="sha512",
        os_hash_value=upload.sha512.hexdigest(),
        updated_at=now(),
    )
    return 204, None, {}


def read_chunked(read: Callable[[int], bytes], readline: Callable[[], bytes]) -> Upload | None:
    """Read an HTTP/1.1 chunked body into an Upload; None if the connection ended first."""
    upload = Upload()
    while True:
        line = readline()
        if not line.endswith(b"\r\n"):
            return None
        size = int(line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            break
        while size:
            data = read(min(size, 1 << 16))
            if not data:
                return None
            upload.add(data)
            size -= len(data)
        if read(2) != b"\r\n":
            return None
    while (trailer := readline()) not in (b"\r\n", b""):
        del trailer
    return upload


def read_sized(read: Callable[[int], bytes], length: int) -> Upload | None:
    upload = Upload()
    while upload.size < length:
        data = read(min(length - upload.size, 1 << 16))
        if not data:
            return None
        upload.add(data)
    return upload
