"""Providers for the declared Clouds, with credentials read from Secrets.

Secret values go into the provider's context and nowhere else: errors name the
Cloud and the Secret, never a value. Providers are kept between passes while their
Cloud spec and credentials are unchanged (a driver may hold connections).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Mapping

from reconciler.executor.world import build_providers
from reconciler.model.specs import CloudSpec
from reconciler.operator.kube import KubeClient, KubeError, NotFound, resource_path
from reconciler.providers.base import Provider, ProviderContext

log = logging.getLogger(__name__)


class CredentialError(Exception):
    """A Cloud's Secret is missing or unreadable (the message names no value)."""


def read_secret(client: KubeClient, namespace: str, name: str) -> dict[str, str]:
    """The decoded data of a Secret; raises CredentialError naming what is wrong."""
    where = f"Secret {namespace}/{name}"
    try:
        raw = client.get(resource_path("Secret", namespace, name))
    except NotFound as exc:
        raise CredentialError(f"{where} not found") from exc
    except KubeError as exc:
        raise CredentialError(f"cannot read {where}: {exc.reason or exc.status}") from exc
    out: dict[str, str] = {}
    for field, value in (raw.get("data") or {}).items():
        try:
            out[field] = base64.b64decode(value).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise CredentialError(f"{where}: key {field!r} is not base64 UTF-8") from exc
    for field, value in (raw.get("stringData") or {}).items():
        out[field] = str(value)
    if not out:
        raise CredentialError(f"{where} has no data")
    return out


def _fingerprint(spec: CloudSpec, creds: Mapping[str, str] | None) -> str:
    digest = hashlib.sha256(repr(spec).encode())
    for field, value in sorted((creds or {}).items()):
        digest.update(f"{field}={value}".encode())
    return digest.hexdigest()


class CloudProviders:
    """Builds and keeps one provider per declared Cloud."""

    def __init__(self, client: KubeClient, namespace: str, context: ProviderContext):
        self.client = client
        self.namespace = namespace
        self.context = context
        self._built: dict[str, tuple[str, Provider]] = {}

    def credentials(
        self, clouds: Mapping[str, CloudSpec]
    ) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """(credentials by cloud, error by cloud) for clouds naming a Secret."""
        creds: dict[str, dict[str, str]] = {}
        errors: dict[str, str] = {}
        for name, spec in clouds.items():
            ref = spec.credentials_secret_ref
            if ref is None:
                continue
            try:
                creds[name] = read_secret(self.client, ref.namespace or self.namespace, ref.name)
            except CredentialError as exc:
                errors[name] = f"credentials: {exc}"
        return creds, errors

    def providers(
        self, clouds: Mapping[str, CloudSpec], creds: Mapping[str, Mapping[str, str]]
    ) -> dict[str, Provider]:
        """Providers for ``clouds``, rebuilt only for clouds whose spec or secret changed."""
        out: dict[str, Provider] = {}
        stale: dict[str, CloudSpec] = {}
        for name, spec in clouds.items():
            mark = _fingerprint(spec, creds.get(name))
            kept = self._built.get(name)
            if kept is not None and kept[0] == mark:
                out[name] = kept[1]
            else:
                stale[name] = spec
        if stale:
            fresh = build_providers(stale, self.context, creds)
            for name, provider in fresh.items():
                self._built[name] = (_fingerprint(stale[name], creds.get(name)), provider)
                out[name] = provider
        for name in set(self._built) - set(clouds):
            del self._built[name]
        return out

    def forget(self) -> None:
        """Drop every provider (a new leader starts from what the clouds say)."""
        self._built.clear()
