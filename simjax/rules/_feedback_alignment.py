r"""Feedback alignment and sign symmetry: backpropagation without weight transport.

Backpropagation sends the error of a projection's output back to its input through the transposed
forward weights, `dL/dpre = delta W^T`. These rules keep the forward pass and every local weight
gradient (`dL/dW = pre^T delta`, the output layer's included) and replace `W` in the backward pass
by a feedback matrix `B` of the same `(n_pre, n_post)` shape, through `FeedbackProjection`:

- `FeedbackAlignment` (Lillicrap, Cownden, Tweed & Akerman 2016): `B` fixed and random;
- `SignSymmetry` (Liao, Leibo & Poggio 2016): `B = sign(W) * mean |W|`, the current weights' signs.

Every projection of the model is wrapped (the model's tree is searched for
`simjax.synapses.AbstractProjection` nodes), so in a recurrent network the recurrent projection
carries the error back through time with `B` as well; a projection fed only by the network's
input never carries error, so its feedback is unused. Sites are named by their path in the model:
`"w_in"`, `"w_rec"`, `"w_out"` (RSNN, RateRNN), `"layers[0]"`, `"layers[1]"`, ...
(FeedForward). In a network without self-connections the recurrent site uses the masked recurrent
projection and its feedback diagonal is zeroed too.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from .._checks import as_float_array, check_positive
from .._random import as_key, fold_in_name
from ..networks._base import AbstractNetwork
from ..networks._rsnn import RSNN
from ..parameters._parameters import partition
from ..synapses._base import AbstractProjection
from ..tasks._base import AbstractTask, Batch
from ._base import AbstractRule, AbstractStatelessRule
from ._feedback_projection import FeedbackProjection


def _is_projection(x) -> bool:
    return isinstance(x, AbstractProjection)


def _site_name(path) -> str:
    return jax.tree_util.keystr(path).lstrip(".")


def projection_sites(model: AbstractNetwork) -> dict[str, AbstractProjection]:
    """Every projection of `model` by its path (`"w_rec"`, `"layers[1]"`), as used in the
    forward pass (a recurrent network's `recurrent_projection()` for `"w_rec"`)."""
    leaves = jax.tree_util.tree_flatten_with_path(model, is_leaf=_is_projection)[0]
    sites = {_site_name(path): leaf for path, leaf in leaves if _is_projection(leaf)}
    if "w_rec" in sites and isinstance(model, RSNN):
        sites["w_rec"] = model.recurrent_projection()
    return sites


def _mask_recurrent(model, name, matrix):
    if name == "w_rec" and isinstance(model, RSNN) and not model.self_connections:
        return matrix * (1.0 - jnp.eye(*matrix.shape, dtype=matrix.dtype))
    return matrix


def with_feedback(model: AbstractNetwork, feedback: dict[str, Float[Array, "n_pre n_post"]]) -> AbstractNetwork:
    """`model` with the projection at every site named in `feedback` replaced by a
    `FeedbackProjection` that sends errors back through that matrix."""
    sites = projection_sites(model)

    def wrap(path, leaf):
        name = _site_name(path)
        if not _is_projection(leaf) or name not in feedback:
            return leaf
        try:
            return FeedbackProjection(sites[name], feedback[name])
        except ValueError as err:
            raise ValueError(f"feedback for {name!r}: {err}") from None

    return jax.tree_util.tree_map_with_path(wrap, model, is_leaf=_is_projection)


def _require_sites(model, owner):
    sites = projection_sites(model)
    if not sites:
        raise TypeError(f"{owner}: {type(model).__name__} has no projections (simjax.synapses.AbstractProjection "
                        "fields) to send errors back through; it needs a network such as RSNN, RateRNN or "
                        "FeedForward")
    return sites


def _draw(key, name, shape, scale, dtype):
    k = fold_in_name(key, name)
    return scale / jnp.sqrt(jnp.asarray(shape[0], dtype)) * jax.random.normal(k, shape, dtype)


def check_feedback_names(owner, given, sites):
    unknown = sorted(set(given) - set(sites))
    if unknown:
        raise ValueError(f"{owner}: no projection named {unknown} in the model; its feedback sites are "
                         f"{sorted(sites)}")


def value_and_feedback_grad(model, task, batch, key, feedback, simulate_kwargs):
    """`(loss, grads, aux)` of the task loss, differentiated through `with_feedback(model, feedback)`;
    `grads` is shaped like `simjax.parameters.params(model)`."""
    params, static = partition(model)

    def loss_fn(p):
        outputs = task.forward(with_feedback(eqx.combine(p, static), feedback), batch, key, **simulate_kwargs)
        return task.loss(outputs, batch), outputs

    (loss, outputs), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    return loss, grads, task.metrics(outputs, batch)


def feedback_settings(owner: str, key: Any, scale: Any, feedback: dict | None, seed: int | None):
    """Validated `(key, scale, feedback)` of a random-feedback rule (`seed` aliases `key`)."""
    if seed is not None:
        if not (isinstance(key, int) and key == 0):
            raise TypeError(f"{owner}: give the feedback key either as key or as seed, not both")
        key = seed
    try:
        key = as_key(key)
    except TypeError as err:
        raise TypeError(f"{owner}: key: {err}") from None
    scale = as_float_array(scale)
    check_positive("scale", scale, owner=owner)
    if feedback is not None and not isinstance(feedback, dict):
        raise TypeError(f"{owner}: feedback must be a dict {{site: matrix}}, got {type(feedback).__name__}")
    return key, scale, None if feedback is None else {k: as_float_array(v) for k, v in feedback.items()}


class AbstractFeedbackRule(AbstractRule):
    """A rule that sends errors back through feedback matrices of its own (random, or given per site):
    the fields, the constructor and the optax-style state (the materialised matrices) of the
    feedback-alignment family. Subclasses say which matrices a model needs (`feedback_for`) and how
    they are used (`apply`)."""

    key: PRNGKeyArray
    scale: Float[Array, ""]
    feedback: dict | None
    simulate_kwargs: tuple = eqx.field(static=True)

    def __init__(self, key: Any = 0, *, scale: float = 1.0, feedback: dict | None = None, seed: int | None = None,
                 **simulate_kwargs):
        self.key, self.scale, self.feedback = feedback_settings(type(self).__name__, key, scale, feedback, seed)
        self.simulate_kwargs = tuple(sorted(simulate_kwargs.items()))

    @abc.abstractmethod
    def feedback_for(self, model: AbstractNetwork) -> dict[str, Float[Array, "n_pre n_post"]]:
        """The feedback matrices this rule uses for `model`, by site name."""

    @abc.abstractmethod
    def apply(self, model: AbstractNetwork, task: AbstractTask, batch: Batch, key: PRNGKeyArray | None,
              feedback: dict[str, Float[Array, "n_pre n_post"]]) -> tuple[Float[Array, ""], PyTree, dict]:
        """`(loss, updates, aux)` with the given feedback matrices."""

    def init(self, model, key):
        del key  # the feedback depends on the rule's own key only
        return self.feedback_for(model)

    def step(self, state, model, task, batch, key):
        loss, updates, aux = self.apply(model, task, batch, key, state)
        return loss, updates, aux, state

    def __call__(self, model, task, batch, key):
        return self.apply(model, task, batch, key, self.feedback_for(model))


class FeedbackAlignment(AbstractFeedbackRule):
    r"""Feedback alignment: errors travel back through fixed random matrices (Lillicrap et al. 2016).

    For every projection site with weights `W` of shape `(n_pre, n_post)` the feedback is
    `B_ij ~ N(0, scale^2 / n_pre)` (the distribution of `simjax.synapses.Dense.init` weights, so
    `B` and the initial `W` have the same magnitude), drawn from `key` folded with the site's
    name: the same matrices at every call. `init` materialises them once for `simjax.fit`.

    **Arguments:**

    - `key`: int seed or PRNG key for the feedback matrices (`seed=` is accepted as an alias).
    - `scale`: feedback scale (> 0).
    - `feedback`: optional `{site: (n_pre, n_post) matrix}`; the named sites use these matrices
      (`feedback={"w_out": W_out, ...}` with the forward weights gives backpropagation), the others
      are drawn.
    - `simulate_kwargs`: keywords for `simjax.simulate`.
    """

    def feedback_for(self, model):
        """The feedback matrix of every projection site of `model`."""
        sites = _require_sites(model, "FeedbackAlignment")
        given = self.feedback or {}
        check_feedback_names("FeedbackAlignment", given, sites)
        out = {}
        for name, proj in sites.items():
            dtype = jnp.result_type(proj.dense())
            b = given[name] if name in given else _draw(self.key, name, tuple(proj.shape), self.scale, dtype)
            out[name] = _mask_recurrent(model, name, b)
        return out

    def apply(self, model, task, batch, key, feedback):
        return value_and_feedback_grad(model, task, batch, key, feedback, dict(self.simulate_kwargs))


class SignSymmetry(AbstractStatelessRule):
    r"""Sign symmetry: errors travel back through the signs of the forward weights (Liao et al. 2016).

    `B = sign(W) * m` with `m` the mean absolute value of the nonzero effective weights of that
    projection (so `B` has the magnitude of `W`; `B = W` when all weights are `+-c`), or
    `m = scale` when a scale is given. `B` follows the current weights (no gradient through it).

    **Arguments:** `scale` (optional fixed magnitude), `simulate_kwargs` (for `simjax.simulate`).
    """

    scale: Float[Array, ""] | None
    simulate_kwargs: tuple = eqx.field(static=True)

    def __init__(self, scale: float | None = None, **simulate_kwargs):
        self.scale = None if scale is None else as_float_array(scale)
        check_positive("scale", self.scale, owner="SignSymmetry")
        self.simulate_kwargs = tuple(sorted(simulate_kwargs.items()))

    def feedback_for(self, model: Any) -> dict[str, Float[Array, "n_pre n_post"]]:
        """`sign(W) * magnitude` for every projection site of `model`."""
        out = {}
        for name, proj in _require_sites(model, "SignSymmetry").items():
            w = jax.lax.stop_gradient(proj.dense())
            if self.scale is None:
                nonzero = (w != 0).astype(w.dtype)
                m = jnp.sum(jnp.abs(w)) / jnp.maximum(jnp.sum(nonzero), 1.0)
            else:
                m = self.scale.astype(w.dtype)
            out[name] = _mask_recurrent(model, name, jnp.sign(w) * m)
        return out

    def __call__(self, model, task, batch, key):
        return value_and_feedback_grad(model, task, batch, key, self.feedback_for(model), dict(self.simulate_kwargs))
