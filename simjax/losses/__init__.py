"""Losses on spike times (first-spike classification, target spike times), continuous with pseudospikes."""

from ._spike_times import first_spike_cross_entropy as first_spike_cross_entropy
from ._spike_times import first_spike_prediction as first_spike_prediction
from ._spike_times import spike_time_loss as spike_time_loss
from ._spike_times import spike_times_per_neuron as spike_times_per_neuron
