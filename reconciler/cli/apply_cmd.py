"""`reconciler apply`: from manifests (plan, confirm, apply) or from a saved plan."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reconciler.cli.options import (
    PARALLELISM,
    common_options,
    report_errors,
    settings_from,
    use_colour,
)
from reconciler.cli.progress import ProgressReporter
from reconciler.cli.render.text import render_text
from reconciler.executor.engine import (
    Settings,
    apply,
    check_fresh,
    make_plan,
    observe_declared,
    providers_for,
    record_rounds,
    recover,
)
from reconciler.executor.runner import ApplyResult
from reconciler.executor.world import World
from reconciler.manifest import load_desired
from reconciler.model.cloudjson import cloud_from_json
from reconciler.model.errors import ExecutionError, PlanError
from reconciler.model.plan import Plan
from reconciler.model.specs import DesiredState
from reconciler.providers.base import Provider


def _saved_plan(paths: tuple[str, ...]) -> Plan | None:
    if len(paths) != 1 or not paths[0].endswith(".json"):
        return None
    try:
        raw = json.loads(Path(paths[0]).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PlanError(f"{paths[0]}: not a JSON plan: {exc}") from exc
    return Plan.from_json(raw)


def confirm(auto_approve: bool) -> None:
    if auto_approve:
        return
    if not sys.stdin.isatty():
        raise PlanError("not applying without confirmation: pass --auto-approve when not on a tty")
    answer = click.prompt(
        "Do you want to perform these actions? Only 'yes' will be accepted", default=""
    )
    if answer != "yes":
        raise PlanError("apply cancelled; nothing was changed")


def recovered_providers(desired: DesiredState, settings: Settings) -> dict[str, Provider]:
    """The declared Clouds' providers, once the calls an interrupted apply left in flight
    were looked up (one line printed for each)."""
    providers = providers_for(desired, settings)
    for note in recover(settings, providers):
        click.echo(note)
    return providers


def apply_reporting(
    plan: Plan, world: World, desired: DesiredState, settings: Settings
) -> ApplyResult:
    """Apply ``plan`` showing progress, then print the line an apply ends with (counts
    per action type) and one line per failure."""
    with ProgressReporter(len(plan.actions)) as progress:
        result = apply(plan, world, desired, settings, progress)
    counts: dict[str, int] = {}
    by_id = {a.id: a for a in plan.actions}
    for ident in result.done:
        kind = by_id[ident].type.value
        counts[kind] = counts.get(kind, 0) + 1
    done = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "nothing"
    click.echo(
        f"Apply finished: {done}; {len(result.failed)} failed, {len(result.skipped)} skipped."
    )
    for ident, err in sorted(result.failed.items()):
        click.echo(f"  failed: {ident}: {err}", err=True)
    return result


def finish_apply(result: ApplyResult, plan: Plan) -> None:
    """Exit 1 (ExecutionError) when an action failed or a resource stayed unplaced."""
    if not result.ok:
        raise ExecutionError(
            f"{len(result.failed)} action(s) failed; run apply again to retry what is left"
        )
    if plan.unplaced:
        raise ExecutionError(
            f"{len(plan.unplaced)} resource(s) could not be placed: "
            + ", ".join(str(u.key) for u in plan.unplaced)
        )


def _apply_saved(plan: Plan, settings: Settings) -> None:
    clouds = {c["name"]: cloud_from_json(dict(c)) for c in plan.cloud_specs}
    desired = DesiredState(clouds=clouds)
    world = observe_declared(desired, settings, recovered_providers(desired, settings))
    check_fresh(plan, world, settings)
    finish_apply(apply_reporting(plan, world, desired, settings), plan)


@click.command("apply")
@click.argument("paths", nargs=-1, required=True)
@click.option("--auto-approve", is_flag=True, help="Apply without asking for confirmation.")
@PARALLELISM
@common_options
@report_errors
def apply_command(
    paths: tuple[str, ...],
    auto_approve: bool,
    parallelism: int,
    state_dir: Path | None,
    owner: str | None,
    no_color: bool,
) -> None:
    """Make the clouds match the manifests, or apply exactly a saved plan (FILE.json).

    A saved plan is refused when the clouds changed since it was made.
    """
    settings = settings_from(state_dir, owner, parallelism)
    saved = _saved_plan(paths)
    if saved is not None:
        _apply_saved(saved, settings)
        return
    desired = load_desired(list(paths), stdin=sys.stdin)
    planned = make_plan(desired, settings, recovered_providers(desired, settings))
    click.echo(render_text(planned.plan.to_json(), colour=use_colour(no_color)), nl=False)
    if not planned.plan.has_changes:
        if planned.plan.unplaced:
            raise ExecutionError("some resources cannot be placed; see above")
        record_rounds(planned.plan, settings)
        return
    confirm(auto_approve)
    finish_apply(apply_reporting(planned.plan, planned.world, desired, settings), planned.plan)
