"""Probabilistic analogical mapping (PAM / visiPAM): attributed graphs, the mapping objective,
graduated assignment with a log-domain Sinkhorn, hard read-out, benchmark problems, schemas."""

from ._benchmarks import RULES as RULES
from ._benchmarks import DigitMatrices as DigitMatrices
from ._benchmarks import DigitProblems as DigitProblems
from ._benchmarks import PartCorrespondence as PartCorrespondence
from ._benchmarks import PartProblems as PartProblems
from ._benchmarks import digit_graph as digit_graph
from ._graph import Graph as Graph
from ._graph import from_positions as from_positions
from ._graph import from_triples as from_triples
from ._graph import permute as permute
from ._learn import LearnedSimilarity as LearnedSimilarity
from ._learn import fit_similarity as fit_similarity
from ._learn import mapping_accuracy as mapping_accuracy
from ._learn import mapping_loss as mapping_loss
from ._mapping import Annealing as Annealing
from ._mapping import Compatibility as Compatibility
from ._mapping import Mapping as Mapping
from ._mapping import assignment_matrix as assignment_matrix
from ._mapping import compatibility as compatibility
from ._mapping import graduated_assignment as graduated_assignment
from ._mapping import graduated_assignment_batch as graduated_assignment_batch
from ._mapping import hard_assignment as hard_assignment
from ._mapping import mapping_score as mapping_score
from ._mapping import objective as objective
from ._mapping import sinkhorn as sinkhorn
from ._schema import digit_choice_scores as digit_choice_scores
from ._schema import generate_digits as generate_digits
from ._schema import schema as schema
from ._schema import solve_digit_matrices as solve_digit_matrices
from ._similarity import AbstractSimilarity as AbstractSimilarity
from ._similarity import Cosine as Cosine
from ._similarity import Gaussian as Gaussian
