"""Shipped price catalogs and how a Cloud's offers are built from them."""

from __future__ import annotations

import datetime

import pytest

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec, OfferSpec, Pricing
from reconciler.providers.catalog import build_offers, catalog_for, catalog_names, load_catalog

REQUIRED = {
    "aws-eu-west-1",
    "aws-us-east-1",
    "azure-westeurope",
    "azure-eastus",
    "sim-private-openstack",
}


def test_required_catalogs_are_shipped() -> None:
    assert set(catalog_names()) >= REQUIRED


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_catalog_is_complete(name: str) -> None:
    cat = load_catalog(name)
    assert cat.name == name
    assert cat.source and cat.currency == "USD" and cat.notes
    datetime.date.fromisoformat(cat.as_of)
    assert cat.block_storage_per_gib_month > 0 and cat.object_storage_per_gib_month > 0
    assert cat.offers
    for offer in cat.offers:
        assert offer.price_per_hour > 0, offer
        assert offer.vcpus >= 1 and offer.memory_gib > 0
    if cat.provider in ("aws", "azure"):
        assert 15 <= len(cat.offers) <= 25
        assert any(o.gpus > 0 for o in cat.offers)


def test_prices_are_realistic() -> None:
    us = load_catalog("aws-us-east-1")
    m6i = us.offer("m6i.large")
    assert m6i is not None and m6i.price_per_hour == pytest.approx(0.096)
    eu = load_catalog("aws-eu-west-1").offer("m6i.large")
    assert eu is not None and eu.price_per_hour > m6i.price_per_hour
    d2 = load_catalog("azure-eastus").offer("Standard_D2s_v5")
    assert d2 is not None and 0.05 < d2.price_per_hour < 0.2
    small = load_catalog("sim-private-openstack").offer("m1.small")
    assert small is not None and small.price_per_hour < 0.02


def test_catalog_is_cached() -> None:
    assert load_catalog("aws-us-east-1") is load_catalog("aws-us-east-1")


def test_unknown_catalog_names_the_known_ones() -> None:
    with pytest.raises(PermanentError) as err:
        load_catalog("gcp-mars-1")
    assert "gcp-mars-1" in str(err.value) and "aws-us-east-1" in str(err.value)
    cloud = CloudSpec("c", "sim", pricing=Pricing(catalog="nope"))
    with pytest.raises(PermanentError, match="c: unknown price catalog 'nope'"):
        catalog_for(cloud)


def test_build_offers_extend_and_override() -> None:
    pricing = Pricing(
        catalog="aws-us-east-1",
        offers=(
            OfferSpec("m6i.large", 2, 8, 0.05),
            OfferSpec("custom.big", 64, 512, 3.0, available=2),
        ),
    )
    cloud = CloudSpec("aws1", "aws", pricing=pricing)
    offers = {o.name: o for o in build_offers(cloud, catalog_for(cloud))}
    assert len(offers) == len(load_catalog("aws-us-east-1").offers) + 1
    assert offers["m6i.large"].price_per_hour == 0.05
    assert offers["m6i.large"].price_source == "inline (Cloud aws1)"
    assert offers["m6i.large"].price_as_of == ""
    assert offers["custom.big"].available == 2
    t3 = offers["t3.micro"]
    assert t3.cloud == "aws1" and t3.price_source.startswith("https://")
    assert t3.price_as_of == load_catalog("aws-us-east-1").as_of


def test_build_offers_replace_and_no_catalog() -> None:
    pricing = Pricing(
        catalog="aws-us-east-1", mode="Replace", offers=(OfferSpec("only", 1, 1, 0.01),)
    )
    cloud = CloudSpec("x", "sim", pricing=pricing)
    assert [o.name for o in build_offers(cloud, catalog_for(cloud))] == ["only"]
    bare = CloudSpec("y", "sim")
    assert catalog_for(bare) is None
    assert build_offers(bare, None) == []
