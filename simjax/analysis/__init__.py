"""Analyses: gradient quality of learning rules against the exact gradient."""

from .gradient_quality import QUANTITIES, gradient_quality, parameter_groups, summarize
from .tracking import QualityTracker

__all__ = ["QUANTITIES", "gradient_quality", "parameter_groups", "summarize", "QualityTracker"]
