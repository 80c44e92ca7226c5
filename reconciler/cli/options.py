"""Options every command shares, and turning errors into messages and exit codes."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from reconciler.cli.credentials import resolve_credentials
from reconciler.executor.engine import Settings
from reconciler.model.errors import ManifestError, ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_STATE = ".reconciler"


PARALLELISM = click.option(
    "--parallelism",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Cloud calls in flight at once.",
)


def common_options(fn: F) -> F:
    """--state, --owner, --no-color on every command (env RECONCILER_STATE/OWNER)."""
    fn = click.option(
        "--state",
        "state_dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="State directory: the simulator's world and the apply journal "
        f"(env RECONCILER_STATE, default ./{DEFAULT_STATE}).",
    )(fn)
    fn = click.option(
        "--owner",
        default=None,
        help="Ownership tag value of this installation (env RECONCILER_OWNER, "
        "default 'reconciler'). Resources with another owner are never touched.",
    )(fn)
    fn = click.option("--no-color", is_flag=True, help="Never colour the output.")(fn)
    return fn


def settings_from(state_dir: Path | None, owner: str | None, parallelism: int = 8) -> Settings:
    state = state_dir or Path(os.environ.get("RECONCILER_STATE", DEFAULT_STATE))
    return Settings(
        state_dir=state,
        owner=owner or os.environ.get("RECONCILER_OWNER", "reconciler"),
        parallelism=parallelism,
        credential_source=resolve_credentials,
    )


def use_colour(no_color: bool) -> bool:
    return not no_color and "NO_COLOR" not in os.environ and sys.stdout.isatty()


#: What a command reports as a message instead of a traceback.
USER_ERRORS = (ReconcilerError, OSError, ValueError)


def echo_error(exc: Exception) -> None:
    """Print a user error on stderr: a ManifestError as every diagnostic and a count."""
    if isinstance(exc, ManifestError):
        for diag in exc.diagnostics:
            click.echo(f"error: {diag}", err=True)
        count = len(exc.diagnostics)
        click.echo(f"{count} error{'s' if count != 1 else ''}; nothing was changed.", err=True)
    else:
        click.echo(f"Error: {exc}", err=True)


def report_errors(fn: F) -> F:
    """Every ReconcilerError becomes a clear message and exit 1; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            echo_error(exc)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
