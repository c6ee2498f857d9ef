r"""Layered E/I rate network with dendrites: the network of dendritic target propagation and BTSP
(Galloni, Peddada & Milstein, SNUFA 2022; Galloni, Peddada, Chennawar & Milstein 2025, bioRxiv
10.1101/2025.05.22.655599; the EIANN code).

`sizes = (n_in, h_1, ..., h_L, n_out)`. Every layer `l = 1..L+1` has an excitatory population
(`TwoCompartment` neurons: soma and apical dendrite) and a soma-targeting feedback-inhibitory
population `FBI_l` (one unit); every hidden layer also has dendrite-targeting interneurons
`DendI_l` (`n_dend_i` units). Projections:

| projection | shape | sign, bounds | learns |
| --- | --- | --- | --- |
| `w_ff[l]`: `E_{l-1} -> E_l` (soma) | `(n_{l-1}, n_l)` | `[0, w_ff_max[l]]` | BTSP |
| `w_td[l]`: `E_{l+1} -> E_l` (dendrite) | `(n_{l+1}, n_l)` | `[0, w_td_max[l]]` | BTSP |
| `w_dend[l]`: `DendI_l -> E_l` (dendrite) | `(n_dend_i, n_l)` | `<= 0` | dendritic loss |
| `E_l -> FBI_l`, `E_l -> DendI_l` | all-to-all | `+1`, fixed | |
| `FBI_l -> E_l` (soma) | all-to-all | `w_fbi[l] <= 0`, fixed | |

The learned projections are `simjax.synapses.Dale` projections (sign and upper bound restored
after every update by `simjax.fit`). With `dale=False` the feed-forward projections are plain
`simjax.synapses.Dense` matrices (any sign, no bound): the unconstrained network of a backprop
baseline (BTSP needs the bounds and refuses it).

**Smooth forward pass.** `SharpSoftplus(beta)`, `phi(x) = softplus(beta x) / beta`, is a
smooth ReLU (it tends to ReLU as `beta -> infinity`) for the neurons' `activation`: with ReLU, a
unit whose somatic state is below zero on a pattern passes no gradient, and with strong output
feedback inhibition most output units sit there, so gradient descent through the ReLU network
can stall. EIANN's backprop baselines use `beta = 10` and `100`.

**Forward (somatic) dynamics.** Each trial starts from rest; each step updates the layers in
order, and within a layer first `E_l` then `FBI_l` (forward Euler, as EIANN):

    s_l   <- s_l + (dt / tau_l) (-s_l + bias_l + r_{l-1} w_ff[l] + w_fbi[l] sum(f_l(previous step)))
    r_l    = phi(s_l)
    g_l   <- g_l + (dt / tau_l) (-g_l + sum(r_l)),   f_l = relu(g_l)

with `r_0` the input of the step (in continuous time, `vector_field`: `tau ds/dt = -s + ...` with
every activity a function of the current states). Top-down and dendrite-targeting projections do not act in the
forward pass. The readout is `r_{L+1}`; with `dt = 1`, `tau = 3` and 10 steps this is the
published network (not fully at equilibrium).

**Backward (dendritic) phase** (`backward`, the Nov-2022 EIANN semantics): the output dendrites
receive the error `D = clip(target - r_out, -1, 1)`; a unit with `D > theta_plus` has a
positive plateau (`P = D`) and its activity is nudged to `phi(s + D)`; with `D < theta_minus`
a negative plateau (`P = D`, no nudge). Then for each hidden layer, top-down: with the somatic
nudges `n` (0 at first), `r = phi(s + n)`, `a = relu(sum(r))` per `DendI` unit, and the
dendritic state `D = clip(r_above w_td + a w_dend, -1, 1)` (top-down excitation minus
dendritic inhibition, from the nudged activity `r_above` of the layer above). The units are
visited once in the order of decreasing initial `D` (`jnp.argsort`); at its turn a unit with
the *current* `D > theta_plus` gets a positive plateau `P = D` and nudge `n = D`, and `D` is
recomputed (later units see the dendritic inhibition the plateau recruited: a soft
winner-take-all); a unit with `D < theta_minus` gets a negative plateau `P = D`. The thresholds
are the `TwoCompartment` neurons' `theta_plus`, `theta_minus`.

With `stale_nudge` (the original code's carry-over), the first dendritic state of each hidden layer
(and so the visiting order) is computed with the nudges left over from the previous trial.

**Fixed plateaus** (`backward_fixed`, after the 2025 EIANN code, where the plateaus are fixed at
the first backward step instead of assigned one unit at a time): the output dendrites receive
`D = clip(target - r_out, -1, 1)` and every output unit is nudged to `phi(s + D)` (plateaus where
`D > theta_plus` or `D < theta_minus`). Then for each hidden layer, top-down, with top-down
weights `B` (the learned `w_td`, or any given matrices such as the symmetric `c w_ff[l + 1]^T`):

    D_fwd = clip(r_above B + a w_dend, -1, 1)                  (the forward dendritic state)
    D     = clip(r~_above B + a w_dend, -1, 1)    or, with cancel,    clip((r~_above - r_above) B, -1, 1)
    P     = D  where (D > theta_plus and among the max_units largest D, or D < theta_minus)
               and the unit is active in the forward pass (relu_gate);  0 elsewhere
    r~    = phi(s + P)

with `r_above`, `r~_above` the forward and nudged activity of the layer above and `a` the `DendI`
activity of the forward pass. `cancel` stands for dendrite-targeting inhibition that has learned to
cancel the forward top-down drive exactly, so the dendrite carries the top-down image of the
change the nudges made above: the error, propagated down as in target propagation. A negative
plateau lowers the unit's nudged activity (so its own outgoing synapses are not eligible).

**Smooth plateaus** (`temperature = T`, not part of the study): the threshold comparisons become
logistic gates `g+ = sigmoid((D - theta_plus) / T)`, `g- = sigmoid((theta_minus - D) / T)`, and
every choice a mixture: `P = (g+ + g-) D`, nudge `n <- g+ D + (1 - g+) n`, the dendritic state
after a unit's turn `g+ D_fresh + (1 - g+) D`, the nudged output activity
`g+ phi(s + D) + (1 - g+) r`. As `T -> 0` this is the hard assignment (away from ties); for
`T > 0` the plateaus, and everything learned from them, are differentiable in the thresholds
(with the hard assignment their gradient is zero). The visiting order stays the `argsort` of
the initial dendritic state (piecewise constant; no gradient flows through it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import as_float_array, check_int, check_positive, is_concrete
from .._simulate.output import Record
from ..neurons._two_compartment import TwoCompartment
from ..synapses._dale import Dale
from ..synapses._dense import Dense
from ._base import AbstractNetwork


class DendriticState(eqx.Module):
    """Per layer (hidden layers, then the output): somatic state `soma`, activity `rate`, and the
    feedback-inhibitory population's state `fbi_soma` and activity `fbi_rate`."""

    soma: tuple[Float[Array, "..."], ...]
    rate: tuple[Float[Array, "..."], ...]
    fbi_soma: tuple[Float[Array, "..."], ...]
    fbi_rate: tuple[Float[Array, "..."], ...]


