"""Providers: one driver per cloud behind the Provider contract (see base.py).

Only this package talks to clouds.
"""
