"""Which leaves of a model learn, and the constraints every update must respect."""

from ._parameters import constrain as constrain
from ._parameters import params as params
from ._parameters import partition as partition
from ._parameters import trainable_filter as trainable_filter
