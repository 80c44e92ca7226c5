"""The exact min-cost assignment of coupled groups: an integer program solved by HiGHS.

Variables: x[g, o] = VMs of group g on offer o (o among g's pruned options) and an
unplaced slack u[g]. Rows: x[g, .] + u[g] = |g|; per capacitated cloud
sum(vcpus * x) <= free vCPUs (and memory, instances); per limited offer sum(x) <=
available; per (VirtualMachineSet, cloud) sum(x) <= maxPerCloud - sticky replicas.
Placing as many VMs as possible comes first and cost second (lexicographic, in two
phases rather than with a big-M penalty, which would swamp the cost in the MIP gap).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import coo_array

from reconciler.broker.groups import Group
from reconciler.broker.state import Pool
from reconciler.model.cloud import Offer

Counts = list[tuple[Offer, int]]


@dataclass
class Model:
    """The matrices of the integer program (columns: all x, then one u per group)."""

    columns: list[tuple[int, Offer]]
    cost: np.ndarray
    rows: list[tuple[list[int], list[float], float, float]]
    sizes: np.ndarray

    @property
    def n_x(self) -> int:
        return len(self.columns)


@dataclass
class Solution:
    counts: list[Counts]
    unplaced: list[int]
    status: str
    variables: int


def build_model(groups: Sequence[Group], pool: Pool) -> Model:
    """Assemble the constraint rows from the groups' options and what is still free."""
    columns: list[tuple[int, Offer]] = []
    spans: list[range] = []
    for gi, group in enumerate(groups):
        spans.append(range(len(columns), len(columns) + len(group.options)))
        columns.extend((gi, o) for o in group.options)
    n_x = len(columns)
    rows: list[tuple[list[int], list[float], float, float]] = []
    for gi, group in enumerate(groups):
        idx = list(spans[gi])
        rows.append(([*idx, n_x + gi], [1.0] * (len(idx) + 1), group.size, group.size))
    shared: dict[tuple[str, object], tuple[list[int], list[float], float]] = {}

    def add(key: tuple[str, object], j: int, coef: float, limit: float) -> None:
        cols, coefs, _ = shared.setdefault(key, ([], [], limit))
        cols.append(j)
        coefs.append(coef)

    for j, (gi, o) in enumerate(columns):
        c = o.cloud
        if c in pool.vcpus:
            add(("vcpus", c), j, float(o.vcpus), pool.vcpus[c])
        if c in pool.memory:
            add(("memory", c), j, o.memory_gib, pool.memory[c])
        if c in pool.instances:
            add(("instances", c), j, 1.0, pool.instances[c])
        if (c, o.name) in pool.available:
            add(("available", (c, o.name)), j, 1.0, float(max(0, pool.available[(c, o.name)])))
        need = groups[gi].need
        if need.spread_set is not None and need.spread_max is not None:
            left = max(0, need.spread_max - pool.spread_used(need.spread_set, c))
            add(("spread", (need.spread_set, c)), j, 1.0, float(left))
    for _, (cols, coefs, limit) in sorted(shared.items(), key=lambda kv: repr(kv[0])):
        rows.append((cols, coefs, -np.inf, limit))
    cost = np.array([o.price_per_hour for _, o in columns], dtype=float)
    sizes = np.array([g.size for g in groups], dtype=float)
    return Model(columns, cost, rows, sizes)


def _constraint(model: Model, extra: tuple[float, float] | None) -> LinearConstraint:
    n = model.n_x + len(model.sizes)
    r: list[int] = []
    c: list[int] = []
    v: list[float] = []
    lb: list[float] = []
    ub: list[float] = []
    rows = list(model.rows)
    if extra is not None:  # sum(u) fixed to the minimum number of unplaced VMs
        rows.append((list(range(model.n_x, n)), [1.0] * len(model.sizes), *extra))
    for i, (cols, coefs, lo, hi) in enumerate(rows):
        r.extend([i] * len(cols))
        c.extend(cols)
        v.extend(coefs)
        lb.append(lo)
        ub.append(hi)
    matrix = coo_array((v, (r, c)), shape=(len(rows), n)).tocsr()
    return LinearConstraint(matrix, np.array(lb), np.array(ub))


def _run(
    model: Model,
    objective: np.ndarray,
    u_max: np.ndarray,
    integral: bool,
    extra: tuple[float, float] | None,
    time_limit: float,
) -> object:
    n = model.n_x + len(model.sizes)
    upper = np.concatenate([np.full(model.n_x, np.inf), u_max])
    return milp(
        objective,
        integrality=np.ones(n) if integral else np.zeros(n),
        bounds=Bounds(np.zeros(n), upper),
        constraints=_constraint(model, extra),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-7, "presolve": True},
    )


def min_unplaced(model: Model, time_limit: float) -> int | None:
    """Phase 1: the fewest VMs that must stay unplaced (an integer program)."""
    objective = np.concatenate([np.zeros(model.n_x), np.ones(len(model.sizes))])
    res = _run(model, objective, model.sizes, True, None, time_limit)
    x = getattr(res, "x", None)
    return None if x is None else round(float(getattr(res, "fun", 0.0)))


def solve(model: Model, time_limit: float) -> Solution:
    """Cheapest integral assignment placing as many VMs as possible.

    Tries "everything placed" first; only if that is infeasible does it compute the
    minimum number of unplaced VMs and fix it. Status "no-solution" when HiGHS found
    nothing within the time limit.
    """
    cost = np.concatenate([model.cost, np.zeros(len(model.sizes))])
    res = _run(model, cost, np.zeros(len(model.sizes)), True, None, time_limit)
    unplaced = 0
    if getattr(res, "x", None) is None:
        found = min_unplaced(model, time_limit)
        if found is None:
            return Solution([], [], "no-solution", model.n_x)
        unplaced = found
        res = _run(model, cost, model.sizes, True, (unplaced, unplaced), time_limit)
    x = getattr(res, "x", None)
    if x is None:
        return Solution([], [], "no-solution", model.n_x)
    status = "optimal" if getattr(res, "status", 1) == 0 else "time-limit"
    gap = getattr(res, "mip_gap", None)
    if gap is not None and gap > 1e-6:
        status += f" (gap {gap * 100:.3f}%)"
    return _extract(model, np.asarray(x), status)


def lp_bound(model: Model, unplaced: int | None, time_limit: float) -> float | None:
    """LP relaxation of the cost phase with the (integer) minimum unplaced count fixed,
    so it bounds the integral cost from below. None if it cannot be computed in time."""
    if unplaced is None:
        unplaced = min_unplaced(model, time_limit)
        if unplaced is None:
            return None
    cost = np.concatenate([model.cost, np.zeros(len(model.sizes))])
    res = _run(model, cost, model.sizes, False, (unplaced, unplaced), time_limit)
    fun = getattr(res, "fun", None)
    return None if fun is None else float(fun)


def _extract(model: Model, x: np.ndarray, status: str) -> Solution:
    values = np.rint(x)
    n_groups = len(model.sizes)
    counts: list[Counts] = [[] for _ in range(n_groups)]
    for j, (gi, offer) in enumerate(model.columns):
        if values[j] > 0.5:
            counts[gi].append((offer, int(values[j])))
    unplaced = [int(values[model.n_x + g]) for g in range(n_groups)]
    return Solution(counts, unplaced, status, len(values))
