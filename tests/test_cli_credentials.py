"""Cloud credentials for the CLI: Secrets read from files and the environment."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from clirun import QUICKSTART, run

from reconciler.cli.credentials import env_name, resolve_credentials
from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec, SecretRef

SECRET = "s3cr3t-value-never-printed"


def cloud(name: str = "aws-prod", secret: str = "aws-creds") -> CloudSpec:
    return CloudSpec(name, "aws", credentials_secret_ref=SecretRef(secret))


@pytest.fixture(autouse=True)
def secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "secrets"
    folder.mkdir()
    monkeypatch.setenv("RECONCILER_SECRETS_DIR", str(folder))
    monkeypatch.delenv(env_name("aws-creds"), raising=False)
    return folder


def test_mounted_secret_directory(secrets: Path) -> None:
    (secrets / "aws-creds").mkdir()
    (secrets / "aws-creds" / "accessKeyId").write_text("AKIDEXAMPLE\n")
    (secrets / "aws-creds" / "secretAccessKey").write_text(SECRET + "\n")
    got = resolve_credentials({"aws-prod": cloud()})
    assert got == {"aws-prod": {"accessKeyId": "AKIDEXAMPLE", "secretAccessKey": SECRET}}


@pytest.mark.parametrize(
    ("suffix", "text"),
    [
        (".yaml", f"accessKeyId: AKID\nsecretAccessKey: {SECRET}\n"),
        (".json", f'{{"accessKeyId": "AKID", "secretAccessKey": "{SECRET}"}}'),
        (".env", f"# comment\naccessKeyId=AKID\nsecretAccessKey={SECRET}\n"),
        (".yaml", f"kind: Secret\nstringData:\n  accessKeyId: AKID\n  secretAccessKey: {SECRET}\n"),
    ],
)
def test_file_formats(secrets: Path, suffix: str, text: str) -> None:
    (secrets / f"aws-creds{suffix}").write_text(text)
    got = resolve_credentials({"aws-prod": cloud()})["aws-prod"]
    assert got == {"accessKeyId": "AKID", "secretAccessKey": SECRET}


def test_environment_variable_names_a_file(
    tmp_path: Path, secrets: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (secrets / "aws-creds.yaml").write_text("accessKeyId: from-dir\n")
    elsewhere = tmp_path / "ci-secret.env"
    elsewhere.write_text("accessKeyId=from-env\n")
    monkeypatch.setenv("RECONCILER_SECRET_AWS_CREDS", str(elsewhere))
    assert resolve_credentials({"aws-prod": cloud()})["aws-prod"] == {"accessKeyId": "from-env"}


def test_cloud_without_secret_gets_none() -> None:
    assert resolve_credentials({"sim": CloudSpec("sim", "sim")}) == {}


def test_missing_secret_names_cloud_secret_and_places() -> None:
    with pytest.raises(PermanentError) as err:
        resolve_credentials({"aws-prod": cloud(), "azure": cloud("azure", "az")})
    text = str(err.value)
    assert "Cloud aws-prod: credentials Secret 'aws-creds' not found" in text
    assert "Cloud azure" in text and "RECONCILER_SECRET_AZ" in text
    assert err.value.reason == "MissingCredentials"


def test_unreadable_secret_never_quotes_its_content(secrets: Path) -> None:
    (secrets / "aws-creds.json").write_text('{"secretAccessKey": "' + SECRET)  # broken JSON
    with pytest.raises(PermanentError) as err:
        resolve_credentials({"aws-prod": cloud()})
    assert "cannot be read" in str(err.value)
    assert SECRET not in str(err.value)


def test_plan_with_missing_secret_is_a_clear_error(tmp_path: Path, secrets: Path) -> None:
    project = tmp_path / "manifests"
    shutil.copytree(QUICKSTART, project, ignore=shutil.ignore_patterns("*.md"))
    clouds = project / "clouds.yaml"
    text = clouds.read_text()
    clouds.write_text(text.replace("spec:\n", "spec:\n  credentialsSecretRef:\n    name: lab\n", 1))
    state = tmp_path / "state"
    env = {"RECONCILER_SECRETS_DIR": str(secrets)}
    result = run("plan", str(project), state=state, env=env)
    assert result.code == 1
    assert "credentials Secret 'lab' not found" in result.err
    assert "Traceback" not in result.err
    (secrets / "lab.env").write_text(f"token={SECRET}\n")
    result = run("plan", str(project), state=state, env=env)
    assert result.code == 0, result.err
    assert SECRET not in result.out + result.err
