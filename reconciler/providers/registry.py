"""Which driver serves which ``spec.provider``: the one place providers are built.

Real drivers are imported on first use, so a build without an optional SDK (say,
libvirt-python) still plans every other cloud, and a Cloud that needs the missing
SDK gets a clear PermanentError naming the Cloud and the package to install.
"""

from __future__ import annotations

import importlib

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import Provider, ProviderContext

#: spec.provider -> (module, class, pip extra that provides its SDK)
_DRIVERS: dict[str, tuple[str, str, str]] = {
    "sim": ("reconciler.providers.sim", "SimProvider", ""),
    "libvirt": ("reconciler.providers.libvirt", "LibvirtProvider", "libvirt"),
    "aws": ("reconciler.providers.aws", "AwsProvider", "aws"),
    "openstack": ("reconciler.providers.openstack", "OpenStackProvider", "openstack"),
    "azure": ("reconciler.providers.azure", "AzureProvider", "azure"),
}

#: Every ``spec.provider`` value the Cloud schema accepts.
KNOWN_PROVIDERS = tuple(_DRIVERS)


def driver_class(provider: str, cloud_name: str = "") -> type[Provider]:
    """The Provider class for ``provider``; PermanentError if it cannot be loaded."""
    where = f"Cloud {cloud_name}: " if cloud_name else ""
    entry = _DRIVERS.get(provider)
    if entry is None:
        raise PermanentError(f"{where}unknown provider '{provider}'", reason="NoDriver")
    module_name, class_name, extra = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        missing = exc.name or str(exc)
        if missing.startswith("reconciler"):
            raise PermanentError(
                f"{where}provider '{provider}' has no driver in this build", reason="NoDriver"
            ) from exc
        raise PermanentError(
            f"{where}the {provider} driver needs the Python package '{missing}': "
            f"pip install 'reconciler[{extra}]'",
            reason="NoDriver",
        ) from exc
    cls: type[Provider] = getattr(module, class_name)
    return cls


def provider_names() -> list[str]:
    """The providers whose driver (and SDK) can be loaded in this build."""
    names = []
    for name in _DRIVERS:
        try:
            driver_class(name)
        except PermanentError:
            continue
        names.append(name)
    return sorted(names)


def build_provider(cloud: CloudSpec, context: ProviderContext) -> Provider:
    """The driver for ``cloud``; PermanentError(reason="NoDriver") if there is none."""
    return driver_class(cloud.provider, cloud.name)(cloud, context)
