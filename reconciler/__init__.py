"""reconciler: a declarative cloud broker.

Layers (imports point down only):
cli -> executor -> planner -> broker -> providers -> manifest -> model
"""

__version__ = "0.1.0"
