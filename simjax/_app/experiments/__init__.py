"""Experiments bound to `configs/*.toml` and run by `simjax run` / `simjax sweep`."""

from . import bias_variance, ei_network, eprop, exact_spikes, interference, observatory, quickstart, train

EXPERIMENTS = {
    "bias_variance": bias_variance,
    "ei_network": ei_network,
    "eprop": eprop,
    "exact_spikes": exact_spikes,
    "interference": interference,
    "observatory": observatory,
    "quickstart": quickstart,
    "train": train,
}
