"""The OpenStack driver (openstacksdk): Nova, Cinder, Glance, Neutron lookups, Swift."""

from reconciler.providers.openstack.provider import OpenStackProvider

__all__ = ["OpenStackProvider"]
