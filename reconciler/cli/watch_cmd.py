"""`reconciler watch`: a local GitOps loop. Every manifest change re-validates and re-plans;
with --apply the plan is carried out. Invalid edits print diagnostics and change nothing.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time
from collections.abc import Generator, Sequence
from pathlib import Path
from types import FrameType

import click
import watchfiles

from reconciler.cli.apply_cmd import apply_reporting, recovered_providers
from reconciler.cli.options import (
    PARALLELISM,
    USER_ERRORS,
    common_options,
    echo_error,
    settings_from,
    use_colour,
)
from reconciler.cli.render.text import render_text
from reconciler.executor.engine import Settings, make_plan, providers_for
from reconciler.manifest import load_desired

MANIFEST_SUFFIXES = (".yaml", ".yml")


def _stamp(message: str) -> None:
    click.echo(f"[{time.strftime('%H:%M:%S')}] {message}")


def is_manifest(path: str) -> bool:
    """Only visible *.yaml/*.yml files count (not editor swap or backup files)."""
    name = Path(path).name
    return name.endswith(MANIFEST_SUFFIXES) and not name.startswith(".")


def loaded_from(path: str, roots: Sequence[Path]) -> bool:
    """True for a manifest the loader reads: hidden directories under a root are skipped."""
    if not is_manifest(path):
        return False
    full = Path(path).resolve()
    for root in roots:
        if root.is_dir() and full.is_relative_to(root):
            return not any(part.startswith(".") for part in full.relative_to(root).parts)
    return True


def _describe(changed: Sequence[str], roots: Sequence[Path]) -> str:
    names: list[str] = []
    for raw in sorted(set(changed)):
        path = Path(raw).resolve()
        rel = next(
            (path.relative_to(r) for r in roots if r.is_dir() and path.is_relative_to(r)), None
        )
        names.append(str(rel) if rel is not None else path.name)
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f"change in {shown}"


def run_cycle(paths: Sequence[str], settings: Settings, do_apply: bool, colour: bool) -> bool:
    """Validate, plan, print, and (with ``do_apply``) apply once. True when all went well.

    Bad manifests and cloud errors are printed, never raised: the loop must survive them.
    """
    try:
        desired = load_desired(list(paths))
        if do_apply:
            providers = recovered_providers(desired, settings)
        else:
            providers = providers_for(desired, settings)
        planned = make_plan(desired, settings, providers)
        click.echo(render_text(planned.plan.to_json(), colour=colour), nl=False)
        if not do_apply or not planned.plan.has_changes:
            return not planned.plan.unplaced
        result = apply_reporting(planned.plan, planned.world, desired, settings)
    except USER_ERRORS as exc:
        echo_error(exc)
        return False
    return result.ok and not planned.plan.unplaced


class _Stopper:
    """SIGTERM/SIGINT ask the loop to stop after the cycle in progress; a second one aborts."""

    def __init__(self) -> None:
        self.event = threading.Event()

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


def _changes(
    paths: Sequence[str], debounce_ms: int, stop: threading.Event
) -> Generator[list[str], None, None]:
    """Batches of changed manifest paths, grouped until ``debounce_ms`` of quiet.

    An empty batch comes every quarter second without changes; the first one tells that
    the watch is in place, so an edit made during the first plan is not missed.
    """
    roots = [Path(p).resolve() for p in paths]
    for batch in watchfiles.watch(
        *paths,
        watch_filter=lambda _change, path: loaded_from(path, roots),
        step=max(debounce_ms, 1),
        debounce=max(debounce_ms * 10, 1_600),
        stop_event=stop,
        rust_timeout=250,
        yield_on_timeout=True,
        raise_interrupt=False,
    ):
        yield [path for _change, path in batch]


def _after_each(
    batches: Generator[list[str], None, None], stop: threading.Event
) -> Generator[list[str], None, None]:
    """Non-empty batches, announcing each wait; ends as soon as a stop was asked for."""
    while not stop.is_set():
        _stamp("waiting for changes (Ctrl-C to stop)")
        changed = next((batch for batch in batches if batch), None)
        if changed is None or stop.is_set():
            return
        yield changed


@click.command("watch")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--apply", "do_apply", is_flag=True, help="Apply every plan (no confirmation).")
@click.option(
    "--debounce-ms",
    type=click.IntRange(0, 60_000),
    default=300,
    show_default=True,
    help="Wait this long without further changes before re-planning.",
)
@click.option("--once", is_flag=True, help="Run one cycle and exit (1 if it failed).")
@PARALLELISM
@common_options
def watch_command(
    paths: tuple[str, ...],
    do_apply: bool,
    debounce_ms: int,
    once: bool,
    parallelism: int,
    state_dir: Path | None,
    owner: str | None,
    no_color: bool,
) -> None:
    """Re-validate and re-plan whenever the manifests under PATHS change; with --apply,
    apply too. Invalid edits print errors and change nothing. Ctrl-C or SIGTERM stops
    after the cycle in progress."""
    settings = settings_from(state_dir, owner, parallelism)
    colour = use_colour(no_color)
    stopper = _Stopper()
    stopper.install()
    roots = [Path(p).resolve() for p in paths]
    batches = _changes(paths, debounce_ms, stopper.event)
    with contextlib.closing(batches), contextlib.suppress(KeyboardInterrupt):
        if not once:
            next(batches, None)  # the watch is in place before the first plan
        _stamp(f"watching {', '.join(paths)}: planning")
        ok = run_cycle(paths, settings, do_apply, colour)
        if once:
            sys.exit(0 if ok else 1)
        for changed in _after_each(batches, stopper.event):
            _stamp(f"{_describe(changed, roots)}: re-planning")
            run_cycle(paths, settings, do_apply, colour)
    _stamp("stopped")
