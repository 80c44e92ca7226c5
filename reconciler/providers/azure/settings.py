"""The Azure Cloud's non-secret settings (``spec.settings``), validated once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec

PUBLIC_ARM = "https://management.azure.com"
PUBLIC_AUTHORITY = "https://login.microsoftonline.com"
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_KNOWN = {
    "subscriptionId",
    "resourceGroup",
    "location",
    "subnetId",
    "adminUsername",
    "sshPublicKey",
    "osDiskType",
    "authorityHost",
    "blobVersioning",
    "pollingIntervalSeconds",
}
_SUBNET = re.compile(
    r"/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.Network/"
    r"virtualNetworks/[^/]+/subnets/[^/]+",
    re.IGNORECASE,
)
_DISK_TYPES = {"Standard_LRS", "StandardSSD_LRS", "Premium_LRS"}


@dataclass(frozen=True, slots=True)
class AzureSettings:
    """Parsed settings; ``insecure_loopback`` allows plain http to a 127.0.0.1 endpoint
    (the test fake), never to anything else."""

    subscription_id: str
    resource_group: str
    location: str
    arm_url: str
    authority: str
    subnet_id: str
    admin_username: str
    ssh_public_key: str
    os_disk_type: str
    blob_versioning: bool
    polling_interval: float | None
    insecure_loopback: bool


def _url(cloud: CloudSpec, what: str, value: str) -> bool:
    """Validate an endpoint URL; True if it is plain http on loopback."""
    parts = urlsplit(value)
    if parts.scheme == "https" and parts.hostname:
        return False
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return True
    raise invalid(cloud, f"{what} must be an https URL (http only on 127.0.0.1): {value!r}")


def invalid(cloud: CloudSpec, message: str) -> PermanentError:
    return PermanentError(
        f"invalid azure Cloud: {message}", cloud=cloud.name, reason="InvalidCloud"
    )


def parse_settings(cloud: CloudSpec) -> AzureSettings:
    """Validate ``cloud.settings``; PermanentError(InvalidCloud) naming the Cloud."""
    raw = dict(cloud.settings)
    unknown = sorted(set(raw) - _KNOWN)
    if unknown:
        raise invalid(cloud, f"unknown azure settings {unknown} (known: {sorted(_KNOWN)})")
    for key in ("subscriptionId", "resourceGroup"):
        if not raw.get(key):
            raise invalid(cloud, f"settings.{key} is required for provider azure")
    location = raw.get("location") or cloud.region
    if not location:
        raise invalid(cloud, "set spec.region or settings.location")
    subnet = raw.get("subnetId", "")
    if subnet and not _SUBNET.fullmatch(subnet):
        raise invalid(cloud, f"settings.subnetId is not a subnet resource id: {subnet!r}")
    disk_type = raw.get("osDiskType", "StandardSSD_LRS")
    if disk_type not in _DISK_TYPES:
        raise invalid(cloud, f"settings.osDiskType must be one of {sorted(_DISK_TYPES)}")
    versioning = raw.get("blobVersioning", "disabled")
    if versioning not in ("enabled", "disabled"):
        raise invalid(cloud, "settings.blobVersioning must be 'enabled' or 'disabled'")
    polling: float | None = None
    if raw.get("pollingIntervalSeconds"):
        try:
            polling = float(raw["pollingIntervalSeconds"])
        except ValueError:
            polling = -1.0
        if polling < 0:
            raise invalid(cloud, "settings.pollingIntervalSeconds must be a number >= 0")
    arm_url = (cloud.endpoint or PUBLIC_ARM).rstrip("/")
    authority = raw.get("authorityHost", PUBLIC_AUTHORITY).rstrip("/")
    insecure = _url(cloud, "spec.endpoint", arm_url)
    insecure_authority = _url(cloud, "settings.authorityHost", authority)
    return AzureSettings(
        subscription_id=raw["subscriptionId"],
        resource_group=raw["resourceGroup"],
        location=location,
        arm_url=arm_url,
        authority=authority,
        subnet_id=subnet,
        admin_username=raw.get("adminUsername", "azureuser"),
        ssh_public_key=raw.get("sshPublicKey", ""),
        os_disk_type=disk_type,
        blob_versioning=versioning == "enabled",
        polling_interval=polling,
        insecure_loopback=insecure or insecure_authority,
    )
