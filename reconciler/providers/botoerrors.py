"""botocore errors mapped to reconciler's error tree (shared by the AWS driver and S3 stores).

One place decides what a failed AWS/S3 call means: retry later (throttling, 5xx, timeouts,
connection errors), no room (capacity and quota codes), bad credentials, or a request that
will never work. Messages name the Cloud and the operation, never a credential.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.parsers import ResponseParserError

from reconciler.model.errors import (
    CapacityError,
    PermanentError,
    ProviderError,
    TransientError,
)

TRANSIENT_CODES = frozenset(
    {
        "RequestLimitExceeded",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "SlowDown",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "Unavailable",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
CAPACITY_CODES = frozenset(
    {
        "InsufficientInstanceCapacity",
        "InsufficientVolumeCapacity",
        "InstanceLimitExceeded",
        "VcpuLimitExceeded",
        "VolumeLimitExceeded",
        "MaxSpotInstanceCountExceeded",
        "SnapshotLimitExceeded",
        "TooManyBuckets",
    }
)
UNAUTHORIZED_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "AccessDenied",
        "ExpiredToken",
        "RequestExpired",
        "MissingAuthenticationToken",
    }
)
#: Default wait before retrying a transient failure without a Retry-After header.
DEFAULT_RETRY_AFTER = 2.0


def error_code(exc: BaseException) -> str:
    """The AWS error code of a ClientError ("" for anything else)."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: ClientError) -> int:
    meta: dict[str, Any] = exc.response.get("ResponseMetadata", {})
    return int(meta.get("HTTPStatusCode", 0) or 0)


def _retry_after(exc: ClientError) -> float:
    headers: dict[str, str] = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    raw = headers.get("retry-after", "")
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_RETRY_AFTER
    except ValueError:
        return DEFAULT_RETRY_AFTER


def _client_error(exc: ClientError, cloud: str, action: str) -> ProviderError:
    code = error_code(exc) or str(_status(exc))
    if code in UNAUTHORIZED_CODES or _status(exc) == 401:
        return PermanentError(
            f"{action}: AWS rejected the credentials of Cloud {cloud} ({code}); check the "
            "Cloud's credentials secret and its permissions",
            cloud=cloud,
            reason="Unauthorized",
        )
    message = str(exc.response.get("Error", {}).get("Message", ""))[:300]
    text = f"{action}: {code}: {message}" if message else f"{action}: {code}"
    if code in CAPACITY_CODES:
        return CapacityError(text, cloud=cloud)
    status = _status(exc)
    if code in TRANSIENT_CODES or status >= 500 or status == 429:
        return TransientError(text, cloud=cloud, retry_after=_retry_after(exc))
    return PermanentError(text, cloud=cloud, reason=code)


def map_error(exc: Exception, cloud: str, action: str) -> ProviderError:
    """The reconciler error for a botocore exception raised while doing ``action``."""
    if isinstance(exc, ProviderError):
        return exc
    if isinstance(exc, ClientError):
        return _client_error(exc, cloud, action)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return PermanentError(
            f"{action}: no AWS credentials for Cloud {cloud} (set accessKeyId and "
            "secretAccessKey in its credentials secret, or configure boto3's default chain)",
            cloud=cloud,
            reason="MissingCredentials",
        )
    if isinstance(
        exc, (ConnectionError, HTTPClientError, ResponseParserError, IncompleteReadError)
    ):
        return TransientError(
            f"{action}: {type(exc).__name__}: {exc}", cloud=cloud, retry_after=DEFAULT_RETRY_AFTER
        )
    if isinstance(exc, ParamValidationError):
        return PermanentError(f"{action}: {exc}", cloud=cloud, reason="BadRequest")
    return PermanentError(f"{action}: {type(exc).__name__}: {exc}", cloud=cloud, reason="SdkError")


@contextmanager
def mapped(cloud: str, action: str) -> Iterator[None]:
    """Run a block of boto calls; botocore errors leave it as reconciler errors."""
    try:
        yield
    except (ClientError, BotoCoreError, ResponseParserError) as exc:
        error = map_error(exc, cloud, action)
        if isinstance(error, PermanentError) and error.reason == "Unauthorized":
            raise error from None
        raise error from exc
