"""Hand-built inputs for planner tests: no manifests, no providers, no broker."""

from __future__ import annotations

from reconciler.model.cloud import Capability, CloudInfo, Offer
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.observed import CloudInventory, Inventory, ObservedVM
from reconciler.model.placement import BrokerResult, Placement
from reconciler.model.specs import CloudSpec, DesiredState, PowerState, Resources, VMSpec
from reconciler.planner import PlanInput

SMALL = Offer("aws", "m.small", 2, 4.0, 0.05, price_as_of="2024-06-01", price_source="test")
LARGE = Offer("aws", "m.large", 4, 8.0, 0.10, price_as_of="2024-06-01", price_source="test")
PRIV = Offer("priv", "p.small", 2, 4.0, 0.02, price_as_of="2026-01-01", price_source="test")


def cloud_info(name: str) -> CloudInfo:
    return CloudInfo(
        name=name,
        provider="sim",
        region="r",
        labels={},
        capabilities=frozenset(Capability),
        price_as_of="2024-06-01",
        price_source="test",
        block_storage_per_gib_month=0.1,
        simulated=True,
    )


def vm_key(name: str) -> ResourceKey:
    return ResourceKey("VirtualMachine", "default", name)


def vm_spec(name: str, **kw: object) -> VMSpec:
    return VMSpec(key=vm_key(name), resources=Resources(2, 4.0), **kw)  # type: ignore[arg-type]


def observed(
    name: str,
    offer: Offer,
    ext: str,
    state: PowerState = PowerState.RUNNING,
    protect: bool = False,
    policy: str = "Delete",
) -> ObservedVM:
    price = offer.price_per_hour if state is PowerState.RUNNING else 0.0
    return ObservedVM(
        cloud=offer.cloud,
        external_id=ext,
        instance_type=offer.name,
        vcpus=offer.vcpus,
        memory_gib=offer.memory_gib,
        power_state=state,
        price_per_hour=price,
        tags=ownership_tags("reconciler", vm_key(name), f"uid-{ext}", protect, policy),
    )


def make_input(
    specs: list[VMSpec], placements: dict[str, Offer], running: list[ObservedVM]
) -> PlanInput:
    desired = DesiredState(
        clouds={n: CloudSpec(name=n, provider="sim") for n in ("aws", "priv")},
        vms={s.key: s for s in specs},
    )
    inv = Inventory(
        {
            c: CloudInventory(c, vms=tuple(v for v in running if v.cloud == c))
            for c in ("aws", "priv")
        }
    )
    result = BrokerResult(
        placements={
            vm_key(n): Placement(vm_key(n), o, "cheapest allowed offer")
            for n, o in placements.items()
        },
        unplaced={},
    )
    return PlanInput(
        desired=desired,
        inventory=inv,
        result=result,
        clouds={"aws": cloud_info("aws"), "priv": cloud_info("priv")},
        owner="reconciler",
        created_at="2026-11-25T00:00:00Z",
    )
