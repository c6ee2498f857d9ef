"""NIR (Neuromorphic Intermediate Representation) exchange: `export(model) -> nir.NIRGraph`,
`load(graph_or_path) -> NIRNetwork` (needs `pip install 'simjax[nir]'`)."""

from ._exact import ExactRun as ExactRun
from ._exact import simulate_exact as simulate_exact
from ._exchange import SUPPORTED as SUPPORTED
from ._exchange import export as export
from ._exchange import load as load
from ._network import NIRNetwork as NIRNetwork
from ._network import NIRState as NIRState
from ._nodes import AbstractNode as AbstractNode
from ._nodes import Affine as Affine
from ._nodes import Conv2d as Conv2d
from ._nodes import Flatten as Flatten
from ._nodes import IFNode as IFNode
from ._nodes import LIFNode as LIFNode
from ._nodes import LINode as LINode
