r"""Perturbation estimators of the gradient: weight perturbation and node perturbation.

Both correlate the change of the loss caused by random noise with the noise itself, and need no
backward pass through the network's dynamics (Williams 1992; Werfel, Xie & Seung 2005).

**Weight perturbation** perturbs every trainable parameter, `theta + sigma xi` with
`xi ~ N(0, I)`, and estimates

    g ~ (1/S) sum_s c_s xi_s,      c_s = (L(theta + sigma xi_s) - L(theta - sigma xi_s)) / (2 sigma)

(`antithetic=True`, the central difference) or `c_s = (L(theta + sigma xi_s) - L(theta)) / sigma`.
Since `c_s = g . xi_s + O(sigma^2)` and `E[xi xi^T] = I`, the estimate is unbiased as
`sigma -> 0`; its variance grows with the number of parameters `P` (for a quadratic loss and
central differences, exactly `E|g_hat - g|^2 = (P + 1) |g|^2` per sample).

**Node perturbation** perturbs the units instead: every neuron's drive at every time step, and
every readout value at every time step, gets independent noise `sigma xi` (one noise value per
unit, trial and step). With the loss change coefficients `c_s` as above, `(1/S) sum_s c_s xi_s`
estimates `delta = dL/d(drive)` at every unit, and the update of the weights that feed the unit
is that estimate times their presynaptic activity,

    g_W ~ sum_t pre_t^T delta_hat_t

(Werfel, Xie & Seung 2005; Fiete & Seung 2006). Its variance grows with the number of perturbed
units, not with the number of weights. The presynaptic activity is that of the unperturbed pass.

Mechanism. `PerturbedNetwork` wraps any clock-driven network: at each step it replaces every
neuron model inside it by a version that adds the step's noise to the drive it receives. In the
"credit" mode used for the update, the unperturbed network is run and differentiated with a
vector-Jacobian product in which every unit passes back its estimated `delta_hat_t` instead of
the error arriving from downstream; the readout receives `delta_hat` of the readout units.
Autodiff then forms exactly `sum_t pre_t^T delta_hat_t` for every projection feeding a unit
(dense, sparse, Dale, masked recurrent weights alike), and the readout weights get their
estimate through the readout's own leak (an eligibility trace). Nothing flows back through time
or through other units. Neuron parameters (time constants, thresholds) are not estimated: a model
whose `trainable` includes them raises.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PyTree

from .._checks import as_float_array, check_int, check_positive
from ..networks._base import AbstractNetwork, AbstractWrappedNetwork
from ..neurons._base import AbstractNeuron, AbstractRateNeuron, AbstractSpikingNeuron
from ..parameters._parameters import partition, trainable_filter
from ._base import AbstractStatelessRule

# ---------------------------------------------------------------------------------------------------
# Shared validation
# ---------------------------------------------------------------------------------------------------


def _check_settings(owner, sigma, samples, fields):
    check_positive("sigma", sigma, owner=owner)
    check_int("samples", samples, owner=owner)
    if fields is not None and (isinstance(fields, str) or not all(isinstance(f, str) for f in fields)):
        raise TypeError(f"{owner}: fields must be a tuple of field names, got {fields!r}")


def _selection(model: AbstractNetwork, fields: tuple[str, ...] | None, owner: str) -> PyTree[bool]:
    """A tree of bools shaped like `params(model)`: True where this rule estimates the update."""
    params = partition(model)[0]
    leaves = jax.tree.leaves(params)
    if not leaves:
        raise ValueError(f"{owner}: {type(model).__name__} has no trainable parameters (its trainable "
                         f"fields are {tuple(model.trainable)!r}); nothing to estimate")
    mask = jax.tree.map(lambda _: True, params)
    if fields is None:
        return mask
    trainable = model.trainable
    names = {f.name for f in dataclasses.fields(model)}
    for name in fields:
        if name not in names:
            raise ValueError(f"{owner}: {type(model).__name__} has no field {name!r}")
        if name not in trainable:
            raise ValueError(f"{owner}: field {name!r} is frozen ({type(model).__name__}.trainable is "
                             f"{tuple(trainable)!r}); add it to trainable or choose among those fields")
    for f in dataclasses.fields(model):
        if f.name in fields or f.metadata.get("static", False):
            continue
        off = jax.tree.map(lambda _: False, getattr(mask, f.name))
        mask = eqx.tree_at(lambda m: getattr(m, f.name), mask, off, is_leaf=lambda x: x is None)
    if not any(jax.tree.leaves(mask)):
        raise ValueError(f"{owner}: fields {tuple(fields)!r} hold no trainable arrays")
    return mask


def _normal(key, shape, dtype):
    """`jax.random.normal(key, shape, dtype)` (same values), drawn flat: much cheaper to compile."""
    return jax.random.normal(key, (math.prod(shape),), dtype).reshape(shape)


def _masked(tree, mask):
    return jax.tree.map(lambda x, m: x if m else jnp.zeros_like(x), tree, mask)


def _need_key(key, owner):
    if key is None:
        raise ValueError(f"{owner}: needs a PRNG key (key=jax.random.key(...)) to draw its perturbations")


# ---------------------------------------------------------------------------------------------------
# Weight perturbation
# ---------------------------------------------------------------------------------------------------


class AbstractPerturbationRule(AbstractStatelessRule):
    """A rule that estimates the gradient from the loss change under Gaussian noise: the settings and
    constructor shared by weight and node perturbation.

    **Arguments:**

    - `sigma`: noise standard deviation (> 0).
    - `samples`: perturbations averaged per update.
    - `antithetic`: central differences (`+sigma xi` and `-sigma xi`, bias `O(sigma^2)`, two
      passes per sample) instead of forward differences (`O(sigma)`, one pass).
    - `fields`: optional names of the model's trainable fields to estimate (default all); the other
      trainable parameters get zero updates.
    - `simulate_kwargs`: keywords for `simjax.simulate`.
    """

    sigma: Float[Array, ""]
    samples: int = eqx.field(static=True)
    antithetic: bool = eqx.field(static=True)
    fields: tuple[str, ...] | None = eqx.field(static=True)
    simulate_kwargs: tuple = eqx.field(static=True)

    def __init__(self, sigma=1e-3, samples: int = 32, antithetic: bool = True, *, fields=None,
                 **simulate_kwargs):
        _check_settings(type(self).__name__, sigma, samples, fields)
        self.sigma, self.samples, self.antithetic = as_float_array(sigma), samples, bool(antithetic)
        self.fields = None if fields is None else tuple(fields)
        self.simulate_kwargs = tuple(sorted(simulate_kwargs.items()))


class WeightPerturbation(AbstractPerturbationRule):
    """Weight perturbation: the loss change under Gaussian parameter noise, correlated with the noise
    (module docstring). The `samples` perturbed passes are one vmapped computation.

    **Arguments:**

    - `sigma`: noise standard deviation (in parameter units; > 0).
    - `samples`: perturbations averaged per update.
    - `antithetic`: central differences `L(theta + sigma xi) - L(theta - sigma xi)` (bias
      `O(sigma^2)`, two passes per sample) instead of forward differences (`O(sigma)`, one pass).
    - `fields`: optional names of the model's trainable fields to estimate (default all); the
      other trainable parameters are not perturbed and get zero updates.
    - `simulate_kwargs`: keywords for `simjax.simulate`.
    """


    def __call__(self, model, task, batch, key):
        _need_key(key, "WeightPerturbation")
        mask = _selection(model, self.fields, "WeightPerturbation")
        params, static = partition(model)
        k_forward, k_noise = jax.random.split(key)
        kwargs = dict(self.simulate_kwargs)
        leaves, treedef = jax.tree.flatten(params)
        dtype = jnp.result_type(*leaves)
        sigma = self.sigma.astype(dtype)
        sizes = [x.size for x in leaves]

        def run(p):
            outputs = task.forward(eqx.combine(p, static), batch, k_forward, **kwargs)
            return task.loss(outputs, batch), outputs

        def noise(flat):
            parts = jnp.split(flat, list(itertools.accumulate(sizes))[:-1])
            xi = [part.reshape(x.shape).astype(x.dtype) for part, x in zip(parts, leaves)]
            return _masked(jax.tree.unflatten(treedef, xi), mask)

        def shifted(xi, scale):
            return jax.tree.map(lambda p, x: p + scale * x, params, xi)

        loss, outputs = run(params)
        # One draw for all samples and parameters (one random-number kernel), cut into the leaves.
        xis = jax.vmap(noise)(_normal(k_noise, (self.samples, sum(sizes)), dtype))
        if self.antithetic:
            both = jax.tree.map(lambda x: jnp.concatenate([x, x]), xis)
            scales = jnp.concatenate([jnp.full((self.samples,), sigma), jnp.full((self.samples,), -sigma)])
            losses = jax.vmap(lambda xi, c: run(shifted(xi, c))[0])(both, scales)
            coefs = (losses[:self.samples] - losses[self.samples:]) / (2 * sigma)
        else:
            coefs = (jax.vmap(lambda xi: run(shifted(xi, sigma))[0])(xis) - loss) / sigma
        coefs = coefs / self.samples
        updates = jax.tree.map(lambda x: jnp.tensordot(coefs.astype(x.dtype), x, axes=1), xis)
        return loss, updates, task.metrics(outputs, batch)


# ---------------------------------------------------------------------------------------------------
# Node perturbation: units that add noise to their drive, inside any network
# ---------------------------------------------------------------------------------------------------


@jax.custom_vjp
def _credit(drive, signal):
    """The identity on `drive` whose backward pass returns `signal` (ignoring the downstream error)."""
    return drive


def _credit_fwd(drive, signal):
    return drive, signal


def _credit_bwd(signal, cotangent):
    del cotangent
    return signal, jnp.zeros_like(signal)


_credit.defvjp(_credit_fwd, _credit_bwd)


class _AbstractNoisyUnits(AbstractNeuron):
    """A neuron model whose `step` adds the current step's noise to its drive (see `PerturbedNetwork`)."""

    neuron: AbstractNeuron
    keys: Any
    weights: Float[Array, "*samples"]
    mode: str = eqx.field(static=True)

    def _drive(self, drive):
        # A drive with several parts (e.g. basal and apical input) gets one draw split among them.
        leaves, treedef = jax.tree.flatten(drive)
        leaves = [jnp.asarray(x) for x in leaves]
        dtype = jnp.result_type(*leaves)
        sizes = [x.size for x in leaves]
        weights = self.weights.astype(dtype)
        if self.mode == "perturb":
            noise = weights * _normal(self.keys, (sum(sizes),), dtype)
        else:
            xi = jax.vmap(lambda k: _normal(k, (sum(sizes),), dtype))(self.keys)
            noise = jnp.tensordot(weights, xi, axes=1)
        parts = jnp.split(noise, list(itertools.accumulate(sizes))[:-1])
        add = (lambda x, n: x + n) if self.mode == "perturb" else _credit
        return jax.tree.unflatten(treedef, [add(x, n.reshape(x.shape).astype(x.dtype))
                                            for x, n in zip(leaves, parts)])

    def init(self, key, shape):
        return self.neuron.init(key, shape)

    def vector_field(self, t, state, drive):
        raise NotImplementedError("node perturbation acts on clock-driven steps; use method='clock'")

    def step(self, state, drive, dt):
        return self.neuron.step(state, self._drive(drive), dt)

    def output(self, state):
        return self.neuron.output(state)


