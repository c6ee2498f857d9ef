"""Learning rules behind one contract: ``rule(model, task, batch, key) -> (loss, updates, aux)``."""

from ._base import AbstractRule
from .exact import Exact

__all__ = ["AbstractRule", "Exact"]
