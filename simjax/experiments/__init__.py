"""Experiments bound to ``configs/*.toml`` and run by ``simjax run``."""

from __future__ import annotations

from . import bias_variance, observatory, quickstart, train
from . import interference

EXPERIMENTS = {"bias_variance": bias_variance, "observatory": observatory, "quickstart": quickstart, "train": train}

__all__ = ["EXPERIMENTS"]
EXPERIMENTS["interference"] = interference
from . import exact_spikes  # noqa: E402
EXPERIMENTS["exact_spikes"] = exact_spikes
from . import eprop as _eprop  # noqa: E402

EXPERIMENTS["eprop"] = _eprop
