"""A small raw-JSON Kubernetes client: configuration, HTTP verbs, watch streams, errors.

The generated ``kubernetes.client`` classes are deliberately not used: their model objects
cost memory at 10k objects and the 37.x client has quirks (see BACKENDS.md). urllib3 with
plain dicts is enough. The bearer token never appears in a repr, an error or a log line.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
import yaml

from reconciler.model.errors import ReconcilerError
from reconciler.model.keys import API_VERSION, CLUSTER_SCOPED, KINDS

__all__ = [
    "API_VERSION",
    "PLURALS",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "KubeClient",
    "KubeConfig",
    "KubeConfigError",
    "KubeError",
    "KubeUnavailable",
    "NotFound",
    "Unauthorized",
    "WatchStream",
    "load_config",
    "resource_path",
]

PLURALS: dict[str, str] = {
    "Cloud": "clouds",
    "BrokerPolicy": "brokerpolicies",
    "VirtualMachine": "virtualmachines",
    "VirtualMachineSet": "virtualmachinesets",
    "Volume": "volumes",
    "Bucket": "buckets",
    "Image": "images",
}
"""Plural (URL) names of reconciler.dev kinds."""

_SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
_TOKEN_REREAD_SECONDS = 60.0
_JSON = "application/json"

# kind -> (API prefix, plural, namespaced) for every kind this package addresses.
_RESOURCES: dict[str, tuple[str, str, bool]] = {
    **{k: (f"/apis/{API_VERSION}", PLURALS[k], k not in CLUSTER_SCOPED) for k in KINDS},
    "Secret": ("/api/v1", "secrets", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "Event": ("/api/v1", "events", True),
    "Namespace": ("/api/v1", "namespaces", False),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
}


class KubeConfigError(ReconcilerError):
    """The kubeconfig or in-cluster configuration is missing or unusable."""


class KubeError(Exception):
    """The API server refused a request: HTTP ``status``, Kubernetes ``reason``, ``message``."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        super().__init__(f"{status} {reason}: {message}")


class NotFound(KubeError):
    """404: the object (or its namespace, or the resource type) does not exist."""


class Conflict(KubeError):
    """409: stale resourceVersion, or AlreadyExists on create (see ``reason``)."""


class Gone(KubeError):
    """410: the resourceVersion is too old (compacted); re-list."""


class Forbidden(KubeError):
    """403: RBAC does not allow this request."""


class Unauthorized(KubeError):
    """401: the credentials were rejected."""


class Invalid(KubeError):
    """422: the object failed validation (schema, immutable fields, ...)."""


class KubeUnavailable(KubeError):
    """The API server could not be reached or is overloaded (network error, 429, 5xx)."""


_BY_STATUS: dict[int, type[KubeError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: KubeUnavailable,
    500: KubeUnavailable,
    502: KubeUnavailable,
    503: KubeUnavailable,
    504: KubeUnavailable,
}


def error_from_status(status: int, body: Any) -> KubeError:
    """Build the KubeError subclass for an HTTP status and a (maybe) metav1.Status body."""
    reason, message = "", ""
    if isinstance(body, bytes | str):
        try:
            body = json.loads(body)
        except ValueError:
            message = body[:300].decode(errors="replace") if isinstance(body, bytes) else body
    if isinstance(body, dict):
        reason = str(body.get("reason") or "")
        message = str(body.get("message") or message)
        status = int(body.get("code") or status)
    cls = _BY_STATUS.get(status, KubeError)
    return cls(status, reason or cls.__name__, message or f"HTTP {status}")


@dataclass(frozen=True)
class KubeConfig:
    """Where the API server is and how to authenticate; ``token`` is never shown in repr."""

    server: str
    token: str = field(default="", repr=False)
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    verify_tls: bool = True
    #: In-cluster service-account token path, re-read periodically because it rotates.
    token_file: str = ""
    #: Refreshes a token that expires (kubeconfig exec plugins, auth providers).
    token_source: Callable[[], str] | None = field(default=None, repr=False, compare=False)


def load_config(kubeconfig: str | None = None, context: str | None = None) -> KubeConfig:
    """In-cluster config in a pod when no kubeconfig is given; else $KUBECONFIG, ~/.kube/config."""
    if kubeconfig is None and context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        return _in_cluster()
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    first = path.split(os.pathsep)[0]
    if not Path(first).is_file():
        raise KubeConfigError(f"kubeconfig not found: {first}")
    return _from_kubeconfig(path, context)


def _in_cluster() -> KubeConfig:
    host = os.environ["KUBERNETES_SERVICE_HOST"]
    port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if ":" in host:
        host = f"[{host}]"
    token_file = _SA_DIR / "token"
    try:
        token = token_file.read_text().strip()
    except OSError as exc:
        raise KubeConfigError(
            f"in-cluster token unreadable: {token_file}: {exc.strerror}"
        ) from None
    ca = _SA_DIR / "ca.crt"
    return KubeConfig(
        server=f"https://{host}:{port}",
        token=token,
        ca_file=str(ca) if ca.is_file() else None,
        token_file=str(token_file),
    )


def _from_kubeconfig(path: str, context: str | None) -> KubeConfig:
    """Resolve a kubeconfig with the kubernetes package's loader (exec plugins, *-data files)."""
    from kubernetes.client import Configuration
    from kubernetes.config.kube_config import load_kube_config

    cfg = Configuration()
    try:
        load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, context=context, client_configuration=cfg, persist_config=False
        )
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise KubeConfigError(f"kubeconfig {path} is not valid YAML{where}") from None
    except Exception as exc:  # the loader raises many types; none may reach the user raw
        raise KubeConfigError(f"cannot use kubeconfig {path}: {exc}") from None
    if not cfg.host:
        raise KubeConfigError(f"kubeconfig {path}: the cluster has no server")
    hook = cfg.refresh_api_key_hook

    def refresh() -> str:
        if hook is not None:
            hook(cfg)
        return _bearer(cfg.api_key)

    return KubeConfig(
        server=str(cfg.host),
        token=_bearer(cfg.api_key),
        ca_file=cfg.ssl_ca_cert,
        cert_file=cfg.cert_file,
        key_file=cfg.key_file,
        verify_tls=bool(cfg.verify_ssl),
        token_source=refresh if hook is not None else None,
    )


