"""The experiment a config names, and its merged, validated config."""

from __future__ import annotations

from types import ModuleType

from .config import ConfigError, merge, overlay
from .experiments import EXPERIMENTS


def experiment_named(raw: dict) -> ModuleType:
    """The experiment module `raw`'s `[experiment] name` names; a `ConfigError` listing them otherwise."""
    name = raw.get("experiment", {}).get("name")
    if name not in EXPERIMENTS:
        raise ConfigError(f"experiment.name = {name!r} is not a known experiment; expected one of "
                          f"{', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def merged(module: ModuleType, raw: dict, quick: bool) -> dict:
    """The experiment's defaults updated by the config (and by its quick overrides), validated."""
    custom = getattr(module, "merge_config", None)
    if custom is not None:
        cfg = custom(overlay(raw, module.QUICK) if quick else raw)
    else:
        cfg = merge(module.DEFAULTS, raw)
        cfg = merge(cfg, module.QUICK) if quick else cfg
    module.validate(cfg)
    return cfg
