"""Which driver serves which ``spec.provider``: the one place providers are built."""

from __future__ import annotations

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import Provider, ProviderContext
from reconciler.providers.sim import SimProvider

_DRIVERS: dict[str, type[SimProvider]] = {SimProvider.provider_name: SimProvider}

#: Every ``spec.provider`` value the Cloud schema accepts.
KNOWN_PROVIDERS = ("sim", "libvirt", "aws", "openstack", "azure")


def provider_names() -> list[str]:
    """The providers this build has a driver for."""
    return sorted(_DRIVERS)


def build_provider(cloud: CloudSpec, context: ProviderContext) -> Provider:
    """The driver for ``cloud``; PermanentError(reason="NoDriver") if there is none."""
    driver = _DRIVERS.get(cloud.provider)
    if driver is None:
        raise PermanentError(
            f"Cloud {cloud.name}: provider '{cloud.provider}' has no driver in this build yet "
            "(real drivers: see docs/providers.md)",
            reason="NoDriver",
        )
    return driver(cloud, context)
