"""Nova, Cinder volume and Neutron request handlers of the fake OpenStack (see
tests/servers/fake_openstack.py for what is modelled), and the recorded-shape helpers
(tests/data/openstack/*.json) the fake's modules use. Glance and Cinder snapshots are in
fake_openstack_storage.py.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from servers.fake_openstack import FakeOpenStack

DATA = Path(__file__).resolve().parent.parent / "data" / "openstack"
NOVA_MAX, CINDER_MAX = "2.96", "3.70"
METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


@functools.cache
def load(name: str) -> Any:
    """A recorded shape, read once: never change it (``fill`` returns a fresh copy)."""
    return json.loads((DATA / f"{name}.json").read_text())


def fill(template: Any, **values: str) -> Any:
    """Replace ``{name}`` placeholders in every string of a recorded shape."""
    if isinstance(template, str):
        for key, value in values.items():
            template = template.replace("{" + key + "}", value)
        return template
    if isinstance(template, list):
        return [fill(item, **values) for item in template]
    if isinstance(template, dict):
        return {k: fill(v, **values) for k, v in template.items()}
    return template


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def error(code: int, name: str, /, **values: str) -> HttpError:
    return HttpError(code, fill(load("errors")[name], **values))


def fault(code: int, kind: str, message: str) -> HttpError:
    """A Nova/Cinder fault body: ``{kind: {"code": code, "message": message}}``."""
    return HttpError(code, {kind: {"code": code, "message": message}})


@dataclass
class Server:
    """A Nova server record; ``pending`` = (status, at): what it becomes, and when."""

    body: dict[str, Any]
    flavor: dict[str, Any]
    old_flavor: dict[str, Any] | None = None
    pending: tuple[str, float] | None = None
    attachments: dict[str, str] = field(default_factory=dict)  # volume id -> attachment id


VM_STATE = {"ACTIVE": "active", "SHUTOFF": "stopped", "VERIFY_RESIZE": "resized", "ERROR": "error"}
POWER_STATE = {"ACTIVE": 1, "SHUTOFF": 4, "VERIFY_RESIZE": 1, "ERROR": 0}


# -- microversions -------------------------------------------------------------------------
Response = tuple[int, Any, dict[str, str]]


def _parse_mv(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def microversion(headers: dict[str, str], service: str, default: str, maximum: str) -> str:
    lowered = {k.lower(): v for k, v in headers.items()}
    asked = lowered.get("openstack-api-version", "")
    if not asked.lower().startswith(service):
        return default
    text = asked.split()[-1]
    if text == "latest":
        return maximum
    if _parse_mv(text) > _parse_mv(maximum):
        raise fault(406, "computeFault", f"Version {text} is not supported by the API.")
    return text


# -- Nova ----------------------------------------------------------------------------------
def flavor_view(fake: FakeOpenStack, flavor: dict[str, Any], full: bool = True) -> dict[str, Any]:
    url = f"{fake.url}/compute/v2.1"
    view = fill(load("nova_flavor"), id=flavor["id"], name=flavor["name"], url=url)
    view.update({k: flavor[k] for k in ("ram", "vcpus", "disk")})
    return view if full else {k: view[k] for k in ("id", "name", "links", "description")}


def server_view(fake: FakeOpenStack, server: Server, mv: str) -> dict[str, Any]:
    status = fake.state.status(server)
    view = copy.deepcopy(server.body)
    flavor = server.flavor
    if _parse_mv(mv) >= (2, 47):
        view["flavor"] = {
            "vcpus": flavor["vcpus"],
            "ram": flavor["ram"],
            "disk": flavor["disk"],
            "ephemeral": 0,
            "swap": 0,
            "original_name": flavor["name"],
            "extra_specs": {},
        }
    else:
        url = f"{fake.url}/compute/v2.1/flavors/{flavor['id']}"
        view["flavor"] = {"id": flavor["id"], "links": [{"rel": "bookmark", "href": url}]}
    settled = server.pending is None
    view["OS-EXT-STS:vm_state"] = VM_STATE.get(status, "building")
    view["OS-EXT-STS:power_state"] = POWER_STATE.get(status, 0)
    view["OS-EXT-STS:task_state"] = None if settled else view.get("OS-EXT-STS:task_state")
    view["os-extended-volumes:volumes_attached"] = [
        {"id": vid, "delete_on_termination": False} for vid in server.attachments
    ]
    if _parse_mv(mv) < (2, 26):
        view.pop("tags", None)
    return view


def find_flavor(fake: FakeOpenStack, ref: Any) -> dict[str, Any] | None:
    ref = str(ref).rstrip("/").rsplit("/", 1)[-1]
    return next((f for f in fake.state.flavors if f["id"] == ref), None)


def compute(
    fake: FakeOpenStack,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    headers: dict[str, str],
) -> Response:
    doc = fill(load("nova_versions"), url=f"{fake.url}/compute/v2.1")
    if path.rstrip("/") == "":
        return 300, {"versions": [doc["version"]]}, {}
    if path.rstrip("/") == "/v2.1":
        return 200, doc, {}
    mv = microversion(headers, "compute", "2.1", NOVA_MAX)
    reply = {
        "OpenStack-API-Version": f"compute {mv}",
        "X-OpenStack-Nova-API-Version": mv,
        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    }
    parts = [p for p in path.removeprefix("/v2.1").split("/") if p]
    if parts[:1] == ["flavors"]:
        return (*flavors(fake, method, parts[1:]), reply)
    if parts[:1] == ["servers"]:
        status, payload = servers(fake, method, parts[1:], query, body, mv)
        return status, payload, reply
    raise fault(404, "itemNotFound", "The resource could not be found.")


def flavors(fake: FakeOpenStack, method: str, parts: list[str]) -> tuple[int, Any]:
    if method != "GET":
        raise fault(405, "computeFault", "Method not allowed")
    if not parts or parts == ["detail"]:
        full = parts == ["detail"]
        return 200, {"flavors": [flavor_view(fake, f, full) for f in fake.state.flavors]}
    flavor = find_flavor(fake, parts[0])
    if flavor is None:
        raise fault(404, "itemNotFound", f"Flavor {parts[0]} could not be found.")
    return 200, {"flavor": flavor_view(fake, flavor)}


def get_server(fake: FakeOpenStack, server_id: str) -> Server:
    server = fake.state.servers.get(server_id)
    if server is None:
        raise error(404, "nova_404", id=server_id)
    return server


def check_metadata(metadata: Any) -> dict[str, str]:
    """Nova's schema for server metadata: keys ^[a-zA-Z0-9-_:. ]{1,255}$, values <= 255."""
    if not isinstance(metadata, dict):
        raise error(400, "nova_400")
    for key, value in metadata.items():
        if not METADATA_KEY.match(key) or not isinstance(value, str) or len(value) > 255:
            raise error(400, "nova_400_metadata", value=json.dumps(metadata), key=key)
    return dict(metadata)


