"""simjax: simulate rate and spiking networks in JAX, train them with biologically plausible
learning rules, and measure how far each rule is from gradient descent."""

from . import analogy as analogy
from . import analysis as analysis
from . import data as data
from . import losses as losses
from . import networks as networks
from . import neurons as neurons
from . import nir as nir
from . import parameters as parameters
from . import plasticity as plasticity
from . import rules as rules
from . import surrogates as surrogates
from . import synapses as synapses
from . import tasks as tasks
from ._app.sweep import sweep as sweep
from ._fit.classifier import fit_classifier as fit_classifier
from ._fit.fit import fit as fit
from ._fit.sequential import train_sequence as train_sequence
from ._simulate.output import Output as Output
from ._simulate.output import Record as Record
from ._simulate.pseudospikes import pseudospike_times as pseudospike_times
from ._simulate.simulate import simulate as simulate
from ._simulate.spike_times import spike_times as spike_times
from ._spike_train import SpikeTrain as SpikeTrain
from ._table import Table as Table

__version__ = "0.1.0"
