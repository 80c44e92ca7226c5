"""Fixtures: one real kube-apiserver per pytest session, and a fresh namespace per test."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from kube.kubeserver import KubeServer, namespace_body
from kube.ophelp import Env, cleanup


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


@pytest.fixture
def env(kube: KubeServer, namespace: str, tmp_path: Path) -> Iterator[Env]:
    """A test's Env; its operators are stopped and its objects removed afterwards."""
    e = Env(kube, namespace, tmp_path)
    try:
        yield e
    finally:
        for op in e.operators:
            op.close()
        cleanup(kube, namespace, [e.cloud, *e.clouds])
        e.admin.close()