def servers(
    fake: FakeOpenStack, method: str, parts: list[str], query: dict[str, str], body: Any, mv: str
) -> tuple[int, Any]:
    state = fake.state
    if not parts and method == "POST":
        return create_server(fake, (body or {}).get("server", {}), mv)
    if method == "GET" and (not parts or parts == ["detail"]):
        found = [s for s in state.servers.values() if server_matches(fake, s, query)]
        if parts == ["detail"]:
            return 200, {"servers": [server_view(fake, s, mv) for s in found]}
        return 200, {"servers": [{k: s.body[k] for k in ("id", "name", "links")} for s in found]}
    server = get_server(fake, parts[0])
    rest = parts[1:]
    if not rest and method == "GET":
        return 200, {"server": server_view(fake, server, mv)}
    if not rest and method == "DELETE":
        for vid in server.attachments:
            detach(fake, vid)
        del state.servers[server.body["id"]]
        return 204, None
    if rest == ["action"] and method == "POST":
        return server_action(fake, server, body or {})
    if rest[:1] == ["metadata"]:
        return metadata_items(server.body["metadata"], method, rest[1:], body, check_metadata, 204)
    if rest[:1] == ["os-volume_attachments"]:
        return volume_attachments(fake, server, method, rest[1:], body)
    raise fault(404, "itemNotFound", "The resource could not be found.")


