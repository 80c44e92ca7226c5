"""A small, STATEFUL fake of the Keystone, Nova, Cinder and Glance HTTP APIs on 127.0.0.1.

No local Nova/Cinder/Glance can be run here (BACKENDS.md), so the OpenStack driver's
compute, volume and image code is tested at the HTTP boundary: openstacksdk talks real
HTTP to this server, which serves the API paths openstacksdk calls with JSON shapes
recorded from the OpenStack API reference (tests/data/openstack/*.json), filled in with
its state. It is a fake of the API SHAPE, not a Nova: no scheduler, no hypervisor.
This module is the server, its state, Keystone and the routing; the Nova, Cinder volume
and Neutron handlers are in fake_openstack_services.py, Cinder snapshots and Glance (image
create, data upload, delete) in fake_openstack_storage.py.

What it models, honestly: Keystone v3 password / application-credential tokens with a
service catalog; microversion headers (Nova 2.1-2.96, Cinder 3.0-3.70); Nova's metadata
key rule (``^[a-zA-Z0-9-_:. ]{1,255}$``, so no "/"); asynchronous state (a server is BUILD
or RESIZE for ``settle_seconds`` after the request, by the clock, so reads never mutate);
409 for actions in the wrong vm_state; resize -> VERIFY_RESIZE -> confirmResize; Cinder
snapshots (404 for an absent volume, status rules, a volume with snapshots cannot be
deleted); Glance images ``queued`` until their data is uploaded (chunked or sized
bodies, hashed as they arrive; a body cut off leaves the image ``queued``); servers and
volumes only from an ``active`` image that fits (Nova's flavor disk, Cinder's size).

Object storage is NOT faked: the catalog's object-store endpoint is a REAL Swift
all-in-one (tests/servers/swift.py) and the token this Keystone issues IS a Swift
tempauth token fetched at start, so one token works for every service.

Fault injection (for the conformance hooks): ``fail_next(kind)`` makes the next request to
Nova/Cinder/Glance return that error with the service's JSON fault body ("auth" also
fails the re-authentication keystoneauth tries; "bad_request" and "capacity", which Nova
returns for a create, hit the next POST); ``lose_next_post()`` processes the next
POST and then closes the connection without answering; ``no_valid_host()`` makes the
next server go to ERROR with Nova's "No valid host was found" fault.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from servers.fake_openstack_services import (
    HttpError,
    Response,
    Server,
    compute,
    error,
    fill,
    load,
    network,
    now,
    volume,
)
from servers.fake_openstack_storage import (
    Upload,
    finish_upload,
    image,
    live_snapshots,
    read_chunked,
    read_sized,
)
from servers.process import once_per_session

#: fault kind -> (status, errors.json key, extra headers)
FAULTS: dict[str, tuple[int, str, dict[str, str]]] = {
    "throttle": (429, "nova_429", {"Retry-After": "1"}),
    "unavailable": (503, "nova_503", {}),
    "bad_request": (400, "nova_400", {}),
    "auth": (401, "keystone_401", {}),
    "capacity": (403, "nova_403_quota", {}),
}


class FakeState:
    """Everything the fake knows, guarded by one lock."""

    def __init__(self, settle_seconds: float) -> None:
        self.lock = threading.RLock()
        self.settle = settle_seconds
        self.flavors = copy.deepcopy(load("nova_flavors")["flavors"])
        self.images: list[dict[str, Any]] = []
        self.servers: dict[str, Server] = {}
        self.volumes: dict[str, dict[str, Any]] = {}
        self.snapshots: dict[str, dict[str, Any]] = {}
        #: Every image upload: (image id, "chunked" or "sized", status answered or -1
        #: when the body was cut off), for tests of how data arrived.
        self.uploads: list[tuple[str, str, int]] = []
        self.faults: list[str] = []
        self.lose_post = False
        self.fail_build = False
        self.requests: list[tuple[str, str]] = []

    def status(self, server: Server) -> str:
        """The server's status now (pending transitions complete by the clock)."""
        if server.pending is not None and time.monotonic() >= server.pending[1]:
            server.body["status"] = server.pending[0]
            server.pending = None
        return str(server.body["status"])


