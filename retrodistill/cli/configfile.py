"""Reading JSON / YAML config files for the commands that take one, and laying flags over them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from retrodistill.errors import ConfigError


def load_config_file(path: Path) -> dict[str, object]:
    """A mapping from a .json, .yaml or .yml file; anything else is a one-line ConfigError."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 (byte {exc.start + 1}); save the config as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigError(f"{path}: cannot parse config ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must hold a mapping of keys to values")
    return data


def with_flags(values: dict[str, object], args: argparse.Namespace, model: Any) -> dict[str, object]:
    """``values`` (from a config file) with every flag given on the command line laid over it.

    A flag counts when its argparse ``dest`` is a field of the pydantic ``model`` and its value is not
    None (so flags must default to None; the model holds the defaults).
    """
    merged = dict(values)
    for name in model.model_fields:
        value = getattr(args, name, None)
        if value is not None:
            merged[name] = value
    return merged
