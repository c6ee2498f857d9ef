"""Analyses: gradient quality of learning rules against the exact gradient."""

from .gradient_quality import QUANTITIES, gradient_quality, parameter_groups, report_arrays, summarize, to_table
from .fixed_points import FixedPoints, find_fixed_points, network_field, newton
from .interference import angle, relative_interference, spearman, trial_end, update_overlap
from .reduced_model import ReducedModel, ReducedTask, integrate_gradient_flow, learning_modes, plane_matrix
from .tracking import QualityTracker

__all__ = ["QUANTITIES", "gradient_quality", "parameter_groups", "summarize", "report_arrays", "to_table", "QualityTracker"]
__all__ += ["FixedPoints", "find_fixed_points", "network_field", "newton", "angle", "relative_interference",
            "spearman", "trial_end", "update_overlap", "ReducedModel", "ReducedTask", "integrate_gradient_flow",
            "learning_modes", "plane_matrix"]
