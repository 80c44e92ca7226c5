"""Azure SDK errors -> reconciler errors, at the edge (see model/errors.py).

ClientAuthenticationError -> PermanentError(Unauthorized); 429 and 5xx -> TransientError
honouring Retry-After; SkuNotAvailable / AllocationFailed / ZonalAllocationFailed and
quota errors -> CapacityError; other 4xx -> PermanentError(reason=<ARM error code>);
connection errors and timeouts -> TransientError. Messages carry the ARM code and
message (which never contain our secrets), prefixed with what we were doing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from reconciler.model.errors import CapacityError, PermanentError, ProviderError, TransientError

T = TypeVar("T")

_CAPACITY = {"SkuNotAvailable", "AllocationFailed", "ZonalAllocationFailed", "QuotaExceeded"}
_QUOTA_HINTS = ("quota",)


def error_code(exc: HttpResponseError) -> str:
    """The ARM (or Storage) error code of an HTTP error, '' if none."""
    if exc.error is not None and exc.error.code:
        return str(exc.error.code)
    return str(getattr(exc, "error_code", "") or "")


def _retry_after(exc: HttpResponseError, default: float) -> float:
    headers = getattr(exc.response, "headers", None) or {}
    raw = headers.get("Retry-After")
    try:
        return max(0.0, float(raw)) if raw else default
    except ValueError:
        return default


def translate(exc: AzureError, cloud: str, doing: str) -> ProviderError:
    """The reconciler error for an Azure SDK error raised while ``doing`` something."""
    if isinstance(exc, ClientAuthenticationError):
        return PermanentError(f"{doing}: unauthorized: {exc.message}", cloud, "Unauthorized")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return TransientError(f"{doing}: connection failed: {exc.message}", cloud, 2.0)
    if not isinstance(exc, HttpResponseError):
        return TransientError(f"{doing}: {exc.message}", cloud, 2.0)
    status = exc.status_code or 0
    code = error_code(exc)
    text = f"{doing}: HTTP {status} {code}: {_message(exc)}"
    if status == 429 or status >= 500:
        return TransientError(text, cloud, _retry_after(exc, 5.0 if status == 429 else 2.0))
    if code in _CAPACITY or (
        code == "OperationNotAllowed" and any(h in _message(exc).lower() for h in _QUOTA_HINTS)
    ):
        return CapacityError(text, cloud)
    if status in (401, 403):
        return PermanentError(text, cloud, "Unauthorized")
    return PermanentError(text, cloud, code or f"HTTP{status}")


def _message(exc: HttpResponseError) -> str:
    if exc.error is not None and exc.error.message:
        return str(exc.error.message)
    return str(exc.reason or exc.message).splitlines()[0]


@contextmanager
def azure_errors(cloud: str, doing: str) -> Iterator[None]:
    """Run a block of SDK calls, mapping any AzureError at the edge."""
    try:
        yield
    except AzureError as exc:
        raise translate(exc, cloud, doing) from exc


def or_none(cloud: str, doing: str, fn: Callable[[], T]) -> T | None:
    """Run one SDK call with errors mapped at the edge; None if Azure answers that the
    resource does not exist (ResourceNotFoundError)."""
    with azure_errors(cloud, doing):
        try:
            return fn()
        except ResourceNotFoundError:
            return None
