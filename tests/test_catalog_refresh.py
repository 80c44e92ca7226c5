"""`reconciler catalog`: list/show, staleness, and refresh from recorded price API responses.

AWS responses (tests/data/pricing/aws-*.json) are GetProducts pages served by botocore's
Stubber on a real ``pricing`` client; Azure responses (azure-*.json) are Retail Prices
API pages with a NextPageLink, served by an injected fetch or a local HTTP server.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import threading
import urllib.error
from collections.abc import Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from click.testing import CliRunner

from reconciler.cli.main import cli
from reconciler.model.errors import PermanentError, TransientError
from reconciler.providers import catalog as catalog_mod
from reconciler.providers.catalog import load_catalog, refreshed_path
from reconciler.providers.pricing import aws, azure, refresh_catalog
from reconciler.providers.pricing.store import render_catalog, write_catalog

DATA = Path(__file__).parent / "data" / "pricing"
TODAY = datetime.date(2025, 3, 10)
AZURE_PAGE2 = (
    "https://prices.azure.com:443/api/retail/prices?$filter=serviceName%20eq%20'Virtual"
    "%20Machines'%20and%20armRegionName%20eq%20'westeurope'%20and%20priceType%20eq"
    "%20'Consumption'&$skip=100"
)


def _json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(autouse=True)
def catalog_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty user catalog directory, and no cached catalog before or after."""
    directory = tmp_path / "catalogs"
    monkeypatch.setenv(catalog_mod.CATALOG_DIR_ENV, str(directory))
    catalog_mod.clear_cache()
    yield directory
    catalog_mod.clear_cache()


