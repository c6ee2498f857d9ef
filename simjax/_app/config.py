"""TOML experiment configs: load, merge with an experiment's embedded defaults, validate."""

from __future__ import annotations

import copy
import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from .schema import ConfigError as ConfigError
from .schema import check, value_kind

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
    """`defaults` updated by `overrides`; keys must exist in `defaults`, values must have the type of
    the default and lie in the schema's range for the key (`simjax._app.schema`)."""
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
        if isinstance(default, list) and not isinstance(value, list):
            raise ConfigError(f"{name} = {value!r} is not allowed: expected a list")
        if default is not None and not isinstance(default, list):
            check(name, value, value_kind(default))
        out[key] = value
    return out


def overlay(base: dict, new: dict) -> dict:
    """`base` with `new`'s values laid over it, nested tables merged (no validation: `merge` checks
    keys and types against an experiment's defaults)."""
    out = dict(base)
    for key, value in new.items():
        out[key] = overlay(out.get(key, {}), value) if isinstance(value, dict) else value
    return out


def require(condition: bool, key: str, value: Any, allowed: str) -> None:
    """Raises `ConfigError` `key = value: expected allowed` unless `condition`."""
    if not condition:
        raise ConfigError(f"{key} = {value!r} is not allowed: expected {allowed}")


def digest(config: dict) -> str:
    """A stable hash of a (merged) config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