def server_matches(fake: FakeOpenStack, server: Server, query: dict[str, str]) -> bool:
    if "name" in query and not re.search(query["name"], server.body["name"]):
        return False
    if "status" in query and fake.state.status(server) != query["status"].upper():
        return False
    wanted = set(query.get("tags", "").split(",")) - {""}
    return wanted <= set(server.body.get("tags", []))


def create_server(fake: FakeOpenStack, spec: dict[str, Any], mv: str) -> tuple[int, Any]:
    state = fake.state
    flavor = find_flavor(fake, spec.get("flavorRef", ""))
    if flavor is None:
        raise fault(400, "badRequest", f"Flavor {spec.get('flavorRef')} could not be found.")
    image_id = str(spec.get("imageRef", ""))
    found = next((i for i in state.images if i["id"] == image_id), None)
    if found is None:
        raise fault(400, "badRequest", "Can not find requested image")
    if found["status"] != "active":
        raise error(400, "nova_400_image_inactive", id=image_id)
    flavor_bytes = flavor["disk"] << 30
    if flavor_bytes and max(found["size"] or 0, found["min_disk"] << 30) > flavor_bytes:
        raise error(
            400,
            "nova_400_flavor_disk",
            flavor_size=str(flavor_bytes),
            image_size=str(found["size"]),
        )
    if _parse_mv(mv) >= (2, 37) and "networks" not in spec:
        raise error(400, "nova_400_networks", value=json.dumps(spec))
    metadata = check_metadata(spec.get("metadata", {}))
    server_id = str(uuid.uuid4())
    body = fill(
        load("nova_server"),
        id=server_id,
        name=str(spec.get("name", "")),
        project_id=fake.project_id,
        user_id=fake.account.user_id,
        image_id=image_id,
        url=f"{fake.url}/compute/v2.1",
        now=now(),
    )
    body["metadata"] = metadata
    body["tags"] = list(spec.get("tags", []))
    body["OS-EXT-AZ:availability_zone"] = spec.get("availability_zone") or "nova"
    server = Server(body=body, flavor=flavor)
    at = time.monotonic() + state.settle
    if state.fail_build:
        state.fail_build = False
        body["fault"] = {"code": 500, "created": now(), "message": NO_VALID_HOST}
        server.pending = ("ERROR", at)
    else:
        body["addresses"] = {
            "private": [
                {
                    "addr": f"10.0.0.{len(state.servers) + 10}",
                    "version": 4,
                    "OS-EXT-IPS:type": "fixed",
                }
            ]
        }
        server.pending = ("ACTIVE", at)
    state.servers[server_id] = server
    links = body["links"]
    return 202, {
        "server": {
            "id": server_id,
            "links": links,
            "OS-DCF:diskConfig": "AUTO",
            "security_groups": [{"name": "default"}],
            "adminPass": "x" * 12,
        }
    }


def conflict(server: Server, action: str, status: str) -> HttpError:
    return error(
        409,
        "nova_409",
        id=server.body["id"],
        action=action,
        vm_state=VM_STATE.get(status, "building"),
    )


