"""Surrogate gradients: the exact Heaviside step forward, a documented pseudo-derivative backward."""

from ._surrogates import AbstractSurrogate as AbstractSurrogate
from ._surrogates import Arctan as Arctan
from ._surrogates import Exponential as Exponential
from ._surrogates import FastSigmoid as FastSigmoid
from ._surrogates import Sigmoid as Sigmoid
from ._surrogates import Triangle as Triangle
from ._surrogates import get as get
from ._surrogates import replace_surrogate as replace_surrogate
