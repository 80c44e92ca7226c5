"""Every shipped CRD is a valid structural apiextensions.k8s.io/v1 CRD, and the fast
YAML reader agrees with libyaml."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest import crd_dir, load_crd_schemas
from reconciler.manifest.fastyaml import Fallback, parse_block
from reconciler.model.keys import KINDS

SHORT = {
    "Cloud": "cl",
    "BrokerPolicy": "bp",
    "VirtualMachine": "vm",
    "VirtualMachineSet": "vms",
    "Volume": "vol",
    "Bucket": "bkt",
    "Image": "img",
}


def _crds() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(crd_dir().glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert path.stem == doc["spec"]["names"]["plural"]
        out[doc["spec"]["names"]["kind"]] = doc
    return out


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, sub in node.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}{{}}")


def test_one_crd_per_kind() -> None:
    crds = _crds()
    assert sorted(crds) == sorted(KINDS)
    assert sorted(load_crd_schemas()) == sorted(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_crd_is_structural_v1(kind: str) -> None:
    crd = _crds()[kind]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.reconciler.dev"
    assert spec["group"] == "reconciler.dev"
    assert spec["scope"] == ("Cluster" if kind == "Cloud" else "Namespaced")
    assert spec["names"]["shortNames"] == [SHORT[kind]]
    assert spec["names"]["categories"] == ["reconciler"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == ("v1alpha1", True, True)
    assert version["subresources"] == {"status": {}}
    assert version["additionalPrinterColumns"]
    schema = version["schema"]["openAPIV3Schema"]
    assert "x-kubernetes-validations" not in yaml.safe_dump(crd)
    for path, node in _walk(schema, kind):
        assert "type" in node, f"{path} has no type"
        assert not ("properties" in node and "additionalProperties" in node), path
        if node is not schema["properties"]["metadata"] and path.count("{") == 0:
            assert node.get("description"), f"{path} has no description"
        if path.startswith(f"{kind}.spec"):
            assert "x-kubernetes-preserve-unknown-fields" not in node, path
    # The API server refuses anything but type (and name/generateName) under metadata.
    assert schema["properties"]["metadata"] == {"type": "object"}
    status = schema["properties"]["status"]["properties"]
    assert {"observedGeneration", "conditions"} <= set(status)
    condition = status["conditions"]["items"]["properties"]
    assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(condition)


def test_vm_printer_columns() -> None:
    (version,) = _crds()["VirtualMachine"]["spec"]["versions"]
    columns = {c["name"]: (c["type"], c["jsonPath"]) for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Cloud": ("string", ".status.placement.cloud"),
        "Type": ("string", ".status.placement.instanceType"),
        "$/h": ("number", ".status.placement.pricePerHour"),
        "Ready": ("string", '.status.conditions[?(@.type=="Ready")].status'),
        "Age": ("date", ".metadata.creationTimestamp"),
    }


_keys = st.sampled_from(["a", "name", "on", "yes", "x.y/z", "n1", "1"])
_scalars = st.one_of(
    st.sampled_from(
        [
            "1",
            "010",
            "0x1F",
            "1.5",
            "1e3",
            "yes",
            "No",
            "~",
            "null",
            "true",
            "12:30",
            "2024-01-01",
            "'q'",
            '"d"',
            "a b",
            "[]",
            "{}",
            "-1",
            "x # c",
            "'a # b'",
            "-",
            ":x",
        ]
    ),
    st.text(alphabet="ab:-# '\"", min_size=1, max_size=6),
)


@st.composite
def _block(draw: st.DrawFn, depth: int = 0) -> list[str]:
    lines: list[str] = []
    for key in draw(st.lists(_keys, min_size=1, max_size=4, unique=True)):
        shape = draw(st.integers(0, 3 if depth < 2 else 0))
        if shape == 0:
            lines.append(f"{key}: {draw(_scalars)}")
        elif shape == 1:
            lines.append(f"{key}:")
            lines.extend("  " + line for line in draw(_block(depth + 1)))
        else:
            lines.append(f"{key}:")
            pad = "  " if shape == 2 else ""
            for _ in range(draw(st.integers(1, 3))):
                inner = draw(_block(depth + 1))
                lines.append(f"{pad}- {inner[0]}")
                lines.extend(f"{pad}  {line}" for line in inner[1:])
    return lines


@settings(max_examples=300, deadline=None)
@given(_block())
def test_fast_reader_matches_libyaml(lines: list[str]) -> None:
    """Whatever the fast reader accepts, it reads exactly as libyaml + PyYAML do."""
    try:
        fast, _ = parse_block(lines, 0, len(lines))
    except Fallback:
        return
    try:
        expected = yaml.load("\n".join(lines), Loader=yaml.CSafeLoader)
    except yaml.YAMLError:
        pytest.fail(f"fast reader accepted invalid YAML: {lines}")
    assert fast == _stringify_keys(expected)


def _stringify_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_key_text(k): _stringify_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify_keys(v) for v in value]
    if isinstance(value, dt.date):  # timestamps stay strings, as in Kubernetes
        return value.isoformat()
    return value


def _key_text(key: Any) -> str:
    return key if isinstance(key, str) else "<non-string key>"
