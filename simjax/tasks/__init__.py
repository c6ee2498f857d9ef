"""Tasks: ``sample(key, batch_size) -> Batch``, ``loss(outputs, batch)``, ``metrics(outputs, batch)``."""

from ._base import AbstractTask, Batch
from .dataset import Dataset
from .digits import Digits
from .memory import AbstractPatternTask, FixedPointMemory, InputTracking, SineGeneration, orthonormal_patterns
from .pattern_generation import PatternGeneration
from .supervised import Supervised
from .teacher_student import TeacherStudent
from .temporal import AbstractBitSequence, DelayedXOR, Parity

__all__ = ["AbstractTask", "Batch", "Dataset", "Digits", "PatternGeneration", "Supervised", "TeacherStudent",
           "AbstractBitSequence", "DelayedXOR", "Parity"]
__all__ += ["AbstractPatternTask", "FixedPointMemory", "InputTracking", "SineGeneration", "orthonormal_patterns"]
from .store_recall import StoreRecall
from .evidence_accumulation import EvidenceAccumulation

__all__ += ["StoreRecall", "EvidenceAccumulation"]
from .yin_yang import YinYang  # noqa: E402
__all__ += ["YinYang"]
from .spike_targets import SpikeTimeTargets  # noqa: E402
__all__ += ["SpikeTimeTargets"]