@dataclass
class Account:
    username: str = "demo"
    password: str = "fake-password-not-a-secret"
    project: str = "demo"
    app_credential: tuple[str, str] = ("appcred-id", "fake-appcred-secret")
    user_id: str = "8d6c4a0b6f2f4f6e9b5f0d2f1e3c4b5a"
    project_id: str = "f3a2b1c0d9e84f7a8b6c5d4e3f2a1b0c"


class FakeOpenStack:
    """The fake's HTTP server (a thread) plus its state and hooks."""

    def __init__(
        self, swift_url: str, swift_token: Callable[[], str], settle_seconds: float = 0.05
    ) -> None:
        self.account = Account()
        self.swift_url = swift_url
        self.swift_token = swift_token
        self.state = FakeState(settle_seconds)
        self.seed_images = fill(load("glance_images")["images"], project_id=self.project_id)
        self.state.images = copy.deepcopy(self.seed_images)
        self.token = ""
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def project_id(self) -> str:
        return self.account.project_id

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def start(self) -> FakeOpenStack:
        self.token = self.swift_token()
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- hooks for tests -------------------------------------------------------------
    def reset(self) -> None:
        with self.state.lock:
            self.state.servers.clear()
            self.state.volumes.clear()
            self.state.snapshots.clear()
            self.state.uploads.clear()
            self.state.images = copy.deepcopy(self.seed_images)
            self.state.faults.clear()
            self.state.lose_post = self.state.fail_build = False
            self.state.requests.clear()

    def fail_next(self, kind: str) -> None:
        with self.state.lock:
            self.state.faults.append(kind)

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.lose_post = self.state.fail_build = False

    def lose_next_post(self) -> None:
        with self.state.lock:
            self.state.lose_post = True

    def no_valid_host(self) -> None:
        with self.state.lock:
            self.state.fail_build = True

    def snapshot(self) -> object:
        """A deep copy of every server, volume, volume snapshot and image (for "reads
        never mutate"; transitions due by the clock are applied first)."""
        with self.state.lock:
            servers = {
                sid: (copy.deepcopy(s.body), s.flavor["id"], dict(s.attachments))
                for sid, s in self.state.servers.items()
            }
            snapshots = sorted(live_snapshots(self), key=lambda s: str(s["id"]))
            images = copy.deepcopy(self.state.images)
            return servers, copy.deepcopy(self.state.volumes), snapshots, images

    def catalog(self) -> list[dict[str, Any]]:
        template = load("catalog_entry")
        entries = [
            ("identity", "keystone", f"{self.url}/identity/v3"),
            ("compute", "nova", f"{self.url}/compute/v2.1"),
            ("volumev3", "cinderv3", f"{self.url}/volume/v3/{self.project_id}"),
            ("block-storage", "cinder", f"{self.url}/volume/v3/{self.project_id}"),
            ("image", "glance", f"{self.url}/image"),
            ("network", "neutron", f"{self.url}/network"),
            ("object-store", "swift", self.swift_url),
        ]
        return [
            fill(
                template,
                type=t,
                name=n,
                url=u,
                region="RegionOne",
                endpoint_id=uuid.uuid4().hex,
                service_id=uuid.uuid4().hex,
            )
            for t, n, u in entries
        ]