def server_action(fake: FakeOpenStack, server: Server, action: dict[str, Any]) -> tuple[int, Any]:
    status = fake.state.status(server)
    if server.pending is not None:
        raise conflict(server, next(iter(action), "action"), "building")
    at = time.monotonic() + fake.state.settle
    if "os-stop" in action:
        if status != "ACTIVE":
            raise conflict(server, "stop", status)
        server.pending = ("SHUTOFF", at)
        server.body["OS-EXT-STS:task_state"] = "powering-off"
    elif "os-start" in action:
        if status != "SHUTOFF":
            raise conflict(server, "start", status)
        server.pending = ("ACTIVE", at)
        server.body["OS-EXT-STS:task_state"] = "powering-on"
    elif "resize" in action:
        if status not in ("ACTIVE", "SHUTOFF"):
            raise conflict(server, "resize", status)
        flavor = find_flavor(fake, action["resize"].get("flavorRef", ""))
        if flavor is None:
            raise fault(400, "badRequest", "Unable to find flavor")
        if flavor["id"] == server.flavor["id"]:
            raise fault(400, "badRequest", "When resizing, instances must change flavor!")
        server.old_flavor, server.flavor = server.flavor, flavor
        server.body["status"], server.body["resized_from"] = "RESIZE", status
        server.body["OS-EXT-STS:task_state"] = "resize_migrating"
        server.pending = ("VERIFY_RESIZE", at)
    elif "confirmResize" in action:
        if status != "VERIFY_RESIZE":
            raise conflict(server, "confirmResize", status)
        server.body["status"] = server.body.pop("resized_from", "ACTIVE")
        server.old_flavor = None
    else:
        raise fault(400, "badRequest", f"unsupported action {list(action)}")
    return 202, None


def metadata_items(
    metadata: dict[str, str],
    method: str,
    rest: list[str],
    body: Any,
    check: Callable[[Any], dict[str, str]],
    deleted: int,
) -> tuple[int, Any]:
    """The ``.../metadata`` API of a Nova server or a Cinder volume: ``check`` validates
    the items a POST or PUT sets; a DELETE of one key answers ``deleted``."""
    if not rest and method == "GET":
        return 200, {"metadata": metadata}
    if not rest and method in ("POST", "PUT"):
        new = check((body or {}).get("metadata", {}))
        if method == "PUT":
            metadata.clear()
        metadata.update(new)
        return 200, {"metadata": metadata}
    if len(rest) == 1 and method == "DELETE":
        if rest[0] not in metadata:
            raise fault(404, "itemNotFound", "Metadata item was not found")
        del metadata[rest[0]]
        return deleted, None
    raise fault(405, "computeFault", "Method not allowed")


def volume_attachments(
    fake: FakeOpenStack, server: Server, method: str, rest: list[str], body: Any
) -> tuple[int, Any]:
    def view(vid: str) -> dict[str, Any]:
        return {
            "id": vid,
            "volumeId": vid,
            "serverId": server.body["id"],
            "device": "/dev/vdb",
            "tag": None,
            "delete_on_termination": False,
            "attachment_id": server.attachments[vid],
            "bdm_uuid": server.attachments[vid],
        }

    if not rest and method == "GET":
        return 200, {"volumeAttachments": [view(v) for v in server.attachments]}
    if not rest and method == "POST":
        vid = str((body or {}).get("volumeAttachment", {}).get("volumeId", ""))
        vol = fake.state.volumes.get(vid)
        if vol is None:
            raise fault(404, "itemNotFound", f"Volume {vid} could not be found.")
        if vol["status"] != "available":
            raise error(400, "nova_400_volume_status", id=vid, status=vol["status"])
        attachment = str(uuid.uuid4())
        server.attachments[vid] = attachment
        vol["status"] = "in-use"
        vol["attachments"] = [
            {
                "id": vid,
                "attachment_id": attachment,
                "volume_id": vid,
                "server_id": server.body["id"],
                "host_name": None,
                "device": "/dev/vdb",
                "attached_at": now(),
            }
        ]
        return 200, {"volumeAttachment": view(vid)}
    if len(rest) == 1 and method == "DELETE":
        if rest[0] not in server.attachments:
            raise fault(404, "itemNotFound", f"volume_id not found: {rest[0]}")
        detach(fake, rest[0])
        del server.attachments[rest[0]]
        return 202, None
    raise fault(405, "computeFault", "Method not allowed")


def detach(fake: FakeOpenStack, vid: str) -> None:
    vol = fake.state.volumes.get(vid)
    if vol is not None:
        vol["status"], vol["attachments"] = "available", []


