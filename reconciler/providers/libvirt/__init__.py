"""The libvirt driver: a private KVM cloud of one or more libvirt hosts."""

from reconciler.providers.libvirt.provider import LibvirtProvider, domain_name

__all__ = ["LibvirtProvider", "domain_name"]
