"""Shared state of the OpenStack driver: settings, connection, prices, tag checks, waits."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from reconciler.model.cloud import Offer
from reconciler.model.errors import PermanentError, TransientError
from reconciler.model.keys import HOURS_PER_MONTH
from reconciler.model.specs import CloudSpec
from reconciler.providers.base import Provider, ProviderContext
from reconciler.providers.catalog import Catalog, CloudPrices, build_offers, catalog_for
from reconciler.providers.openstack.connect import LazyConnection, validate_settings
from reconciler.providers.openstack.errors import edge, is_not_found
from reconciler.providers.openstack.tags import META_OWNER, META_UID

T = TypeVar("T")


class OpenStackBase(Provider):
    """Connection, settings and helpers every OpenStack resource family uses."""

    provider_name = "openstack"

    def __init__(self, cloud: CloudSpec, context: ProviderContext) -> None:
        super().__init__(cloud, context)
        self.settings = validate_settings(cloud)
        self.catalog: Catalog | None = catalog_for(cloud)
        self.prices = CloudPrices.of(cloud, self.catalog)
        #: Catalog + inline offers by name (sizes are Nova's: see ComputeMixin.offers).
        self.priced: dict[str, Offer] = {o.name: o for o in build_offers(cloud, self.catalog)}
        self.conn = LazyConnection(cloud, context.credentials, self.settings["interface"])
        self.wait_timeout = float(self.settings["waitTimeout"])
        self.poll_interval = float(self.settings["pollInterval"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}(cloud={self.cloud.name!r}, endpoint={self.cloud.endpoint!r})"

    # -- helpers ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.cloud.name

    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one SDK call with errors mapped at the edge."""
        with edge(self.name, what):
            return fn()

    def get_or_none(self, what: str, fn: Callable[[], T]) -> T | None:
        """Run a GET; None when the service answers 404."""
        try:
            with edge(self.name, what):
                try:
                    return fn()
                except Exception as exc:
                    if is_not_found(exc):
                        return None
                    raise
        except PermanentError as exc:
            if exc.reason == "NotFound":
                return None
            raise

    def volume_price(self, size_gib: int) -> float:
        return size_gib * self.prices.block_per_gib_month / HOURS_PER_MONTH

    def not_managed(
        self, kind: str, external_id: str, mark: str = "reconciler.dev/owner metadata"
    ) -> PermanentError:
        return super().not_managed(kind, external_id, mark)

    def owns_resource(self, resource: Any) -> bool:
        """True if a Nova server or Cinder volume carries our owner metadata."""
        return (resource.metadata or {}).get(META_OWNER) == self.context.owner

    def checked(self, kind: str, external_id: str, resource: T | None) -> T:
        """``resource`` if it exists and is ours; NotFound or NotManaged otherwise."""
        if resource is None:
            raise self.not_found(kind, external_id)
        if not self.owns_resource(resource):
            raise self.not_managed(kind, external_id)
        return resource

    def wait_for(self, what: str, poll: Callable[[], Any], done: Callable[[Any], bool]) -> Any:
        """Poll until ``done(poll())``; TransientError after ``waitTimeout`` seconds."""
        deadline = time.monotonic() + self.wait_timeout
        while True:
            value = poll()
            if done(value):
                return value
            if time.monotonic() >= deadline:
                raise TransientError(
                    f"timed out after {self.wait_timeout:g} s waiting for {what}",
                    self.name,
                    retry_after=self.poll_interval,
                )
            time.sleep(self.poll_interval)


def with_uid(resources: Iterable[Any], uid: str) -> Any | None:
    """The first server or volume whose metadata carries ``reconciler.dev/uid == uid``."""
    return next((r for r in resources if (r.metadata or {}).get(META_UID) == uid), None)
