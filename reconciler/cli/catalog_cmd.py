"""`reconciler catalog`: the price catalogs, their age, and refreshing them.

Every price in a plan comes from a catalog with an ``asOf`` date; an old catalog means
plans quote old prices. ``list`` shows each catalog's age and flags stale ones,
``show`` prints one catalog's offers, ``refresh`` re-prices aws/azure catalogs from
the clouds' public price APIs into the user catalog directory.
"""

from __future__ import annotations

import datetime
import json
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from reconciler.cli.options import report_errors
from reconciler.model.errors import ReconcilerError
from reconciler.model.keys import HOURS_PER_MONTH
from reconciler.providers.catalog import (
    CATALOG_DIR_ENV,
    Catalog,
    catalog_names,
    load_catalog,
    load_shipped_catalog,
)
from reconciler.providers.pricing import (
    NOT_REFRESHABLE,
    RefreshResult,
    refresh_catalog,
    refreshable,
)

DEFAULT_MAX_AGE = 90

CATALOG_DIR = click.option(
    "--catalog-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help=f"Directory of refreshed catalogs (env {CATALOG_DIR_ENV}, "
    "default ~/.cache/reconciler/catalogs).",
)
TODAY = click.option(
    "--today",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Compute ages relative to this date (YYYY-MM-DD) instead of today.",
)
MAX_AGE = click.option(
    "--max-age",
    type=click.IntRange(0),
    default=DEFAULT_MAX_AGE,
    show_default=True,
    help="Flag catalogs older than this many days as stale.",
)
OUTPUT = click.option(
    "-o", "--output", type=click.Choice(["text", "json"]), default="text", help="Output format."
)


def _day(today: datetime.datetime | None) -> datetime.date:
    return today.date() if today is not None else datetime.date.today()


def _status(cat: Catalog, today: datetime.date, max_age: int) -> dict[str, Any]:
    age = (today - datetime.date.fromisoformat(cat.as_of)).days
    state = "stale" if age > max_age else "ok"
    if not refreshable(cat):
        state = "declared"
    return {
        "name": cat.name,
        "provider": cat.provider,
        "region": cat.region,
        "offers": len(cat.offers),
        "asOf": cat.as_of,
        "ageDays": age,
        "status": state,
        "origin": "refreshed" if cat.refreshed else "shipped",
        "path": cat.origin.removeprefix("refreshed ") if cat.refreshed else "",
        "fetchedAt": cat.fetched_at,
        "source": cat.source,
    }


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    return "\n".join(line.rstrip() for line in [head, *lines]) + "\n"


CHECK = click.option("--check", is_flag=True, help="Exit 1 when a catalog is stale (for CI).")


@click.group("catalog", invoke_without_command=True)
@TODAY
@MAX_AGE
@CHECK
@OUTPUT
@CATALOG_DIR
@click.pass_context
def catalog_command(ctx: click.Context, /, **options: Any) -> None:
    """Price catalogs: list them with their age, show one, refresh from price APIs.

    Without a subcommand, runs `catalog list` (with the options given here).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(list_command, **options)
        return
    given = [
        name
        for name in options
        if ctx.get_parameter_source(name) is not click.core.ParameterSource.DEFAULT
    ]
    if given:
        raise click.UsageError(
            "options go after the subcommand (e.g. `reconciler catalog list --check`)"
        )


@catalog_command.command("list")
@TODAY
@MAX_AGE
@CHECK
@OUTPUT
@CATALOG_DIR
@report_errors
def list_command(
    today: datetime.datetime | None,
    max_age: int,
    check: bool,
    output: str,
    catalog_dir: Path | None,
) -> None:
    """Every catalog: provider, region, offers, asOf, age in days, origin, source."""
    day = _day(today)
    rows = [_status(load_catalog(n, catalog_dir), day, max_age) for n in catalog_names()]
    stale = [r["name"] for r in rows if r["status"] == "stale"]
    if output == "json":
        click.echo(
            json.dumps(
                {"today": day.isoformat(), "maxAgeDays": max_age, "catalogs": rows}, indent=2
            )
        )
    else:
        header = (
            "NAME",
            "PROVIDER",
            "REGION",
            "OFFERS",
            "ASOF",
            "AGE",
            "STATUS",
            "ORIGIN",
            "SOURCE",
        )
        cells = [
            (
                r["name"],
                r["provider"],
                r["region"],
                str(r["offers"]),
                r["asOf"],
                f"{r['ageDays']}d",
                r["status"],
                r["origin"],
                r["source"],
            )
            for r in rows
        ]
        click.echo(_table(header, cells), nl=False)
        if stale:
            click.echo(
                f"\n{len(stale)} catalog{'s' if len(stale) != 1 else ''} older than {max_age} "
                f"days: {', '.join(stale)}. Plans quote these prices; refresh with "
                "`reconciler catalog refresh`."
            )
    if check and stale:
        sys.exit(1)


@catalog_command.command("show")
@click.argument("name")
@TODAY
@OUTPUT
@CATALOG_DIR
@report_errors
def show_command(
    name: str, today: datetime.datetime | None, output: str, catalog_dir: Path | None
) -> None:
    """One catalog's offers with $/h and $/month (730 h), storage and egress prices."""
    cat = load_catalog(name, catalog_dir)
    info = _status(cat, _day(today), DEFAULT_MAX_AGE)
    offers = [
        {
            "name": o.name,
            "vcpus": o.vcpus,
            "memoryGiB": o.memory_gib,
            "gpus": o.gpus,
            "pricePerHour": o.price_per_hour,
            "pricePerMonth": round(o.price_per_hour * HOURS_PER_MONTH, 2),
            "asOf": o.as_of or cat.as_of,
        }
        for o in cat.offers
    ]
    storage = {
        "blockStoragePerGiBMonth": cat.block_storage_per_gib_month,
        "objectStoragePerGiBMonth": cat.object_storage_per_gib_month,
        "egressPerGiB": cat.egress_per_gib,
    }
    if output == "json":
        click.echo(
            json.dumps({**info, **storage, "notes": cat.notes, "offerList": offers}, indent=2)
        )
        return
    click.echo(
        f"{cat.name} ({cat.provider}, {cat.region or 'no region'}), prices in {cat.currency}"
    )
    click.echo(f"source:  {cat.source}")
    click.echo(f"asOf:    {cat.as_of} ({info['ageDays']} days old, {info['status']})")
    click.echo(
        f"origin:  {cat.origin}" + (f" (fetched {cat.fetched_at})" if cat.fetched_at else "")
    )
    click.echo(
        f"storage: block ${cat.block_storage_per_gib_month:g}/GiB-month, object "
        f"${cat.object_storage_per_gib_month:g}/GiB-month; egress ${cat.egress_per_gib:g}/GiB"
    )
    click.echo(textwrap.fill(f"notes:   {cat.notes}", width=100, subsequent_indent="         "))
    click.echo()
    header = ("TYPE", "VCPUS", "MEMORY GIB", "GPUS", "$/H", "$/MONTH", "ASOF")
    cells = [
        (
            str(o["name"]),
            str(o["vcpus"]),
            f"{o['memoryGiB']:g}",
            str(o["gpus"]),
            f"{o['pricePerHour']:.4f}",
            f"{o['pricePerMonth']:.2f}",
            str(o["asOf"]),
        )
        for o in offers
    ]
    click.echo(_table(header, cells), nl=False)


def _summary(result: RefreshResult, include_all: bool) -> str:
    """One line saying what a refresh wrote and what it skipped."""
    text = f"{result.name}: {result.offers} offers, {result.priced} priced by the API"
    if result.carried:
        text += f", {len(result.carried)} kept at the shipped price ({', '.join(result.carried)})"
    if include_all:
        text += f", {result.added} added (--all)"
    elif result.ignored:
        text += f"; {result.ignored} other types ignored (use --all)"
    return (
        f"{text}; {result.unknown} unknown types skipped; {result.pages} pages; wrote {result.path}"
    )


@catalog_command.command("refresh")
@click.argument("names", nargs=-1)
@click.option(
    "--all",
    "include_all",
    is_flag=True,
    help="Keep every instance type the API prices, not only the shipped catalog's.",
)
@CATALOG_DIR
def refresh_command(names: tuple[str, ...], include_all: bool, catalog_dir: Path | None) -> None:
    """Re-price aws-*/azure-* catalogs from the public price APIs (default: all of them).

    AWS uses the Price List Query API (credentials from boto3's default chain); Azure
    uses the public Retail Prices API. Each catalog is written atomically to the
    catalog directory with asOf = today; a failed catalog writes nothing, the others
    are still refreshed, and the exit code is 1.
    """
    failed = 0
    for name in names or tuple(catalog_names()):
        try:
            if not refreshable(load_shipped_catalog(name)):
                click.echo(f"{name}: {NOT_REFRESHABLE}")
                continue
            result = refresh_catalog(name, catalog_dir=catalog_dir, include_all=include_all)
        except (ReconcilerError, OSError, ValueError) as exc:
            failed += 1
            text = str(exc)
            prefix = "" if text.startswith(f"catalog {name}") else f"catalog {name}: "
            click.echo(f"Error: {prefix}{text}; nothing written.", err=True)
            continue
        click.echo(_summary(result, include_all))
    if failed:
        sys.exit(1)
