"""Experiments bound to ``configs/*.toml`` and run by ``simjax run``."""

from __future__ import annotations

from . import quickstart, train

EXPERIMENTS = {"quickstart": quickstart, "train": train}

__all__ = ["EXPERIMENTS"]
