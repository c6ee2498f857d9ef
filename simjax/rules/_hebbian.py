r"""Unsupervised local rules on one layer: Hebb, Oja, BCM.

For a layer with presynaptic activity `x` (`n_pre`), postsynaptic rate `y = phi(x W + b)`
(`n_post`) and weights `W` (`n_pre x n_post`), averages `E[.]` over trials and time steps:

| rule | `Delta W` | source |
| --- | --- | --- |
| `Hebbian` | `E[x y^T] - decay W` | Hebb 1949 |
| `Oja` | `E[(x - W y) y^T]` (subspace rule); Sanger's `E[x y^T] - W UT(E[y y^T])` | Oja 1982, 1989; Sanger 1989 |
| `BCM` | `E[x (y (y - theta))^T]`, `theta = E[y^2]` per unit | Bienenstock et al. 1982; Intrator & Cooper 1992 |

(`UT`: the upper triangle, diagonal included, so unit `j` is decorrelated from units `k <= j`.)
For one linear unit Oja's rule converges to the leading principal component of `x` with unit
norm; BCM with a sliding threshold makes a unit selective to one of several input patterns.

Sign convention: like every rule these return `updates = -Delta W` (a gradient's sign), so that
`optax.sgd(lr)` applies `W <- W + lr Delta W`. `Delta W` is mapped onto the layer's parameters
through the projection's `dense` map (the identity for `Dense`; a gather for sparse weights); every
other trainable parameter gets a zero update. The task's loss and metrics are still reported in
`aux` so that these rules can be plotted next to supervised ones.

The rules act on one layer of a static `simjax.networks.FeedForward` (memoryless units and
readout), through its `forward_layers`.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_int, check_positive
from ..networks._feedforward import FeedForward
from ..parameters._parameters import partition
from ._base import AbstractRule, AbstractStatelessRule


class AbstractHebbian(AbstractRule):
    """A local rule on layer `layer` of a static `FeedForward` network (module docstring).

    Subclasses implement `delta`, the weight change from the layer's activities.
    """

    layer: eqx.AbstractVar[int]

    @abc.abstractmethod
    def delta(self, pre: Float[Array, "n n_pre"], post: Float[Array, "n n_post"],
              weight: Float[Array, "n_pre n_post"], theta: Any = None) -> tuple[Float[Array, "n_pre n_post"], Any]:
        """`(Delta W, theta)` from `n` samples (trials x steps) of pre- and postsynaptic activity;
        `theta` is the rule's state (BCM's threshold), passed through by stateless rules."""

    def _activities(self, model, batch):
        name = type(self).__name__
        if not isinstance(model, FeedForward):
            raise TypeError(f"{name}: acts on a layer of a static simjax.networks.FeedForward (it needs the "
                            f"layer's pre- and postsynaptic activity), got {type(model).__name__}")
        if not model.is_static:
            raise TypeError(f"{name}: the FeedForward network must be static (activation-name neurons and "
                            "tau_out=None) so that each layer's activity is defined per input")
        n = len(model.layers)
        if not -n <= self.layer < n:
            raise ValueError(f"{name}: layer {self.layer} does not exist; the network has {n} layers "
                             f"(indices 0..{n - 1}, the last is the readout)")
        layer = self.layer % n
        if not jax.tree.leaves(partition(model)[0].layers[layer]):
            raise ValueError(f"{name}: layer {layer} is frozen (FeedForward.trainable is "
                             f"{tuple(model.trainable)!r}); add 'layers' to trainable")
        acts = model.forward_layers(batch.inputs)
        pre = jnp.asarray(batch.inputs) if layer == 0 else acts[layer - 1].rate
        post = acts[layer].rate
        return layer, pre.reshape(-1, pre.shape[-1]), post.reshape(-1, post.shape[-1])

    def _updates(self, model, layer, delta_w):
        params, static = partition(model)
        proj_params = params.layers[layer]
        proj_static = static.layers[layer]
        _, pullback = jax.vjp(lambda p: eqx.combine(p, proj_static).dense(), proj_params)
        (proj_update,) = pullback(-delta_w.astype(jnp.result_type(*jax.tree.leaves(proj_params))))
        updates = jax.tree.map(jnp.zeros_like, params)
        return eqx.tree_at(lambda u: u.layers[layer], updates, proj_update, is_leaf=lambda x: x is None)

    def _apply(self, model, task, batch, key, theta):
        layer, pre, post = self._activities(model, batch)
        weight = model.layers[layer].dense()
        delta_w, theta = self.delta(pre, post, weight, theta)
        outputs = task.forward(model, batch, key)
        aux = task.metrics(outputs, batch)
        return task.loss(outputs, batch), self._updates(model, layer, delta_w), aux, theta

    def __call__(self, model, task, batch, key):
        loss, updates, aux, _ = self._apply(model, task, batch, key, None)
        return loss, updates, aux


class Hebbian(AbstractHebbian, AbstractStatelessRule):
    """Plain Hebbian rule `Delta W = E[x y^T] - decay W` (unstable without `decay` or constraints).

    **Arguments:** `layer` (index into `FeedForward.layers`, default 0; negative counts from the
    readout), `decay` (`>= 0`, linear weight decay).
    """

    layer: int = eqx.field(static=True)
    decay: Float[Array, ""]

    def __init__(self, layer: int = 0, decay=0.0):
        check_positive("decay", decay, allow_zero=True, owner="Hebbian")
        self.layer, self.decay = _check_layer(layer, "Hebbian"), as_float_array(decay)

    def delta(self, pre, post, weight, theta=None):
        return pre.T @ post / pre.shape[0] - self.decay.astype(weight.dtype) * weight, theta


class Oja(AbstractHebbian, AbstractStatelessRule):
    """Oja's rule: Hebbian growth with a normalising decay, `Delta W = E[(x - W y) y^T]`; for one
    linear unit it converges to the unit-norm leading principal component of the input.

    **Arguments:** `layer` (as for `Hebbian`); `sanger`: use Sanger's generalised Hebbian
    algorithm (ordered principal components) instead of the symmetric subspace rule.
    """

    layer: int = eqx.field(static=True)
    sanger: bool = eqx.field(static=True)

    def __init__(self, layer: int = 0, sanger: bool = False):
        self.layer, self.sanger = _check_layer(layer, "Oja"), bool(sanger)

    def delta(self, pre, post, weight, theta=None):
        n = pre.shape[0]
        hebb = pre.T @ post / n
        corr = post.T @ post / n
        if self.sanger:
            corr = jnp.triu(corr)
        return hebb - weight @ corr, theta


class BCM(AbstractHebbian):
    """BCM rule with a sliding threshold: `Delta W = E[x (y (y - theta))^T]`, `theta = E[y^2]`.

    Called as a rule, `theta` is the batch average of `y^2` per unit. Trained through `fit`
    (which uses `step`), `theta` is state: `theta <- theta + rate (E_batch[y^2] - theta)`, a
    running average over batches (`rate=1` recovers the batch average).

    **Arguments:** `layer` (as for `Hebbian`); `rate` in `(0, 1]`: threshold update rate;
    `theta0`: initial threshold of the running average.
    """

    layer: int = eqx.field(static=True)
    rate: Float[Array, ""]
    theta0: Float[Array, ""]

    def __init__(self, layer: int = 0, rate=1.0, theta0=1.0):
        check_positive("rate", rate, owner="BCM")
        if float(rate) > 1.0:
            raise ValueError(f"BCM: rate must lie in (0, 1], got {rate!r}")
        check_positive("theta0", theta0, allow_zero=True, owner="BCM")
        self.layer, self.rate, self.theta0 = _check_layer(layer, "BCM"), as_float_array(rate), as_float_array(theta0)

    def delta(self, pre, post, weight, theta=None):
        batch_theta = jnp.mean(post**2, axis=0)
        theta = batch_theta if theta is None else theta + self.rate.astype(theta.dtype) * (batch_theta - theta)
        return pre.T @ (post * (post - theta)) / pre.shape[0], theta

    def init(self, model, key):
        n = len(model.layers) if isinstance(model, FeedForward) else 0
        if n == 0 or not -n <= self.layer < n:
            return None
        n_post = model.layers[self.layer].shape[1]
        return jnp.full((n_post,), self.theta0, dtype=jnp.result_type(self.theta0))

    def step(self, state, model, task, batch, key):
        loss, updates, aux, theta = self._apply(model, task, batch, key, state)
        return loss, updates, aux, theta


def _check_layer(layer, owner):
    return check_int("layer", layer, minimum=None, what="an index into FeedForward.layers", owner=owner)


__all__ = ["AbstractHebbian", "Hebbian", "Oja", "BCM"]
