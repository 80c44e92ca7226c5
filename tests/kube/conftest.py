"""Fixtures: one real kube-apiserver per pytest session, and a fresh namespace per test."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest

from kube.kubeserver import KubeServer, namespace_body


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeServer]:
    """etcd + kube-apiserver with our CRDs and RBAC installed (fails if it cannot start)."""
    server = KubeServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace(kube: KubeServer, request: pytest.FixtureRequest) -> str:
    """A new namespace named after the test (<= 63 characters, DNS-1123 label)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    name = f"{slug[:50].strip('-') or 't'}-{secrets.token_hex(3)}"
    client = kube.admin_client()
    client.create("/api/v1/namespaces", namespace_body(name))
    client.close()
    return name
