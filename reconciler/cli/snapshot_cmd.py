"""`reconciler snapshot`: point-in-time copies of a declared Volume, in its cloud."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.inspect_cmd import parse_key
from reconciler.cli.options import common_options, report_errors, settings_from
from reconciler.executor.engine import Settings, observe_declared
from reconciler.executor.snapshots import (
    create_snapshot,
    delete_snapshot,
    find_volume,
    list_snapshots,
)
from reconciler.executor.world import World
from reconciler.manifest import load_desired
from reconciler.model.errors import PlanError
from reconciler.model.observed import ObservedVolume

PATHS = click.argument("paths", nargs=-1, required=True)


@click.group("snapshot")
def snapshot_command() -> None:
    """Snapshots of a Volume (on clouds with the volume-snapshots capability)."""


def _volume(key: str, paths: tuple[str, ...], settings: Settings) -> tuple[World, ObservedVolume]:
    rkey = parse_key(key)
    if rkey.kind != "Volume":
        raise PlanError(f"{rkey} is not a Volume (expected vol/<namespace>/<name>)")
    desired = load_desired(list(paths), stdin=sys.stdin)
    if rkey not in desired.volumes:
        raise PlanError(f"{rkey} is not declared in {', '.join(paths)}")
    world = observe_declared(desired, settings)
    return world, find_volume(world, rkey)


@snapshot_command.command("create")
@click.argument("key")
@PATHS
@common_options
@report_errors
def create_command(
    key: str, paths: tuple[str, ...], state_dir: Path | None, owner: str | None, no_color: bool
) -> None:
    """Snapshot the Volume KEY (vol/<namespace>/<name>) where it lives now."""
    settings = settings_from(state_dir, owner)
    world, volume = _volume(key, paths, settings)
    snap, stamp = create_snapshot(world, volume, settings.owner)
    click.echo(
        f"{volume.key}: snapshot {snap} of {volume.external_id} on {volume.cloud} at {stamp}"
    )


@snapshot_command.command("list")
@click.argument("key")
@PATHS
@common_options
@report_errors
def list_command(
    key: str, paths: tuple[str, ...], state_dir: Path | None, owner: str | None, no_color: bool
) -> None:
    """The snapshots of the Volume KEY."""
    settings = settings_from(state_dir, owner)
    world, volume = _volume(key, paths, settings)
    snaps = list_snapshots(world, volume)
    for snap in snaps:
        click.echo(f"{snap}  ({volume.external_id} on {volume.cloud})")
    if not snaps:
        click.echo(f"{volume.key} has no snapshots.")


@snapshot_command.command("delete")
@click.argument("key")
@click.argument("snapshot_id")
@PATHS
@common_options
@report_errors
def delete_command(
    key: str,
    snapshot_id: str,
    paths: tuple[str, ...],
    state_dir: Path | None,
    owner: str | None,
    no_color: bool,
) -> None:
    """Delete snapshot SNAPSHOT_ID of the Volume KEY."""
    settings = settings_from(state_dir, owner)
    world, volume = _volume(key, paths, settings)
    delete_snapshot(world, volume, snapshot_id)
    click.echo(f"deleted {snapshot_id}")
