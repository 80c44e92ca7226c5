"""The ``sim`` provider: a SIMULATED cloud (several, in fact) persisted in a local directory.

See docs/simulator.md for what it models and what it does not.
"""

from reconciler.providers.sim.provider import SimProvider
from reconciler.providers.sim.world import SimWorld, drop_worlds, get_world

__all__ = ["SimProvider", "SimWorld", "drop_worlds", "get_world"]
