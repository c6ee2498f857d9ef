r"""`FeedbackProjection`: a projection whose backward pass sends errors through a feedback matrix.

For a wrapped projection `post = pre @ W` (`W` of shape `(n_pre, n_post)`) and an upstream
error `delta = dL/d post`, reverse-mode autodiff computes

    dL/dW   = pre^T delta               (the local weight gradient: kept exactly)
    dL/dpre = delta W^T                 (weight transport: replaced)

`FeedbackProjection` keeps the first and replaces the second by `delta B^T` with a feedback
matrix `B` of the same shape as `W`. `B = W` recovers backpropagation; a fixed random `B`
is feedback alignment (Lillicrap et al. 2016), `B = sign(W)` sign symmetry (Liao, Leibo & Poggio
2016), `B = 0` cuts the error transport. Because it is an ordinary projection, a recurrent
network that routes its recurrent input through it gets the replacement at every time step.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array
from ..synapses._base import AbstractProjection


@eqx.filter_custom_vjp
def _project(forward_and_pre, feedback):
    forward, pre = forward_and_pre
    return forward(pre)


@_project.def_fwd
def _project_fwd(perturbed, forward_and_pre, feedback):
    del perturbed
    forward, pre = forward_and_pre
    return forward(pre), None


@_project.def_bwd
def _project_bwd(residuals, grad_post, perturbed, forward_and_pre, feedback):
    del residuals
    forward, pre = forward_and_pre
    perturbed_forward, perturbed_pre = perturbed
    if grad_post is None:
        return jax.tree.map(lambda _: None, perturbed)
    # The true local gradient of the projection's own parameters (any parameterisation: Dale
    # signs, masks), with the presynaptic activity held fixed.
    diff, static = eqx.partition(forward, perturbed_forward)
    _, vjp = jax.vjp(lambda d: eqx.combine(d, static)(pre), diff)
    (grad_forward,) = vjp(grad_post)
    if not perturbed_pre:
        return grad_forward, None
    grad_pre = jnp.matmul(grad_post, jnp.swapaxes(feedback, -1, -2).astype(grad_post.dtype))
    return grad_forward, grad_pre.astype(pre.dtype)


class FeedbackProjection(AbstractProjection):
    """Wraps `forward`: same forward pass, same weight gradient, error sent back through `feedback`.

    **Arguments:**

    - `forward`: the wrapped projection (any `simjax.synapses.AbstractProjection`).
    - `feedback`: `(n_pre, n_post)` matrix, the shape of `forward.dense()`; the backward pass
      computes `dL/dpre = dL/dpost @ feedback.T` in place of `dL/dpost @ W.T`. Not differentiated.
    """

    trainable: ClassVar[tuple[str, ...]] = ("forward",)

    forward: AbstractProjection
    feedback: Float[Array, "n_pre n_post"] = eqx.field(converter=as_float_array)

    def __check_init__(self):
        if tuple(self.feedback.shape) != tuple(self.forward.shape):
            raise ValueError(f"FeedbackProjection: feedback has shape {tuple(self.feedback.shape)}, expected "
                             f"{tuple(self.forward.shape)} (the (n_pre, n_post) shape of the wrapped "
                             f"{type(self.forward).__name__})")

    def __call__(self, pre):
        return _project((self.forward, pre), jax.lax.stop_gradient(self.feedback))

    @property
    def shape(self):
        return tuple(self.forward.shape)

    def dense(self):
        return self.forward.dense()

    def without_self_connections(self):
        return FeedbackProjection(self.forward.without_self_connections(), self.feedback)

    def constrain(self):
        return FeedbackProjection(self.forward.constrain(), self.feedback)
