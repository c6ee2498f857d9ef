"""Experiments bound to ``configs/*.toml`` and run by ``simjax run``."""

from __future__ import annotations

from . import bias_variance, quickstart, train

EXPERIMENTS = {"bias_variance": bias_variance, "quickstart": quickstart, "train": train}

__all__ = ["EXPERIMENTS"]
