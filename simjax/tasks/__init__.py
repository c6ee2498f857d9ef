"""Tasks: ``sample(key, batch_size) -> Batch``, ``loss(outputs, batch)``, ``metrics(outputs, batch)``."""

from ._base import AbstractTask, Batch
from .pattern_generation import PatternGeneration
from .supervised import Supervised

__all__ = ["AbstractTask", "Batch", "PatternGeneration", "Supervised"]