def _bare_client() -> Any:
    return boto3.client(
        "pricing",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _aws_client() -> tuple[Any, Stubber]:
    client = _bare_client()
    stub = Stubber(client)
    base = {"ServiceCode": "AmazonEC2", "FormatVersion": "aws_v1", "MaxResults": 100}
    first = _json("aws-eu-west-1-instances-1.json")
    filters = aws.instance_filters("eu-west-1")
    stub.add_response("get_products", first, {**base, "Filters": filters})
    page2 = _json("aws-eu-west-1-instances-2.json")
    token = first["NextToken"]
    stub.add_response("get_products", page2, {**base, "Filters": filters, "NextToken": token})
    gp3 = _json("aws-eu-west-1-gp3.json")
    stub.add_response("get_products", gp3, {**base, "Filters": aws.storage_filters("eu-west-1")})
    stub.activate()
    return client, stub


def _azure_fetch(pages: Mapping[str, Mapping[str, Any]] | None = None) -> azure.Fetch:
    recorded = pages or {
        azure.first_url("westeurope"): _json("azure-westeurope-1.json"),
        AZURE_PAGE2: _json("azure-westeurope-2.json"),
    }
    return lambda url: recorded[url]


def test_list_shows_age_and_flags_stale() -> None:
    runner = CliRunner()
    fresh = runner.invoke(cli, ["catalog", "list", "--today", "2024-07-01", "--check"])
    assert fresh.exit_code == 0, fresh.output
    assert "aws-us-east-1" in fresh.output and "30d" in fresh.output
    assert "stale" not in fresh.output
    old = runner.invoke(cli, ["catalog", "--today", "2025-01-01"])
    assert old.exit_code == 0
    line = next(x for x in old.output.splitlines() if x.startswith("azure-eastus"))
    assert "214d" in line and "stale" in line and "shipped" in line
    sim = next(x for x in old.output.splitlines() if x.startswith("sim-private"))
    assert "declared" in sim
    checked = runner.invoke(cli, ["catalog", "list", "--today", "2025-01-01", "--check"])
    assert checked.exit_code == 1
    lenient = runner.invoke(cli, ["catalog", "list", "--today=2025-01-01", "--max-age=365"])
    assert "stale" not in lenient.output


def test_list_json() -> None:
    result = CliRunner().invoke(cli, ["catalog", "list", "-o", "json", "--today", "2024-06-11"])
    data = json.loads(result.output)
    rows = {r["name"]: r for r in data["catalogs"]}
    assert rows["aws-eu-west-1"]["ageDays"] == 10 and rows["aws-eu-west-1"]["offers"] == 23
    assert rows["aws-eu-west-1"]["origin"] == "shipped" and rows["aws-eu-west-1"]["status"] == "ok"
    assert rows["azure-westeurope"]["source"].startswith("https://azure.microsoft.com")


def test_show_text_and_json() -> None:
    runner = CliRunner()
    text = runner.invoke(cli, ["catalog", "show", "aws-us-east-1"])
    assert text.exit_code == 0, text.output
    row = next(x for x in text.output.splitlines() if x.startswith("m6i.large "))
    assert row.split() == ["m6i.large", "2", "8", "0", "0.0960", "70.08", "2024-06-01"]
    assert "block $0.08/GiB-month" in text.output and "egress $0.09/GiB" in text.output
    data = json.loads(runner.invoke(cli, ["catalog", "show", "aws-us-east-1", "-o", "json"]).output)
    g5 = next(o for o in data["offerList"] if o["name"] == "g5.12xlarge")
    assert g5["gpus"] == 4 and g5["pricePerMonth"] == pytest.approx(5.672 * 730, abs=0.01)
    missing = runner.invoke(cli, ["catalog", "show", "gcp-mars-1"])
    assert missing.exit_code == 1 and "unknown price catalog" in missing.output


def test_aws_refresh_from_recorded_pages(catalog_dir: Path) -> None:
    assert load_catalog("aws-eu-west-1").origin == "shipped"
    client, stub = _aws_client()
    result = refresh_catalog("aws-eu-west-1", today=TODAY, aws_client=client)
    stub.assert_no_pending_responses()
    assert (result.priced, len(result.carried), result.ignored, result.unknown) == (7, 16, 2, 1)
    assert result.pages == 3 and result.path == catalog_dir / "aws-eu-west-1.yaml"
    assert [p.name for p in catalog_dir.iterdir()] == ["aws-eu-west-1.yaml"]
    cat = load_catalog("aws-eu-west-1")  # no stale cached copy after the refresh
    assert cat.origin == f"refreshed {result.path}" and cat.as_of == "2025-03-10"
    assert cat.source == aws.PRICING_URL and cat.fetched_at
    by_name = {o.name: o for o in cat.offers}
    assert len(by_name) == 23 and "c7i.large" not in by_name
    assert by_name["m6i.large"].price_per_hour == 0.107  # OnDemand, not the Reserved term
    assert by_name["m6i.2xlarge"].price_per_hour == 0.4096 and by_name["m6i.2xlarge"].as_of == ""
    assert by_name["g5.12xlarge"].gpus == 4 and by_name["g5.12xlarge"].memory_gib == 192
    assert by_name["c6i.large"].price_per_hour == 0.0912  # carried at the shipped price
    assert by_name["c6i.large"].as_of == "2024-06-01"
    assert cat.block_storage_per_gib_month == 0.088 and cat.egress_per_gib == 0.09
    assert "c6i.large" in cat.notes


def test_aws_refresh_all_keeps_every_type() -> None:
    client, _ = _aws_client()
    result = refresh_catalog("aws-eu-west-1", today=TODAY, aws_client=client, include_all=True)
    assert result.added == 2 and result.offers == 25
    cat = load_catalog("aws-eu-west-1")
    big = cat.offer("x2iedn.32xlarge")
    assert big is not None and big.memory_gib == 4096 and big.vcpus == 128
    c7i = cat.offer("c7i.large")
    assert c7i is not None and c7i.price_per_hour == 0.0954


@pytest.mark.parametrize(
    ("code", "kind", "reason"),
    [
        ("ThrottlingException", TransientError, None),
        ("AccessDeniedException", PermanentError, "Unauthorized"),
    ],
)
def test_aws_errors_are_mapped_and_write_nothing(
    catalog_dir: Path, code: str, kind: type[Exception], reason: str | None
) -> None:
    client = _bare_client()
    stub = Stubber(client)
    stub.add_client_error("get_products", service_error_code=code, http_status_code=400)
    stub.activate()
    with pytest.raises(kind) as err:
        refresh_catalog("aws-eu-west-1", aws_client=client)
    assert "catalog aws-eu-west-1" in str(err.value) and "api.pricing" in str(err.value)
    if reason:
        assert getattr(err.value, "reason", None) == reason
    assert not catalog_dir.exists()


def test_aws_missing_credentials(catalog_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(catalog_dir / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(catalog_dir / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(PermanentError) as err:
        refresh_catalog("aws-us-east-1")
    assert err.value.reason == "MissingCredentials" and "AWS credentials" in str(err.value)
    assert not catalog_dir.exists()


def test_azure_refresh_follows_pages_and_skips_meters(catalog_dir: Path) -> None:
    result = refresh_catalog("azure-westeurope", today=TODAY, fetch=_azure_fetch())
    assert result.pages == 2 and result.unknown == 2  # HB120rs_v3, M416ms_v2
    assert (result.priced, len(result.carried), result.ignored) == (5, 17, 1)
    cat = load_catalog("azure-westeurope")
    assert cat.refreshed and cat.as_of == "2025-03-10" and cat.source == azure.RETAIL_URL
    d2 = cat.offer("Standard_D2s_v5")  # Linux primary meter; not Windows/Spot/Low Priority
    assert d2 is not None and d2.price_per_hour == 0.11 and d2.memory_gib == 8
    nc4 = cat.offer("Standard_NC4as_T4_v3")
    assert nc4 is not None and nc4.price_per_hour == 0.58 and nc4.gpus == 1
    f2 = cat.offer("Standard_F2s_v2")  # only a Windows meter was returned: carried over
    assert f2 is not None and f2.price_per_hour == 0.0965 and f2.as_of == "2024-06-01"
    assert cat.offer("Standard_D4ds_v5") is None


def test_azure_refresh_all_adds_sizes_from_the_table() -> None:
    result = refresh_catalog("azure-westeurope", fetch=_azure_fetch(), include_all=True)
    assert result.added == 1 and result.unknown == 2
    d4ds = load_catalog("azure-westeurope").offer("Standard_D4ds_v5")
    assert d4ds is not None and (d4ds.vcpus, d4ds.memory_gib, d4ds.price_per_hour) == (4, 16, 0.264)


def test_network_failure_names_catalog_and_url_and_keeps_old_file(catalog_dir: Path) -> None:
    refresh_catalog("azure-westeurope", today=TODAY, fetch=_azure_fetch())
    path = refreshed_path("azure-westeurope")
    before = path.read_bytes()

    def broken(url: str) -> Mapping[str, Any]:
        if url == AZURE_PAGE2:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        return _azure_fetch()(url)

    with pytest.raises(TransientError) as err:
        refresh_catalog("azure-westeurope", fetch=broken)
    assert "catalog azure-westeurope" in str(err.value) and AZURE_PAGE2 in str(err.value)
    assert path.read_bytes() == before and sorted(catalog_dir.iterdir()) == [path]


def test_no_prices_writes_nothing(catalog_dir: Path) -> None:
    empty: dict[str, Mapping[str, Any]] = {
        azure.first_url("eastus"): {"Items": [], "NextPageLink": None}
    }
    with pytest.raises(PermanentError, match="no price for any"):
        refresh_catalog("azure-eastus", fetch=_azure_fetch(empty))
    assert not catalog_dir.exists()


def test_private_cloud_is_not_refreshable() -> None:
    with pytest.raises(PermanentError, match="not refreshable"):
        refresh_catalog("sim-private-openstack")


def test_older_refreshed_copy_is_ignored(catalog_dir: Path) -> None:
    shipped = load_catalog("aws-us-east-1")
    catalog_mod.clear_cache()
    old = dataclasses.replace(shipped, as_of="2020-01-01", offers=shipped.offers[:1])
    write_catalog(old, refreshed_path("aws-us-east-1"))
    assert load_catalog("aws-us-east-1").origin == "shipped"


def test_write_is_atomic(catalog_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cat = load_catalog("aws-us-east-1")
    path = catalog_dir / "aws-us-east-1.yaml"
    write_catalog(cat, path)
    assert catalog_mod.parse_catalog(yaml.safe_load(path.read_text()), "x") == cat

    def crash(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("reconciler.providers.pricing.store.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_catalog(dataclasses.replace(cat, as_of="2030-01-01"), path)
    assert [p.name for p in catalog_dir.iterdir()] == [path.name]
    assert path.read_text() == render_catalog(cat)


class _Pages(BaseHTTPRequestHandler):
    """Serves the recorded Azure pages, NextPageLink rewritten to this server."""

    def do_GET(self) -> None:
        page = "azure-westeurope-2.json" if "skip=100" in self.path else "azure-westeurope-1.json"
        body = (DATA / page).read_text(encoding="utf-8")
        body = body.replace("https://prices.azure.com:443", f"http://{self.headers['Host']}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: Any) -> None:
        return


def test_urllib_transport_against_a_local_server(catalog_dir: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        local = lambda url: azure.urllib_fetch(url.replace("https://prices.azure.com", base))  # noqa: E731
        result = refresh_catalog("azure-westeurope", fetch=local)
        assert result.pages == 2 and result.priced == 5
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(TransientError, match="cannot reach"):  # the port is closed now
        refresh_catalog("azure-eastus", fetch=local)


def test_cli_refresh_then_list(catalog_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    client, _ = _aws_client()
    monkeypatch.setattr(aws, "make_client", lambda name: client)
    monkeypatch.setattr(azure, "urllib_fetch", _azure_fetch())
    target = catalog_dir / "elsewhere"
    names = ["aws-eu-west-1", "azure-westeurope", "sim-private-openstack"]
    result = CliRunner().invoke(cli, ["catalog", "refresh", *names, "--catalog-dir", str(target)])
    assert result.exit_code == 0, result.output
    assert "aws-eu-west-1: 23 offers, 7 priced by the API, 16 kept" in result.output
    assert "2 other types ignored (use --all); 1 unknown types skipped; 3 pages" in result.output
    assert "sim-private-openstack: not refreshable" in result.output
    listed = CliRunner().invoke(cli, ["catalog", "list", "--catalog-dir", str(target)])
    row = next(x for x in listed.output.splitlines() if x.startswith("aws-eu-west-1"))
    assert "refreshed" in row and "0d" in row and aws.PRICING_URL in row
    default = CliRunner().invoke(cli, ["catalog", "list"])  # the env directory is still empty
    assert "refreshed" not in default.output


def test_cli_refresh_failure_is_a_clear_error(
    catalog_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(url: str) -> Mapping[str, Any]:
        raise urllib.error.URLError("[Errno 101] Network is unreachable")

    monkeypatch.setattr(azure, "urllib_fetch", offline)
    result = CliRunner().invoke(cli, ["catalog", "refresh", "azure-eastus"])
    assert result.exit_code == 1
    assert "Error: catalog azure-eastus: Azure Retail Prices API https://prices.azure.com" in (
        result.output
    )
    assert "nothing written" in result.output and "Traceback" not in result.output
    assert not catalog_dir.exists()
