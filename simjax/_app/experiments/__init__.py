"""Experiments bound to `configs/*.toml` and run by `simjax run` / `simjax sweep`."""

from . import bias_variance as bias_variance
from . import btsp as btsp
from . import ei_network as ei_network
from . import eprop as eprop
from . import exact_spikes as exact_spikes
from . import implicit_bias as implicit_bias
from . import interference as interference
from . import observatory as observatory
from . import pam as pam
from . import plasticity as plasticity
from . import quickstart as quickstart
from . import randman as randman
from . import stereospike as stereospike
from . import train as train

EXPERIMENTS = {
    "bias_variance": bias_variance,
    "btsp": btsp,
    "ei_network": ei_network,
    "eprop": eprop,
    "exact_spikes": exact_spikes,
    "implicit_bias": implicit_bias,
    "interference": interference,
    "observatory": observatory,
    "pam": pam,
    "plasticity": plasticity,
    "quickstart": quickstart,
    "randman": randman,
    "stereospike": stereospike,
    "train": train,
}
