"""Model: the codecs a saved plan depends on, and derived fields of observed records."""

from __future__ import annotations

import json

from reconciler.model.cloudjson import cloud_from_json, cloud_to_json
from reconciler.model.keys import ResourceKey, ownership_tags
from reconciler.model.observed import CloudInventory, Inventory, ObservedVM
from reconciler.model.specs import (
    Capacity,
    CloudSpec,
    FaultInjection,
    OfferSpec,
    PowerState,
    Pricing,
    RateLimit,
    SecretRef,
    Simulation,
    Source,
)


def test_cloud_spec_survives_a_json_round_trip_with_every_field_set() -> None:
    spec = CloudSpec(
        name="x",
        provider="sim",
        region="r",
        endpoint="https://e",
        labels={"jurisdiction": "eu"},
        credentials_secret_ref=SecretRef("creds", "ops"),
        capacity=Capacity(vcpus=8, memory_gib=32.0, instances=4),
        pricing=Pricing(
            catalog="aws-eu-west-1",
            offers=(OfferSpec("o1", 2, 4.0, 0.05, gpus=0, available=3),),
            mode="Replace",
            egress_per_gib=0.09,
            block_storage_per_gib_month=0.1,
            object_storage_per_gib_month=0.02,
        ),
        rate_limit=RateLimit(requests_per_second=5.0, burst=2),
        simulation=Simulation(
            latency_ms=1.5,
            server_rate_limit=20.0,
            faults=FaultInjection(0.1, 0.2, seed=7, operations=("create", "delete")),
            capabilities=("stop", "volumes"),
        ),
        source=Source("clouds.yaml", 12),
    )
    assert cloud_from_json(json.loads(json.dumps(cloud_to_json(spec)))) == spec


def _vm(tags: dict[str, str]) -> ObservedVM:
    return ObservedVM("c", "i-1", "t", 2, 4.0, PowerState.RUNNING, 0.1, tags=tags)


def test_observed_key_comes_from_the_tag_and_is_not_part_of_identity() -> None:
    key = ResourceKey("VirtualMachine", "ns", "a")
    vm = _vm(ownership_tags("o", key, "u"))
    assert vm.key == key and vm.uid == "u"
    assert _vm({"reconciler.dev/key": "not a key"}).key is None
    assert _vm({}).key is None
    assert vm == _vm(ownership_tags("o", key, "u"))


def test_fingerprint_ignores_order_and_sees_every_change() -> None:
    a = _vm({"x": "1", "y": "2"})
    b = ObservedVM("c", "i-2", "t", 2, 4.0, PowerState.STOPPED, 0.0)
    one = Inventory({"c": CloudInventory("c", vms=(a, b))})
    two = Inventory({"c": CloudInventory("c", vms=(b, _vm({"y": "2", "x": "1"})))})
    assert one.fingerprint() == two.fingerprint()
    resized = ObservedVM("c", "i-2", "t2", 2, 4.0, PowerState.STOPPED, 0.0)
    three = Inventory({"c": CloudInventory("c", vms=(a, resized))})
    assert three.fingerprint() != one.fingerprint()


def test_a_plan_narrowed_to_some_actions_costs_only_what_they_change() -> None:
    from reconciler.model.plan import Action, ActionType, CloudPrices, Plan

    key = ResourceKey("VirtualMachine", "default", "app")
    move = Action(
        "m", ActionType.MIGRATE, key, "b", "cheaper", price_before=0.4, price_after=0.3,
        params={"source": {"cloud": "a"}},
    )  # fmt: skip
    create = Action(
        "c",
        ActionType.CREATE,
        ResourceKey("VirtualMachine", "default", "web"),
        "b",
        "new",
        price_after=0.3,
    )
    plan = Plan(
        created_at="2026-12-04T00:00:00Z", owner="o", inventory_fingerprint="f",
        clouds=(CloudPrices("a", "sim", "r", "", "", True, 0.4, 0.0),
                CloudPrices("b", "sim", "r", "", "", True, 0.0, 0.6)),
        actions=(move, create), current_per_hour=0.4, planned_per_hour=0.6,
        rebalance=({"policy": "p", "state": "open"},),
    )  # fmt: skip
    only = plan.only([move])
    assert only.actions == (move,) and only.rebalance == ()
    assert only.planned_per_hour == 0.3 and only.current_per_hour == 0.4
    assert [(c.name, c.planned_per_hour) for c in only.clouds] == [("a", 0.0), ("b", 0.3)]