def _handler(fake: FakeOpenStack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            # headers and body go out in two writes: without this, Nagle + delayed ACK
            # add ~40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            upload = self.command == "PUT" and UPLOAD.fullmatch(parts.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length and not upload else b""
            body = json.loads(raw) if raw.strip() else None
            try:
                status, payload, headers = route(
                    fake, self.command, parts.path, query, body, dict(self.headers.items())
                )
                if status == 100 and upload:  # Glance accepted the upload: read the data
                    status, payload, headers = self._upload(upload.group(1), length)
            except HttpError as exc:
                status, payload, headers = exc.status, exc.body, exc.headers
                if upload and self._read_data(length) is None:  # refused: drain the data
                    status = -1
            if status == -1:  # lose the response: the request took effect, no answer
                self.close_connection = True
                self.connection.shutdown(2)
                return
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _read_data(self, length: int) -> Upload | None:
            """Image data (chunked or sized) as it arrives; None if it was cut off."""
            chunked = "chunked" in (self.headers.get("Transfer-Encoding") or "").lower()
            read, readline = self.rfile.read, lambda: self.rfile.readline(1024)
            try:
                return read_chunked(read, readline) if chunked else read_sized(read, length)
            except (OSError, ValueError):
                return None

        def _upload(self, image_id: str, length: int) -> Response:
            """Read the data outside the lock, then store it."""
            got = self._read_data(length)
            mode = "chunked" if "chunked" in str(self.headers.get("Transfer-Encoding")) else "sized"
            with fake.state.lock:
                result = finish_upload(fake, image_id, got)
                fake.state.uploads.append((image_id, mode, result[0]))
                return result

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

    return Handler


#: The Glance path whose body is image data, not JSON.
UPLOAD = re.compile(r"/image/v2/images/([^/]+)/file")


def expires() -> str:
    return (datetime.now(UTC) + timedelta(hours=12)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")


def route(
    fake: FakeOpenStack,
    method: str,
    path: str,
    query: dict[str, str],
    body: Any,
    headers: dict[str, str],
) -> Response:
    """Serve one request (see the module docstring for what is modelled)."""
    state = fake.state
    with state.lock:
        state.requests.append((method, path))
        if path.startswith("/identity"):
            return identity(fake, method, path, body)
        discovery = path.rstrip("/") in (
            "/compute",
            "/compute/v2.1",
            "/volume",
            "/volume/v3",
            "/image",
            "/network",
            "/network/v2.0",
        )
        if not discovery:
            if {k.lower(): v for k, v in headers.items()}.get("x-auth-token") != fake.token:
                raise error(401, "keystone_401")
            # Quota and validation faults come from the POST that creates; the others
            # from whatever request comes next.
            kind = state.faults[0] if state.faults else ""
            if kind and (method == "POST" or kind not in ("bad_request", "capacity")):
                state.faults.pop(0)
                status, name, extra = FAULTS[kind]
                if kind == "auth":
                    state.faults.insert(0, "auth-token")
                raise HttpError(status, load("errors")[name], dict(extra))
        lose = method == "POST" and state.lose_post and not discovery
        if lose:
            state.lose_post = False
        if path.startswith("/compute"):
            result = compute(fake, method, path.removeprefix("/compute"), query, body, headers)
        elif path.startswith("/volume"):
            result = volume(fake, method, path.removeprefix("/volume"), query, body, headers)
        elif path.startswith("/image"):
            result = image(fake, method, path.removeprefix("/image"), query, body, headers)
        elif path.startswith("/network"):
            result = network(fake, method, path.removeprefix("/network"), query)
        else:
            raise HttpError(404, {"message": f"no such path {path}"})
        return (-1, None, {}) if lose else result


def identity(fake: FakeOpenStack, method: str, path: str, body: Any) -> Response:
    links = [{"rel": "self", "href": f"{fake.auth_url}/"}]
    version = {
        "id": "v3.14",
        "status": "stable",
        "updated": "2020-04-07T00:00:00Z",
        "links": links,
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }
    if method == "GET" and path.rstrip("/") == "/identity/v3":
        return 200, {"version": version}, {}
    if method == "GET" and path.rstrip("/") == "/identity":
        return 300, {"versions": {"values": [version]}}, {}
    if method != "POST" or path.rstrip("/") != "/identity/v3/auth/tokens":
        raise HttpError(404, {"error": {"code": 404, "message": "not found", "title": "Not Found"}})
    state = fake.state
    if state.faults and state.faults[0] == "auth-token":
        state.faults.pop(0)
        raise error(401, "keystone_401")
    auth = (body or {}).get("auth", {})
    ident = auth.get("identity", {})
    acct = fake.account
    if "password" in ident.get("methods", []):
        user = ident.get("password", {}).get("user", {})
        ok = user.get("name") == acct.username and user.get("password") == acct.password
    elif "application_credential" in ident.get("methods", []):
        cred = ident.get("application_credential", {})
        ok = (cred.get("id"), cred.get("secret")) == acct.app_credential
    else:
        ok = False
    if not ok:
        raise error(401, "keystone_401")
    token = fill(
        load("keystone_token"),
        user_id=acct.user_id,
        username=acct.username,
        project_id=acct.project_id,
        project_name=acct.project,
        expires_at=expires(),
        issued_at=now(),
    )
    token["token"]["catalog"] = fake.catalog()
    return 201, token, {"X-Subject-Token": fake.token}


@once_per_session
def openstack_backend() -> FakeOpenStack:
    """The session's fake Keystone/Nova/Cinder/Glance, in front of the real Swift."""
    from servers.swift import swift_server

    swift = swift_server()
    return FakeOpenStack(swift.storage_url, swift.token).start()
