"""Kubernetes operator: reconciles reconciler.dev custom resources continuously.

Raw-JSON client, list/watch informers with a compact cache, Lease leader election and an
Event recorder; the only package that talks to the Kubernetes API.
"""
