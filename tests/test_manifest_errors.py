"""Every class of bad input gives a located Diagnostic, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.manifest import load_desired, validate_paths
from reconciler.model.errors import ManifestError

HEAD = "apiVersion: reconciler.dev/v1alpha1\n"
POLICY = HEAD + "kind: BrokerPolicy\nmetadata:\n  name: p\nspec: {}\n"
CLOUD = HEAD + "kind: Cloud\nmetadata:\n  name: aws\nspec:\n  provider: aws\n"


def diags(tmp_path: Path, text: str | bytes, name: str = "m.yaml") -> list[str]:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    _, found = validate_paths([str(path)])
    return [str(d).replace(str(tmp_path) + "/", "") for d in found]


def vm(spec: str, name: str = "web") -> str:
    return HEAD + f"kind: VirtualMachine\nmetadata:\n  name: {name}\nspec:\n{spec}"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "  resources:\n    vcpus: 0\n    memoryGiB: 2\n",
            "m.yaml:7:12: spec.resources.vcpus: expected integer >= 1, got 0",
        ),
        (
            "  resources:\n    vcpu: 2\n    memoryGiB: 2\n",
            "m.yaml:7:5: spec.resources: missing required field 'vcpus'\n"
            "m.yaml:7:5: spec.resources.vcpu: unknown field 'vcpu' (did you mean 'vcpus'?)",
        ),
        (
            "  resources:\n    vcpus: 2\n    memoryGiB: 2\n  powerState: running\n",
            "m.yaml:9:15: spec.powerState: expected one of Running, Stopped, got string "
            "'running' (did you mean 'Running'?)",
        ),
        (
            "  resources:\n    vcpus: four\n    memoryGiB: 2\n",
            "m.yaml:7:12: spec.resources.vcpus: expected integer, got string 'four'",
        ),
        ("  protect: true\n", "m.yaml:6:3: spec: missing required field 'resources'"),
        (
            "  resources: {vcpus: 1, memoryGiB: 1}\n  migration: {retainSourceFor: soon}\n",
            "m.yaml:7:32: spec.migration.retainSourceFor: expected a string matching "
            "^[0-9]+(s|m|h|d)$, got string 'soon'",
        ),
    ],
)
def test_schema_errors(tmp_path: Path, spec: str, expected: str) -> None:
    assert diags(tmp_path, vm(spec)) == expected.split("\n")


def test_all_errors_reported_at_once(tmp_path: Path) -> None:
    text = vm("  resources:\n    vcpus: 0\n    memoryGiB: -1\n    color: red\n")
    with pytest.raises(ManifestError) as info:
        load_desired([str(_write(tmp_path, text))])
    messages = [d.message for d in info.value.diagnostics]
    assert len(messages) == 3
    assert "unknown field 'color'" in messages


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "all.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "m.yaml:1:1: file is empty (no YAML documents)"),
        ("# just a comment\n---\n", "m.yaml:1:1: file is empty (no YAML documents)"),
        ("a: [1, 2\nb: c\n", "m.yaml:2:2: YAML syntax error"),
        (HEAD + "kind: Image\nmetadata:\n\tname: x\n", "m.yaml:4:1: tab character"),
        (HEAD + "kind: Image\nmetadata:\n  name: a\n  name: b\n", "m.yaml:5:3: duplicate key"),
        (b"a: \xff\n", "m.yaml:1:4: not valid UTF-8"),
        (b"a: b\x00", "m.yaml:1:1: binary content"),
        (
            "apiVersion: v1\nkind: Image\nmetadata: {name: a}\nspec: {format: raw}\n",
            "m.yaml:1:13: apiVersion: unknown apiVersion 'v1'",
        ),
        (
            HEAD + "kind: VirtualMachin\nmetadata: {name: a}\n",
            "m.yaml:2:7: kind: unknown kind 'VirtualMachin' (did you mean 'VirtualMachine'?)",
        ),
        (
            HEAD + "kind: Image\nmetadata:\n  labels: {}\nspec: {format: raw}\n",
            "m.yaml:4:3: metadata: missing required field 'name'",
        ),
        ("- just\n- a list\n", "m.yaml:1:1: expected a mapping"),
        (
            HEAD + "kind: Image\nspec: {format: raw}\n",
            "m.yaml:1:1: missing required field 'metadata'",
        ),
        (HEAD + "kind: Image\nmetadata: {name: a}\n", "m.yaml:1:1: missing required field 'spec'"),
        ("a: !!binary aGVsbG8=\n", "m.yaml:1:4: unsupported YAML tag"),
    ],
)
def test_input_errors(tmp_path: Path, text: str | bytes, expected: str) -> None:
    found = diags(tmp_path, text)
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_file_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("reconciler.manifest.reader.MAX_FILE_BYTES", 10)
    assert diags(tmp_path, "a: 12345678901\n") == ["m.yaml:0:0: file too large (0 MiB > 64 MiB)"]


def test_missing_path(tmp_path: Path) -> None:
    _, found = validate_paths([str(tmp_path / "nope.yaml")])
    assert found[0].message == "no such file or directory"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (
            vm("  resources: {vcpus: 1, memoryGiB: 1}\n  policyRef: {name: pp}\n"),
            "spec.policyRef.name: BrokerPolicy 'pp' not found in namespace 'default' "
            "(did you mean 'p'?)",
        ),
        (
            vm("  resources: {vcpus: 1, memoryGiB: 1}\n  image: ubuntu\n"),
            "spec.image: Image 'ubuntu' not found in namespace 'default'",
        ),
        (
            vm("  resources: {vcpus: 1, memoryGiB: 1}\n  placement: {cloud: gcp}\n"),
            "spec.placement.cloud: Cloud 'gcp' not found",
        ),
        (
            vm("  resources: {vcpus: 1, memoryGiB: 1}\n  volumes: [data]\n"),
            "spec.volumes[0]: Volume 'data' not found in namespace 'default'",
        ),
        (
            HEAD + "kind: Volume\nmetadata: {name: v}\nspec: {sizeGiB: 1, attachTo: ghost}\n",
            "spec.attachTo: VirtualMachine 'ghost' not found in namespace 'default'",
        ),
        (
            HEAD + "kind: Volume\nmetadata: {name: v}\nspec: {sizeGiB: 1, cloud: aws, "
            "image: {name: appliance}}\n",
            "spec.image.name: Image 'appliance' not found in namespace 'default'",
        ),
        (
            HEAD + "kind: Image\nmetadata: {name: app}\nspec:\n  format: ova\n  disks:\n"
            "  - {name: boot, format: vmdk, capacityGiB: 1, file: b.vmdk}\n"
            "  - {name: data, format: vmdk, capacityGiB: 1, file: d.vmdk}\n---\n"
            + HEAD
            + "kind: Volume\nmetadata: {name: v}\nspec: {sizeGiB: 1, cloud: aws, "
            "image: {name: app, disk: dta}}\n",
            "spec.image.disk: Image 'app' has no disk 'dta' (its spec.disks: boot, data) "
            "(did you mean 'data'?)",
        ),
        (
            HEAD
            + "kind: Image\nmetadata: {name: app}\nspec: {format: raw, url: 's3://b/app.raw'}\n",
            "spec.url: url scheme 's3' is not supported: use a path, file:, http(s): or "
            "bucket:<Bucket name>/<object key>",
        ),
        (
            HEAD
            + "kind: Bucket\nmetadata: {name: images}\nspec: {clouds: [aws]}\n---\n"
            + HEAD
            + "kind: Image\nmetadata: {name: app}\n"
            "spec: {format: raw, url: 'bucket:image/a.raw'}\n",
            "spec.url: Bucket 'image' not found in namespace 'default' (did you mean 'images'?)",
        ),
        (
            HEAD
            + "kind: Image\nmetadata: {name: app}\nspec: {format: raw, url: 'bucket:images'}\n",
            "spec.url: expected bucket:<Bucket name>/<object key>, got 'bucket:images'",
        ),
        (
            HEAD + "kind: Bucket\nmetadata: {name: b}\nspec: {clouds: [aws, azure]}\n",
            "spec.clouds[1]: Cloud 'azure' not found",
        ),
        (
            HEAD + "kind: Cloud\nmetadata: {name: c, namespace: x}\nspec: {provider: sim}\n",
            "metadata.namespace: Cloud is cluster scoped: remove metadata.namespace",
        ),
        (POLICY, "metadata.name: duplicate BrokerPolicy/default/p (first defined at"),
        (
            HEAD + "kind: BrokerPolicy\nmetadata: {name: q}\nspec:\n  clouds:\n    allow:\n"
            "    - name: aws\n      selector: {matchLabels: {a: b}}\n",
            "spec.clouds.allow[0]: expected exactly one of 'name' or 'selector'",
        ),
        (
            HEAD + "kind: VirtualMachineSet\nmetadata: {name: web}\nspec:\n  replicas: 2\n"
            "  template:\n    spec:\n      resources: {vcpus: 1, memoryGiB: 1}\n---\n"
            + vm("  resources: {vcpus: 1, memoryGiB: 1}\n", name="web-1"),
            "metadata.name: name collides with replica 'web-1' of VirtualMachineSet 'web'",
        ),
    ],
)
def test_reference_errors(tmp_path: Path, extra: str, expected: str) -> None:
    found = diags(tmp_path, "---\n".join([CLOUD, POLICY, extra]))
    assert len(found) == 1, found
    assert expected in found[0], found


def test_volume_and_vm_must_agree(tmp_path: Path) -> None:
    text = "---\n".join(
        [
            vm("  resources: {vcpus: 1, memoryGiB: 1}\n  volumes: [data]\n", name="a"),
            vm("  resources: {vcpus: 1, memoryGiB: 1}\n", name="b"),
            HEAD + "kind: Volume\nmetadata: {name: data}\nspec: {sizeGiB: 1, attachTo: b}\n",
        ]
    )
    found = diags(tmp_path, text)
    assert found == [
        "m.yaml:7:13: spec.volumes[0]: Volume 'data' is attached to 'b' (its spec.attachTo), "
        "not 'a'"
    ]


def test_reference_error_position(tmp_path: Path) -> None:
    text = "---\n".join([CLOUD, vm("  resources: {vcpus: 1, memoryGiB: 1}\n  image: nope\n")])
    assert diags(tmp_path, text) == [
        "m.yaml:14:10: spec.image: Image 'nope' not found in namespace 'default'"
    ]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                HEAD,
                "kind: Image\n",
                "kind: VirtualMachine\n",
                "metadata:\n",
                "  name: a\n",
                "spec:\n",
                "  format: raw\n",
                "  resources: {vcpus: 1}\n",
                "---\n",
                "\t",
                "- ",
                "  ",
                "{",
                "}",
                "[",
                "&a ",
                "*a\n",
                "!!int ",
                ": ",
                "'",
                '"',
                "#",
                "\n",
                "<<: x\n",
            ]
        ),
        max_size=25,
    )
)
def test_garbage_never_raises(tmp_path_factory: pytest.TempPathFactory, parts: list[str]) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.yaml"
    path.write_text("".join(parts))
    validate_paths([str(path)])


def test_invalid_objects_are_cross_checked_too(tmp_path: Path) -> None:
    text = vm("  resources: {vcpus: 0, memoryGiB: 1}\n  policyRef: {name: nope}\n")
    found = diags(tmp_path, text)
    assert [f.split(": ", 1)[1] for f in found] == [
        "spec.resources.vcpus: expected integer >= 1, got 0",
        "spec.policyRef.name: BrokerPolicy 'nope' not found in namespace 'default'",
    ]
