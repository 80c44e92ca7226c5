"""Credentials, settings and boto3 clients of one AWS Cloud (one client per service)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import boto3

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec
from reconciler.providers.s3store import boto_session, client_config, s3_client

#: spec.settings keys the AWS driver reads (all optional).
SETTINGS_KEYS = frozenset(
    {
        "availabilityZone",
        "subnetId",
        "securityGroupIds",
        "keyName",
        "waitDelaySeconds",
        "waitMaxAttempts",
        "imageExport",
    }
)


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """The validated ``spec.settings`` of an AWS Cloud."""

    availability_zone: str = ""
    subnet_id: str = ""
    security_group_ids: tuple[str, ...] = ()
    key_name: str = ""
    wait_delay: int = 5
    wait_max_attempts: int = 60
    #: settings.imageExport "true": declare IMAGE_EXPORT (disk reads through EBS direct;
    #: off by default, see docs/providers/aws.md for what is verified).
    image_export: bool = False


def _positive_int(cloud: CloudSpec, key: str, default: int) -> int:
    raw = cloud.settings.get(key, "")
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise PermanentError(
            f"Cloud {cloud.name}: settings.{key} must be a positive integer, got {raw!r}",
            cloud=cloud.name,
            reason="InvalidCloud",
        )
    return int(raw)


def parse_settings(cloud: CloudSpec) -> AwsSettings:
    """Validate ``cloud.region`` and ``cloud.settings``; PermanentError(InvalidCloud) if bad."""
    if not cloud.region:
        raise PermanentError(
            f"Cloud {cloud.name}: spec.region is required for provider aws (e.g. us-east-1)",
            cloud=cloud.name,
            reason="InvalidCloud",
        )
    unknown = sorted(set(cloud.settings) - SETTINGS_KEYS)
    if unknown:
        raise PermanentError(
            f"Cloud {cloud.name}: unknown settings {', '.join(unknown)} for provider aws "
            f"(known: {', '.join(sorted(SETTINGS_KEYS))})",
            cloud=cloud.name,
            reason="InvalidCloud",
        )
    groups = cloud.settings.get("securityGroupIds", "")
    export = cloud.settings.get("imageExport", "false").lower()
    if export not in ("true", "false"):
        raise PermanentError(
            f"Cloud {cloud.name}: settings.imageExport must be true or false, got {export!r}",
            cloud=cloud.name,
            reason="InvalidCloud",
        )
    return AwsSettings(
        availability_zone=cloud.settings.get("availabilityZone", ""),
        subnet_id=cloud.settings.get("subnetId", ""),
        security_group_ids=tuple(g.strip() for g in groups.split(",") if g.strip()),
        key_name=cloud.settings.get("keyName", ""),
        wait_delay=_positive_int(cloud, "waitDelaySeconds", 5),
        wait_max_attempts=_positive_int(cloud, "waitMaxAttempts", 60),
        image_export=export == "true",
    )


def make_session(cloud: CloudSpec, credentials: Mapping[str, str]) -> boto3.session.Session:
    """A boto3 session from accessKeyId/secretAccessKey[/sessionToken], or the default chain
    when none is given. Half a key pair is a PermanentError(MissingCredentials)."""
    key = credentials.get("accessKeyId", "")
    secret = credentials.get("secretAccessKey", "")
    if bool(key) != bool(secret):
        missing = "secretAccessKey" if key else "accessKeyId"
        raise PermanentError(
            f"Cloud {cloud.name}: credential '{missing}' is missing (accessKeyId and "
            "secretAccessKey go together)",
            cloud=cloud.name,
            reason="MissingCredentials",
        )
    return boto_session(credentials, cloud.region)


class AwsClients:
    """Lazily built, shared boto3 clients (boto3 clients are thread-safe; building is not)."""

    def __init__(self, cloud: CloudSpec, credentials: Mapping[str, str]) -> None:
        self._session = make_session(cloud, credentials)
        self._endpoint = cloud.endpoint or None
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def client(self, service: str) -> Any:
        """The one client for ``service`` ("ec2", "s3", "ebs")."""
        with self._lock:
            found = self._clients.get(service)
            if found is None:
                if service == "s3":
                    found = s3_client(self._session, self._endpoint)
                else:
                    found = self._session.client(
                        service, endpoint_url=self._endpoint, config=client_config()
                    )
                self._clients[service] = found
            return found
