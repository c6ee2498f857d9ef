"""Losses: on spike times (first-spike classification, target spike times, continuous with
pseudospikes) and on dense depth maps with missing pixels."""

from ._depth import depth_loss as depth_loss
from ._depth import mean_depth_error as mean_depth_error
from ._depth import scale_invariant_loss as scale_invariant_loss
from ._depth import sobel as sobel
from ._depth import sobel_gradient_loss as sobel_gradient_loss
from ._depth import spike_penalty as spike_penalty
from ._spike_times import first_spike_cross_entropy as first_spike_cross_entropy
from ._spike_times import first_spike_prediction as first_spike_prediction
from ._spike_times import spike_time_loss as spike_time_loss
from ._spike_times import spike_times_per_neuron as spike_times_per_neuron