# -- Cinder --------------------------------------------------------------------------------
VOLUME_TYPES = (
    {"id": "5f1d6a2e-8c8e-4a8b-9a6e-2f0d6b3c1d11", "name": "__DEFAULT__"},
    {"id": "0b7c3f5e-2a1d-4c6b-8e9f-7a6b5c4d3e2f", "name": "ssd"},
)


def volume_view(fake: FakeOpenStack, vol: dict[str, Any]) -> dict[str, Any]:
    if vol["status"] in ("creating", "downloading", "extending") and (
        time.monotonic() >= vol["_ready_at"]
    ):
        vol["status"] = "available"
    return {k: v for k, v in vol.items() if not k.startswith("_")}


def get_volume(fake: FakeOpenStack, vid: str) -> dict[str, Any]:
    vol = fake.state.volumes.get(vid)
    if vol is None:
        raise error(404, "cinder_404", id=vid)
    return vol


def volume(
    fake: FakeOpenStack,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    headers: dict[str, str],
) -> Response:
    doc = fill(load("cinder_versions"), url=f"{fake.url}/volume")
    if path.rstrip("/") == "":
        return 300, doc, {}
    if path.rstrip("/") == "/v3":
        return 200, {"version": doc["versions"][0]}, {}
    mv = microversion(headers, "volume", "3.0", CINDER_MAX)
    reply = {"OpenStack-API-Version": f"volume {mv}", "Vary": "OpenStack-API-Version"}
    parts = [p for p in path.removeprefix(f"/v3/{fake.project_id}").split("/") if p]
    state = fake.state
    if parts == ["types"] and method == "GET":
        return (
            200,
            {"volume_types": [dict(t, is_public=True, extra_specs={}) for t in VOLUME_TYPES]},
            reply,
        )
    if parts == ["volumes"] and method == "POST":
        return (*create_volume(fake, (body or {}).get("volume", {})), reply)
    if parts in (["volumes"], ["volumes", "detail"]) and method == "GET":
        vols = [
            volume_view(fake, v)
            for v in state.volumes.values()
            if query.get("name") in (None, v["name"])
        ]
        return 200, {"volumes": vols}, reply
    if parts[:1] == ["snapshots"]:
        from servers.fake_openstack_storage import snapshots

        return (*snapshots(fake, method, parts[1:], query, body, mv), reply)
    if parts[:1] != ["volumes"] or len(parts) < 2:
        raise fault(404, "itemNotFound", "The resource could not be found.")
    vol = get_volume(fake, parts[1])
    rest = parts[2:]
    if not rest and method == "GET":
        return 200, {"volume": volume_view(fake, vol)}, reply
    if not rest and method == "DELETE":
        status = volume_view(fake, vol)["status"]
        if status not in ("available", "error") or has_snapshots(fake, vol["id"]):
            raise error(400, "cinder_400_delete_status")
        del state.volumes[vol["id"]]
        return 202, None, reply
    if rest == ["action"] and method == "POST":
        return (*extend_volume(fake, vol, body or {}, mv), reply)
    if rest[:1] == ["metadata"]:
        return (*metadata_items(vol["metadata"], method, rest[1:], body, dict, 200), reply)
    raise fault(404, "itemNotFound", "The resource could not be found.")


def has_snapshots(fake: FakeOpenStack, vid: str) -> bool:
    from servers.fake_openstack_storage import live_snapshots

    return any(s["volume_id"] == vid for s in live_snapshots(fake))


