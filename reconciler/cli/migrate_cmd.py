"""`reconciler migrate`: see the migrations in flight, and roll one back."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from reconciler.cli.apply_cmd import apply_reporting, confirm, finish_apply, recovered_providers
from reconciler.cli.inspect_cmd import parse_key
from reconciler.cli.options import common_options, report_errors, settings_from, use_colour
from reconciler.cli.render.text import render_text
from reconciler.executor.engine import MIGRATIONS_DIR, make_plan, observe_declared
from reconciler.executor.migration_store import FileMigrationStore
from reconciler.manifest import load_desired
from reconciler.model.errors import PlanError
from reconciler.model.observed import ObservedVM
from reconciler.model.plan import ActionType
from reconciler.planner.migrate import find_flight

PATHS = click.argument("paths", nargs=-1, required=True)


@click.group("migrate")
def migrate_command() -> None:
    """Migrations between clouds: list the ones in flight, abort one."""


@migrate_command.command("list")
@PATHS
@common_options
@report_errors
def list_command(
    paths: tuple[str, ...], state_dir: Path | None, owner: str | None, no_color: bool
) -> None:
    """Every migration in flight (read from the clouds' tags) with its last step."""
    settings = settings_from(state_dir, owner)
    desired = load_desired(list(paths), stdin=sys.stdin)
    world = observe_declared(desired, settings)
    by_key: dict[str, list[ObservedVM]] = {}
    for vm in world.inventory.all_vms():
        if vm.key is not None:
            by_key.setdefault(str(vm.key), []).append(vm)
    store = FileMigrationStore(settings.state_dir / MIGRATIONS_DIR)
    count = 0
    for key, vms in sorted(by_key.items()):
        flight = find_flight(vms)
        if flight is None:
            continue
        count += 1
        record = store.load(flight.id) or {}
        step = record.get("step", "not started here (no local record)")
        click.echo(
            f"{key}: {flight.id} from {flight.source.cloud} ({flight.source.external_id}) to "
            f"{flight.target_cloud} as {flight.instance_type}; last step: {step}"
        )
    if not count:
        click.echo("No migrations in flight.")


@migrate_command.command("abort")
@click.argument("key")
@PATHS
@click.option("--auto-approve", is_flag=True, help="Roll back without asking for confirmation.")
@common_options
@report_errors
def abort_command(
    key: str,
    paths: tuple[str, ...],
    auto_approve: bool,
    state_dir: Path | None,
    owner: str | None,
    no_color: bool,
) -> None:
    """Roll back the migration of KEY (vm/<namespace>/<name>) that is in flight: delete
    what was made in the target and start the source again. Nothing else is changed."""
    rkey = parse_key(key)
    settings = settings_from(state_dir, owner)
    desired = load_desired(list(paths), stdin=sys.stdin)
    planned = make_plan(
        desired, settings, recovered_providers(desired, settings), abort=frozenset({rkey})
    )
    rollback = [
        a
        for a in planned.plan.actions
        if a.key == rkey and a.type is ActionType.MIGRATE and a.params.get("mode") == "abort"
    ]
    if not rollback:
        raise PlanError(f"{rkey} has no migration in flight; nothing to abort")
    plan = planned.plan.only(rollback)
    click.echo(render_text(plan.to_json(), colour=use_colour(no_color)), nl=False)
    confirm(auto_approve)
    finish_apply(apply_reporting(plan, planned.world, desired, settings), plan)
