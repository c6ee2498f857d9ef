"""Type aliases for annotations (checked at run time by the test suite with jaxtyping + beartype)."""

from __future__ import annotations

import numpy as np
from jaxtyping import Array, Real

#: A real scalar: a Python number, a NumPy scalar, or a 0-d array (traced values included).
RealScalarLike = float | int | np.floating | np.integer | Real[Array, ""] | Real[np.ndarray, ""]
