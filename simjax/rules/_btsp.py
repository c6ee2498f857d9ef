r"""BTSP for credit assignment across layers by top-down gating of dendritic plasticity (Galloni,
Peddada & Milstein, SNUFA 2022; the per-trial form of the two-state rule of Milstein et al. 2021,
eLife 10:e73046).

Acts on a `simjax.networks.DendriticEINetwork`. Per trial: the forward pass, then the network's
backward (dendritic) phase (`DendriticEINetwork.backward`) assigns plateaus `P` to output and hidden
units. Every BTSP projection `W` (`pre -> post`, upper bound `W_max`: the projection's
`max_magnitude`) then changes by

    discount_j = 1 if P_j > 0,  neg_discount if P_j < 0,  0 otherwise
    ET_ij = discount_j r_i,     IS_j = |P_j|
    Delta W_ij = eta IS_j [(W_max - W_ij) ET_ij - W_ij q_dep(ET_ij)]

with `r` the presynaptic activity after the nudge (the input itself for the first layer) and
`q_dep` the scaled rectified sigmoid (`simjax.plasticity.scaled_rectified_sigmoid`) with threshold
`dep_theta` and half-width `dep_width` (a near step: every active input pays the full depression
term). This is the kinetic rule with `k_pot = k_dep` integrated over one trial. The BTSP
projections are the feed-forward `w_ff` (rates `eta_ff`) and the top-down `w_td` (rates
`eta_td`); the dendrite-targeting inhibition learns by the *dendritic loss*

    Delta w_dend = -eta_dend a_dendI P^T

(positive plateaus strengthen the dendritic inhibition, negative ones weaken it, so that the
dendritic state, a local error, goes to 0 when the output is right). Updates are averaged over the
trials of a batch and returned with a gradient's sign (`updates = -Delta W`): train with
`optax.sgd(1.0)`; `simjax.fit` then restores the bounds and Dale signs.

With `compat_stale_nudge=True` the rule carries each hidden layer's last nudges from one trial to
the next (its state; batches of one trial reproduce the original code's carry-over, a larger batch
uses the nudges of its predecessor's last trial for all its trials).

**Fixed plateaus** (`phase="fixed"`, after the 2025 rule `BTSP_19` of EIANN): the backward phase is
`DendriticEINetwork.backward_fixed` (plateaus assigned at once per layer, the top-down weights of
hidden layer `l` either the learned `w_td` or, with `top_down_scale = c`, the symmetric feedback
`c w_ff[l + 1]^T`; `cancel=True` makes the dendritic inhibition cancel the forward top-down drive
exactly, so the dendrite carries `c (r~_above - r_above) w_ff[l + 1]^T`; `max_fraction` caps the
share of a layer's units with a positive plateau). With the eligibility `ET_i = clip(r_i, 0, 1)`
of the presynaptic activity after the nudges (`r / max(r)` first with `normalise_pre`: the peak
presynaptic rate set to 1, as the eLife rule normalises its inputs), a positive plateau gives the
BTSP change above and a negative plateau `P_j < 0` the anti-Hebbian change

    Delta W_ij = eta neg_discount ET_i P_j

The dendrite-targeting inhibition then learns from the forward dendritic state `D_fwd` (EIANN's
`DendriticLoss_6`): `Delta w_dend = -eta_dend a_dendI D_fwd^T`, so that it comes to cancel the
top-down drive of the forward pass.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from .._checks import as_float_array, as_optional_float, check_choice, check_positive, is_concrete
from ..networks._dendritic import DendriticEINetwork, Plateaus
from ..parameters._parameters import partition
from ..plasticity._btsp import scaled_rectified_sigmoid
from ..synapses._dale import Dale
from ._base import AbstractRule, AbstractStatelessRule


def btsp_delta(weight: Float[Array, "n_pre n_post"], pre: Float[Array, " n_pre"], plateau: Float[Array, " n_post"],
               eta: Float[ArrayLike, ""], w_max: Float[ArrayLike, ""], *, neg_discount: Float[ArrayLike, ""] = 0.25,
               dep_theta: Float[ArrayLike, ""] = 0.01, dep_width: Float[ArrayLike, ""] = 0.01
               ) -> Float[Array, "n_pre n_post"]:
    r"""The per-trial BTSP weight change of one projection (module docstring).

    **Arguments:**

    - `weight`: the weights `(n_pre, n_post)`.
    - `pre`: the presynaptic activity (after the nudge).
    - `plateau`: the postsynaptic plateaus `P`.
    - `eta`: the learning rate; `w_max`: the upper weight bound.
    - `neg_discount`: the eligibility discount of negative plateaus (0.25).
    - `dep_theta`, `dep_width`: threshold and half-width of `q_dep` (0.01, 0.01).

    **Returns:** `Delta W`.
    """
    discount = jnp.where(plateau > 0, 1.0, jnp.where(plateau < 0, neg_discount, 0.0))
    et = pre[:, None] * discount[None, :]
    q = scaled_rectified_sigmoid(et, dep_theta, dep_width)
    return eta * jnp.abs(plateau)[None, :] * ((w_max - weight) * et - weight * q)


def _per_layer(x: Array, i: int) -> Array:
    return x if x.ndim == 0 else x[i]


class BTSP(AbstractRule):
    r"""BTSP with top-down dendritic gating on a `simjax.networks.DendriticEINetwork` (module
    docstring). Defaults: the rates retuned for the clean backward phase of the 21-7-21 network.

    **Arguments:**

    - `eta_ff`: learning rates of the feed-forward projections (a scalar, or one per layer;
      default `(0.009, 0.0173)`).
    - `eta_td`: learning rates of the top-down projections (scalar or one per hidden layer; 0.069).
    - `eta_dend`: learning rates of the dendrite-targeting inhibition (scalar or one per hidden
      layer; 0.005).
    - `neg_discount`: eligibility discount of negative plateaus (in `[0, 1]`, 0.25).
    - `dep_theta`, `dep_width`: `q_dep`'s threshold (in `[0, 1]`) and half-width (`> 0`).
    - `train_hidden`: `False` freezes the hidden layers' plasticity (their feed-forward, top-down
      and dendritic-inhibition weights): only the output layer learns.
    - `compat_stale_nudge`: reproduce the original code's carry-over of the nudges (module
      docstring).
    - `plateau_temperature`: `None` (default) for the study's hard plateau assignment; `T > 0`
      for the smooth plateaus of `simjax.networks.DendriticEINetwork.backward`, through which
      the update is differentiable in the plateau thresholds (not part of the study).
    - `phase`: `"sequential"` (default: the 2022 backward phase, sequential plateau assignment)
      or `"fixed"` (the 2025 form, module docstring "Fixed plateaus"). The following apply to
      `"fixed"` only.
    - `top_down_scale`: `None` (the learned top-down weights `w_td`, by BTSP at `eta_td`) or the
      scale `c` of the symmetric feedback `c w_ff[l + 1]^T` (scalar or one per hidden layer).
    - `cancel`: the dendritic inhibition cancels the forward top-down drive exactly (`True`), or
      is the learned `DendI` population's (`False`).
    - `relu_gate`: no plateaus in hidden units silent in the forward pass (default `True`).
    - `max_fraction`: at most this share of a hidden layer's units (rounded, at least one) gets a
      positive plateau per trial (`None`: no cap).
    - `normalise_pre`: divide the presynaptic activity by its maximum before the eligibility.
    """

    eta_ff: Float[Array, "*layers"]
    eta_td: Float[Array, "*hidden"]
    eta_dend: Float[Array, "*hidden"]
    neg_discount: Float[Array, ""]
    dep_theta: Float[Array, ""]
    dep_width: Float[Array, ""]
    plateau_temperature: Float[Array, ""] | None
    top_down_scale: Float[Array, "*hidden"] | None
    train_hidden: bool = eqx.field(static=True)
    compat_stale_nudge: bool = eqx.field(static=True)
    phase: str = eqx.field(static=True)
    cancel: bool = eqx.field(static=True)
    relu_gate: bool = eqx.field(static=True)
    max_fraction: float | None = eqx.field(static=True)
    normalise_pre: bool = eqx.field(static=True)

    def __init__(self, eta_ff: Any = (0.009, 0.0173), eta_td: Any = 0.069, eta_dend: Any = 0.005,
                 neg_discount: Any = 0.25, dep_theta: Any = 0.01, dep_width: Any = 0.01, *, train_hidden: bool = True,
                 compat_stale_nudge: bool = False, plateau_temperature: Any = None, phase: str = "sequential",
                 top_down_scale: Any = None, cancel: bool = False, relu_gate: bool = True,
                 max_fraction: float | None = None, normalise_pre: bool = False):
        owner = "BTSP"
        check_choice("phase", phase, ("sequential", "fixed"), owner=owner)
        check_positive("top_down_scale", top_down_scale, owner=owner)
        if phase == "fixed" and (compat_stale_nudge or plateau_temperature is not None):
            raise ValueError("BTSP: compat_stale_nudge and plateau_temperature belong to the sequential backward "
                             "phase; phase='fixed' takes neither")
        for name, v in (("eta_ff", eta_ff), ("eta_td", eta_td), ("eta_dend", eta_dend)):
            check_positive(name, v, allow_zero=True, owner=owner)
        check_positive("dep_width", dep_width, owner=owner)
        check_positive("plateau_temperature", plateau_temperature, owner=owner)
        for name, v in (("neg_discount", neg_discount), ("dep_theta", dep_theta)):
            if is_concrete(v) and not np.all((np.asarray(v) >= 0) & (np.asarray(v) <= 1)):
                raise ValueError(f"{owner}: {name} must lie in [0, 1], got {v!r}")
        self.eta_ff, self.eta_td, self.eta_dend = map(as_float_array, (eta_ff, eta_td, eta_dend))
        self.neg_discount, self.dep_theta = as_float_array(neg_discount), as_float_array(dep_theta)
        self.dep_width = as_float_array(dep_width)
        self.plateau_temperature = as_optional_float(plateau_temperature)
        self.train_hidden, self.compat_stale_nudge = bool(train_hidden), bool(compat_stale_nudge)
        self.phase, self.cancel, self.relu_gate = phase, bool(cancel), bool(relu_gate)
        self.top_down_scale = as_optional_float(top_down_scale)
        if max_fraction is not None and not 0.0 < float(max_fraction) <= 1.0:
            raise ValueError(f"{owner}: max_fraction must lie in (0, 1], got {max_fraction!r}")
        self.max_fraction = None if max_fraction is None else float(max_fraction)
        self.normalise_pre = bool(normalise_pre)

    def _check(self, model):
        if not isinstance(model, DendriticEINetwork):
            raise TypeError(f"BTSP: acts on a simjax.networks.DendriticEINetwork (it needs the dendritic backward "
                            f"phase), got {type(model).__name__}")
        if not all(isinstance(p, Dale) for p in model.w_ff):
            raise ValueError("BTSP: the network's feed-forward projections must be bounded simjax.synapses.Dale "
                             "projections (the rule needs their upper bound W_max); build the network with "
                             "dale=True")
        layers, hidden = len(model.w_ff), len(model.w_td)
        scale = jnp.zeros(()) if self.top_down_scale is None else self.top_down_scale
        for name, value, count in (("eta_ff", self.eta_ff, layers), ("eta_td", self.eta_td, hidden),
                                   ("eta_dend", self.eta_dend, hidden), ("top_down_scale", scale, hidden)):
            if value.ndim > 1 or (value.ndim == 1 and value.shape[0] != count):
                raise ValueError(f"BTSP: {name} must be a scalar or have {count} entries for this network, got shape "
                                 f"{value.shape}")

    def init(self, model, key):
        if not self.compat_stale_nudge:
            return None
        self._check(model)
        dtype = model.w_ff[0].weight.dtype
        return tuple(jnp.zeros(n, dtype) for n in model.sizes[1:-1])

    def deltas(self, model: DendriticEINetwork, x: Float[Array, " n_in"], plateaus: Plateaus
               ) -> tuple[tuple[Array, ...], tuple[Array, ...], tuple[Array, ...]]:
        """The weight changes `Delta W` of one trial (feed-forward, top-down, dendritic inhibition)
        from its input `x` (last step) and its backward phase."""
        deltas = self._fixed_deltas if self.phase == "fixed" else self._sequential_deltas
        ff, td, dend = deltas(model, x, plateaus)
        if not self.train_hidden:
            ff = tuple(jnp.zeros_like(d) for d in ff[:-1]) + ff[-1:]
            td, dend = tuple(jnp.zeros_like(d) for d in td), tuple(jnp.zeros_like(d) for d in dend)
        return ff, td, dend

    def _sequential_deltas(self, model, x, plateaus):
        kw = dict(neg_discount=self.neg_discount, dep_theta=self.dep_theta, dep_width=self.dep_width)
        pres = (x, *plateaus.rate[:-1])
        ff = tuple(btsp_delta(p.dense(), pres[i], plateaus.plateau[i], _per_layer(self.eta_ff, i), p.max_magnitude,
                              **kw) for i, p in enumerate(model.w_ff))
        td = tuple(btsp_delta(p.dense(), plateaus.rate[i + 1], plateaus.plateau[i], _per_layer(self.eta_td, i),
                              p.max_magnitude, **kw) for i, p in enumerate(model.w_td))
        dend = tuple(-_per_layer(self.eta_dend, i) * plateaus.dend_i[i][:, None] * plateaus.plateau[i][None, :]
                     for i in range(len(model.w_dend)))
        return ff, td, dend

    def _fixed_deltas(self, model, x, plateaus):
        kw = dict(neg_discount=0.0, dep_theta=self.dep_theta, dep_width=self.dep_width)

        def delta(w, pre, plateau, eta, w_max):
            if self.normalise_pre:
                pre = pre / jnp.maximum(jnp.max(pre), jnp.finfo(pre.dtype).tiny)
            et = jnp.clip(pre, 0.0, 1.0)
            pos = btsp_delta(w, et, jnp.maximum(plateau, 0.0), eta, w_max, **kw)
            return pos + eta * self.neg_discount * et[:, None] * jnp.minimum(plateau, 0.0)[None, :]

        pres = (x, *plateaus.rate[:-1])
        ff = tuple(delta(p.dense(), pres[i], plateaus.plateau[i], _per_layer(self.eta_ff, i), p.max_magnitude)
                   for i, p in enumerate(model.w_ff))
        if self.top_down_scale is None:
            td = tuple(delta(p.dense(), plateaus.rate[i + 1], plateaus.plateau[i], _per_layer(self.eta_td, i),
                             p.max_magnitude) for i, p in enumerate(model.w_td))
        else:
            td = tuple(jnp.zeros_like(p.weight) for p in model.w_td)
        if self.cancel:
            dend = tuple(jnp.zeros_like(p.weight) for p in model.w_dend)
        else:
            dend = tuple(-_per_layer(self.eta_dend, i) * plateaus.dend_i[i][:, None] * plateaus.dendrite[i][None, :]
                         for i in range(len(model.w_dend)))
        return ff, td, dend

    def _backward(self, model, st, y, state):
        if self.phase == "sequential":
            return model.backward(st, y, state, self.plateau_temperature)
        top_down = None
        if self.top_down_scale is not None:
            top_down = tuple(_per_layer(self.top_down_scale, i) * model.w_ff[i + 1].dense().T
                             for i in range(len(model.w_td)))
        return model.backward_fixed(st, y, top_down, cancel=self.cancel, relu_gate=self.relu_gate,
                                    max_units=None if self.max_fraction is None else
                                    [max(1, round(self.max_fraction * n)) for n in model.sizes[1:-1]])

    def _apply(self, state, model, task, batch, key):
        self._check(model)
        outputs = task.forward(model, batch, key)
        final = outputs.final_state
        targets = jnp.asarray(batch.targets)
        x = jnp.asarray(batch.inputs)[-1]

        def one(st, y, xi):
            plateaus = self._backward(model, st, y, state)
            return self.deltas(model, xi, plateaus), plateaus

        (ff, td, dend), plateaus = jax.vmap(one)(final, targets, x)
        mean = lambda ds: tuple(jnp.mean(d, axis=0) for d in ds)  # noqa: E731
        params, _ = partition(model)
        updates = jax.tree.map(jnp.zeros_like, params)
        updates = eqx.tree_at(
            lambda u: tuple(p.weight for p in (*u.w_ff, *u.w_td, *u.w_dend)), updates,
            tuple(-d for d in (*mean(ff), *mean(td), *mean(dend))))
        aux = dict(task.metrics(outputs, batch))
        hidden = jnp.concatenate(plateaus.plateau[:-1], axis=-1)
        aux["hidden_plateaus"] = jnp.mean(jnp.any(hidden != 0, axis=-1).astype(hidden.dtype))
        new_state = None if state is None else tuple(n[-1] for n in plateaus.nudge[:-1])
        return task.loss(outputs, batch), updates, aux, new_state

    def __call__(self, model, task, batch, key):
        loss, updates, aux, _ = self._apply(self.init(model, None), model, task, batch, key)
        return loss, updates, aux

    def step(self, state, model, task, batch, key):
        return self._apply(state, model, task, batch, key)


class NormalizedHebbian(AbstractStatelessRule):
    r"""The Hebbian baseline of the BTSP study (Gjorgjieva-style Hebb, EIANN's `GjorgjievaHebb`) on
    the feed-forward projections of a `simjax.networks.DendriticEINetwork`: per trial, with the
    presynaptic activity `x` and postsynaptic activity `y` of the forward pass (last step),

        W'_ij = W_ij + eta x_i y_j,      W_ij <- scale W'_ij / sum_i W'_ij

    (each postsynaptic unit's incoming weights renormalised to the L1 norm `scale` of its layer).
    Unsupervised, as in the study: no target enters, so the output units' assignment to patterns
    is arbitrary. With `supervised=True` the output layer's `y` is the target instead (a
    teacher-clamped Hebbian readout; the hidden layers stay unsupervised). The Hebbian term is
    averaged over the trials of a batch before the renormalisation, and the change is returned as
    `updates = -(W_new - W)`: train with
    `optax.sgd(1.0)` (`simjax.fit` then restores the bounds). The dendritic projections do not
    change.

    **Arguments:**

    - `eta`: the Hebbian rate (0.955).
    - `scale`: per layer, the L1 norm of each unit's incoming weights (default `(5.998, 0.485)`, the
      study's values for the 21-7-21 network; a scalar applies to every layer).
    - `supervised`: clamp the output activity to the target.
    """

    eta: Float[Array, ""]
    scale: Float[Array, "*layers"]
    supervised: bool = eqx.field(static=True)

    def __init__(self, eta: Any = 0.955, scale: Any = (5.998, 0.485), *, supervised: bool = False):
        check_positive("eta", eta, allow_zero=True, owner="NormalizedHebbian")
        check_positive("scale", scale, owner="NormalizedHebbian")
        self.eta, self.scale = as_float_array(eta), as_float_array(scale)
        self.supervised = bool(supervised)

    def __call__(self, model, task, batch, key):
        if not isinstance(model, DendriticEINetwork):
            raise TypeError(f"NormalizedHebbian: acts on a simjax.networks.DendriticEINetwork, got "
                            f"{type(model).__name__}")
        layers = len(model.w_ff)
        if self.scale.ndim > 1 or (self.scale.ndim == 1 and self.scale.shape[0] != layers):
            raise ValueError(f"NormalizedHebbian: scale must be a scalar or have {layers} entries for this network, "
                             f"got shape {self.scale.shape}")
        outputs = task.forward(model, batch, key)
        rates = outputs.final_state.rate
        posts = list(rates)
        if self.supervised:
            posts[-1] = jnp.asarray(batch.targets, rates[-1].dtype)
        pres = (jnp.asarray(batch.inputs)[-1], *rates[:-1])
        new = []
        for i, p in enumerate(model.w_ff):
            w = p.dense()
            grown = w + self.eta * jnp.mean(pres[i][:, :, None] * posts[i][:, None, :], axis=0)
            norm = jnp.sum(jnp.abs(grown), axis=0, keepdims=True)
            new.append(_per_layer(self.scale, i) * grown / jnp.maximum(norm, jnp.finfo(w.dtype).tiny) - w)
        params, _ = partition(model)
        updates = jax.tree.map(jnp.zeros_like, params)
        updates = eqx.tree_at(lambda u: tuple(p.weight for p in u.w_ff), updates, tuple(-d for d in new))
        return task.loss(outputs, batch), updates, dict(task.metrics(outputs, batch))