def _bearer(api_key: dict[str, str]) -> str:
    value = api_key.get("BearerToken") or api_key.get("authorization") or ""
    return value.removeprefix("Bearer ").strip()


def resource_path(kind: str, namespace: str = "", name: str = "", subresource: str = "") -> str:
    """URL path of a kind's collection, an object, or its subresource.

    ``namespace=""`` on a namespaced kind addresses all namespaces (list/watch only).
    """
    try:
        prefix, plural, namespaced = _RESOURCES[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}") from None
    if namespace and not namespaced:
        raise ValueError(f"{kind} is cluster-scoped; no namespace allowed")
    if name and namespaced and not namespace:
        raise ValueError(f"{kind} {name!r} needs a namespace")
    if subresource and not name:
        raise ValueError("a subresource needs an object name")
    path = prefix
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name:
        path += f"/{quote(name, safe='')}"
    if subresource:
        path += f"/{subresource}"
    return path


def _query(query: dict[str, Any]) -> str:
    items = {
        k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in query.items()
    }
    items = {k: v for k, v in items.items() if v != ""}
    return "?" + urlencode(items) if items else ""


class WatchStream(Iterator[dict[str, Any]]):
    """Watch events ({"type", "object"}) read line by line from one streamed response.

    ``close()`` may be called from another thread: it shuts the socket so a blocked read
    returns, and iteration then ends quietly.
    """

    def __init__(self, response: urllib3.BaseHTTPResponse, path: str) -> None:
        self._response = response
        self._path = path
        self._closed = False
        self._events = self._read()

    def __next__(self) -> dict[str, Any]:
        return next(self._events)

    def close(self) -> None:
        """Stop the stream and free its connection; safe from any thread, idempotent."""
        self._closed = True
        # ValueError: the response already finished and released its socket.
        with contextlib.suppress(OSError, ValueError):
            self._response.shutdown()
        # ValueError: running in another thread; its finally releases the connection.
        with contextlib.suppress(ValueError):
            self._events.close()

    def _read(self) -> Generator[dict[str, Any], None, None]:
        pending = b""
        try:
            for chunk in self._response.stream(65536, decode_content=True):
                lines = (pending + chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.strip():
                        yield self._decode(line)
            if pending.strip() and not self._closed:
                yield self._decode(pending)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as exc:
            if not self._closed:
                raise KubeUnavailable(0, "WatchInterrupted", f"watch {self._path}: {exc}") from None
        finally:
            self._response.close()
            self._response.release_conn()

    def _decode(self, line: bytes) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(line)
        if event.get("type") == "ERROR":
            # The Status carries its code; without one, assume expiry: a re-list is safe.
            raise error_from_status(410, event.get("object"))
        return event


class KubeClient:
    """Thread-safe JSON client for the Kubernetes API; every method returns the parsed body."""

    def __init__(self, config: KubeConfig, timeout: float = 30.0, pool_size: int = 16) -> None:
        self.config = config
        self.timeout = timeout
        self._server = config.server.rstrip("/")
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=pool_size,
            cert_reqs="CERT_REQUIRED" if config.verify_tls else "CERT_NONE",
            ca_certs=config.ca_file,
            cert_file=config.cert_file,
            key_file=config.key_file,
            retries=False,
        )
        self._token_lock = threading.Lock()
        self._token = config.token
        self._token_at = time.monotonic()

    def get(self, path: str) -> dict[str, Any]:
        """GET one object (or any path)."""
        return self._request("GET", path)

    def list(self, path: str, **query: Any) -> dict[str, Any]:
        """GET a collection; query names as the API spells them (labelSelector, limit, ...)."""
        return self._request("GET", path + _query(query))

    def list_pages(self, path: str, limit: int = 500) -> Iterator[dict[str, Any]]:
        """A collection LIST in pages of ``limit`` (``continue`` tokens followed); the
        last page's metadata carries the resourceVersion to watch from."""
        token = ""
        while True:
            query: dict[str, Any] = {"limit": limit}
            if token:
                query["continue"] = token
            page = self.list(path, **query)
            yield page
            token = (page.get("metadata") or {}).get("continue") or ""
            if not token:
                return

    def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to a collection path."""
        return self._request("POST", path, body)

    def replace(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT ``body`` (with metadata.resourceVersion for optimistic concurrency)."""
        return self._request("PUT", path, body)

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): null deletes a field, lists are replaced whole."""
        return self._request("PATCH", path, patch, "application/merge-patch+json")

    def apply(
        self, path: str, body: dict[str, Any], field_manager: str, force: bool = True
    ) -> dict[str, Any]:
        """Server-side apply of ``body`` (JSON is YAML) owned by ``field_manager``."""
        query = _query({"fieldManager": field_manager, "force": force})
        return self._request("PATCH", path + query, body, "application/apply-patch+yaml")

    def delete(self, path: str, **query: Any) -> dict[str, Any]:
        """DELETE an object (or a collection); e.g. propagationPolicy="Background"."""
        return self._request("DELETE", path + _query(query))

    def watch(
        self,
        path: str,
        resource_version: str,
        timeout_seconds: int = 300,
        bookmarks: bool = True,
        **query: Any,
    ) -> WatchStream:
        """Stream watch events of a collection from ``resource_version``.

        The server ends the stream after ``timeout_seconds``. An ERROR event raises its
        KubeError (Gone for 410: re-list); a broken connection raises KubeUnavailable.
        """
        params = {
            "watch": True,
            "resourceVersion": resource_version,
            "timeoutSeconds": timeout_seconds,
            "allowWatchBookmarks": bookmarks,
            **query,
        }
        url = self._server + path + _query(params)
        timeout = urllib3.Timeout(connect=min(10.0, self.timeout), read=timeout_seconds + 30.0)
        response = self._send("GET", url, path, None, _JSON, timeout, stream=True)
        if response.status >= 400:
            data = response.read()
            response.release_conn()
            raise error_from_status(response.status, data)
        return WatchStream(response, path)

    def close(self) -> None:
        """Close every pooled connection."""
        self._pool.clear()

    def _request(
        self, method: str, path: str, body: Any = None, content_type: str = _JSON
    ) -> dict[str, Any]:
        timeout = urllib3.Timeout(connect=min(10.0, self.timeout), read=self.timeout)
        response = self._send(method, self._server + path, path, body, content_type, timeout)
        if response.status >= 400:
            raise error_from_status(response.status, response.data)
        if not response.data:
            return {}
        result: dict[str, Any] = json.loads(response.data)
        return result

    def _send(
        self,
        method: str,
        url: str,
        path: str,
        body: Any,
        content_type: str,
        timeout: urllib3.Timeout,
        stream: bool = False,
    ) -> urllib3.BaseHTTPResponse:
        headers = {"Accept": _JSON, "User-Agent": "reconciler-operator"}
        token = self._current_token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        try:
            return self._pool.request(
                method,
                url,
                body=data,
                headers=headers,
                timeout=timeout,
                retries=False,
                preload_content=not stream,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeUnavailable(0, "Unavailable", f"{method} {path}: {exc}") from None

    def _current_token(self) -> str:
        """The bearer token, re-read from its file or source at most once a minute."""
        cfg = self.config
        if not (cfg.token_file or cfg.token_source):
            return self._token
        with self._token_lock:
            if time.monotonic() - self._token_at >= _TOKEN_REREAD_SECONDS:
                self._token_at = time.monotonic()
                try:
                    if cfg.token_source is not None:
                        self._token = cfg.token_source()
                    else:
                        self._token = Path(cfg.token_file).read_text().strip()
                except Exception:  # keep the previous token; the server will say if it expired
                    pass
            return self._token
