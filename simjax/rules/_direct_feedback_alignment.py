r"""Direct feedback alignment: the output error reaches every hidden layer through its own fixed
random matrix (Nøkland 2016).

With the output error `e = dL/dz` (`z` the readout drive `r_L W_out + b_out`), hidden layer `l`
(drive `a_l = r_{l-1} W_l + b_l`, rate `r_l = phi(a_l)`) learns from

    delta_l = (e B_l^T) * phi'(a_l),     dW_l = r_{l-1}^T delta_l,     B_l of shape (n_l, n_out)

instead of the error backpropagated from layer `l + 1`; the readout learns from its true local
gradient `r_L^T e`. Two kinds of networks are supported:

- **static** `simjax.networks.FeedForward` (activation-name units, `tau_out=None`), any depth:
  `e` is the gradient of the task loss with respect to the readout, and the update is the
  gradient of `sum_l <stop_grad(e B_l^T), r_l> + <stop_grad(e), z>` with every projection's error
  transport cut (a `FeedbackProjection` with zero feedback), computed on `FeedForward.forward_layers`;
- networks with **one hidden population** in time: `RSNN`, `RateRNN` (the recurrent population) and a
  `FeedForward` with one hidden layer. The readout error of every step reaches the hidden units
  through `B` (in place of `W_out^T`) and no error travels through the recurrent weights
  (zero feedback on `w_rec`); each unit's error still flows back in time through its own state
  (membrane, synaptic current, leaky readout). This is random feedback combined with each unit's
  own eligibility, in the spirit of random e-prop (Bellec et al. 2020) and RFLO (Murray 2019),
  computed by autodiff.

Feedback matrices `B_l ~ N(0, scale^2 / n_l)`, drawn from `key` (the same at every call), are
named `"hidden[l]"` (`"hidden[0]"` for the single population).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..networks._base import AbstractNetwork
from ..networks._feedforward import FeedForward
from ..parameters._parameters import partition
from ._feedback_alignment import (
    AbstractFeedbackRule,
    _draw,
    check_feedback_names,
    projection_sites,
    value_and_feedback_grad,
)
from ._feedback_projection import FeedbackProjection


def _hidden_sizes(model: AbstractNetwork) -> tuple[int, ...]:
    """Sizes of the hidden populations that receive direct feedback; raises for unsupported models."""
    if isinstance(model, FeedForward):
        hidden = tuple(p.shape[1] for p in model.layers[:-1])
        if model.is_static or len(hidden) <= 1:
            return hidden
        raise TypeError(f"DirectFeedbackAlignment: a FeedForward network with {len(hidden)} hidden layers and "
                        "memory in time (leaky or spiking units, or tau_out) is not supported; it needs a static "
                        "FeedForward (activation-name neurons, tau_out=None) or a single hidden layer")
    sites = projection_sites(model)
    if "w_rec" in sites and "w_out" in sites:
        return (sites["w_out"].shape[0],)
    raise TypeError(f"DirectFeedbackAlignment: cannot handle {type(model).__name__}; it needs a layered "
                    "simjax.networks.FeedForward or a single recurrent population with 'w_rec' and 'w_out' "
                    "projections (RSNN, RateRNN)")


def _zero_feedback(proj):
    return FeedbackProjection(proj, jnp.zeros(proj.shape, jnp.result_type(proj.dense())))


def _static_dfa(model, task, batch, key, feedback, simulate_kwargs):
    outputs = task.forward(model, batch, key, **simulate_kwargs)
    loss = task.loss(outputs, batch)
    err = jax.grad(lambda r: task.loss(eqx.tree_at(lambda o: o.readout, outputs, r), batch))(outputs.readout)
    err = jax.lax.stop_gradient(err)
    params, static = partition(model)

    def surrogate(p):
        m = eqx.combine(p, static)
        cut = eqx.tree_at(lambda n: n.layers, m, tuple(_zero_feedback(q) for q in m.layers))
        acts = cut.forward_layers(batch.inputs)
        total = jnp.vdot(err, acts[-1].rate)
        for l, act in enumerate(acts[:-1]):
            signal = jnp.matmul(err, jnp.swapaxes(feedback[f"hidden[{l}]"], -1, -2))
            total = total + jnp.vdot(signal, act.rate)
        return total

    grads = jax.grad(surrogate)(params)
    return loss, grads, task.metrics(outputs, batch)


def _temporal_dfa(model, task, batch, key, feedback, simulate_kwargs):
    sites = projection_sites(model)
    if isinstance(model, FeedForward):
        names = [f"layers[{i}]" for i in range(len(model.layers))]
        fb = {names[-1]: feedback["hidden[0]"]} if len(names) > 1 else {}
    else:
        fb = {"w_out": feedback["hidden[0]"], "w_rec": jnp.zeros(sites["w_rec"].shape,
                                                                  jnp.result_type(sites["w_rec"].dense()))}
    return value_and_feedback_grad(model, task, batch, key, fb, simulate_kwargs)


class DirectFeedbackAlignment(AbstractFeedbackRule):
    r"""Direct feedback alignment (Nøkland 2016); see the module docstring for the supported
    networks and what the rule computes in each.

    **Arguments:**

    - `key`: int seed or PRNG key for the feedback matrices (`seed=` is accepted as an alias).
    - `scale`: feedback scale (> 0): `B_l ~ N(0, scale^2 / n_l)`.
    - `feedback`: optional `{"hidden[l]": (n_l, n_out) matrix}`; the others are drawn.
    - `simulate_kwargs`: keywords for `simjax.simulate`.
    """

    def feedback_for(self, model):
        """The direct feedback matrix `B_l` of every hidden population of `model`."""
        hidden = _hidden_sizes(model)
        sites = {f"hidden[{l}]": (n, model.n_out) for l, n in enumerate(hidden)}
        given = self.feedback or {}
        check_feedback_names("DirectFeedbackAlignment", given, sites)
        dtype = jnp.result_type(*jax.tree.leaves(eqx.filter(model, eqx.is_inexact_array)))
        out = {}
        for name, shape in sites.items():
            if name in given:
                if tuple(given[name].shape) != shape:
                    raise ValueError(f"DirectFeedbackAlignment: feedback {name!r} has shape "
                                     f"{tuple(given[name].shape)}, expected {shape} (n_hidden, n_out)")
                out[name] = given[name]
            else:
                out[name] = _draw(self.key, name, shape, self.scale, dtype)
        return out

    def apply(self, model, task, batch, key, feedback):
        kwargs = dict(self.simulate_kwargs)
        if isinstance(model, FeedForward) and model.is_static and len(model.layers) > 2:
            return _static_dfa(model, task, batch, key, feedback, kwargs)
        return _temporal_dfa(model, task, batch, key, feedback, kwargs)

