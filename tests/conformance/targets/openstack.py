"""Conformance target for the OpenStack driver.

Nova, Cinder and Glance are the HTTP-boundary fake (tests/servers/fake_openstack.py,
recorded API shapes); Swift is a REAL all-in-one (tests/servers/swift.py). Errors are
injected as the next Nova/Cinder/Glance response with the service's JSON fault body;
a lost response is a POST the fake carries out and then answers by closing the socket.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openstack
from servers.fake_openstack import FakeOpenStack, openstack_backend
from servers.swift import swift_server

from conformance.target import ConformanceTarget, ErrorKind
from reconciler.model.specs import CloudSpec, Pricing
from reconciler.providers.base import ProviderContext
from reconciler.providers.openstack import OpenStackProvider

IMAGE = "cirros-0.6.2-x86_64-disk"


def make_cloud(fake: FakeOpenStack, name: str = "openstack-test", **settings: str) -> CloudSpec:
    return CloudSpec(
        name=name,
        provider="openstack",
        region="RegionOne",
        endpoint=fake.auth_url,
        settings={"pollInterval": "0.01", "waitTimeout": "10", **settings},
        pricing=Pricing(catalog="sim-private-openstack"),
        labels={"tier": "private"},
    )


def credentials(fake: FakeOpenStack) -> dict[str, str]:
    acct = fake.account
    return {"username": acct.username, "password": acct.password, "projectName": acct.project}


def sdk_connection(fake: FakeOpenStack) -> Any:
    """A plain openstacksdk connection to the fake, bypassing the driver."""
    acct = fake.account
    return openstack.connection.Connection(
        auth_url=fake.auth_url,
        username=acct.username,
        password=acct.password,
        project_name=acct.project,
        user_domain_name="Default",
        project_domain_name="Default",
        region_name="RegionOne",
    )


def make_provider(
    fake: FakeOpenStack, owner: str = "reconciler", **settings: str
) -> OpenStackProvider:
    context = ProviderContext(owner=owner, credentials=credentials(fake))
    return OpenStackProvider(make_cloud(fake, **settings), context)


def reset_backend() -> FakeOpenStack:
    fake = openstack_backend()
    fake.reset()
    swift_server().clear()
    return fake


def make_target(tmp_path: Path) -> Iterator[ConformanceTarget]:
    fake = reset_backend()
    conn = sdk_connection(fake)
    image_id = fake.state.images[0]["id"]

    def make_foreign_vm() -> str:
        server = conn.compute.create_server(
            name="foreign",
            flavor_id="2",
            image_id=image_id,
            networks="auto",
            metadata={"reconciler.dev:owner": "someone-else", "app": "theirs"},
        )
        deadline = time.monotonic() + 5
        while conn.compute.get_server(server.id).status != "ACTIVE":
            if time.monotonic() > deadline:
                raise RuntimeError("foreign server did not become ACTIVE")
            time.sleep(0.01)
        return str(server.id)

    def foreign_vm_state(server_id: str) -> object:
        with fake.state.lock:
            server = fake.state.servers.get(server_id)
            if server is None:
                return None
            status = fake.state.status(server)
            return (dict(server.body["metadata"]), server.flavor["id"], status)

    def backend_state() -> object:
        swift = swift_server()
        return fake.snapshot(), swift.containers()

    def make_foreign_bucket(name: str) -> str:
        conn.object_store.create_container(name=name)
        return name

    @contextmanager
    def lose_next_response() -> Iterator[None]:
        fake.lose_next_post()
        try:
            yield
        finally:
            fake.clear_faults()

    @contextmanager
    def fail_next_call(kind: ErrorKind) -> Iterator[None]:
        fake.fail_next(kind)
        try:
            yield
        finally:
            fake.clear_faults()

    yield ConformanceTarget(
        name="openstack",
        provider=make_provider(fake),
        instance_types=("m1.small", "m1.medium"),
        image=IMAGE,
        volume_class="ssd",
        make_foreign_vm=make_foreign_vm,
        foreign_vm_state=foreign_vm_state,
        backend_state=backend_state,
        lose_next_response=lose_next_response,
        fail_next_call=fail_next_call,
        secrets=(fake.account.password, fake.token),
        make_foreign_bucket=make_foreign_bucket,
    )
    reset_backend()
