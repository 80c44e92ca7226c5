"""Where ownership tags live on OpenStack resources, and how their keys are encoded.

Nova server metadata keys must match ``^[a-zA-Z0-9-_:. ]{1,255}$`` (nova/api/validation/
parameter_types.py): "/" is refused, so ``reconciler.dev/owner`` is stored as
``reconciler.dev:owner``; ":" is therefore not allowed in a tag key. Cinder volume
metadata uses the same encoding, for one rule everywhere. Swift container metadata is
carried in headers (``X-Container-Meta-<name>``) whose names Swift title-cases, so a key
is stored lower-case with "/" written as "--": ``X-Container-Meta-Reconciler.Dev--Owner``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from reconciler.model.errors import PermanentError
from reconciler.model.keys import GROUP, TAG_OWNER, TAG_UID

_NOVA_KEY = re.compile(r"^[a-zA-Z0-9-_. /]{1,255}$")
_SWIFT_KEY = re.compile(r"^[a-z0-9./-]{1,128}$")
SWIFT_META = "x-container-meta-"
META_OWNER = TAG_OWNER.replace("/", ":")
META_UID = TAG_UID.replace("/", ":")


def encode_metadata(tags: Mapping[str, str], cloud: str) -> dict[str, str]:
    """Tags as Nova/Cinder metadata; PermanentError(BadRequest) for what Nova refuses."""
    result = {}
    for key, value in tags.items():
        if not _NOVA_KEY.match(key) or len(value) > 255:
            raise PermanentError(
                f"tag {key!r} cannot be stored as OpenStack metadata (keys: letters, digits, "
                "'-_. /', at most 255 characters; values at most 255)",
                cloud=cloud,
                reason="BadRequest",
            )
        result[key.replace("/", ":")] = value
    return result


def decode_metadata(metadata: Mapping[str, object]) -> dict[str, str]:
    """Server/volume metadata back as tags (":" in a key reads as "/")."""
    return {str(k).replace(":", "/"): str(v) for k, v in metadata.items()}


def our_metadata_keys(metadata: Mapping[str, object]) -> list[str]:
    """The encoded reconciler.dev/* keys present (what ``forget`` removes)."""
    return [str(k) for k in metadata if str(k).startswith(GROUP + ":")]


def encode_swift(tags: Mapping[str, str], cloud: str) -> dict[str, str]:
    """Tags as ``X-Container-Meta-*`` request headers."""
    headers = {}
    for key, value in tags.items():
        if not _SWIFT_KEY.match(key) or "--" in key or not value.isprintable():
            raise PermanentError(
                f"tag {key!r} cannot be stored as Swift container metadata (keys: lower-case "
                "letters, digits, '.', '/', single '-')",
                cloud=cloud,
                reason="BadRequest",
            )
        headers["X-Container-Meta-" + key.replace("/", "--")] = value
    return headers


def decode_swift(headers: Mapping[str, str]) -> dict[str, str]:
    """Container metadata headers (any case) back as tags."""
    return {
        name.lower()[len(SWIFT_META) :].replace("--", "/"): value
        for name, value in headers.items()
        if name.lower().startswith(SWIFT_META)
    }


def swift_removal(tags: Mapping[str, str]) -> dict[str, str]:
    """Headers that remove our reconciler.dev/* container metadata (for ``forget``)."""
    return {
        "X-Remove-Container-Meta-" + key.replace("/", "--"): "x"
        for key in tags
        if key.startswith(GROUP + "/")
    }
