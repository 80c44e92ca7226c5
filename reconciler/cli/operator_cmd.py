"""`reconciler operator` and the cluster side of `reconciler plan --cluster`.

The operator package (Kubernetes client, Prometheus, controller) is imported only when
one of these runs, not at every CLI start-up.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reconciler.cli.options import DEFAULT_STATE, report_errors
from reconciler.executor.engine import Settings

if TYPE_CHECKING:
    from reconciler.operator.preview import ClusterPlan

KUBECONFIG = click.option(
    "--kubeconfig",
    default=None,
    help="Kubeconfig file (default: in-cluster service account, else $KUBECONFIG or "
    "~/.kube/config).",
)
CONTEXT = click.option("--context", "kube_context", default=None, help="Kubeconfig context.")
NAMESPACE = click.option(
    "--namespace",
    default=lambda: os.environ.get("POD_NAMESPACE", "reconciler-system"),
    show_default="reconciler-system or $POD_NAMESPACE",
    help="The operator's namespace: its Lease, journal ConfigMap and Cloud Secrets.",
)


@click.command("operator")
@KUBECONFIG
@CONTEXT
@NAMESPACE
@click.option(
    "--metrics-addr",
    default="127.0.0.1:8080",
    show_default=True,
    help="host:port for /metrics, /healthz and /readyz.",
)
@click.option(
    "--state",
    "state_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="State directory (simulated clouds' worlds).",
)
@click.option("--owner", default=None, help="Ownership tag value (env RECONCILER_OWNER).")
@click.option("--identity", default="", help="Leader-election identity (default $POD_NAME).")
@click.option(
    "--lease-name",
    default="reconciler-leader",
    show_default=True,
    help="The coordination.k8s.io Lease replicas elect a leader with.",
)
@click.option(
    "--journal-name",
    default="reconciler-journal",
    show_default=True,
    help="The ConfigMap holding the apply journal (calls in flight).",
)
@click.option("--lease-duration", type=float, default=10.0, show_default=True)
@click.option("--renew-deadline", type=float, default=7.0, show_default=True)
@click.option("--retry-period", type=float, default=2.0, show_default=True)
@click.option(
    "--resync",
    type=float,
    default=60.0,
    show_default=True,
    help="Seconds between full passes that catch drift and price changes.",
)
@click.option(
    "--max-postpone",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds a due full pass may restart to let changes through first; after that "
    "changes are served inside it.",
)
@click.option(
    "--observe-only",
    is_flag=True,
    help="Report drift in status and Events; change nothing in any cloud.",
)
@click.option("--parallelism", type=int, default=8, show_default=True)
@click.option("--log-level", default="info", show_default=True)
@click.option(
    "--log-format", type=click.Choice(["json", "text"]), default="json", show_default=True
)
@report_errors
def operator_command(
    kubeconfig: str | None,
    kube_context: str | None,
    namespace: str,
    metrics_addr: str,
    state_dir: Path | None,
    owner: str | None,
    identity: str,
    lease_name: str,
    journal_name: str,
    lease_duration: float,
    renew_deadline: float,
    retry_period: float,
    resync: float,
    max_postpone: float,
    observe_only: bool,
    parallelism: int,
    log_level: str,
    log_format: str,
) -> None:
    """Run the Kubernetes operator: reconcile reconciler.dev objects continuously."""
    from reconciler.operator.kube import KubeError
    from reconciler.operator.run import OperatorOptions, run_operator

    opts = OperatorOptions(
        state_dir=state_dir or Path(os.environ.get("RECONCILER_STATE", DEFAULT_STATE)),
        owner=owner or os.environ.get("RECONCILER_OWNER", "reconciler"),
        namespace=namespace,
        kubeconfig=kubeconfig,
        context=kube_context,
        metrics_addr=metrics_addr,
        identity=identity,
        lease_name=lease_name,
        journal_name=journal_name,
        lease_duration=lease_duration,
        renew_deadline=renew_deadline,
        retry_period=retry_period,
        resync=resync,
        max_postpone=max_postpone,
        observe_only=observe_only,
        parallelism=parallelism,
        log_level=log_level,
        log_format=log_format,
    )
    try:
        sys.exit(run_operator(opts))
    except KubeError as exc:
        click.echo(f"Error: Kubernetes API: {exc}", err=True)
        sys.exit(1)


def cluster_plan(
    settings: Settings, namespace: str, kubeconfig: str | None, kube_context: str | None
) -> ClusterPlan:
    """The operator's next plan; Kubernetes API errors become a clear message."""
    from reconciler.operator.kube import KubeError
    from reconciler.operator.preview import plan_from_cluster

    try:
        result = plan_from_cluster(settings, namespace, kubeconfig, kube_context)
    except KubeError as exc:
        click.echo(f"Error: Kubernetes API: {exc}", err=True)
        sys.exit(1)
    for label, diags in sorted(result.invalid.items()):
        for diag in diags:
            click.echo(f"invalid: {label}: {diag.path}: {diag.message} (left untouched)", err=True)
    for label, why in sorted(result.blocked.items()):
        click.echo(f"blocked: {label}: {why}", err=True)
    for action in result.held:
        click.echo(f"paused: {action.id} is held back", err=True)
    return result
