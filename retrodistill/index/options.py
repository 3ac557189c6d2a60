"""``--index TYPE[,key=value...]`` and the build sizes, checked before any model loads or file is written."""

from __future__ import annotations

from typing import Any

from retrodistill.errors import ConfigError

INTERNAL = ("self", "dim", "query_chunk", "device")


def index_options(index_type: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The typed build options of ``index_type``: every key must be one of the type's parameters and
    its value must fit the parameter's type (``M=abc`` fails here). Value ranges (``M=0``) are checked
    when the index is constructed, still before encoding."""
    import inspect

    from retrodistill.index import INDEX_TYPES
    from retrodistill.specs import SystemSpec, bind

    cls = INDEX_TYPES.get(index_type)
    names = [p for p in inspect.signature(cls.__init__).parameters if p not in INTERNAL]
    options = dict(options or {})
    for key in options:
        if key not in names:
            takes = ", ".join(names) if names else "no options"
            raise ConfigError(f"unknown option {key!r} for index type {index_type}; it takes: {takes}")
    return dict(bind(cls, SystemSpec(index_type, None, options)).kwargs)


def parse_index_option(text: str) -> tuple[str, dict[str, Any]]:
    """``hnsw,M=32`` -> (``"hnsw"``, ``{"M": 32}``), checked by ``index_options``."""
    from retrodistill.specs import parse_spec

    spec = parse_spec(text)
    if spec.arg or spec.label:
        raise ConfigError(f"--index takes TYPE[,key=value...], e.g. hnsw,M=32; got {text!r}")
    return spec.kind, index_options(spec.kind, spec.options)


def check_positive(**values: int | None) -> None:
    """ConfigError naming the first value below 1 (None means unset)."""
    for name, value in values.items():
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} must be a positive integer, got {value}")
