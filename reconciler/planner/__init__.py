"""Planner: desired x observed x placements -> Plan. Pure: no I/O, no printing."""

from reconciler.planner.build import PlanInput, build_plan

__all__ = ["PlanInput", "build_plan"]
