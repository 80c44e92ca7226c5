"""YAML scalar typing shared by the fast reader and the libyaml node path.

Both paths must agree exactly, so both resolve plain scalars with PyYAML's own resolver
(YAML 1.1: ``yes`` is a boolean, ``010`` an octal integer) and build values with the
SafeConstructor's pure functions. Timestamps stay strings, as the Kubernetes YAML to
JSON conversion keeps them.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

STR_TAG = "tag:yaml.org,2002:str"
TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
MAP_TAG = "tag:yaml.org,2002:map"
SEQ_TAG = "tag:yaml.org,2002:seq"

_CONSTRUCTOR = SafeConstructor()
_RESOLVER: Any = Resolver()
_BUILDERS: dict[str, Any] = {
    "tag:yaml.org,2002:int": _CONSTRUCTOR.construct_yaml_int,
    "tag:yaml.org,2002:float": _CONSTRUCTOR.construct_yaml_float,
    "tag:yaml.org,2002:bool": _CONSTRUCTOR.construct_yaml_bool,
    "tag:yaml.org,2002:null": _CONSTRUCTOR.construct_yaml_null,
}


class UnsupportedScalar(ValueError):
    """A scalar whose tag reconciler does not accept (binary, custom tags, merge keys)."""


def typed_value(tag: str, text: str) -> Any:
    """The Python value of a scalar with an already resolved ``tag``."""
    if tag in (STR_TAG, TIMESTAMP_TAG):
        return text
    builder = _BUILDERS.get(tag)
    if builder is None:
        raise UnsupportedScalar(tag)
    try:
        return builder(yaml.ScalarNode(tag, text))
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise ValueError(f"invalid {tag} value {text!r}") from exc


def plain_tag(text: str) -> str:
    """The tag YAML 1.1 gives a plain (unquoted) scalar."""
    return str(_RESOLVER.resolve(yaml.ScalarNode, text, (True, False)))
