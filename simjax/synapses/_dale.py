"""Dale-signed projection: every presynaptic neuron is excitatory or inhibitory, for ever."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float

from .._checks import as_float_array, as_optional_float, check_positive
from ._base import AbstractProjection, project


class Dale(AbstractProjection):
    r"""Dense weights whose rows keep the sign of their presynaptic neuron (Dale's principle):
    `W_ij >= 0` for excitatory `i`, `W_ij <= 0` for inhibitory `i`, and optionally
    `|W_ij| <= max_magnitude`.

    Learning is projected gradient descent: updates act on the stored `weight`, and `constrain`
    (applied by `simjax.fit` after every update, for every rule) clips it back onto the allowed set,
    so a weight pushed across zero stops at zero and never changes sign. The forward pass uses the
    clipped weights too, so the constraint also holds between updates. Its gradient with respect
    to `weight` is the gradient with respect to the clipped weights on the allowed set, boundary
    included (a weight sitting at zero or at the bound receives its full gradient and may move back
    inside), and zero for entries strictly outside it (they act as their clipped value).

    **Arguments:** `weight (n_pre, n_post)`, `excitatory` (bool `(n_pre,)`),
    `max_magnitude` (`None`, a scalar, or an array broadcastable to the weights).
    """

    trainable: ClassVar[tuple[str, ...]] = ("weight",)  # max_magnitude is a bound, not a parameter

    weight: Float[Array, "n_pre n_post"] = eqx.field(converter=as_float_array)
    excitatory: Bool[Array, " n_pre"] = eqx.field(converter=lambda x: jnp.asarray(x, bool))
    max_magnitude: Float[Array, "..."] | None = eqx.field(converter=as_optional_float, default=None)

    def __check_init__(self):
        if self.weight.ndim != 2:
            raise ValueError(f"Dale: weight must be a 2-D (n_pre, n_post) array, got shape {self.weight.shape}")
        if self.excitatory.shape != (self.weight.shape[0],):
            raise ValueError(f"Dale: excitatory has shape {self.excitatory.shape}, expected ({self.weight.shape[0]},) "
                             "(one flag per presynaptic neuron)")
        check_positive("max_magnitude", self.max_magnitude, allow_zero=True, owner="Dale")

    @classmethod
    def init(cls, n_pre: int, n_post: int, frac_excitatory: float = 0.8, *, key, scale: float = 1.0,
             max_magnitude=None) -> Dale:
        """The first `round(frac_excitatory n_pre)` presynaptic neurons excitatory; magnitudes
        `|N(0, (scale/sqrt(n_pre))^2)|`, inhibitory rows scaled by `n_E / n_I` so that the mean
        input is balanced; clipped to `max_magnitude` when given."""
        if not 0.0 <= frac_excitatory <= 1.0:
            raise ValueError(f"Dale.init: frac_excitatory must be in [0, 1], got {frac_excitatory!r}")
        n_exc = int(round(frac_excitatory * n_pre))
        exc = np.arange(n_pre) < n_exc
        mag = jnp.abs(scale / np.sqrt(n_pre) * jax.random.normal(key, (n_pre, n_post), dtype=jnp.result_type(float)))
        balance = np.where(exc, 1.0, n_exc / max(n_pre - n_exc, 1))[:, None]
        return cls(jnp.where(exc[:, None], mag, -mag * balance), exc, max_magnitude).constrain()

    def _projected(self, w):
        # select, not max/min: the gradient is 1 on the closed allowed set (boundary included) and
        # 0 strictly outside it
        sign = jnp.where(self.excitatory[:, None], 1.0, -1.0).astype(w.dtype)
        magnitude = sign * w
        w = jnp.where(magnitude < 0.0, jnp.zeros_like(w), w)
        if self.max_magnitude is not None:
            w = jnp.where(magnitude > self.max_magnitude, sign * self.max_magnitude, w)
        return w

    def __call__(self, pre):
        return project(pre, self._projected(self.weight))

    @property
    def shape(self):
        return tuple(self.weight.shape)

    def without_self_connections(self):
        mask = 1.0 - jnp.eye(*self.weight.shape, dtype=self.weight.dtype)
        return eqx.tree_at(lambda p: p.weight, self, self.weight * mask)

    def dense(self):
        return self._projected(self.weight)

    def constrain(self):
        return eqx.tree_at(lambda p: p.weight, self, self._projected(self.weight))
