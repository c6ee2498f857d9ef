r"""The online-plasticity interface: a rule is a pure per-step map

    (pre, post, traces, weights, modulator, dt) -> (weights, traces)

applied inside the clock-driven scan, with the rule's traces an explicit pytree (`init`).

**Clock convention.** Spikes (0/1, or surrogate spikes) happen at the grid times `t_k = k dt`.
At step `k` every trace is first decayed exactly over `dt` (`x <- x exp(-dt / tau)`: it then
holds the spikes of steps `< k`, each weighted by `exp(-(t_k - t_j) / tau)`), the weights are
updated from those traces and this step's spikes, and only then are this step's spikes added to
the traces. A pre- and a postsynaptic spike at the same step therefore do not pair (`Delta t = 0`
contributes nothing), and a pair at `Delta t = n dt` gives exactly the exponential window
`exp(-|Delta t| / tau)` (up to float rounding of `exp(-dt/tau)^n`).

**Spike pairing** (`pairing`): `"all"` (all-to-all) adds 1 to a trace at each spike, so every
earlier spike pairs with the current one; `"nearest"` resets the trace to 1 at a spike
(`x <- x + s (1 - x)`), so only the most recent spike of the other side pairs (the symmetric
nearest-spike scheme of Morrison, Diesmann & Gerstner 2008, Biol. Cybern. 98:459, Fig. 7B).

**Weight dependence and bounds** (`weight_dependence`), on the magnitude `m = sign w` of
each weight, with `LTP`/`LTD` the non-negative potentiation and depression of the step:

| option | update | source |
| --- | --- | --- |
| `"additive"` | `m <- clip(m + LTP - LTD, w_min, w_max)` | Song, Miller & Abbott 2000 |
| `"multiplicative"` | `m <- clip(m + LTP - m LTD, w_min, w_max)` | van Rossum, Bi & Turrigiano 2000 |
| `"soft"` | `m <- clip(m + (w_max - m) LTP - (m - w_min) LTD, ...)` | Gütig et al. 2003 (`mu = 1`) |

The final clip is the hard bound (`w_min = 0`, `w_max = inf` by default: no upper bound).
`sign` is Dale's sign of the synapses: `+1` for excitatory weights (`w >= 0`), `-1` for
inhibitory weights stored negative (the rule acts on `|w|`).
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import as_float_array, check_choice, check_positive, is_concrete

PAIRINGS = ("all", "nearest")
WEIGHT_DEPENDENCES = ("additive", "multiplicative", "soft")


class AbstractPlasticityRule(eqx.Module):
    """An online plasticity rule (module docstring): `init` builds the traces for a weight matrix,
    `__call__` is one clock step.

    Subclasses implement `init` and `__call__`; they share the weight dependence, bounds and sign
    (`apply`) and the spike pairing (`bump`).
    """

    w_min: eqx.AbstractVar[Float[Array, ""]]
    w_max: eqx.AbstractVar[Float[Array, ""]]
    weight_dependence: eqx.AbstractVar[str]
    pairing: eqx.AbstractVar[str]
    sign: eqx.AbstractVar[int]

    @abc.abstractmethod
    def init(self, weights: Float[Array, "*batch n_pre n_post"]) -> PyTree[Array]:
        """The traces at rest (all zero) for `weights` of shape `[*batch, n_pre, n_post]`."""

    @abc.abstractmethod
    def __call__(self, pre: Float[Array, "*batch n_pre"], post: Float[Array, "*batch n_post"], traces: PyTree[Array],
                 weights: Float[Array, "*batch n_pre n_post"], modulator: Float[Array, "..."] | None, dt: Any
                 ) -> tuple[Float[Array, "*batch n_pre n_post"], PyTree[Array]]:
        """One clock step: this step's pre- and postsynaptic spikes (0/1), the traces, the weights and
        the neuromodulator (`None` for a rule without a third factor).

        **Returns:** `(weights, traces)` after the step.
        """

    @property
    def needs_modulator(self) -> bool:
        """Whether the rule has a third factor (its `__call__` needs `modulator`)."""
        return False

    def bump(self, trace: Float[Array, "*shape"], spikes: Float[Array, "*shape"]) -> Float[Array, "*shape"]:
        """A trace after this step's spikes: `x + s` (all-to-all) or `x + s (1 - x)` (nearest)."""
        return trace + spikes if self.pairing == "all" else trace + spikes * (1.0 - trace)

    def apply(self, weights: Float[Array, "*batch n_pre n_post"], ltp: Float[Array, "*batch n_pre n_post"],
              ltd: Float[Array, "*batch n_pre n_post"]) -> Float[Array, "*batch n_pre n_post"]:
        """The weights after potentiation `ltp` and depression `ltd` (both `>= 0`), with the
        rule's weight dependence, hard bounds and sign (module docstring)."""
        m = self.sign * weights
        w_min, w_max = self.w_min.astype(m.dtype), self.w_max.astype(m.dtype)
        if self.weight_dependence == "additive":
            m = m + ltp - ltd
        elif self.weight_dependence == "multiplicative":
            m = m + ltp - m * ltd
        else:
            m = m + (w_max - m) * ltp - (m - w_min) * ltd
        return self.sign * jnp.clip(m, w_min, w_max)


