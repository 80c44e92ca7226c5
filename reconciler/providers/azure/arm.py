"""What every Azure operation shares: the clients, the scope and the small helpers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.network import NetworkManagementClient

from reconciler.model.errors import PermanentError
from reconciler.model.keys import GROUP, TAG_OWNER
from reconciler.providers.azure.names import decode_key, decode_map, encode_tag_key, parse_arm_id
from reconciler.providers.azure.settings import AzureSettings


@dataclass(frozen=True)
class Arm:
    """The management clients (thread-safe) of one Cloud, plus its scope."""

    cloud: str
    owner: str
    settings: AzureSettings
    compute: ComputeManagementClient
    network: NetworkManagementClient

    @property
    def group(self) -> str:
        return self.settings.resource_group

    def name_of(self, external_id: str, kind: str) -> str | None:
        """The resource name if ``external_id`` is a ``kind`` in OUR subscription and
        resource group; None otherwise (callers treat it as absent)."""
        parsed = parse_arm_id(external_id)
        if parsed is None:
            return None
        sub, group, found, name = parsed
        same = (
            sub.lower() == self.settings.subscription_id.lower()
            and group.lower() == self.group.lower()
            and found.lower() == kind.lower()
        )
        return name if same else None

    def owns(self, raw_tags: Mapping[str, str] | None) -> bool:
        return decode_map(raw_tags).get(TAG_OWNER) == self.owner

    def not_found(self, what: str, external_id: str) -> PermanentError:
        return PermanentError(
            f"{what} {external_id} does not exist or is not managed by {self.owner}",
            self.cloud,
            "NotFound",
        )


def text(value: object) -> str:
    """An SDK enum or string as its wire value."""
    if isinstance(value, Enum):
        return str(value.value)
    return "" if value is None else str(value)


def merged_tags(
    raw: Mapping[str, str] | None, update: Mapping[str, str], owner: str, cloud: str
) -> dict[str, str]:
    """Raw Azure tags with ``update`` (decoded keys) applied; refuses to change the owner."""
    result = dict(raw or {})
    for key, value in update.items():
        result[encode_tag_key(key)] = value
    if decode_map(result).get(TAG_OWNER) != owner:
        raise PermanentError(
            "an update may not change the owner tag; use forget()", cloud, "BadRequest"
        )
    return result


def without_ours(raw: Mapping[str, str] | None) -> dict[str, str]:
    """Raw tags minus every reconciler.dev/* key (forget)."""
    return {
        key: value
        for key, value in (raw or {}).items()
        if not decode_key(key).startswith(GROUP + "/")
    }
