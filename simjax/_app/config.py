"""TOML experiment configs: load, merge with an experiment's embedded defaults, validate."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A config problem; the message names the key, the value and what is allowed."""


SHIPPED = Path(__file__).resolve().parent.parent / "configs"


def resolve(path: str | Path) -> Path:
    """`path` if it is a file, else the shipped config of that name (`quickstart`,
    `quickstart.toml` or `configs/quickstart.toml` from any directory)."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = SHIPPED / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if shipped.is_file():
        return shipped
    names = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.toml")))
    raise ConfigError(f"config file {str(path)!r} does not exist, nor is it a shipped config ({names})")


def load(path: str | Path) -> dict:
    """Reads a TOML file (or a shipped config by name, see `resolve`); errors name the file and
    the problem."""
    path = resolve(path)
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def merge(defaults: dict, overrides: dict, where: str = "") -> dict:
    """`defaults` updated by `overrides`; keys and types must exist in `defaults`."""
    out = copy.deepcopy(defaults)
    for key, value in overrides.items():
        name = f"{where}.{key}" if where else key
        if key not in defaults:
            raise ConfigError(f"unknown key {name!r}; allowed keys here: {', '.join(sorted(defaults))}")
        default = defaults[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(f"{name} must be a table, got {value!r}")
            out[key] = merge(default, value, name)
            continue
        if default is not None and not _same_type(default, value):
            raise ConfigError(f"{name} must be of type {type(default).__name__}, got {value!r} "
                              f"({type(value).__name__})")
        out[key] = value
    return out


def overlay(base: dict, new: dict) -> dict:
    """`base` with `new`'s values laid over it, nested tables merged (no validation: `merge` checks
    keys and types against an experiment's defaults)."""
    out = dict(base)
    for key, value in new.items():
        out[key] = overlay(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def _same_type(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    if isinstance(default, list):
        return isinstance(value, list)
    return isinstance(value, type(default))


def require(condition: bool, key: str, value: Any, allowed: str) -> None:
    """Raises `ConfigError` `key = value: expected allowed` unless `condition`."""
    if not condition:
        raise ConfigError(f"{key} = {value!r} is not allowed: expected {allowed}")


def digest(config: dict) -> str:
    """A stable hash of a (merged) config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