class AbstractSpikeTriggeredRule(AbstractPlasticityRule):
    """A rule whose weights change only at spikes and whose traces are per neuron (pre- or
    postsynaptic): in a step, only the rows of the presynaptic neurons that spiked and the columns
    of the postsynaptic neurons that spiked change, so a step can update those rows and columns
    alone (`simjax.plasticity.simulate` with `max_spikes`). Every entry's new value depends only on
    its own weight and its row's and column's traces, so updating the rows and the columns
    separately is exact.

    Subclasses implement `advance` and `select` besides the rule itself.
    """

    @abc.abstractmethod
    def advance(self, pre: Float[Array, "*batch n_pre"], post: Float[Array, "*batch n_post"], traces: PyTree[Array],
                dt: Any) -> PyTree[Array]:
        """The traces after one step (what `__call__` returns besides the weights)."""

    @abc.abstractmethod
    def select(self, traces: PyTree[Array], pre_index: Any = None, post_index: Any = None) -> PyTree[Array]:
        """The traces of the presynaptic neurons `pre_index` and of the postsynaptic neurons
        `post_index` (index arrays along the last axis; `None`: all; indices past the end clip)."""


def take(x: Float[Array, "*batch n"], index: Any) -> Float[Array, "..."]:
    """`x[..., index]` (`None`: all of `x`; an index array of any shape replaces the last axis by its
    shape), out-of-range indices clipped."""
    return x if index is None else jnp.take(x, index, axis=-1, mode="clip")

def outer(pre: Float[Array, "*batch n_pre"], post: Float[Array, "*batch n_post"]
          ) -> Float[Array, "*batch n_pre n_post"]:
    """`pre[..., i] post[..., j]`."""
    return pre[..., :, None] * post[..., None, :]


def decay(tau: Float[Array, ""], dt: Any) -> Float[Array, ""]:
    """`exp(-dt / tau)`, the exact decay of a trace over one step."""
    return jnp.exp(-dt / tau)


def check_options(owner: str, *, w_min: Any, w_max: Any, weight_dependence: str, pairing: str, sign: Any
                  ) -> tuple[jax.Array, jax.Array, str, str, int]:
    """Validates and converts the options every rule shares (module docstring)."""
    check_choice("weight_dependence", weight_dependence, WEIGHT_DEPENDENCES, owner=owner)
    check_choice("pairing", pairing, PAIRINGS, owner=owner)
    if sign not in (1, -1) or isinstance(sign, bool):
        raise ValueError(f"{owner}: sign must be +1 (excitatory weights) or -1 (inhibitory weights stored "
                         f"negative), got {sign!r}")
    w_min, w_max = as_float_array(w_min), as_float_array(w_max)
    if is_concrete(w_min) and is_concrete(w_max):
        lo, hi = np.asarray(w_min), np.asarray(w_max)
        if np.any(np.isnan(lo)) or np.any(np.isnan(hi)) or np.any(lo >= hi) or np.any(np.isinf(lo)):
            raise ValueError(f"{owner}: the bounds must satisfy -inf < w_min < w_max, got w_min={w_min!r}, "
                             f"w_max={w_max!r}")
        if weight_dependence == "soft" and np.any(np.isinf(hi)):
            raise ValueError(f"{owner}: weight_dependence='soft' needs a finite w_max, got {w_max!r}")
    return w_min, w_max, weight_dependence, pairing, int(sign)


def check_taus(owner: str, **taus: Any) -> None:
    """`ValueError` naming the first time constant that is not finite and positive."""
    for name, tau in taus.items():
        check_positive(name, tau, owner=owner)


def modulator_fits(shape: tuple[int, ...], post_shape: tuple[int, ...]) -> bool:
    """Whether a modulator of `shape` is a scalar or broadcasts to `post_shape` without adding
    dimensions (one value, or one per postsynaptic neuron)."""
    return len(shape) <= len(post_shape) and all(s in (1, p) for s, p in zip(shape[::-1], post_shape[::-1]))


def check_modulator(owner: str, modulator: Any, post_shape: tuple[int, ...]) -> None:
    """`ValueError` unless `modulator` `modulator_fits` the postsynaptic shape `post_shape`."""
    shape = tuple(np.shape(modulator))
    if not modulator_fits(shape, post_shape):
        raise ValueError(f"{owner}: the modulator has shape {shape}; expected a scalar or a shape that broadcasts "
                         f"to the postsynaptic neurons' {post_shape} (one value, or one per neuron)")