def source_image(fake: FakeOpenStack, ref: str, size: int) -> dict[str, Any]:
    """The Glance image a volume is made from, checked as Cinder's create flow does."""
    found = next((i for i in fake.state.images if ref in (i["id"], i["name"])), None)
    if found is None:
        raise error(400, "cinder_400_image_ref")
    if found["status"] != "active":
        raise error(400, "cinder_400_image_inactive", id=found["id"])
    image_gib = -(-int(found["size"] or 0) // (1 << 30))
    if max(image_gib, found["min_disk"]) > size:
        raise error(400, "cinder_400_image_size", image_size=str(image_gib), size=str(size))
    return {
        "image_id": found["id"],
        "image_name": found["name"],
        "checksum": found["checksum"],
        "disk_format": found["disk_format"],
        "container_format": found["container_format"],
        "size": str(found["size"]),
        "min_disk": str(found["min_disk"]),
        "min_ram": str(found["min_ram"]),
    }


def create_volume(fake: FakeOpenStack, spec: dict[str, Any]) -> tuple[int, Any]:
    size = spec.get("size")
    if not isinstance(size, int) or size < 1:
        raise fault(400, "badRequest", "Invalid input for field/attribute size.")
    image_meta = source_image(fake, str(spec["imageRef"]), size) if spec.get("imageRef") else None
    vtype = spec.get("volume_type") or "__DEFAULT__"
    if not any(vtype in (t["id"], t["name"]) for t in VOLUME_TYPES):
        raise fault(404, "itemNotFound", f"Volume type with name {vtype} could not be found.")
    metadata = spec.get("metadata") or {}
    vid = str(uuid.uuid4())
    vol = fill(
        load("cinder_volume"),
        id=vid,
        name=str(spec.get("name") or ""),
        volume_type=vtype,
        now=now(),
        user_id=fake.account.user_id,
        project_id=fake.project_id,
        url=f"{fake.url}/volume/v3/{fake.project_id}",
    )
    vol.update(size=size, metadata=dict(metadata), _ready_at=time.monotonic() + fake.state.settle)
    if image_meta is not None:  # creating -> downloading (the image's bytes) -> available
        vol.update(status="downloading", bootable="true", volume_image_metadata=image_meta)
    fake.state.volumes[vid] = vol
    return 202, {"volume": volume_view(fake, vol)}


def extend_volume(
    fake: FakeOpenStack, vol: dict[str, Any], action: dict[str, Any], mv: str
) -> tuple[int, Any]:
    if "os-extend" not in action:
        raise fault(400, "badRequest", f"unsupported action {list(action)}")
    status = volume_view(fake, vol)["status"]
    allowed = ("available", "in-use") if _parse_mv(mv) >= (3, 42) else ("available",)
    if status not in allowed:
        raise error(400, "cinder_400_extend_status", allowed=" or ".join(allowed), status=status)
    new_size = action["os-extend"].get("new_size")
    if not isinstance(new_size, int) or new_size <= vol["size"]:
        raise error(400, "cinder_400_extend_size", size=str(vol["size"]), new_size=str(new_size))
    vol["size"] = new_size
    return 202, None


# -- Neutron (read-only) -----------------------------------------------------------------
NETWORKS = (
    {
        "id": "6a3e1f2b-7c4d-4e5f-8a9b-0c1d2e3f4a5b",
        "name": "private",
        "status": "ACTIVE",
        "admin_state_up": True,
        "shared": False,
        "subnets": [],
        "router:external": False,
        "mtu": 1450,
        "tags": [],
    },
)


def network(fake: FakeOpenStack, method: str, path: str, query: dict[str, str]) -> Response:
    if path.rstrip("/") == "":
        links = [{"rel": "self", "href": f"{fake.url}/network/v2.0/"}]
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": links}]}, {}
    parts = [p for p in path.split("/") if p]
    nets = [dict(n, project_id=fake.project_id, tenant_id=fake.project_id) for n in NETWORKS]
    if method == "GET" and parts == ["v2.0", "networks"]:
        found = [
            n
            for n in nets
            if query.get("name") in (None, n["name"]) and query.get("id") in (None, n["id"])
        ]
        return 200, {"networks": found}, {}
    if method == "GET" and parts[:2] == ["v2.0", "networks"] and len(parts) == 3:
        net = next((n for n in nets if n["id"] == parts[2]), None)
        if net is not None:
            return 200, {"network": net}, {}
    raise HttpError(
        404,
        {
            "NeutronError": {
                "type": "NetworkNotFound",
                "message": f"Network {path} could not be found.",
                "detail": "",
            }
        },
    )