class Plateaus(eqx.Module):
    """The result of the backward phase for one trial, per layer (hidden layers, then the output):
    the plateaus `plateau` (`P`: positive, negative or 0), the activities after the nudge
    `rate`, the somatic nudges `nudge`, and per hidden layer the dendrite-targeting interneurons'
    final activity `dend_i` and initial dendritic state `dendrite` (before any plateau)."""

    plateau: tuple[Float[Array, "..."], ...]
    rate: tuple[Float[Array, "..."], ...]
    nudge: tuple[Float[Array, "..."], ...]
    dend_i: tuple[Float[Array, "..."], ...]
    dendrite: tuple[Float[Array, "..."], ...]


class SharpSoftplus(eqx.Module):
    r"""`phi(x) = softplus(beta x) / beta`: a smooth ReLU (module docstring), for a
    `TwoCompartment`'s `activation` when the network is trained by gradient descent.

    **Arguments:**

    - `beta`: the sharpness (`> 0`; `beta -> infinity` gives ReLU).
    """

    beta: float = eqx.field(static=True)

    def __init__(self, beta: float = 10.0):
        check_positive("beta", beta, owner="SharpSoftplus")
        self.beta = float(beta)

    def __call__(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        return jax.nn.softplus(self.beta * x) / self.beta


def _as_tuple(value: Any, count: int, name: str, owner: str) -> tuple:
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{owner}: {name} needs {count} entries (one per layer it applies to), got {len(value)}")
        return tuple(value)
    return (value,) * count


class DendriticEINetwork(AbstractNetwork):
    r"""The dendritic E/I network (module docstring).

    **Arguments:**

    - `sizes`: `(n_in, h_1, ..., h_L, n_out)` (at least one hidden layer).
    - `key`: draws the initial learned weights.
    - `neurons`: one `TwoCompartment` per layer (hidden layers, then the output), or one for all
      hidden layers; `tau`, `bias`, the plateau thresholds (in `[dend_min, dend_max]`) and the
      activation are used. Default: `tau = 3`, `theta = (0.0996, -0.163)` in the hidden layers
      and `(0.450, -0.724)` at the output (thresholds retuned for the clean backward phase).
    - `w_ff_init`: per layer, the upper end `c` of the initial `U(0, c)` feed-forward weights
      (default `(0.0617, 0.1566)` for one hidden layer; a scalar applies to every layer).
    - `w_ff_max`: per layer, the feed-forward upper bounds (default `(3.738, 3.161)`).
    - `w_td_init`: per hidden layer, `(low, high)` of the initial `U(low, high)` top-down
      weights (default `(0.109, 0.269)`).
    - `w_td_max`: per hidden layer, the top-down upper bound (default 3.106).
    - `w_dend_init`: per hidden layer, the initial `DendI -> E` weight (`<= 0`, default -0.064).
    - `w_fbi`: per layer, the fixed `FBI -> E` weight (`<= 0`; default `(-0.225, -5.90)`).
    - `n_dend_i`: units per dendrite-targeting population (default 1; each feedback-inhibitory
      population is one unit: identical all-to-all units add up to one).
    - `dale`: `False` makes the feed-forward projections unconstrained `Dense` matrices (same
      initial values; for backprop baselines without sign constraints).
    """

    w_ff: tuple[Dale | Dense, ...]
    w_td: tuple[Dale, ...]
    w_dend: tuple[Dale, ...]
    w_fbi: tuple[Float[Array, ""], ...]
    neurons: tuple[TwoCompartment, ...]
    trainable: tuple[str, ...] = eqx.field(static=True)
    local_prepare: ClassVar[bool] = True

    def __init__(self, sizes: Sequence[int] = (21, 7, 21), *, key: PRNGKeyArray,
                 neurons: TwoCompartment | Sequence[TwoCompartment] | None = None,
                 w_ff_init: Any = None, w_ff_max: Any = None, w_td_init: Any = (0.109, 0.269), w_td_max: Any = 3.106,
                 w_dend_init: Any = -0.064, w_fbi: Any = None, n_dend_i: int = 1, dale: bool = True):
        owner = "DendriticEINetwork"
        sizes = tuple(sizes)
        if len(sizes) < 3:
            raise ValueError(f"{owner}: sizes must be (n_in, h_1, ..., h_L, n_out) with at least one hidden layer, "
                             f"got {sizes}")
        for i, n in enumerate(sizes):
            check_int(f"sizes[{i}]", n, owner=owner)
        n_dend_i = check_int("n_dend_i", n_dend_i, owner=owner)
        layers, hidden = len(sizes) - 1, len(sizes) - 2
        if neurons is None:
            neurons = (TwoCompartment(),) * hidden + (TwoCompartment(theta_plus=0.450, theta_minus=-0.724),)
        elif isinstance(neurons, TwoCompartment):
            neurons = (neurons,) * hidden + (TwoCompartment(theta_plus=0.450, theta_minus=-0.724),)
        neurons = tuple(neurons)
        if len(neurons) != layers or not all(isinstance(n, TwoCompartment) for n in neurons):
            raise ValueError(f"{owner}: neurons must be {layers} simjax.neurons.TwoCompartment (one per layer after "
                             f"the input), got {neurons!r}")
        for i, n in enumerate(neurons):
            for name in ("theta_plus", "theta_minus"):
                theta = getattr(n, name)
                if is_concrete(theta):
                    lo, hi = np.asarray(n.dend_min), np.asarray(n.dend_max)
                    t = np.asarray(theta)
                    if np.any(t < lo) or np.any(t > hi):
                        raise ValueError(f"{owner}: layer {i + 1}'s plateau threshold {name}={float(np.max(t))!r} "
                                         f"lies outside the dendritic range [{float(lo)}, {float(hi)}] ([-1, 1] by "
                                         "default), so it can never be crossed")
        defaults_ff = (0.0617, 0.1566) if layers == 2 else 0.1
        w_ff_init = _as_tuple(defaults_ff if w_ff_init is None else w_ff_init, layers, "w_ff_init", owner)
        w_ff_max = _as_tuple((3.738, 3.161) if w_ff_max is None and layers == 2 else
                             (3.0 if w_ff_max is None else w_ff_max), layers, "w_ff_max", owner)
        w_fbi = _as_tuple((-0.225, -5.90) if w_fbi is None and layers == 2 else
                          (-1.0 if w_fbi is None else w_fbi), layers, "w_fbi", owner)
        if isinstance(w_td_init, tuple) and len(w_td_init) == 2 and not isinstance(w_td_init[0], (tuple, list)):
            w_td_init = (w_td_init,) * hidden
        w_td_init = _as_tuple(w_td_init, hidden, "w_td_init", owner)
        w_td_max = _as_tuple(w_td_max, hidden, "w_td_max", owner)
        w_dend_init = _as_tuple(w_dend_init, hidden, "w_dend_init", owner)
        for name, values in (("w_ff_init", w_ff_init), ("w_ff_max", w_ff_max), ("w_td_max", w_td_max)):
            for v in values:
                check_positive(name, v, allow_zero=name == "w_ff_init", owner=owner)
        for i, (lo, hi) in enumerate(w_td_init):
            if not 0.0 <= lo <= hi:
                raise ValueError(f"{owner}: w_td_init[{i}] must be (low, high) with 0 <= low <= high, got {(lo, hi)}")
        for name, values in (("w_dend_init", w_dend_init), ("w_fbi", w_fbi)):
            for v in values:
                if is_concrete(v) and np.any(np.asarray(v) > 0):
                    raise ValueError(f"{owner}: {name} are inhibitory weights and must be <= 0, got {v!r}")
        for i in range(layers):
            if w_ff_init[i] > w_ff_max[i]:
                raise ValueError(f"{owner}: the bounds are reversed: w_ff_init[{i}]={w_ff_init[i]!r} exceeds "
                                 f"w_ff_max[{i}]={w_ff_max[i]!r}")
        keys = jax.random.split(key, 2 * layers)
        dtype = jnp.result_type(float)
        self.w_ff = tuple(
            Dale(jax.random.uniform(keys[i], (sizes[i], sizes[i + 1]), dtype, 0.0, w_ff_init[i]),
                 np.ones(sizes[i], bool), w_ff_max[i]) for i in range(layers))
        if not dale:
            self.w_ff = tuple(Dense(p.weight) for p in self.w_ff)
        self.w_td = tuple(
            Dale(jax.random.uniform(keys[layers + i], (sizes[i + 2], sizes[i + 1]), dtype, *w_td_init[i]),
                 np.ones(sizes[i + 2], bool), w_td_max[i]) for i in range(hidden))
        self.w_dend = tuple(Dale(jnp.full((n_dend_i, sizes[i + 1]), w_dend_init[i], dtype), np.zeros(n_dend_i, bool))
                            for i in range(hidden))
        self.w_fbi = tuple(as_float_array(w) for w in w_fbi)
        self.neurons = neurons
        self.trainable = ("w_ff", "w_td", "w_dend")

    @property
    def sizes(self) -> tuple[int, ...]:
        """Units per layer, input first."""
        return (self.w_ff[0].shape[0], *(p.shape[1] for p in self.w_ff))

    @property
    def n_in(self) -> int:
        return self.sizes[0]

    @property
    def n_out(self) -> int:
        return self.sizes[-1]

    def init(self, key, batch_shape):
        del key
        dtype = self.w_ff[0].weight.dtype
        zeros = tuple(jnp.zeros((*batch_shape, n), dtype) for n in self.sizes[1:])
        fbi = tuple(jnp.zeros((*batch_shape, 1), dtype) for _ in self.sizes[1:])
        return DendriticState(soma=zeros, rate=zeros, fbi_soma=fbi, fbi_rate=fbi)

    def prepare(self, inputs, dt):
        del dt
        return inputs

    def _record(self, state: DendriticState) -> Record:
        return Record(spikes=jnp.concatenate(state.rate, axis=-1), v=jnp.concatenate(state.soma, axis=-1),
                      readout=state.rate[-1])

    def step(self, state, prepared_t, dt):
        pre = prepared_t
        soma, rate, fbi_soma, fbi_rate = [], [], [], []
        for i, (proj, neuron) in enumerate(zip(self.w_ff, self.neurons)):
            k = dt / neuron.tau
            drive = neuron.bias + proj(pre) + self.w_fbi[i] * jnp.sum(state.fbi_rate[i], axis=-1, keepdims=True)
            s = state.soma[i] + k * (drive - state.soma[i])
            r = neuron.phi(s)
            g = state.fbi_soma[i] + k * (jnp.sum(r, axis=-1, keepdims=True) - state.fbi_soma[i])
            soma.append(s), rate.append(r), fbi_soma.append(g), fbi_rate.append(jax.nn.relu(g))
            pre = r
        new = DendriticState(soma=tuple(soma), rate=tuple(rate), fbi_soma=tuple(fbi_soma), fbi_rate=tuple(fbi_rate))
        return new, self._record(new)

    def step_fn(self, dt):
        return lambda state, prepared_t: self.step(state, prepared_t, dt)

    def vector_field(self, t, state, inputs_t):
        del t
        pre = inputs_t
        d_soma, d_fbi = [], []
        for i, (proj, neuron) in enumerate(zip(self.w_ff, self.neurons)):
            fbi = jax.nn.relu(state.fbi_soma[i])
            drive = neuron.bias + proj(pre) + self.w_fbi[i] * jnp.sum(fbi, axis=-1, keepdims=True)
            rate = neuron.phi(state.soma[i])
            d_soma.append((drive - state.soma[i]) / neuron.tau)
            d_fbi.append((jnp.sum(rate, axis=-1, keepdims=True) - state.fbi_soma[i]) / neuron.tau)
            pre = rate
        # the activities are functions of the somatic states (observe recomputes them)
        return DendriticState(soma=tuple(d_soma), rate=tuple(jnp.zeros_like(r) for r in state.rate),
                              fbi_soma=tuple(d_fbi), fbi_rate=tuple(jnp.zeros_like(f) for f in state.fbi_rate))

    def observe(self, state):
        rate = tuple(n.phi(s) for n, s in zip(self.neurons, state.soma))
        fbi = tuple(jax.nn.relu(g) for g in state.fbi_soma)
        return self._record(DendriticState(soma=state.soma, rate=rate, fbi_soma=state.fbi_soma, fbi_rate=fbi))

    def dendrite(self, layer: int, rate: Float[Array, " n"], above: Float[Array, " n_above"]
                 ) -> tuple[Float[Array, " n"], Float[Array, " n_dend_i"]]:
        """The dendritic state `clip(above w_td + a w_dend, dend_min, dend_max)` of hidden layer
        `layer` (0-based) and its `DendI` activity `a = relu(sum(rate))`, from the layer's activity
        `rate` and the (nudged) activity `above` of the layer above."""
        dend_i = self._dend_i(layer, rate)
        return self.neurons[layer].dendrite_target(self.w_td[layer](above) + self.w_dend[layer](dend_i)), dend_i

    def _dend_i(self, layer: int, rate: Float[Array, " n"]) -> Float[Array, " n_dend_i"]:
        """The `DendI` activity `relu(sum(rate))` of hidden layer `layer`, one value per unit."""
        return jax.nn.relu(jnp.sum(rate, axis=-1, keepdims=True) * jnp.ones(self.w_dend[layer].shape[0], rate.dtype))

    def backward(self, state: DendriticState, target: Float[ArrayLike, " n_out"],
                 stale_nudge: tuple[Float[Array, "..."], ...] | None = None,
                 temperature: Float[ArrayLike, ""] | None = None) -> Plateaus:
        """The backward (dendritic) phase of one trial (module docstring).

        **Arguments:**

        - `state`: the network state after the forward pass of the trial (no batch axes).
        - `target`: the output target.
        - `stale_nudge`: the hidden layers' nudges left over from the previous trial (the original
          code's carry-over); `None`: the clean semantics.
        - `temperature`: `None` (default): the hard plateau assignment; `T > 0`: the smooth
          plateaus of the module docstring.

        **Returns:** the `Plateaus` of every layer.
        """
        out = self.neurons[-1]
        d_out = jnp.clip(jnp.asarray(target) - state.rate[-1], -1.0, 1.0)

        def gates(d, neuron):
            if temperature is None:
                return (d > neuron.theta_plus).astype(d.dtype), (d < neuron.theta_minus).astype(d.dtype)
            return (jax.nn.sigmoid((d - neuron.theta_plus) / temperature),
                    jax.nn.sigmoid((neuron.theta_minus - d) / temperature))

        def mix(g, a, b):  # a where g = 1, b where g = 0 (a select for the hard gates)
            return jnp.where(g > 0, a, b) if temperature is None else g * a + (1.0 - g) * b

        g_pos, g_neg = gates(d_out, out)
        p_out = mix(g_pos + g_neg, d_out, jnp.zeros_like(d_out))
        nudge_out = mix(g_pos, d_out, jnp.zeros_like(d_out))
        r_out = mix(g_pos, out.phi(state.soma[-1] + d_out), state.rate[-1])
        plateaus, rates, nudges, dend_is, dendrites = [p_out], [r_out], [nudge_out], [], []
        above = r_out
        for layer in reversed(range(len(self.w_td))):
            neuron, soma = self.neurons[layer], state.soma[layer]
            n = soma.shape[-1]
            first = jnp.zeros_like(soma) if stale_nudge is None else stale_nudge[layer]
            d0, _ = self.dendrite(layer, neuron.phi(soma + first), above)
            order = jnp.argsort(-jax.lax.stop_gradient(d0))

            def visit(i, carry, layer=layer, neuron=neuron, soma=soma, above=above, order=order):
                d, nudge, plateau = carry
                j = order[i]
                dj = d[j]
                pos, neg = gates(dj, neuron)
                plateau = plateau.at[j].set(mix(pos + neg, dj, jnp.zeros_like(dj)))
                nudge = nudge.at[j].set(mix(pos, dj, nudge[j]))
                fresh, _ = self.dendrite(layer, neuron.phi(soma + nudge), above)
                return mix(pos, fresh, d), nudge, plateau

            zero = jnp.zeros_like(soma)
            _, nudge, plateau = jax.lax.fori_loop(0, n, visit, (d0, zero, zero))
            rate = neuron.phi(soma + nudge)
            _, dend_i = self.dendrite(layer, rate, above)
            plateaus.insert(0, plateau), rates.insert(0, rate), nudges.insert(0, nudge)
            dend_is.insert(0, dend_i), dendrites.insert(0, d0)
            above = rate
        return Plateaus(plateau=tuple(plateaus), rate=tuple(rates), nudge=tuple(nudges), dend_i=tuple(dend_is),
                        dendrite=tuple(dendrites))

    def backward_fixed(self, state: DendriticState, target: Float[ArrayLike, " n_out"],
                       top_down: tuple[Float[Array, "..."], ...] | None = None, *,
                       cancel: bool = False, relu_gate: bool = True,
                       max_units: int | Sequence[int] | None = None) -> Plateaus:
        """The backward (dendritic) phase with plateaus fixed at once per layer (the 2025 EIANN
        semantics, module docstring "Fixed plateaus").

        **Arguments:**

        - `state`: the network state after the forward pass of the trial (no batch axes).
        - `target`: the output target.
        - `top_down`: per hidden layer, the top-down weights `(n_above, n)` (for example
          `scale * w_ff[l + 1]^T`, the symmetric feedback); `None` uses the learned `w_td`.
        - `cancel`: `True`: the dendritic inhibition cancels the top-down drive of the forward
          pass exactly (`D = B r~_above - B r_above`); `False`: it is the `DendI` population's
          (`D = B r~_above + a w_dend`).
        - `relu_gate`: forbid plateaus in hidden units that are silent in the forward pass.
        - `max_units`: at most this many positive plateaus per hidden layer (those of the largest
          dendritic states; EIANN's `max_pop_fraction`; one per hidden layer or one for all);
          `None`: no limit.

        **Returns:** the `Plateaus` of every layer; `dendrite` holds each hidden layer's dendritic
        state of the forward pass (top-down drive of the unnudged activity plus the dendritic
        inhibition: the signal the dendritic loss drives to zero).
        """
        out = self.neurons[-1]
        d_out = jnp.clip(jnp.asarray(target) - state.rate[-1], -1.0, 1.0)
        p_out = jnp.where((d_out > out.theta_plus) | (d_out < out.theta_minus), d_out, 0.0)
        r_out = out.phi(state.soma[-1] + d_out)
        plateaus, rates, nudges, dend_is, dendrites = [p_out], [r_out], [d_out], [], []
        above, above_free = r_out, state.rate[-1]
        for layer in reversed(range(len(self.w_td))):
            neuron, soma, free = self.neurons[layer], state.soma[layer], state.rate[layer]
            w = self.w_td[layer].dense() if top_down is None else top_down[layer]
            dend_i = self._dend_i(layer, free)
            inhibition = self.w_dend[layer](dend_i)
            forward = neuron.dendrite_target(above_free @ w + inhibition)
            d = neuron.dendrite_target(above @ w - above_free @ w if cancel else above @ w + inhibition)
            allowed = free > 0 if relu_gate else jnp.ones_like(free, bool)
            pos = d > neuron.theta_plus
            k = max_units[layer] if isinstance(max_units, (list, tuple)) else max_units
            if k is not None and k < d.shape[-1]:
                pos = pos & (d >= jnp.sort(d)[-k])
            plateau = jnp.where((pos | (d < neuron.theta_minus)) & allowed, d, 0.0)
            rate = neuron.phi(soma + plateau)
            plateaus.insert(0, plateau), rates.insert(0, rate), nudges.insert(0, plateau)
            dend_is.insert(0, dend_i), dendrites.insert(0, forward)
            above, above_free = rate, free
        return Plateaus(plateau=tuple(plateaus), rate=tuple(rates), nudge=tuple(nudges), dend_i=tuple(dend_is),
                        dendrite=tuple(dendrites))
