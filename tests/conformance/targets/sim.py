"""Conformance target for the simulator: a SimProvider over a private world in tmp_path.

Faults come from the simulator's own one-shot hook (``Chaos.inject_next``): the same
machinery its seeded chaos mode uses, so "lost response" really performs the create.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conformance.target import ConformanceTarget
from reconciler.model.keys import TAG_OWNER
from reconciler.model.specs import CloudSpec, Pricing
from reconciler.providers.base import ProviderContext
from reconciler.providers.sim import SimProvider, drop_worlds

CLOUD = "conf-sim"
#: The sim reads no credentials; giving it one proves it never echoes them.
SECRET = "sim-conformance-secret-9f2c"


def make_target(tmp_path: Path) -> Iterator[ConformanceTarget]:
    """Yield a target over an empty simulated world; drop the world afterwards."""
    cloud = CloudSpec(CLOUD, "sim", region="dc1", pricing=Pricing(catalog="sim-private-openstack"))
    context = ProviderContext(state_dir=tmp_path, credentials={"token": SECRET})
    provider = SimProvider(cloud, context)
    world = provider.world

    def make_foreign_vm() -> str:
        return world.add_foreign_vm(CLOUD, tags={TAG_OWNER: "someone-else", "team": "b"})

    def foreign_vm_state(external_id: str) -> object:
        with world.reading():
            rec = world.get(external_id)
        return None if rec is None else rec.to_json()

    def backend_state() -> object:
        with world.reading():
            return sorted((r.to_json() for r in world.resources()), key=lambda r: str(r["id"]))

    @contextmanager
    def armed(fault: str, operation: str | None) -> Iterator[None]:
        provider.chaos.inject_next(fault, operation)
        try:
            yield
        finally:
            provider.chaos.clear_injected()

    try:
        yield ConformanceTarget(
            name="sim",
            provider=provider,
            instance_types=("m1.small", "m1.large"),
            image="ubuntu-22.04",
            volume_class="standard",
            make_foreign_vm=make_foreign_vm,
            foreign_vm_state=foreign_vm_state,
            backend_state=backend_state,
            lose_next_response=lambda: armed("lost_response", "create"),
            fail_next_call=lambda kind: armed(kind, None),
            secrets=(SECRET,),
        )
    finally:
        drop_worlds()
