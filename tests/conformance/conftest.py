"""The ``target`` fixture: one ConformanceTarget per known provider.

A driver whose target module is missing FAILS (CI must never silently skip a driver).
"""

from __future__ import annotations

import importlib
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from conformance.target import ConformanceTarget, TargetFactory
from reconciler.providers.registry import KNOWN_PROVIDERS


def load_factory(name: str) -> TargetFactory:
    """``make_target`` of ``conformance.targets.<name>``; fails the test if absent."""
    module_name = f"conformance.targets.{name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        module = None
    if module is None:
        pytest.fail(
            f"provider '{name}' has no conformance target: write "
            f"tests/conformance/targets/{name}.py with make_target(tmp_path) "
            "(see tests/conformance/target.py and docs/conformance.md)",
            pytrace=False,
        )
    factory: TargetFactory | None = getattr(module, "make_target", None)
    if factory is None:
        pytest.fail(f"{module_name} defines no make_target(tmp_path)", pytrace=False)
    return factory


@pytest.fixture(params=KNOWN_PROVIDERS, ids=list(KNOWN_PROVIDERS))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ConformanceTarget]:
    """Drive the driver's ``make_target`` generator: set up, yield its target, clean up.

    The generator is run to its end (like a pytest yield fixture), so cleanup code
    after its ``yield`` runs even when it is not in a ``finally``.
    """
    name: str = request.param
    generator = load_factory(name)(tmp_path)
    made = next(generator, None)
    if not isinstance(made, ConformanceTarget):
        pytest.fail(f"conformance.targets.{name}.make_target yielded {made!r}", pytrace=False)
    assert made.name == name, f"target of {name} calls itself {made.name!r}"
    try:
        yield made
    finally:
        try:
            extra = next(generator, None)
            assert extra is None, f"conformance.targets.{name}.make_target yielded twice"
        finally:
            if isinstance(generator, Generator):
                generator.close()