class _NoisyRateUnits(_AbstractNoisyUnits, AbstractRateNeuron):
    def phi(self, x):
        return self.neuron.phi(x)


class _NoisySpikingUnits(_AbstractNoisyUnits, AbstractSpikingNeuron):
    surrogate: Any  # the wrapped neuron's

    def threshold(self, state):
        return self.neuron.threshold(state)

    def reset(self, state):
        return self.neuron.reset(state)


def _is_neuron(x) -> bool:
    return isinstance(x, AbstractNeuron)


def neuron_sites(model: AbstractNetwork) -> list[AbstractNeuron]:
    """The neuron models inside `model` in tree order (the populations node perturbation perturbs)."""
    return [x for x in jax.tree.leaves(model, is_leaf=_is_neuron) if _is_neuron(x)]


class PerturbedNetwork(AbstractWrappedNetwork):
    """`net` with independent Gaussian noise added to the drive of every unit at every step.

    Every neuron model inside `net` (populations `i = 0, 1, ...` in tree order) receives
    `drive + weights * xi` at clock-driven step `t`, with `xi = normal(keys[t, i], drive.shape)`
    (a drive made of several arrays gets one flat draw split among them in tree order):
    independent noise for every unit, trial and step. The readout is not changed (node
    perturbation perturbs the readout trace itself, see `NodePerturbation`).

    **Arguments:**

    - `net`: any network simulated clock-driven.
    - `keys`: `mode="perturb"`: the step keys `[steps, populations]`, or one key, split into
      `split(key, steps * populations).reshape(steps, populations)`; `mode="credit"`: step keys
      `[S, steps, populations]` of `S` perturbations.
    - `weights`: the noise scale (`mode="perturb"`, a scalar) or `S` coefficients
      (`mode="credit"`).
    - `mode`: `"perturb"` adds the noise. `"credit"` adds nothing; in reverse-mode autodiff each
      unit then passes back `sum_s weights[s] xi_{s,t}` as its error instead of the error from
      downstream, which turns a vector-Jacobian product into the node-perturbation update.
    """

    net: AbstractNetwork
    keys: Any
    weights: Float[Array, "*samples"]
    mode: str = eqx.field(static=True)

    def __init__(self, net: AbstractNetwork, keys: Any, weights: Any, mode: str = "perturb"):
        if not isinstance(net, AbstractNetwork):
            raise TypeError(f"PerturbedNetwork: net must be a simjax network, got {type(net).__name__}")
        if mode not in ("perturb", "credit"):
            raise ValueError(f"PerturbedNetwork: unknown mode {mode!r}; expected 'perturb' or 'credit'")
        self.net, self.keys, self.weights, self.mode = net, keys, as_float_array(weights), mode

    def prepare(self, inputs, dt):
        shape = (jnp.shape(inputs)[0], len(neuron_sites(self.net)))
        keys = self.keys
        if self.mode == "perturb":
            if keys.ndim == 0:
                keys = jax.random.split(keys, math.prod(shape)).reshape(shape)
            if keys.shape != shape:
                raise ValueError(f"PerturbedNetwork: keys have shape {keys.shape}, expected one key or "
                                 f"[steps, populations] = {shape}")
        else:
            if keys.ndim != 3 or keys.shape[1:] != shape:
                raise ValueError(f"PerturbedNetwork: keys have shape {keys.shape}, expected "
                                 f"[S, steps, populations] = [S, {shape[0]}, {shape[1]}] in mode='credit'")
            keys = jnp.swapaxes(keys, 0, 1)  # [steps, S, populations], scanned over steps
        return self.net.prepare(inputs, dt), keys

    def at_step(self, step_keys) -> AbstractNetwork:
        """`net` with its neuron models replaced by noisy ones, for one step's keys (`[..., sites]`)."""
        counter = iter(range(step_keys.shape[-1]))

        def swap(x):
            if not _is_neuron(x):
                return x
            cls = _NoisySpikingUnits if isinstance(x, AbstractSpikingNeuron) else (
                _NoisyRateUnits if isinstance(x, AbstractRateNeuron) else None)
            if cls is None:
                raise TypeError(f"PerturbedNetwork: cannot perturb neuron type {type(x).__name__} (neither a rate "
                                "nor a spiking neuron)")
            extra = {"surrogate": x.surrogate} if cls is _NoisySpikingUnits else {}
            return cls(neuron=x, keys=step_keys[..., next(counter)], weights=self.weights, mode=self.mode, **extra)

        return jax.tree.map(swap, self.net, is_leaf=_is_neuron)

    def step(self, state, prepared_t, dt):
        x_t, step_keys = prepared_t
        return self.at_step(step_keys).step(state, x_t, dt)

    def step_fn(self, dt):
        return lambda state, prepared_t: self.step(state, prepared_t, dt)

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError("PerturbedNetwork perturbs clock-driven steps; use method='clock'")

    def observe(self, state):
        raise NotImplementedError("PerturbedNetwork perturbs clock-driven steps; use method='clock'")


