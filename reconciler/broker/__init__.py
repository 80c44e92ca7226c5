"""Broker: policies + offers + current placement -> placement decisions, explained.

Pure (no I/O). ``place`` is exact (HiGHS via scipy.optimize.milp); ``place_greedy`` is
the naive baseline; ``lp_lower_bound`` bounds the optimum from below.
"""

from reconciler.broker.core import lp_lower_bound, place, place_greedy
from reconciler.broker.filters import policy_verdict, selector_matches
from reconciler.broker.rebalance import RebalanceContext

__all__ = [
    "RebalanceContext",
    "lp_lower_bound",
    "place",
    "place_greedy",
    "policy_verdict",
    "selector_matches",
]
