"""`reconciler`: validate, plan, apply, show and explain declarative cloud manifests."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from reconciler import __version__
from reconciler.cli.apply_cmd import apply_command
from reconciler.cli.catalog_cmd import catalog_command
from reconciler.cli.inspect_cmd import explain_command, show_command
from reconciler.cli.migrate_cmd import migrate_command
from reconciler.cli.operator_cmd import (
    CONTEXT,
    KUBECONFIG,
    NAMESPACE,
    cluster_plan,
    operator_command,
)
from reconciler.cli.options import common_options, report_errors, settings_from, use_colour
from reconciler.cli.ovf_cmd import import_ovf_command
from reconciler.cli.render.markdown import render_markdown
from reconciler.cli.render.text import render_text
from reconciler.cli.snapshot_cmd import snapshot_command
from reconciler.cli.watch_cmd import watch_command
from reconciler.executor.engine import make_plan
from reconciler.manifest import load_desired, validate_paths

PATHS = click.argument("paths", nargs=-1, required=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="reconciler")
def cli() -> None:
    """Declarative cloud broker: YAML in git -> the cheapest allowed placement, planned,
    explained and applied.

    PATHS are manifest files or directories (searched recursively for *.yaml/*.yml);
    `-` reads standard input. Clouds with `provider: sim` are simulated locally.
    """


@cli.command("validate")
@PATHS
@report_errors
def validate_command(paths: tuple[str, ...]) -> None:
    """Check manifests against the CRD schemas and each other; report every error."""
    count, diagnostics = validate_paths(list(paths), stdin=sys.stdin)
    for diag in diagnostics:
        click.echo(f"error: {diag}", err=True)
    if diagnostics:
        n = len(diagnostics)
        click.echo(f"{n} error{'s' if n != 1 else ''} in {count} objects.", err=True)
        sys.exit(1)
    click.echo(f"{count} objects valid.")


@cli.command("plan")
@click.argument("paths", nargs=-1)
@click.option(
    "--cluster",
    is_flag=True,
    help="Plan from the reconciler.dev objects in the cluster (as the operator would) "
    "instead of PATHS.",
)
@KUBECONFIG
@CONTEXT
@NAMESPACE
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    help="Output format.",
)
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also save the plan as JSON to this file (for `reconciler apply FILE`).",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when nothing changes, 2 when there are changes, 1 on error.",
)
@common_options
@report_errors
def plan_command(
    paths: tuple[str, ...],
    cluster: bool,
    kubeconfig: str | None,
    kube_context: str | None,
    namespace: str,
    output: str,
    out_file: Path | None,
    detailed_exitcode: bool,
    state_dir: Path | None,
    owner: str | None,
    no_color: bool,
) -> None:
    """Show what apply would change and what it would cost (changes nothing)."""
    if cluster == bool(paths):
        raise click.UsageError("give manifest PATHS or --cluster (one of the two)")
    settings = settings_from(state_dir, owner)
    if cluster:
        plan = cluster_plan(settings, namespace, kubeconfig, kube_context).plan
    else:
        plan = make_plan(load_desired(list(paths), stdin=sys.stdin), settings).plan
    data = plan.to_json()
    if out_file is not None:
        out_file.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if output == "json":
        click.echo(json.dumps(data, indent=2))
    elif output == "markdown":
        click.echo(render_markdown(data), nl=False)
    else:
        click.echo(render_text(data, colour=use_colour(no_color)), nl=False)
    if plan.unplaced:
        sys.exit(1)
    if detailed_exitcode and plan.has_changes:
        sys.exit(2)


cli.add_command(apply_command)
cli.add_command(show_command)
cli.add_command(explain_command)
cli.add_command(watch_command)
cli.add_command(operator_command)
cli.add_command(catalog_command)
cli.add_command(migrate_command)
cli.add_command(snapshot_command)
cli.add_command(import_ovf_command)


def main() -> None:
    cli(prog_name="reconciler")
