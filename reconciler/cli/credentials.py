"""Cloud credentials for the command line: the Secrets a Cloud's ``credentialsSecretRef``
names, read from files or the environment instead of from Kubernetes.

For a Secret named NAME (namespace ignored), the first of these that exists is used:

1. ``RECONCILER_SECRET_<NAME>`` (NAME upper-cased, other characters as ``_``): a path;
2. ``<dir>/NAME`` where ``<dir>`` is ``RECONCILER_SECRETS_DIR`` or
   ``~/.config/reconciler/secrets``; then ``<dir>/NAME.yaml``, ``.yml``, ``.json``, ``.env``.

A path may be a directory holding one file per key (what a mounted Secret looks like, so
``kubectl get secret -o json`` output and CI secret mounts work unchanged), a YAML or JSON
mapping of key to value, or ``KEY=VALUE`` lines. Values are never printed: errors name
the Cloud, the Secret and the paths looked at. A Cloud without ``credentialsSecretRef``
gets none, and its driver uses the SDK's own chain (e.g. AWS_* variables, ~/.aws).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

import yaml

from reconciler.model.errors import PermanentError
from reconciler.model.specs import CloudSpec

SUFFIXES = ("", ".yaml", ".yml", ".json", ".env")


def secrets_dir() -> Path:
    """Where Secrets are looked up by name (env RECONCILER_SECRETS_DIR)."""
    configured = os.environ.get("RECONCILER_SECRETS_DIR")
    return Path(configured) if configured else Path.home() / ".config/reconciler/secrets"


def env_name(secret: str) -> str:
    return "RECONCILER_SECRET_" + re.sub(r"[^A-Z0-9]", "_", secret.upper())


def _candidates(secret: str) -> list[Path]:
    found = os.environ.get(env_name(secret))
    named = [secrets_dir() / f"{secret}{suffix}" for suffix in SUFFIXES]
    return ([Path(found)] if found else []) + named


def _parse_text(path: Path, text: str) -> dict[str, str]:
    if path.suffix == ".env" or (path.suffix not in (".yaml", ".yml", ".json") and "=" in text
                                 and ":" not in text.split("=", 1)[0]):  # fmt: skip
        pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
        return {k.strip(): v.strip() for k, v in pairs if k.strip() and not k.startswith("#")}
    data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if isinstance(data, dict) and isinstance(data.get("stringData"), dict):
        data = data["stringData"]  # a Secret manifest with stringData
    if not isinstance(data, dict):
        raise ValueError("expected a mapping of key to value")
    return {str(k): str(v) for k, v in data.items()}


def read_secret_path(path: Path) -> dict[str, str]:
    """Key -> value from a directory of files, or a YAML/JSON/KEY=VALUE file."""
    if path.is_dir():
        return {
            item.name: item.read_text(encoding="utf-8").rstrip("\n")
            for item in sorted(path.iterdir())
            if item.is_file() and not item.name.startswith(".")
        }
    return _parse_text(path, path.read_text(encoding="utf-8"))


def _resolve_one(cloud: CloudSpec, secret: str) -> dict[str, str]:
    looked = _candidates(secret)
    for path in looked:
        if not path.exists():
            continue
        try:
            values = read_secret_path(path)
        except (OSError, ValueError, yaml.YAMLError) as exc:
            reason = type(exc).__name__  # never the parser's message: it may quote a value
            raise PermanentError(
                f"Cloud {cloud.name}: credentials Secret '{secret}' at {path} cannot be "
                f"read ({reason})",
                reason="MissingCredentials",
            ) from None
        if not values:
            raise PermanentError(
                f"Cloud {cloud.name}: credentials Secret '{secret}' at {path} is empty",
                reason="MissingCredentials",
            )
        return values
    where = ", ".join(str(p) for p in looked)
    raise PermanentError(
        f"Cloud {cloud.name}: credentials Secret '{secret}' not found (set "
        f"{env_name(secret)} to a file or directory, or create one of: {where})",
        reason="MissingCredentials",
    )


def resolve_credentials(clouds: Mapping[str, CloudSpec]) -> dict[str, dict[str, str]]:
    """Credentials by Cloud name for every Cloud naming a Secret; raises PermanentError
    (naming every Cloud whose Secret is missing) before any cloud is called."""
    resolved: dict[str, dict[str, str]] = {}
    problems: list[str] = []
    for name, cloud in sorted(clouds.items()):
        ref = cloud.credentials_secret_ref
        if ref is None:
            continue
        try:
            resolved[name] = _resolve_one(cloud, ref.name)
        except PermanentError as exc:
            problems.append(str(exc))
    if problems:
        raise PermanentError("; ".join(problems), reason="MissingCredentials")
    return resolved
