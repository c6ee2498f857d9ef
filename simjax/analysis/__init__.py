"""Analyses: gradient quality of learning rules against the exact gradient."""

from .gradient_quality import QUANTITIES, gradient_quality, parameter_groups, summarize

__all__ = ["QUANTITIES", "gradient_quality", "parameter_groups", "summarize"]
