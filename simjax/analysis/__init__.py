"""Analyses: gradient quality of learning rules against the exact gradient, interference, fixed points."""

from ._fixed_points import FixedPoints as FixedPoints
from ._fixed_points import find_fixed_points as find_fixed_points
from ._fixed_points import network_field as network_field
from ._gradient_quality import QUANTITIES as QUANTITIES
from ._gradient_quality import gradient_quality as gradient_quality
from ._gradient_quality import parameter_groups as parameter_groups
from ._gradient_quality import report_arrays as report_arrays
from ._gradient_quality import summarize as summarize
from ._gradient_quality import to_table as to_table
from ._interference import angle as angle
from ._interference import relative_interference as relative_interference
from ._interference import trial_end as trial_end
from ._interference import update_overlap as update_overlap
from ._reduced_model import ReducedModel as ReducedModel
from ._reduced_model import ReducedTask as ReducedTask
from ._reduced_model import integrate_gradient_flow as integrate_gradient_flow
from ._reduced_model import learning_modes as learning_modes
from ._reduced_model import plane_matrix as plane_matrix
from ._tracking import QualityTracker as QualityTracker
