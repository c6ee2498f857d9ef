"""Tasks: `sample(key, batch_size) -> Batch`, `loss(outputs, batch)`, `metrics(outputs, batch)`."""

from ._base import AbstractClockTask as AbstractClockTask
from ._base import AbstractPerStepTask as AbstractPerStepTask
from ._base import AbstractTask as AbstractTask
from ._base import Batch as Batch
from ._dataset import Dataset as Dataset
from ._digits import Digits as Digits
from ._evidence_accumulation import EvidenceAccumulation as EvidenceAccumulation
from ._implicit_bias import AbstractPatternDetection as AbstractPatternDetection
from ._implicit_bias import LinearTeacher as LinearTeacher
from ._implicit_bias import PatternDetection as PatternDetection
from ._implicit_bias import ReadOnceDNF as ReadOnceDNF
from ._implicit_bias import XORDetection as XORDetection
from ._memory import AbstractPatternTask as AbstractPatternTask
from ._memory import FixedPointMemory as FixedPointMemory
from ._memory import InputTracking as InputTracking
from ._memory import SineGeneration as SineGeneration
from ._memory import orthonormal_patterns as orthonormal_patterns
from ._pattern_generation import PatternGeneration as PatternGeneration
from ._spike_targets import SpikeTimeTargets as SpikeTimeTargets
from ._store_recall import StoreRecall as StoreRecall
from ._supervised import Supervised as Supervised
from ._teacher_student import TeacherStudent as TeacherStudent
from ._temporal import AbstractBitSequence as AbstractBitSequence
from ._temporal import DelayedXOR as DelayedXOR
from ._temporal import Parity as Parity
from ._yin_yang import YinYang as YinYang
