"""``reconciler plan --cluster``: the plan the operator would carry out, made from the
cluster's objects (read once, nothing written) so it can be reviewed beforehand: with
the rebalancing rounds the operator completed (its state ConfigMap, read only when a
policy rebalances) and the migrations annotated to abort."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.executor.engine import Settings
from reconciler.model.errors import Diagnostic
from reconciler.model.keys import KINDS
from reconciler.model.plan import Action, Plan
from reconciler.operator.clouds import CloudProviders
from reconciler.operator.desired import build_desired
from reconciler.operator.gating import paused_filter, split_plan
from reconciler.operator.informer import CachedObject
from reconciler.operator.kube import KubeClient, load_config, resource_path
from reconciler.operator.moves import Moves, rebalances
from reconciler.operator.planning import plan_cluster
from reconciler.operator.report import PassReport
from reconciler.operator.state_store import CONFIGMAP, ClusterState


@dataclass(frozen=True)
class ClusterPlan:
    plan: Plan
    held: list[Action]
    invalid: dict[str, list[Diagnostic]]
    blocked: dict[str, str]


def list_objects(client: KubeClient) -> list[CachedObject]:
    """Every reconciler.dev object in the cluster (paginated LISTs)."""
    out: list[CachedObject] = []
    for kind in KINDS:
        for page in client.list_pages(resource_path(kind)):
            out.extend(CachedObject.from_raw(kind, raw) for raw in page.get("items") or ())
    return out


def plan_from_cluster(
    settings: Settings,
    namespace: str = "reconciler-system",
    kubeconfig: str | None = None,
    context: str | None = None,
    state_name: str = CONFIGMAP,
) -> ClusterPlan:
    """Plan as the operator's next pass would (paused objects' actions held back, and
    new migrations of VMs annotated to abort)."""
    client = KubeClient(load_config(kubeconfig, context))
    try:
        objects = list_objects(client)
        cluster = build_desired(objects)
        report = PassReport.for_cluster(cluster)
        clouds = CloudProviders(client, namespace, settings.context)
        cloud_objects = [o for o in objects if o.kind == "Cloud"]
        rounds = ClusterState(client, namespace, state_name).rounds() if rebalances(cluster) else {}
        plan, _ = plan_cluster(
            cluster, cloud_objects, clouds, settings.owner, report, rounds=rounds
        )
    finally:
        client.close()
    paused, aborting = paused_filter(cluster.paused), Moves.held(cluster.abort)
    runnable, held = split_plan(plan, lambda a: paused(a) or aborting(a))
    return ClusterPlan(
        runnable, held, cluster.invalid, {str(k): v for k, v in report.blocked.items()}
    )


__all__ = ["ClusterPlan", "list_objects", "plan_from_cluster"]
