"""The libvirt Cloud's settings and hosts, validated once when the provider is built."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec

#: settings keys this driver reads, with their defaults.
DEFAULTS: dict[str, str] = {
    "pool": "default",
    "network": "default",
    "cpuAllocationRatio": "1.0",
    "domainType": "",
    "shutdownTimeout": "10",
}
DOMAIN_TYPES = ("kvm", "qemu", "test")


@dataclass(frozen=True, slots=True)
class LibvirtConfig:
    """Validated settings of one libvirt Cloud (see docs/providers/libvirt.md)."""

    hosts: tuple[str, ...]
    pool: str
    network: str
    cpu_ratio: float
    domain_type: str
    shutdown_timeout: float

    def domain_type_for(self, uri: str) -> str:
        """``<domain type=...>`` for a host: the setting, else "test" on the test driver
        and "kvm" elsewhere."""
        if self.domain_type:
            return self.domain_type
        return "test" if uri.startswith("test:") else "kvm"


def _invalid(cloud: CloudSpec, message: str) -> PermanentError:
    return PermanentError(f"Cloud {cloud.name}: {message}", cloud=cloud.name, reason="InvalidCloud")


def _number(cloud: CloudSpec, key: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise _invalid(cloud, f"settings.{key} must be a number, got {raw!r}") from None
    if value <= 0:
        raise _invalid(cloud, f"settings.{key} must be positive, got {raw!r}")
    return value


def parse_config(cloud: CloudSpec) -> LibvirtConfig:
    """Hosts (``spec.hosts``, else ``spec.endpoint``) and settings; InvalidCloud if bad."""
    hosts = tuple(h for h in cloud.hosts if h) or ((cloud.endpoint,) if cloud.endpoint else ())
    if not hosts:
        raise _invalid(cloud, "a libvirt cloud needs spec.hosts (libvirt URIs) or spec.endpoint")
    for uri in hosts:
        if "://" not in uri and uri.split(":", 1)[0] not in ("test", "qemu"):
            raise _invalid(cloud, f"host {uri!r} is not a libvirt URI (e.g. qemu+ssh://h/system)")
    if len(set(hosts)) != len(hosts):
        raise _invalid(cloud, "spec.hosts lists a host twice")
    unknown = sorted(set(cloud.settings) - set(DEFAULTS))
    if unknown:
        raise _invalid(
            cloud,
            f"unknown settings {', '.join(unknown)} (libvirt knows: {', '.join(sorted(DEFAULTS))})",
        )
    s = {**DEFAULTS, **cloud.settings}
    if s["domainType"] and s["domainType"] not in DOMAIN_TYPES:
        raise _invalid(cloud, f"settings.domainType must be one of {', '.join(DOMAIN_TYPES)}")
    for key in ("pool", "network"):
        if not s[key]:
            raise _invalid(cloud, f"settings.{key} must not be empty")
    return LibvirtConfig(
        hosts=hosts,
        pool=s["pool"],
        network=s["network"],
        cpu_ratio=_number(cloud, "cpuAllocationRatio", s["cpuAllocationRatio"]),
        domain_type=s["domainType"],
        shutdown_timeout=_number(cloud, "shutdownTimeout", s["shutdownTimeout"]),
    )
