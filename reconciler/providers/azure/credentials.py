"""Credentials for ARM and Blob, built from the Cloud's Secret (never logged or repr'd).

ARM: an Entra ID service principal (``tenantId``, ``clientId``, ``clientSecret``) through
azure-identity's ``ClientSecretCredential``. Only when ``settings.authorityHost`` is plain
http on 127.0.0.1 (the test fake; MSAL refuses non-https authorities) does the driver use
``LoopbackClientSecretCredential``, which speaks the same OAuth2 client-credentials grant
to ``{authority}/{tenant}/oauth2/v2.0/token``, and a bearer policy that allows http.
Blob: ``storageConnectionString``, or ``storageAccountUrl`` + ``storageAccountKey``.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from azure.core.credentials import AccessToken, AzureNamedKeyCredential, TokenCredential
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.core.pipeline import PipelineRequest
from azure.identity import ClientSecretCredential
from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy
from azure.storage.blob import BlobServiceClient

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec
from reconciler.providers.azure.settings import AzureSettings

ARM_KEYS = ("tenantId", "clientId", "clientSecret")
ARM_SCOPE = "https://management.azure.com/.default"


def require(cloud: CloudSpec, credentials: Mapping[str, str], keys: tuple[str, ...]) -> None:
    """PermanentError(MissingCredentials) naming the first missing key (never a value)."""
    for key in keys:
        if not credentials.get(key):
            raise PermanentError(
                f"credential '{key}' is missing from the Cloud's secret "
                f"(azure needs {', '.join(keys)})",
                cloud=cloud.name,
                reason="MissingCredentials",
            )


class LoopbackClientSecretCredential:
    """OAuth2 client-credentials grant against an http authority on loopback (tests)."""

    def __init__(self, authority: str, tenant: str, client_id: str, secret: str) -> None:
        self._url = f"{authority}/{urllib.parse.quote(tenant)}/oauth2/v2.0/token"
        self._client_id = client_id
        self._secret = secret
        self._lock = threading.Lock()
        self._cached: AccessToken | None = None

    def __repr__(self) -> str:
        return f"LoopbackClientSecretCredential({self._url!r})"

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        with self._lock:
            if self._cached is None or self._cached.expires_on - 60 < time.time():
                self._cached = self._fetch(scopes)
            return self._cached

    def _fetch(self, scopes: tuple[str, ...]) -> AccessToken:
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": self._client_id,
                "client_secret": self._secret,
                "scope": " ".join(scopes),
            }
        ).encode()
        try:
            with urllib.request.urlopen(self._url, data=form, timeout=30) as answer:
                body = json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            detail = json.loads(exc.read() or b"{}").get("error_description", str(exc.code))
            raise ClientAuthenticationError(f"token request failed: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise ServiceRequestError(f"token endpoint unreachable: {exc}") from None
        return AccessToken(str(body["access_token"]), int(time.time()) + int(body["expires_in"]))


class LoopbackBearerPolicy(ARMChallengeAuthenticationPolicy):
    """The ARM bearer policy with azure-core's https check turned off (``enforce_https``
    option), used only when the ARM endpoint is http on 127.0.0.1."""

    def on_request(self, request: PipelineRequest[Any]) -> None:
        request.context.options["enforce_https"] = False
        super().on_request(request)


def arm_credential(
    cloud: CloudSpec, settings: AzureSettings, credentials: Mapping[str, str]
) -> TokenCredential:
    require(cloud, credentials, ARM_KEYS)
    tenant, client, secret = (credentials[k] for k in ARM_KEYS)
    if urlsplit(settings.authority).scheme == "http":
        return LoopbackClientSecretCredential(settings.authority, tenant, client, secret)
    return ClientSecretCredential(tenant, client, secret, authority=settings.authority)


def arm_client_options(settings: AzureSettings, credential: TokenCredential) -> dict[str, Any]:
    """Keyword arguments for the management clients: no SDK retries (the executor retries
    TransientErrors, honouring Retry-After) and, on loopback, the http-allowing policy."""
    options: dict[str, Any] = {"retry_total": 0, "base_url": settings.arm_url}
    if settings.polling_interval is not None:
        options["polling_interval"] = settings.polling_interval
    if settings.insecure_loopback:
        options["authentication_policy"] = LoopbackBearerPolicy(credential, ARM_SCOPE)
    return options


#: Blob reads come in requests of at most this size (the SDK's default first request is
#: 32 MiB, held in memory).
BLOB_READ_CHUNK = 8 * 1024 * 1024


def blob_service(cloud: CloudSpec, credentials: Mapping[str, str]) -> BlobServiceClient | None:
    """The Blob client, or None when the secret has no storage credentials."""
    connection = credentials.get("storageConnectionString")
    if connection:
        try:
            return BlobServiceClient.from_connection_string(
                connection, retry_total=0, max_single_get_size=BLOB_READ_CHUNK
            )
        except ValueError:
            raise PermanentError(
                "credential 'storageConnectionString' is malformed",
                cloud=cloud.name,
                reason="InvalidCredentials",
            ) from None
    url = credentials.get("storageAccountUrl")
    if not url:
        return None
    require(cloud, credentials, ("storageAccountUrl", "storageAccountKey"))
    parts = urlsplit(url)
    host = parts.hostname or ""
    name = host.split(".")[0] if host.endswith(".core.windows.net") else parts.path.strip("/")
    if not name:
        raise PermanentError(
            "cannot tell the storage account from storageAccountUrl",
            cloud=cloud.name,
            reason="InvalidCredentials",
        )
    key = AzureNamedKeyCredential(name.split("/")[0], credentials["storageAccountKey"])
    return BlobServiceClient(
        url, credential=key, retry_total=0, max_single_get_size=BLOB_READ_CHUNK
    )
