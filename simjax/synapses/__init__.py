"""Projections between populations: dense, fixed sparse, Dale-signed, 2-D convolution."""

from ._base import AbstractProjection as AbstractProjection
from ._conv import Conv2d as Conv2d
from ._conv import upsample_nearest as upsample_nearest
from ._dale import Dale as Dale
from ._dense import Dense as Dense
from ._sparse import Sparse as Sparse
