"""SDK and HTTP errors of openstacksdk/keystoneauth mapped to reconciler's error tree.

The one place OpenStack failures are classified (see model/errors.py): throttling, 5xx,
409 task-state conflicts and connection failures are worth retrying; authentication,
bad requests and missing endpoints are not; quota and "No valid host" are capacity.
Messages name the Cloud and quote the service's fault text, never a credential.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from keystoneauth1 import exceptions as ks
from openstack import exceptions as sdk

from reconciler.model.errors import (
    CapacityError,
    PermanentError,
    ProviderError,
    TransientError,
)

#: Nova's fault text when the scheduler finds no host with room for a server.
NO_VALID_HOST = "no valid host was found"
_QUOTA_WORDS = ("quota exceeded", "quota_exceeded", "overlimit", "exceeds quota")


def _retry_after(exc: sdk.HttpException, default: float) -> float:
    response = getattr(exc, "response", None)
    raw = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(0.0, float(raw)) if raw is not None else default
    except ValueError:
        return default


def _detail(exc: BaseException) -> str:
    """The service's own fault text (HttpException.details), else the exception text."""
    details = getattr(exc, "details", None)
    text = str(details) if details else str(exc)
    text = text or type(exc).__name__
    return " ".join(text.split())[:500]


def is_quota(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in _QUOTA_WORDS) or NO_VALID_HOST in lowered


def _from_http(exc: sdk.HttpException, cloud: str, what: str) -> ProviderError:
    status = exc.status_code or 0
    detail = _detail(exc)
    message = f"{what} failed: HTTP {status}: {detail}"
    if status in (403, 413) and is_quota(detail):
        return CapacityError(f"{what}: quota or capacity exhausted: {detail}", cloud=cloud)
    if status in (401, 403):
        return PermanentError(
            f"{what} was refused (HTTP {status}): check the Cloud's credentials and role: {detail}",
            cloud=cloud,
            reason="Unauthorized",
        )
    if status in (413, 429):
        return TransientError(
            f"{what} was rate-limited (HTTP {status})", cloud, _retry_after(exc, 1.0)
        )
    if status == 409:
        return TransientError(f"{what} conflicts with a task in progress: {detail}", cloud, 2.0)
    if status == 404:
        return PermanentError(message, cloud=cloud, reason="NotFound")
    if status >= 500 or status in (408, 425):
        return TransientError(message, cloud, _retry_after(exc, 2.0))
    return PermanentError(message, cloud=cloud, reason="BadRequest")


def map_error(exc: BaseException, cloud: str, what: str) -> ProviderError:
    """The ProviderError for any exception an openstacksdk call raised."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, sdk.HttpException):
        return _from_http(exc, cloud, what)
    if isinstance(exc, ks.Unauthorized | ks.AuthorizationFailure):
        return PermanentError(
            f"{what}: authentication failed: Keystone refused the Cloud's credentials",
            cloud=cloud,
            reason="Unauthorized",
        )
    if isinstance(exc, ks.MissingRequiredOptions | ks.MissingAuthPlugin):
        return PermanentError(f"{what}: {_detail(exc)}", cloud=cloud, reason="MissingCredentials")
    if isinstance(exc, ks.HttpError):
        status = getattr(exc, "http_status", 0) or 0
        if status >= 500 or status == 429:
            return TransientError(f"{what} failed: HTTP {status}", cloud, 2.0)
        return PermanentError(f"{what} failed: HTTP {status}", cloud=cloud, reason="BadRequest")
    if isinstance(exc, ks.ConnectFailure | ks.ConnectTimeout | ks.RetriableConnectionFailure):
        return TransientError(f"{what}: cannot reach the service: {_detail(exc)}", cloud, 2.0)
    if isinstance(exc, sdk.ResourceTimeout):
        return TransientError(f"{what}: timed out: {_detail(exc)}", cloud, 5.0)
    if isinstance(exc, ks.EndpointNotFound | ks.CatalogException | sdk.EndpointNotFound):
        return PermanentError(
            f"{what}: the service is not in the Keystone catalog for this region/interface: "
            f"{_detail(exc)}",
            cloud=cloud,
            reason="EndpointNotFound",
        )
    if isinstance(exc, ks.DiscoveryFailure):
        return TransientError(f"{what}: API version discovery failed: {_detail(exc)}", cloud, 5.0)
    if isinstance(exc, ks.ClientException | sdk.SDKException):
        return PermanentError(f"{what} failed: {_detail(exc)}", cloud=cloud, reason="SDKError")
    if isinstance(exc, OSError | TimeoutError):
        return TransientError(f"{what}: {type(exc).__name__}: {exc}", cloud, 2.0)
    raise exc


@contextmanager
def edge(cloud: str, what: str) -> Iterator[None]:
    """Map every SDK/transport exception raised inside to a ProviderError."""
    try:
        yield
    except Exception as exc:  # classified; unknown kinds are re-raised as they are
        raise map_error(exc, cloud, what) from exc


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, sdk.NotFoundException) or (
        isinstance(exc, sdk.HttpException) and exc.status_code == 404
    )
