"""Nova servers as VMs: flavors joined with prices, idempotent create, resize, power."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from reconciler.model.cloud import Offer
from reconciler.model.errors import CapacityError, PermanentError
from reconciler.model.keys import TAG_OWNER, TAG_UID
from reconciler.model.observed import ObservedVM
from reconciler.model.specs import PowerState
from reconciler.providers.base import VMRequest, VMUpdate
from reconciler.providers.openstack.core import OpenStackBase, with_uid
from reconciler.providers.openstack.errors import NO_VALID_HOST
from reconciler.providers.openstack.tags import decode_metadata, encode_metadata

#: Statuses Nova reports while a server is powered off (no compute price charged).
STOPPED = frozenset({"SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED"})
#: Statuses a server rests in; anything else (BUILD, RESIZE, REBOOT...) is in transition.
STABLE = frozenset({"ACTIVE", "ERROR", "VERIFY_RESIZE"} | STOPPED)
GONE = frozenset({"DELETED", "SOFT_DELETED"})


def _fault(server: Any) -> str:
    """The message of the fault Nova recorded on a server ('' if none)."""
    return str(server.fault.get("message", "")) if isinstance(server.fault, dict) else ""


class ComputeMixin(OpenStackBase):
    """Offers and VM operations on Nova (images from Glance, networks from Neutron)."""

    def compute(self) -> Any:
        return self.conn.proxy("compute")

    # -- offers -------------------------------------------------------------------------
    def flavors(self) -> dict[str, Any]:
        """Enabled Nova flavors by name."""
        listed = self.call(
            "listing Nova flavors", lambda: list(self.compute().flavors(details=True))
        )
        return {f.name: f for f in listed if not f.is_disabled}

    def flavors_by_id(self) -> dict[str, Any]:
        return {f.id: f for f in self.flavors().values()}

    def offers(self) -> list[Offer]:
        """Priced offers (catalog + inline) whose name is a Nova flavor; size from Nova.

        A flavor without a price is not offered: the broker cannot place on it.
        """
        flavors = self.flavors()
        result = []
        for offer in self.priced.values():
            flavor = flavors.get(offer.name)
            if flavor is not None:
                result.append(replace(offer, vcpus=flavor.vcpus, memory_gib=flavor.ram / 1024))
        return result

    def _offer_price(self, name: str) -> float:
        offer = self.priced.get(name)
        return offer.price_per_hour if offer is not None else 0.0

    # -- reading servers ----------------------------------------------------------------
    def vm_of(
        self, server: Any, by_id: Callable[[], Mapping[str, Any]] | None = None
    ) -> ObservedVM:
        """The server as an ObservedVM. Before microversion 2.47 Nova names a server's
        flavor by id only: ``by_id`` (default ``flavors_by_id``) resolves it; list_managed
        passes one cached lookup so the flavors are listed at most once per call."""
        flavor = server.flavor
        name = flavor.original_name or flavor.name or ""
        vcpus, ram, disk = flavor.vcpus, flavor.ram, flavor.disk
        if not flavor.original_name and flavor.id:  # microversion < 2.47: id only
            known = (by_id or self.flavors_by_id)().get(flavor.id)
            if known is not None:
                name, vcpus, ram, disk = known.name, known.vcpus, known.ram, known.disk
        stopped = server.status in STOPPED
        image = server.image.id if server.image is not None else ""
        return ObservedVM(
            cloud=self.name,
            external_id=server.id,
            instance_type=name,
            vcpus=int(vcpus or 0),
            memory_gib=(ram or 0) / 1024,
            power_state=PowerState.STOPPED if stopped else PowerState.RUNNING,
            price_per_hour=0.0 if stopped else self._offer_price(name),
            tags=decode_metadata(server.metadata or {}),
            image=image or "",
            disk_gib=int(disk or 0),
        )

    def owned_servers(self) -> list[Any]:
        """Every server carrying our owner metadata (listed, filtered client-side)."""
        listed = self.call("listing Nova servers", lambda: list(self.compute().servers()))
        return [s for s in listed if self.owns_resource(s) and s.status not in GONE]

    def owned_vms(self) -> tuple[ObservedVM, ...]:
        """Every owned server as an ObservedVM (flavors listed at most once)."""
        by_id = functools.cache(self.flavors_by_id)
        return tuple(self.vm_of(s, by_id) for s in self.owned_servers())

    def server_by_uid(self, uid: str) -> Any | None:
        return with_uid(self.owned_servers(), uid)

    def get_server(self, server_id: str) -> Any | None:
        server = self.get_or_none(
            f"reading server {server_id}", lambda: self.compute().get_server(server_id)
        )
        return None if server is None or server.status in GONE else server

    def own_server(self, server_id: str) -> Any:
        return self.checked("VM", server_id, self.get_server(server_id))

    def observe_vm(self, external_id: str) -> ObservedVM | None:
        server = self.get_server(external_id)
        if server is None or not self.owns_resource(server):
            return None
        return self.vm_of(server)

    def settle(self, server_id: str, what: str) -> Any:
        """Wait until the server rests (a stable status, no task in progress)."""

        def stable(server: Any) -> bool:
            return server is None or (server.status in STABLE and not server.task_state)

        server = self.wait_for(
            f"server {server_id} ({what})", lambda: self.get_server(server_id), stable
        )
        if server is None:
            raise PermanentError(
                f"server {server_id} disappeared during {what}", cloud=self.name, reason="NotFound"
            )
        return server

    # -- creating -----------------------------------------------------------------------
    def _image_id(self, ref: str) -> str:
        image = self.get_or_none(
            f"finding image {ref!r}",
            lambda: self.conn.proxy("image").find_image(ref, ignore_missing=False),
        )
        if image is None:
            raise PermanentError(
                f"no Glance image named or with id {ref!r}", cloud=self.name, reason="ImageNotFound"
            )
        return str(image.id)

    def _networks(self) -> Any:
        ref = self.settings.get("network")
        if not ref or ref in ("auto", "none"):
            return ref or "auto"
        net = self.get_or_none(
            f"finding network {ref!r}",
            lambda: self.conn.proxy("network").find_network(ref, ignore_missing=False),
        )
        if net is None:
            raise PermanentError(
                f"Cloud {self.name}: settings.network {ref!r} is not a network of this project",
                cloud=self.name,
                reason="InvalidCloud",
            )
        return [{"uuid": net.id}]

    def _flavor(self, instance_type: str) -> Any:
        flavor = self.flavors().get(instance_type)
        if flavor is None or instance_type not in self.priced:
            raise PermanentError(
                f"unknown instance type '{instance_type}' (no priced Nova flavor of that name)",
                cloud=self.name,
                reason="UnknownInstanceType",
            )
        return flavor

    def _nova_error(self, what: str, fault: str, message: str, reason: str) -> PermanentError:
        """CapacityError if ``fault`` is Nova's "no valid host", else PermanentError."""
        if NO_VALID_HOST in fault.lower():
            return CapacityError(f"{what}: Nova found no host with room: {fault}", cloud=self.name)
        return PermanentError(message, cloud=self.name, reason=reason)

    def _failed(self, server: Any, what: str) -> PermanentError:
        """Delete a server Nova put in ERROR and say why (no valid host = capacity)."""
        fault = _fault(server)
        self.call(
            f"deleting failed server {server.id}", lambda: self.compute().delete_server(server)
        )
        message = f"{what}: server went to ERROR: {fault}"
        return self._nova_error(what, fault, message, "ServerError")

    def create_vm(self, request: VMRequest) -> ObservedVM:
        tags = self.owned_tags(request.tags)
        server = self.server_by_uid(tags[TAG_UID])
        if server is None:
            flavor = self._flavor(request.instance_type)
            args: dict[str, Any] = {
                "name": request.name,
                "flavor_id": flavor.id,
                "image_id": self._image_id(request.image),
                "networks": self._networks(),
                "metadata": encode_metadata(tags, self.name),
            }
            if self.settings.get("availabilityZone"):
                args["availability_zone"] = self.settings["availabilityZone"]
            server = self.call(
                f"creating server {request.name}", lambda: self.compute().create_server(**args)
            )
        server = self.settle(server.id, "creation")
        if server.status == "ERROR":
            raise self._failed(server, f"creating server {request.name}")
        if request.power_state == PowerState.STOPPED and server.status not in STOPPED:
            server = self._power(server, PowerState.STOPPED)
        return self.vm_of(server)

    # -- changing -----------------------------------------------------------------------
    def _power(self, server: Any, state: PowerState) -> Any:
        if state == PowerState.STOPPED and server.status not in STOPPED:
            self.call(f"stopping server {server.id}", lambda: self.compute().stop_server(server))
        elif state == PowerState.RUNNING and server.status == "SHUTOFF":
            self.call(f"starting server {server.id}", lambda: self.compute().start_server(server))
        else:
            return server
        return self.settle(server.id, f"power {state.value}")

    def _resize(self, server: Any, instance_type: str) -> Any:
        flavor = self._flavor(instance_type)
        what = f"resizing server {server.id} to {instance_type}"
        self.call(what, lambda: self.compute().resize_server(server, flavor.id))
        server = self.settle(server.id, "resize")
        if server.status == "VERIFY_RESIZE":
            self.call(what, lambda: self.compute().confirm_server_resize(server))
            server = self.settle(server.id, "resize confirmation")
        if self.vm_of(server).instance_type != instance_type:
            fault = _fault(server)
            message = f"{what} did not take effect: {fault or server.status}"
            raise self._nova_error(what, fault, message, "ResizeFailed")
        return server

    def update_vm(self, external_id: str, update: VMUpdate) -> ObservedVM:
        """Resize (Nova resize + confirm), stop/start, merge tags; converges when repeated."""
        server = self.own_server(external_id)
        if server.status not in STABLE or server.task_state:
            server = self.settle(external_id, "a task in progress")
        if server.status == "VERIFY_RESIZE":  # an earlier resize whose confirm was lost
            self.call("confirming resize", lambda: self.compute().confirm_server_resize(server))
            server = self.settle(external_id, "resize confirmation")
        if update.instance_type and update.instance_type != self.vm_of(server).instance_type:
            server = self._resize(server, update.instance_type)
        if update.power_state is not None:
            server = self._power(server, PowerState(update.power_state))
        if update.tags:
            merged = {**decode_metadata(server.metadata or {}), **update.tags}
            if merged.get(TAG_OWNER) != self.context.owner:
                raise PermanentError(
                    f"update of VM {external_id} would change its owner tag; use forget()",
                    cloud=self.name,
                    reason="BadRequest",
                )
            metadata = encode_metadata(update.tags, self.name)
            self.call(
                f"tagging server {external_id}",
                lambda: self.compute().set_server_metadata(server, **metadata),
            )
            server = self.own_server(external_id)
        return self.vm_of(server)

    def delete_vm(self, external_id: str) -> None:
        """Delete and wait until Nova no longer lists it; absent is success."""
        server = self.get_server(external_id)
        if server is None:
            return
        if not self.owns_resource(server):
            raise self.not_managed("VM", external_id)
        self.call(
            f"deleting server {external_id}",
            lambda: self.compute().delete_server(server, ignore_missing=True),
        )
        self.wait_for(
            f"server {external_id} deletion",
            lambda: self.get_server(external_id),
            lambda found: found is None,
        )
