"""A small STATEFUL fake of Azure Resource Manager on 127.0.0.1, for the Azure driver.

No Azure compute emulator exists, so the driver's real SDK code (azure-mgmt-compute,
azure-mgmt-network) is tested at the HTTP boundary: this server answers the ARM paths,
api-version query, JSON shapes (tests/data/azure/*.json), long-running-operation headers
(``Azure-AsyncOperation`` + ``Location``) and CloudError bodies the SDK sends and parses.
It is a fake of the API SHAPE, not of Azure: no scheduling, networking or real disks; an
operation has finished by the time it is first polled. It also serves the OAuth2
client-credentials token endpoint (``/{tenant}/oauth2/v2.0/token``) and rejects ARM calls
without a token it issued. Faults: ``fail_next(kind)`` answers the next ARM call with the
recorded error of that kind; ``drop_next_put()`` processes the next Compute PUT and closes
the connection without answering (a lost response). Resources: VMs (+ power actions and
instance view), managed disks, disk snapshots (PUT as a long-running operation, GET, list
by resource group, DELETE), NICs.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from servers.fake_arm_state import ArmError, ArmState

DATA = Path(__file__).resolve().parent.parent / "data" / "azure"

_SUB = r"/subscriptions/(?P<sub>[^/]+)"
_RG = _SUB + r"/resourceGroups/(?P<rg>[^/]+)/providers"
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p + r"$", re.IGNORECASE), h)
    for m, p, h in [
        ("GET", _SUB + r"/providers/Microsoft\.Compute/locations/(?P<loc>[^/]+)/vmSizes", "sizes"),
        (
            "GET",
            _SUB + r"/providers/Microsoft\.Compute/locations/[^/]+/operations/(?P<op>[^/]+)",
            "operation",
        ),
        ("GET", _RG + r"/Microsoft\.Compute/(?P<kind>virtualMachines|disks|snapshots)", "list"),
        ("GET", _RG + r"/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)/instanceView", "iview"),
        (
            "POST",
            _RG + r"/Microsoft\.Compute/virtualMachines/(?P<name>[^/]+)/(?P<action>\w+)",
            "action",
        ),
        (
            "GET",
            _RG + r"/Microsoft\.(?P<kind>Compute/virtualMachines|Compute/disks|"
            r"Compute/snapshots|Network/networkInterfaces)/(?P<name>[^/]+)",
            "get",
        ),
        (
            "PUT",
            _RG + r"/Microsoft\.(?P<kind>Compute/virtualMachines|Compute/disks|"
            r"Compute/snapshots|Network/networkInterfaces)/(?P<name>[^/]+)",
            "put",
        ),
        (
            "PATCH",
            _RG + r"/Microsoft\.(?P<kind>Compute/virtualMachines|Compute/disks)/"
            r"(?P<name>[^/]+)",
            "patch",
        ),
        (
            "DELETE",
            _RG + r"/Microsoft\.(?P<kind>Compute/virtualMachines|Compute/disks|"
            r"Compute/snapshots|Network/networkInterfaces)/(?P<name>[^/]+)",
            "delete",
        ),
    ]
]


class _Drop(Exception):
    """Close the connection without answering (the lost-response fault)."""


class FakeArm:
    """The fake ARM + token endpoint; ``url`` is its base URL once started."""

    def __init__(
        self,
        subscription: str,
        resource_group: str,
        location: str = "westeurope",
        tenant: str = "fake-tenant",
        client_id: str = "fake-client",
        client_secret: str = "fake-secret",
    ) -> None:
        self.subscription, self.resource_group, self.tenant = subscription, resource_group, tenant
        self.client_id, self.client_secret = client_id, client_secret
        self.state = ArmState(subscription, resource_group, location, DATA)
        self.errors: dict[str, Any] = json.loads((DATA / "errors.json").read_text())
        self._lock = threading.Lock()
        self._tokens: set[str] = set()
        self._fault: str | None = None
        self._drop_put = False
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- lifecycle and hooks -----------------------------------------------------------
    def start(self) -> FakeArm:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def fail_next(self, kind: str) -> None:
        with self._lock:
            self._fault = kind

    def drop_next_put(self) -> None:
        with self._lock:
            self._drop_put = True

    @contextmanager
    def failing(self, kind: str) -> Iterator[None]:
        self.fail_next(kind)
        try:
            yield
        finally:
            with self._lock:
                self._fault = None

    @contextmanager
    def dropping(self) -> Iterator[None]:
        self.drop_next_put()
        try:
            yield
        finally:
            with self._lock:
                self._drop_put = False

    def snapshot(self) -> object:
        """Everything stored (VMs, disks, NICs, power states), for never-mutates checks."""
        return self.state.snapshot()

    def reset(self) -> None:
        self.state.reset()

    # -- request handling ----------------------------------------------------------------
    def handle(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], object]:
        parts = urlsplit(raw_path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.requests.append((method, parts.path))
        if method == "POST" and parts.path.endswith("/oauth2/v2.0/token"):
            return self._token(parts.path, body)
        fault = self._take_fault()
        if fault is not None:
            spec = self.errors[fault]
            return spec["status"], dict(spec["headers"]), spec["body"]
        if headers.get("authorization", "").removeprefix("Bearer ") not in self._tokens:
            return self._error(401, "AuthenticationFailed", "Authentication failed.")
        if "api-version" not in query:
            return self._error(400, "MissingApiVersionParameter", "api-version is required.")
        for route_method, pattern, name in _ROUTES:
            match = pattern.match(parts.path)
            if match and route_method == method:
                return self._dispatch(name, match.groupdict(), query, body, method)
        return self._error(404, "NotFound", f"No route for {method} {parts.path}")

    def _take_fault(self) -> str | None:
        with self._lock:
            fault, self._fault = self._fault, None
            return fault

    def _dispatch(
        self, name: str, args: dict[str, str], query: dict[str, str], body: bytes, method: str
    ) -> tuple[int, dict[str, str], object]:
        state = self.state
        if args.get("sub") != self.subscription:
            return self._error(404, "SubscriptionNotFound", f"Subscription {args.get('sub')}")
        if "rg" in args and args["rg"].lower() != self.resource_group.lower():
            return self._error(404, "ResourceGroupNotFound", f"Resource group '{args['rg']}'")
        try:
            if name == "sizes":
                return 200, {}, state.sizes(args["loc"])
            if name == "operation":
                return 200, {}, state.operation(args["op"])
            if name == "list":
                return 200, {}, {"value": state.list(args["kind"], query.get("$expand", ""))}
            if name == "iview":
                return 200, {}, state.instance_view(args["name"])
            if name == "get":
                return 200, {}, state.get(args["kind"], args["name"], query.get("$expand", ""))
            payload = json.loads(body or b"{}")
            if name == "put":
                created, resource = state.put(args["kind"], args["name"], payload)
                if self._should_drop(args["kind"]):
                    raise _Drop
                # ARM: a VM or NIC PUT answers 201/200; a disk or snapshot PUT, or a
                # disk PATCH, 202 Accepted.
                if args["kind"] in ("Compute/disks", "Compute/snapshots"):
                    return self._async(202, resource)
                return self._async(201 if created else 200, resource)
            if name == "patch":
                patched = state.patch(args["kind"], args["name"], payload)
                return self._async(202 if args["kind"] == "Compute/disks" else 200, patched)
            if name == "delete":
                existed = state.delete(args["kind"], args["name"])
                return self._async(202, None) if existed else (204, {}, None)
            state.action(args["name"], args["action"])
            return self._async(202, None)
        except ArmError as exc:
            return self._error(exc.status, exc.code, exc.message)

    def _should_drop(self, kind: str) -> bool:
        with self._lock:
            drop = self._drop_put and kind.startswith("Compute/")
            if drop:
                self._drop_put = False
            return drop

    def _async(self, status: int, resource: object) -> tuple[int, dict[str, str], object]:
        """An LRO answer: the operation is already done, polled at Azure-AsyncOperation."""
        op = self.state.new_operation()
        url = (
            f"{self.url}/subscriptions/{self.subscription}/providers/Microsoft.Compute/"
            f"locations/{self.state.location}/operations/{op}?api-version=2024-07-01"
        )
        headers = {"Azure-AsyncOperation": url}
        if resource is None:
            headers["Location"] = url + "&monitor=true"
        return status, headers, resource

    def _token(self, path: str, body: bytes) -> tuple[int, dict[str, str], object]:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        tenant = path.strip("/").split("/")[0]
        if tenant != self.tenant:
            return (
                400,
                {},
                {
                    "error": "invalid_request",
                    "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                },
            )
        if (form.get("client_id"), form.get("client_secret")) != (
            self.client_id,
            self.client_secret,
        ):
            return (
                401,
                {},
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                },
            )
        token = f"fake-token-{uuid.uuid4().hex}"
        with self._lock:
            self._tokens.add(token)
        return 200, {}, {"token_type": "Bearer", "expires_in": 3599, "access_token": token}

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], object]:
        return status, {}, {"error": {"code": code, "message": message}}


def _handler_for(fake: FakeArm) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                status, extra, payload = fake.handle(self.command, self.path, headers, body)
            except _Drop:
                self.close_connection = True
                return
            data = b"" if payload is None else json.dumps(payload).encode()
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("x-ms-request-id", str(uuid.uuid4()))
            self.send_header("Date", datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S GMT"))
            if payload is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_PATCH = do_DELETE = do_POST = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler
