"""Experiments bound to ``configs/*.toml`` and run by ``simjax run``."""

from __future__ import annotations

from . import quickstart

EXPERIMENTS = {"quickstart": quickstart}

__all__ = ["EXPERIMENTS"]
