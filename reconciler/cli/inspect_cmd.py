"""`reconciler show` (what runs where, and its cost) and `reconciler explain` (why)."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from reconciler.cli.options import common_options, report_errors, settings_from, use_colour
from reconciler.executor.engine import observe_declared, place_declared
from reconciler.manifest import load_desired
from reconciler.model.artifacts import ObservedImage
from reconciler.model.errors import PlanError
from reconciler.model.keys import HOURS_PER_MONTH, ResourceKey
from reconciler.model.observed import Observed
from reconciler.model.placement import Candidate

KIND_ALIASES = {
    "vm": "VirtualMachine",
    "virtualmachine": "VirtualMachine",
    "virtualmachines": "VirtualMachine",
    "vol": "Volume",
    "volume": "Volume",
    "bkt": "Bucket",
    "bucket": "Bucket",
}


def _table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], colour: bool) -> None:
    table = Table(title=title, title_justify="left")
    for i, col in enumerate(columns):
        table.add_column(col, justify="right" if col.startswith("$") else "left", no_wrap=i == 0)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))  # Text: no markup parsing of "[eu]"
    Console(no_color=not colour, width=None if sys.stdout.isatty() else 160).print(table)


def _row(kind: str, record: Observed, type_: str, state: str) -> dict[str, Any]:
    """One managed resource as ``show`` reports it."""
    return {
        "kind": kind,
        "key": str(record.key),
        "externalId": record.external_id,
        "type": type_,
        "state": state,
        "pricePerHour": record.price_per_hour,
    }


def _image_row(image: ObservedImage) -> dict[str, Any]:
    """An imported image (its storage is not priced: no $/h of its own)."""
    return {
        "kind": "Image",
        "key": str(image.key),
        "externalId": image.external_id,
        "type": f"image disk {image.disk}" if image.disk else "image",
        "state": f"{image.size_bytes} bytes, sha256 {image.sha256[:12]}",
        "pricePerHour": 0.0,
    }


def _inventory_rows(
    paths: tuple[str, ...], state_dir: Path | None, owner: str | None
) -> dict[str, Any]:
    desired = load_desired(list(paths), stdin=sys.stdin)
    world = observe_declared(desired, settings_from(state_dir, owner))
    clouds: list[dict[str, Any]] = []
    for name in sorted(world.inventory.clouds):
        inv = world.inventory.clouds[name]
        rows = [
            _row("VirtualMachine", vm, vm.instance_type, vm.power_state.value) for vm in inv.vms
        ]
        rows += [
            _row(
                "Volume",
                v,
                f"{v.size_gib} GiB {v.volume_class}",
                f"attached to {v.attached_to}" if v.attached_to else "detached",
            )
            for v in inv.volumes
        ]
        rows += [
            _row("Bucket", b, "bucket", "versioned" if b.versioning else "") for b in inv.buckets
        ]
        rows += [_image_row(image) for image in inv.images]
        total = sum(float(r["pricePerHour"]) for r in rows)
        clouds.append(
            {
                "name": name,
                "resources": sorted(rows, key=lambda r: r["key"]),
                "totalPerHour": round(total, 6),
            }
        )
    grand = sum(c["totalPerHour"] for c in clouds)
    return {
        "clouds": clouds,
        "totalPerHour": round(grand, 6),
        "totalPerMonth": round(grand * HOURS_PER_MONTH, 2),
    }


@click.command("show")
@click.argument("paths", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Choice(["text", "json"]), default="text")
@common_options
@report_errors
def show_command(
    paths: tuple[str, ...], output: str, state_dir: Path | None, owner: str | None, no_color: bool
) -> None:
    """What runs where (managed resources only), its $/h, and totals per cloud."""
    report = _inventory_rows(paths, state_dir, owner)
    if output == "json":
        click.echo(json.dumps(report, indent=2))
        return
    colour = use_colour(no_color)
    rows = [
        [c["name"], r["key"], r["externalId"], r["type"], r["state"], f"{r['pricePerHour']:.4f}"]
        for c in report["clouds"]
        for r in c["resources"]
    ]
    _table("Managed resources", ["cloud", "resource", "id", "type", "state", "$/h"], rows, colour)
    totals = [
        [
            c["name"],
            str(len(c["resources"])),
            f"{c['totalPerHour']:.4f}",
            f"{c['totalPerHour'] * HOURS_PER_MONTH:,.2f}",
        ]
        for c in report["clouds"]
    ]
    totals.append(
        [
            "total",
            str(sum(len(c["resources"]) for c in report["clouds"])),
            f"{report['totalPerHour']:.4f}",
            f"{report['totalPerMonth']:,.2f}",
        ]
    )
    _table("Cost per cloud", ["cloud", "resources", "$/h", "$/month"], totals, colour)


def parse_key(text: str) -> ResourceKey:
    parts = text.split("/")
    if len(parts) == 2:
        parts = [parts[0], "default", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise PlanError(f"expected <kind>/<namespace>/<name>, got {text!r}")
    kind = KIND_ALIASES.get(parts[0].lower(), parts[0])
    return ResourceKey(kind, parts[1], parts[2])


def _candidate_rows(candidates: Sequence[Candidate]) -> list[list[str]]:
    ordered = sorted(
        candidates, key=lambda c: (c.outcome.value != "chosen", c.price_per_hour, c.cloud, c.offer)
    )
    return [
        [
            c.cloud,
            c.offer,
            f"{c.price_per_hour:.4f}",
            f"{c.price_per_hour * HOURS_PER_MONTH:,.2f}",
            c.outcome.value,
            c.detail,
        ]
        for c in ordered
    ]


@click.command("explain")
@click.argument("key")
@click.argument("paths", nargs=-1, required=True)
@common_options
@report_errors
def explain_command(
    key: str, paths: tuple[str, ...], state_dir: Path | None, owner: str | None, no_color: bool
) -> None:
    """Why a VM is (or would be) placed where it is: every candidate and its verdict.

    KEY is <kind>/<namespace>/<name>, e.g. vm/default/web-0.
    """
    rkey = parse_key(key)
    settings = settings_from(state_dir, owner)
    desired = load_desired(list(paths), stdin=sys.stdin)
    if rkey not in desired.vms and rkey not in desired.volumes and rkey not in desired.buckets:
        raise PlanError(f"{rkey} is not declared in {', '.join(paths)}")
    _world, result = place_declared(desired, settings)
    colour = use_colour(no_color)
    if rkey in result.storage:
        storage = result.storage[rkey]
        click.echo(f"{rkey}: on {', '.join(storage.clouds)}: {storage.reason}")
        return
    placement = result.placements.get(rkey)
    unplaced = result.unplaced.get(rkey) or result.storage_unplaced.get(rkey)
    if placement is not None:
        click.echo(
            f"{rkey}: {placement.cloud} {placement.offer.name} "
            f"${placement.offer.price_per_hour:.4f}/h: {placement.reason}"
        )
        candidates: Sequence[Candidate] = placement.candidates
        for note in (result.held.get(rkey), result.notes.get(rkey)):
            if note:
                click.echo(f"  rebalancing: {note}")
    elif unplaced is not None:
        click.echo(f"{rkey} cannot be placed:")
        for reason in unplaced.reasons:
            click.echo(f"  - {reason}")
        candidates = unplaced.candidates
    else:
        raise PlanError(f"{rkey}: the broker made no decision for it")
    _table(
        f"Candidates for {rkey}",
        ["cloud", "offer", "$/h", "$/month", "outcome", "detail"],
        _candidate_rows(candidates),
        colour,
    )
