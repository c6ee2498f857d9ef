"""simjax: simulate rate and spiking networks in JAX, train them with biologically plausible
learning rules, and measure how far each rule is from gradient descent."""

from . import networks, neurons, parameters, rules, surrogates, synapses, tasks
from .simulate import Output, simulate
from .spike_times import spike_times
from .spike_train import SpikeTrain
from .train import fit

__version__ = "0.1.0"

__all__ = ["networks", "neurons", "parameters", "rules", "surrogates", "synapses", "tasks", "simulate",
           "Output", "SpikeTrain", "spike_times", "fit"]
from .pseudospikes import pseudospike_times  # noqa: E402
__all__ += ["pseudospike_times"]
