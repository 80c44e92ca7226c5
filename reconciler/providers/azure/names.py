"""Names Azure accepts, and the reversible encodings of our tag keys.

Azure tag NAMES may not contain ``< > % & \\ ? /`` (so ``reconciler.dev/owner`` cannot be
stored as is), and Blob metadata keys must be C# identifiers. Both codecs escape every
character they may not keep as ``_xx`` (two lower-case hex digits per UTF-8 byte; ``_``
itself is escaped too, so decoding is unambiguous):

    reconciler.dev/owner  -> tag name "reconciler.dev_2fowner"
                          -> metadata key "reconciler_2edev_2fowner"
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Callable, Mapping

_TAG_KEEP = frozenset(string.ascii_letters + string.digits + ".-")
_META_KEEP = frozenset(string.ascii_lowercase + string.digits)
_ESCAPE = re.compile(r"((?:_[0-9a-fA-F]{2})+)")


def _encode(text: str, keep: frozenset[str]) -> str:
    out = []
    for char in text:
        if char in keep:
            out.append(char)
        else:
            out.extend(f"_{byte:02x}" for byte in char.encode())
    return "".join(out)


def _decode(text: str) -> str:
    def unescape(match: re.Match[str]) -> str:
        raw = bytes(int(h, 16) for h in match.group(1).split("_")[1:])
        return raw.decode(errors="replace")

    return _ESCAPE.sub(unescape, text)


def encode_tag_key(key: str) -> str:
    """A tag name Azure accepts for ``key`` (reversible with decode_tag_key)."""
    return _encode(key, _TAG_KEEP)


def encode_meta_key(key: str) -> str:
    """A Blob metadata key (a C# identifier, lower case) for ``key``."""
    encoded = _encode(key, _META_KEEP)
    if encoded[:1].isdigit():  # an identifier cannot start with a digit: escape it
        encoded = f"_{ord(encoded[0]):02x}{encoded[1:]}"
    return encoded


def decode_key(encoded: str) -> str:
    """The original key of an encoded tag name or metadata key; a key we did not encode
    (a tag someone added by hand, say "cost_center") comes back unchanged."""
    decoded = _decode(encoded)
    if decoded == encoded:
        return encoded
    lowered = encoded.lower()
    if encode_tag_key(decoded).lower() == lowered or encode_meta_key(decoded) == lowered:
        return decoded
    return encoded


def encode_map(tags: Mapping[str, str], codec: Callable[[str], str]) -> dict[str, str]:
    return {codec(k): v for k, v in tags.items()}


def decode_map(raw: Mapping[str, str] | None) -> dict[str, str]:
    return {decode_key(k): v for k, v in (raw or {}).items()}


def _slug(text: str, allowed: str, limit: int) -> str:
    slug = re.sub(f"[^{allowed}]+", "-", text).strip("-_.")
    return re.sub(r"-{2,}", "-", slug)[:limit].strip("-_.")


def resource_name(name: str, uid: str, limit: int = 64) -> str:
    """A deterministic Azure resource name (VM, disk): the slug of ``name`` plus a digest
    of ``uid``, so a retried create PUTs the same resource. VM computer names are 1-64
    characters of letters, digits and hyphens; the same form suits disks and NICs."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:10]
    base = _slug(name.lower(), "a-z0-9-", limit - len(digest) - 1) or "vm"
    return f"{base}-{digest}"


def container_name(name: str) -> str | None:
    """``name`` as a Blob container name (3-63 of a-z, 0-9 and single hyphens, starting
    with a letter or digit), or None if it cannot be one."""
    slug = _slug(name.lower(), "a-z0-9-", 63)
    return slug if len(slug) >= 3 else None


def parse_arm_id(arm_id: str) -> tuple[str, str, str, str] | None:
    """(subscription, resource group, type like "virtualMachines", name) of an ARM id."""
    match = re.fullmatch(
        r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.\w+/(\w+)/([^/]+)",
        arm_id,
        flags=re.IGNORECASE,
    )
    if match is None:
        return None
    sub, group, kind, name = match.groups()
    return sub, group, kind, name
