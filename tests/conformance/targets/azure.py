"""Conformance target for the Azure driver.

Compute (VMs, managed disks, NICs) runs the driver's real azure-mgmt-compute/network code
against the stateful fake ARM in tests/servers/fake_arm.py (no Azure compute emulator
exists): faults are the fake's recorded ARM error bodies, and a lost response is a VM PUT
the fake applies and then answers by closing the connection. Buckets run against the
REAL Azurite (tests/servers/azurite.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute.models import VirtualMachine
from azure.mgmt.network.models import NetworkInterface
from azure.storage.blob import BlobServiceClient
from servers.azurite import Azurite, azurite
from servers.fake_arm import FakeArm

from conformance.target import ConformanceTarget
from reconciler.model.specs import CloudSpec, Pricing
from reconciler.providers.azure import AzureProvider
from reconciler.providers.base import ProviderContext

CLOUD = "conf-azure"
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000c1"
GROUP = "rg-conformance"
LOCATION = "westeurope"
SUBNET = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}/providers/Microsoft.Network/"
    "virtualNetworks/vnet1/subnets/default"
)
IMAGE = "Canonical:0001-com-ubuntu-server-jammy:22_04-lts-gen2:latest"
SECRET = "conformance-client-secret-9f8e7d"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIConformanceTestKeyOnly test@reconciler"


def start_fake() -> FakeArm:
    return FakeArm(SUBSCRIPTION, GROUP, LOCATION, client_secret=SECRET).start()


def make_provider(
    fake: FakeArm, blob: Azurite | None, secret: str = SECRET, **settings: str
) -> AzureProvider:
    """An AzureProvider for the fake ARM (and Azurite, if given)."""
    base = {
        "subscriptionId": SUBSCRIPTION,
        "resourceGroup": GROUP,
        "subnetId": SUBNET,
        "sshPublicKey": SSH_KEY,
        "authorityHost": fake.url,
        "pollingIntervalSeconds": "0",
    }
    spec = CloudSpec(
        CLOUD,
        "azure",
        region=LOCATION,
        endpoint=fake.url,
        settings={**base, **settings},
        pricing=Pricing(catalog="azure-westeurope"),
    )
    credentials = {"tenantId": fake.tenant, "clientId": fake.client_id, "clientSecret": secret}
    if blob is not None:
        credentials["storageConnectionString"] = blob.connection_string
    return AzureProvider(spec, ProviderContext(credentials=credentials))


def clear_containers(service: BlobServiceClient) -> None:
    for container in service.list_containers():
        service.delete_container(container.name)


def foreign_vm(provider: AzureProvider, name: str) -> str:
    """A VM made straight through the SDK clients: another owner's tag, no uid."""
    arm = provider.arm
    nic = arm.network.network_interfaces.begin_create_or_update(
        GROUP,
        f"{name}-nic",
        NetworkInterface(
            {
                "location": LOCATION,
                "properties": {
                    "ipConfigurations": [{"name": "ip", "properties": {"subnet": {"id": SUBNET}}}]
                },
            }
        ),
    ).result()
    body: dict[str, Any] = {
        "location": LOCATION,
        "tags": {"reconciler.dev_2fowner": "someone-else", "team": "b"},
        "properties": {
            "hardwareProfile": {"vmSize": "Standard_B1s"},
            "storageProfile": {
                "imageReference": {
                    "publisher": "Canonical",
                    "offer": "o",
                    "sku": "s",
                    "version": "latest",
                }
            },
            "osProfile": {
                "computerName": name,
                "adminUsername": "other",
                "linuxConfiguration": {"ssh": {"publicKeys": [{"keyData": SSH_KEY}]}},
            },
            "networkProfile": {"networkInterfaces": [{"id": nic.id}]},
        },
    }
    made = arm.compute.virtual_machines.begin_create_or_update(
        GROUP, name, VirtualMachine(body)
    ).result()
    return str(made.id)


def vm_state(provider: AzureProvider, external_id: str) -> object:
    """(size, power state, tags) of any VM, read straight through the SDK."""
    name = external_id.rsplit("/", 1)[-1]
    try:
        vm = provider.arm.compute.virtual_machines.get(GROUP, name, expand="instanceView")
    except ResourceNotFoundError:
        return None
    statuses = [str(s.code) for s in (vm.instance_view.statuses or [])] if vm.instance_view else []
    return (str(vm.hardware_profile.vm_size), statuses, sorted((vm.tags or {}).items()))


def make_target(tmp_path: Path) -> Iterator[ConformanceTarget]:
    """Yield a target over a fresh fake ARM and the session's Azurite (emptied)."""
    blob = azurite()
    service = BlobServiceClient.from_connection_string(blob.connection_string)
    clear_containers(service)
    fake = start_fake()
    provider = make_provider(fake, blob)
    counter = iter(range(1_000_000))

    def backend_state() -> object:
        containers = sorted(
            (c.name, sorted((c.metadata or {}).items()))
            for c in service.list_containers(include_metadata=True)
        )
        return fake.snapshot(), containers

    def make_foreign_bucket(name: str) -> str:
        service.create_container(name, metadata={"team": "b"})
        return name

    try:
        yield ConformanceTarget(
            name="azure",
            provider=provider,
            instance_types=("Standard_B1s", "Standard_B2s"),
            image=IMAGE,
            volume_class="StandardSSD_LRS",
            make_foreign_vm=lambda: foreign_vm(provider, f"foreign-{next(counter)}"),
            foreign_vm_state=lambda vm_id: vm_state(provider, vm_id),
            backend_state=backend_state,
            lose_next_response=fake.dropping,
            fail_next_call=fake.failing,
            secrets=(SECRET, blob.connection_string.split("AccountKey=")[1].split(";")[0]),
            make_foreign_bucket=make_foreign_bucket,
        )
    finally:
        fake.stop()
        clear_containers(service)