class NodePerturbation(AbstractPerturbationRule):
    """Node perturbation: noise on every unit's drive and on the readout, the loss change correlated
    with the noise, times presynaptic activity (module docstring).

    Works for every network whose units are `simjax.neurons` models driven through their `step`
    (`FeedForward`, `RSNN`, `RateRNN`, ...), simulated clock-driven. The `samples` perturbed
    passes are one vmapped computation; the update then costs one vector-Jacobian product.

    **Arguments:**

    - `sigma`: noise standard deviation (in units of the drive and of the readout; > 0).
    - `samples`: perturbations averaged per update.
    - `antithetic`: central differences (`+sigma xi` and `-sigma xi`) instead of forward ones.
    - `fields`: optional names of the model's trainable fields to update (default all); other
      trainable parameters get zero updates.
    - `simulate_kwargs`: keywords for `simjax.simulate`.
    """

    def __check_init__(self):
        method = dict(self.simulate_kwargs).get("method", "clock")
        if method != "clock":
            raise ValueError(f"NodePerturbation: method {method!r} is not supported; units are perturbed at every "
                             "clock-driven step (method='clock')")

    def _check_model(self, model):
        if not isinstance(model, AbstractNetwork):
            raise TypeError(f"NodePerturbation: needs a simjax network simulated clock-driven, got "
                            f"{type(model).__name__}")
        for site in neuron_sites(trainable_filter(model)):
            if any(jax.tree.leaves(site)):
                raise ValueError(f"NodePerturbation: {type(model).__name__} trains parameters of its neuron model "
                                 f"{type(site).__name__}; node perturbation estimates only the weights and biases "
                                 "that feed units and the readout; remove the neuron field from trainable")

    def __call__(self, model, task, batch, key):
        _need_key(key, "NodePerturbation")
        self._check_model(model)
        mask = _selection(model, self.fields, "NodePerturbation")
        params, static = partition(model)
        S, steps, sites = self.samples, jnp.shape(batch.inputs)[0], len(neuron_sites(model))
        # One split for everything: the simulation key, a readout key and step keys per perturbation.
        keys = jax.random.split(key, 1 + S + S * steps * sites)
        k_forward, readout_keys, unit_keys = keys[0], keys[1:S + 1], keys[S + 1:].reshape(S, steps, sites)
        kwargs = dict(self.simulate_kwargs)
        sigma = self.sigma.astype(jnp.result_type(*jax.tree.leaves(params)))

        def perturbed(k_units, k_readout, scale):
            outputs = task.forward(PerturbedNetwork(model, k_units, scale), batch, k_forward, **kwargs)
            readout = _require_readout(outputs)
            xi = _normal(k_readout, readout.shape, readout.dtype)
            return task.loss(eqx.tree_at(lambda o: o.readout, outputs, readout + scale * xi), batch), xi

        if self.antithetic:
            scales = jnp.concatenate([jnp.full((S,), sigma), jnp.full((S,), -sigma)])
            twice = lambda k: jnp.concatenate([k, k])
            losses, xi_out = jax.vmap(perturbed)(twice(unit_keys), twice(readout_keys), scales)
            coefs, xi_out = (losses[:S] - losses[S:]) / (2 * sigma), xi_out[:S]
        else:
            clean = task.loss(task.forward(model, batch, k_forward, **kwargs), batch)
            losses, xi_out = jax.vmap(perturbed)(unit_keys, readout_keys, jnp.full((S,), sigma))
            coefs = (losses - clean) / sigma
        coefs = coefs / S

        def readout_of(p):
            net = PerturbedNetwork(eqx.combine(p, static), unit_keys, coefs, mode="credit")
            outputs = task.forward(net, batch, k_forward, **kwargs)
            return _require_readout(outputs), outputs

        readout, vjp, outputs = jax.vjp(readout_of, params, has_aux=True)
        (updates,) = vjp(jnp.tensordot(coefs.astype(readout.dtype), xi_out, axes=1))
        return task.loss(outputs, batch), _masked(updates, mask), task.metrics(outputs, batch)


def _require_readout(outputs):
    if outputs.readout is None:
        raise ValueError("NodePerturbation: the simulation recorded no readout; it perturbs the readout trace")
    return outputs.readout


__all__ = ["WeightPerturbation", "NodePerturbation", "PerturbedNetwork", "neuron_sites"]
