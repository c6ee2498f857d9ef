r"""e-prop: eligibility traces computed forward in time, combined with online learning signals
(Bellec, Scherr, Subramoney, Hajek, Salaj, Legenstein & Maass, Nature Communications 11:3625, 2020).

For a synapse `i -> j` (presynaptic activity `p_i`: an input `x_i` for `W_in`, the previous
step's spikes `z_i^{t-1}` for `W_rec`) e-prop keeps only the neuron's own dependence on its
weights (the cross-neuron terms of the RTRL Jacobian are dropped):

    dW_ji = sum_t L_j^t  ebar_ji^t,      ebar^t = kappa ebar^{t-1} + e^t      (readout leak kappa)

**LIF** (delta synapses, no refractory period, reset by subtraction that carries no gradient): the
eligibility vector is the presynaptic trace filtered by the membrane,
`pbar_i^t = alpha pbar_i^{t-1} + p_i^t`, and
`e_ji^t = psi_j^t pbar_i^t` with the pseudo-derivative `psi_j^t = dz_j^t / dI_j^t` of the
neuron's surrogate (the one `simjax.rules.Exact` differentiates). The trace factorises, so the
update is `dW = sum_t pbar^{t T} (psi^t * Ltilde^t)`: a matmul over the batch per step, no
per-synapse state.

**Per-synapse traces** (ALIF; LIF with a refractory period). The membrane of neuron `j` then
filters its synapses in its own way: over step `t` its voltage decays by `a_j^t` (`alpha`
when free; while refractory `v` is held, `a = 1`, and in the step where the hold ends it
decays over the free part only), the step's input reaches it with gain `m_j^t` (0 while held),
and `h_j^t = dz_j^t / dv_j^t` is the surrogate derivative at its voltage (the held voltage too,
which BPTT through the same step also sees). With `V = dv_j/dW_ji` (after the reset, which
carries no gradient through the spike) and, for ALIF (this project's `simjax.neurons.ALIF`,
threshold `v_th + beta a`, `a^t = rho a^{t-1} + z^t`, `c = beta rho` the threshold change one
step after a spike), `E = da_j/dW_ji`:

    e^t = h^t (a^t V^{t-1} + m^t p^t - c E^{t-1})
    E^t = rho E^{t-1} + e^t
    V^t = a^t V^{t-1} + m^t p^t - z^t c E^{t-1}      (the z term for reset="subtract" only)

(LIF: `c = 0`, no `E`; without a refractory period `V` is `pbar` and factorises, above.)
This is a linear recursion `X^t = M^t X^{t-1} + u^t p^t`, `e^t = g^t . X^{t-1} + d^t p^t` with
per-neuron coefficients (`_Traces.coefficients`), and `X` is per synapse (`[batch, n_pre,
n_post]`). In the offline mode it is not stepped per time step: a backward pass over a block of
`C` steps per neuron gives the adjoint and the propagator, so the per-synapse state is touched
once per block and the rest is one matmul over `(time x batch)` (`_linear_block`); the online
mode and `eligibility_traces` step it directly. `a`, `m` and `h` come from forward-mode
derivatives of the neuron's step in the voltage and the drive. (Bellec et al. set the
pseudo-derivative to zero during the refractory period of a neuron that keeps integrating; this
project's LIF and ALIF hold `v`.)

**Leaky rate units** (`simjax.networks.RateRNN` with `simjax.neurons.LeakyRate`): the same as LIF
with `alpha = exp(-dt / tau)` and `psi = dphi(x)/d drive = phi'(x) (1 - alpha)`.

**Learning signals** `L_j^t = sum_k B_jk dL/dy_k^t` (regression: `y - y*`; classification:
`softmax(y) - pi*`), with `dL/dy` the gradient of the task's own loss with respect to the
readout. `B = W_out` (`variant="symmetric"`), fixed random (`"random"`), or random and
updated like `W_out` (`"adaptive"`, Kolen-Pollack: `B <- (1 - eta lambda) B - eta dW_out`,
`eta = feedback_learning_rate`, `lambda = feedback_decay`; the rule state of `init`/`step`).
The readout weights and bias get their exact gradient.

**Offline mode** (default, `online_every=None`): one forward pass gives the readout trajectory
and `dL/dy` for any task loss; the readout leak is moved onto the learning signal,
`sum_t L^t ebar^t = sum_t e^t Ltilde^t` with `Ltilde^t = L^t + kappa Ltilde^{t+1}`; a second
forward pass accumulates the traces. Both passes run in blocks of `chunk` steps: the input
projection of a block is one matmul, and so is the update: for the factorised trace
`sum_t pbar^t (psi^t Ltilde^t)` is `P^T Qbar` over the block's `(time x batch)` rows, with the
presynaptic activity `P` and `Qbar` the block's `psi Ltilde` filtered backwards by `alpha`
(plus the trace carried into the block; `_factorised_block`), so `pbar` is never stepped.
Memory: the readout trajectory and its learning signal (`time x batch x n_out`, the size of the
targets) plus one block (`chunk x batch x (n_pre + n_rec)`) and the traces; nothing of size
`time x n_rec`.

**Online mode** (`online_every=K`, `learning_rate=eta`): one forward pass; the learning signal of
step `t` comes from the task's per-step loss (tasks that define `step_terms`/`step_loss`),
`ebar` is carried per synapse, and every `K` steps the accumulated change is applied inside the
scan, `W <- W - eta dW` (plain SGD on the effective dense weights, diagonal of `W_rec` kept
masked; projection constraints are applied only by `simjax.fit`). The update returned is the sum of
all the changes' gradients, so `optax.sgd(eta)` in `simjax.fit` ends the trial at the weights the
scan reached (`K >= T`: the offline e-prop gradient). Memory is flat in the sequence length.

**Firing-rate regulariser** (offline mode): `R = rate_weight / 2 sum_j (fbar_j - f*)^2` with
`fbar_j` the trial-mean spike probability per step and `f* = rate_target dt / 1000`; its e-prop
learning signal `rate_weight (fbar_j - f*) / (T batch)` multiplies the unfiltered `e^t`
(off by default).
"""

from __future__ import annotations

from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import as_float_array, check_choice, check_int, check_positive, is_concrete
from .._custom_types import RealScalarLike
from .._random import as_key, fold_in_name
from ..networks._base import AbstractNetwork
from ..networks._rate_rnn import RateRNN
from ..networks._readout import readout_decay
from ..networks._rsnn import RSNN
from ..neurons._alif import ALIF
from ..neurons._lif import LIF
from ..neurons._rate import LeakyRate
from ..parameters._parameters import partition
from ._base import AbstractRule
from ._per_step import has_step_loss, reverse_filter, step_error, trajectory_error

VARIANTS = ("symmetric", "random", "adaptive")
PER_SYNAPSE = ("alif", "lif_refractory")      # kinds whose trace is carried per synapse
_SUPPORTED_FIELDS = {"RSNN": ("w_in", "w_rec", "w_out", "b_out"),
                     "RateRNN": ("w_in", "w_rec", "w_out", "b_rec", "b_out")}


def _scalar(x) -> bool:
    return jnp.size(x) == 1


def network_kind(model: AbstractNetwork, owner: str = "EProp") -> str:
    """`"lif"`, `"lif_refractory"`, `"alif"` or `"rate"`: which eligibility recursion applies to
    `model`.

    **Raises:** `TypeError`/`ValueError` naming what is not supported.
    """
    if isinstance(model, RSNN):
        neuron, fields = model.neuron, _SUPPORTED_FIELDS["RSNN"]
        if type(neuron) is LIF:
            kind = "lif_refractory" if neuron.refractoriness else "lif"
            if neuron.reset_mode != "subtract":
                raise ValueError(f"{owner}: LIF reset={neuron.reset_mode!r} is not supported; e-prop's LIF trace "
                                 "needs reset='subtract'")
        elif type(neuron) is ALIF:
            kind = "alif"
            if neuron.reset_mode not in ("subtract", "subtract_base"):
                raise ValueError(f"{owner}: ALIF reset={neuron.reset_mode!r} is not supported; expected "
                                 "'subtract' or 'subtract_base'")
        else:
            raise TypeError(f"{owner}: RSNN neuron {type(neuron).__name__} is not supported; expected "
                            "simjax.neurons.LIF or simjax.neurons.ALIF")
        if neuron.tau_syn is not None:
            raise ValueError(f"{owner}: exponential synapses (tau_syn={neuron.tau_syn}) are not supported; use "
                             "tau_syn=None (delta synapses)")
        if not neuron.detach_reset:
            raise ValueError(f"{owner}: detach_reset=False is not supported; e-prop's traces assume the reset "
                             "carries no gradient (detach_reset=True)")
        if not _scalar(neuron.tau_mem):
            raise ValueError(f"{owner}: tau_mem must be one value shared by all neurons (the presynaptic trace "
                             f"is filtered by it), got shape {jnp.shape(neuron.tau_mem)}")
    elif isinstance(model, RateRNN):
        neuron, fields, kind = model.neuron, _SUPPORTED_FIELDS["RateRNN"], "rate"
        if type(neuron) is not LeakyRate:
            raise TypeError(f"{owner}: RateRNN neuron {type(neuron).__name__} is not supported; expected "
                            "simjax.neurons.LeakyRate")
        if not _scalar(neuron.tau):
            raise ValueError(f"{owner}: tau must be one value shared by all units, got shape {jnp.shape(neuron.tau)}")
    else:
        raise TypeError(f"{owner}: network {type(model).__name__} is not supported; expected "
                        "simjax.networks.RSNN (LIF or ALIF neurons) or simjax.networks.RateRNN (LeakyRate units)")
    extra = sorted(set(model.trainable) - set(fields))
    if extra:
        raise ValueError(f"{owner}: cannot update trainable field(s) {extra}; e-prop updates {list(fields)} "
                         "(set the network's trainable=... accordingly)")
    return kind


def effective_weights(model: RSNN | RateRNN) -> dict:
    """The dense weights the forward pass uses (`W_rec` with its diagonal masked)."""
    if isinstance(model, RSNN):
        return {"w_in": model.w_in.dense(), "w_rec": model.recurrent_weight(), "w_out": model.w_out.dense(),
                "b_out": model.b_out}
    return {"w_in": model.w_in.dense(), "w_rec": model.w_rec.dense(), "w_out": model.w_out.dense(),
            "b_out": model.b_out, "b_rec": model.b_rec}


class _Dynamics(eqx.Module):
    """The network's clock-driven step on dense weights, with `psi = dz/d drive` on request."""

    neuron: Any
    kind: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    kappa: Any
    gain: Any      # readout input gain: 1 (RSNN) or 1 - kappa (RateRNN)
    alpha: Any     # membrane decay filtering the presynaptic trace

    def input_drive(self, w, x):
        """The state-independent part of the drive, `x W_in (+ b_rec)`, for any leading axes."""
        d = x @ w["w_in"]
        return d + w["b_rec"] if "b_rec" in w else d

    def step(self, w, carry, x_t, with_psi=False, drive_in=None):
        """`((state, spikes, readout), psi)`; `psi = dz/d drive`, or for the per-synapse kinds the
        per-neuron `(a, m, h)` of the module docstring."""
        ns, z_prev, o = carry
        d = (self.input_drive(w, x_t) if drive_in is None else drive_in) + z_prev @ w["w_rec"]
        if with_psi and self.kind in PER_SYNAPSE:
            (ns, z), psi = self._membrane_coefficients(ns, d)
        elif with_psi:
            (ns, z), (_, psi) = jax.jvp(lambda dd: self.neuron.step(ns, dd, self.dt), (d,), (jnp.ones_like(d),))
        else:
            ns, z = self.neuron.step(ns, d, self.dt)
            psi = None
        o = self.kappa * o + self.gain * (z @ w["w_out"] + w["b_out"])
        return (ns, z, o), psi

    def _membrane_coefficients(self, ns, d):
        """`(new state, spikes), (a, m, h)`: the step's `dv/dv_prev`, `dv/d drive` and `dz/dv`
        (the reset carries no gradient through the spike, so these are the pre-reset voltage's)."""
        zeros, ones = jnp.zeros_like(d), jnp.ones_like(d)
        if not self.neuron.refractoriness:      # a = alpha, m = 1 (`None`: constants): h = dz/d drive
            out, (_, h) = jax.jvp(lambda dd: self.neuron.step(ns, dd, self.dt), (d,), (ones,))
            return out, (None, None, h)
        step = lambda v, dd: self.neuron.step(eqx.tree_at(lambda s: s.v, ns, v), dd, self.dt)  # noqa: E731
        out, (dstate_v, dz_v) = jax.jvp(step, (ns.v, d), (ones, zeros))
        _, (dstate_d, _) = jax.jvp(step, (ns.v, d), (zeros, ones))
        a, m = dstate_v.v, dstate_d.v
        return out, (a, m, dz_v / a)          # a >= exp(-dt / tau_mem) > 0


def _dynamics(model, kind, dt, dtype):
    neuron = model.neuron
    kappa = readout_decay(model.tau_out, dt).astype(dtype)
    if kind == "rate":
        alpha, gain = jnp.exp(-dt / neuron.tau), 1.0 - kappa
    else:
        alpha, gain = jnp.exp(-dt / neuron.tau_mem), jnp.ones((), dtype)
    return _Dynamics(neuron=neuron, kind=kind, dt=dt, kappa=kappa, gain=gain, alpha=jnp.reshape(alpha, ()))


def _initial(model, key, batch_shape):
    st = model.init(key, batch_shape)
    z = st.spikes if isinstance(model, RSNN) else model.neuron.output(st.neuron)
    return st.neuron, z, st.readout


def _adaptation(neuron, dt):
    rho = jnp.exp(-dt / neuron.tau_adapt)
    return rho, neuron.beta * rho


class _Traces:
    """Eligibility recursions of one group of synapses (one presynaptic population)."""

    def __init__(self, dyn, neuron, kind, dt):
        self.alpha, self.kind = dyn.alpha, kind
        self.per_synapse = kind in PER_SYNAPSE
        self.subtract = kind == "alif" and neuron.reset_mode == "subtract"
        if kind == "alif":
            self.rho, self.c = _adaptation(neuron, dt)

    def init(self, batch, n_pre, n_post, dtype):
        """`{"p": pbar}` (factorised) or `{"x": X}` (per synapse)."""
        if not self.per_synapse:
            return {"p": jnp.zeros((batch, n_pre), dtype)}
        return {"x": tuple(jnp.zeros((batch, n_pre, n_post), dtype) for _ in range(2 if self.kind == "alif" else 1))}

    def coefficients(self, psi, z):
        """`(M, u, g, d)` of `X^t = M X^{t-1} + u p^t`, `e^t = g . X^{t-1} + d p^t` (module
        docstring), per neuron, from `psi = (a, m, h)` (`a, m = None`: `alpha`, 1) and the
        step's spikes `z`. `X = (V,)` for LIF, `(E, V)` for ALIF."""
        a, m, h = psi
        a, m = (self.alpha, 1.0) if a is None else (a, m)
        if self.kind == "lif_refractory":
            return ((a,),), (m,), (h * a,), h * m
        rho, c = self.rho, self.c
        zc = c * z if self.subtract else jnp.zeros_like(z)
        return ((rho - c * h, h * a), (-zc, a)), (h * m, m), (-c * h, h * a), h * m

    def step(self, st, pre, psi, z):
        """`(state, (pbar, e))`: the trace is `psi pbar` (factorised: LIF, rate units; `e = None`)
        or the per-synapse `e` (`pbar = None`)."""
        if not self.per_synapse:
            p = self.alpha * st["p"] + pre
            return {"p": p}, (p, None)
        mat, u, g, d = self.coefficients(psi, z)
        x, col, outer = st["x"], (lambda v: v[:, None, :] if jnp.ndim(v) else v), pre[:, :, None]
        e = sum(col(gi) * xi for gi, xi in zip(g, x)) + outer * col(d)
        new = tuple(sum(col(mij) * xj for mij, xj in zip(row, x)) + outer * col(ui) for row, ui in zip(mat, u))
        return {**st, "x": new}, (None, e)


def _expand(e, psi):
    p, per_synapse = e
    return p[:, :, None] * psi[:, None, :] if per_synapse is None else per_synapse


class _Layout:
    """The presynaptic populations of the trained hidden weights, concatenated into one vector
    (`[x_t, z_{t-1}, 1]` for `w_in`, `w_rec`, `b_rec`): one set of traces, one contraction."""

    def __init__(self, groups, n_in, n_rec):
        sizes = {"w_in": n_in, "w_rec": n_rec, "b_rec": 1}
        self.groups = tuple(groups)
        self.sizes = tuple(sizes[g] for g in self.groups)
        self.total = sum(self.sizes)

    def concat(self, x_t, z_prev):
        parts = {"w_in": x_t, "w_rec": z_prev}
        if not self.groups:
            return jnp.zeros(z_prev.shape[:-1] + (0,), z_prev.dtype)
        pre = [parts[g] if g in parts else jnp.ones(z_prev.shape[:-1] + (1,), z_prev.dtype) for g in self.groups]
        return pre[0] if len(pre) == 1 else jnp.concatenate(pre, axis=-1)

    def split(self, a, axis=0):
        out, start = {}, 0
        for g, n in zip(self.groups, self.sizes):
            out[g] = jax.lax.slice_in_dim(a, start, start + n, axis=axis)
            start += n
        return out


class EProp(AbstractRule):
    """e-prop (module docstring for the equations, modes and what is carried per synapse).

    **Arguments:**

    - `variant`: `"symmetric"` (`B = W_out`), `"random"` (fixed random `B`) or `"adaptive"`
      (random `B` updated like `W_out`, rule state).
    - `key`: int seed or PRNG key for the random feedback (`B ~ N(0, scale^2 / n_rec)`).
    - `scale`: scale of the random feedback.
    - `feedback_learning_rate`, `feedback_decay`: the adaptive variant's `B` update.
    - `online_every`: `None` (offline, default) or `K` (apply the update every `K` steps inside
      the scan; needs `learning_rate` and a task with a per-step loss).
    - `learning_rate`: the in-scan SGD step of the online mode.
    - `rate_target` (Hz), `rate_weight`: firing-rate regulariser (offline mode; off when
      `rate_weight = 0`).
    - `chunk`: offline mode: time steps per block (the largest divisor of `T` not above it) whose
      input projection and updates are single matmuls (memory `chunk x batch x n_pre`). `None`
      (default): 50 for factorised traces, 200 for per-synapse ones (ALIF, refractory LIF), whose
      per-synapse state is touched once per block (the choice is measured by `benchmarks/eprop.py`).

    **Returns** (call): `(loss, updates, aux)` with updates shaped like the model's parameters,
    gradient sign.
    """

    variant: str = eqx.field(static=True)
    key: PRNGKeyArray
    scale: Float[Array, ""]
    feedback_learning_rate: Float[Array, ""]
    feedback_decay: Float[Array, ""]
    online_every: int | None = eqx.field(static=True)
    learning_rate: Float[Array, ""] | None
    rate_target: Float[Array, ""]
    rate_weight: Float[Array, ""]
    chunk: int | None = eqx.field(static=True)

    def __init__(self, variant: Literal["symmetric", "random", "adaptive"] = "symmetric", *, key: Any = 0,
                 scale: float = 1.0, feedback_learning_rate: float = 1e-3, feedback_decay: float = 0.0,
                 online_every: int | None = None, learning_rate: float | None = None, rate_target: float = 10.0,
                 rate_weight: float = 0.0, chunk: int | None = None):
        check_choice("variant", variant, VARIANTS, owner="EProp")
        self.variant = variant
        try:
            self.key = as_key(key)
        except TypeError as err:
            raise TypeError(f"EProp: key: {err}") from None
        self.scale = as_float_array(scale)
        self.feedback_learning_rate = as_float_array(feedback_learning_rate)
        self.feedback_decay = as_float_array(feedback_decay)
        check_positive("scale", self.scale, owner="EProp")
        check_positive("feedback_learning_rate", self.feedback_learning_rate, allow_zero=True, owner="EProp")
        check_positive("feedback_decay", self.feedback_decay, allow_zero=True, owner="EProp")
        if online_every is not None:
            check_int("online_every", online_every, what="steps between updates; or None", owner="EProp")
            if learning_rate is None:
                raise ValueError("EProp: online_every needs learning_rate (the SGD step applied inside the scan)")
        self.online_every = online_every
        self.learning_rate = None if learning_rate is None else as_float_array(learning_rate)
        check_positive("learning_rate", self.learning_rate, owner="EProp")
        if chunk is not None:
            check_int("chunk", chunk, what="time steps per accumulation matmul; or None", owner="EProp")
        self.chunk = chunk
        self.rate_target = as_float_array(rate_target)
        self.rate_weight = as_float_array(rate_weight)
        check_positive("rate_target", self.rate_target, allow_zero=True, owner="EProp")
        check_positive("rate_weight", self.rate_weight, allow_zero=True, owner="EProp")
        if online_every is not None and not (is_concrete(self.rate_weight) and float(self.rate_weight) == 0.0):
            raise ValueError("EProp: the firing-rate regulariser (rate_weight > 0) is available in offline mode "
                             "only (online_every=None)")

    # -- feedback ---------------------------------------------------------------------------------
    def init(self, model, key=None):
        """The feedback matrix `B` (`[n_rec, n_out]`, like `W_out`) for the random and adaptive
        variants; `None` for the symmetric one."""
        del key
        if self.variant == "symmetric":
            return None
        network_kind(model)
        w_out = model.w_out.dense()
        n_rec = w_out.shape[0]
        k = fold_in_name(self.key, "eprop")
        return self.scale / jnp.sqrt(jnp.asarray(n_rec, w_out.dtype)) * jax.random.normal(k, w_out.shape, w_out.dtype)

    def step(self, state, model, task, batch, key):
        loss, updates, aux, dense = self._run(model, task, batch, key, state)
        if self.variant == "adaptive":
            eta, lam = self.feedback_learning_rate, self.feedback_decay
            state = (1.0 - eta * lam) * state - eta * dense["w_out"]
        return loss, updates, aux, state

    def __call__(self, model, task, batch, key):
        loss, updates, aux, _ = self._run(model, task, batch, key, self.init(model))
        return loss, updates, aux

    # -- the rule ---------------------------------------------------------------------------------
    def _run(self, model, task, batch, key, feedback):
        kind = network_kind(model)
        inputs = jnp.asarray(batch.inputs)
        if inputs.ndim != 3 or inputs.shape[-1] != model.n_in:
            raise ValueError(f"EProp: inputs have shape {inputs.shape}, expected [time, batch, {model.n_in}]")
        params, static = partition(model)
        w, pull = jax.vjp(lambda p: effective_weights(eqx.combine(p, static)), params)
        dt = float(task.dt)
        dyn = _dynamics(model, kind, dt, inputs.dtype)
        init = _initial(model, key, inputs.shape[1:2])
        layout = _Layout([g for g in ("w_in", "w_rec", "b_rec") if g in w and g in model.trainable], model.n_in,
                         model.n_rec)
        traces = _Traces(dyn, model.neuron, kind, dt)
        if self.online_every is None:
            loss, aux, dense = _offline(dyn, traces, layout, w, init, inputs, task, batch, feedback, self)
        else:
            if not has_step_loss(task):
                raise ValueError(f"EProp: online_every needs a task whose loss is a sum over time steps "
                                 f"(step_terms/step_loss); {type(task).__name__} has none")
            loss, aux, dense = _online(dyn, traces, layout, w, init, inputs, task, batch, feedback, self,
                                       model.self_connections if isinstance(model, RSNN) else True)
        dense = {k: dense.get(k, jnp.zeros_like(v)) for k, v in w.items()}
        (updates,) = pull(dense)
        return loss, updates, aux, dense


def eligibility_traces(model: RSNN | RateRNN, inputs: Float[ArrayLike, "time batch n_in"], dt: RealScalarLike,
                       key: PRNGKeyArray | None = None) -> dict:
    """The e-prop eligibility traces `e_ji^t = dz_j^t / dW_ji` (own-neuron dependence only) of
    `model` driven by `inputs`, for inspection and plots (memory `time x batch x n_pre x n_post`;
    the rule itself never stores them).

    **Returns:** `{"w_in": [time, batch, n_in, n_rec], "w_rec": [time, batch, n_rec, n_rec]}`
    (and `"b_rec"` for a `RateRNN`), unfiltered by the readout leak.
    """
    kind = network_kind(model, "eligibility_traces")
    inputs = jnp.asarray(inputs)
    if inputs.ndim != 3 or inputs.shape[-1] != model.n_in:
        raise ValueError(f"eligibility_traces: inputs have shape {inputs.shape}, expected [time, batch, {model.n_in}]")
    dt = float(dt)
    w = effective_weights(model)
    dyn = _dynamics(model, kind, dt, inputs.dtype)
    traces = _Traces(dyn, model.neuron, kind, dt)
    layout = _Layout([g for g in ("w_in", "w_rec", "b_rec") if g in w], model.n_in, model.n_rec)
    init = _initial(model, key, inputs.shape[1:2])
    tr0, _ = _zeros(traces, layout, w, inputs, init)

    def body(carry, x_t):
        state, tr = carry
        z_prev = state[1]
        state, psi = dyn.step(w, state, x_t, with_psi=True)
        tr, e = traces.step(tr, layout.concat(x_t, z_prev), psi, state[1])
        return (state, tr), _expand(e, psi)

    _, out = jax.lax.scan(body, (init, tr0), inputs)
    return layout.split(out, axis=2)


def _signal_matrix(feedback, w):
    return w["w_out"] if feedback is None else feedback


def _chunks(inputs, chunk):
    """`inputs [T, ...]` as `[T / C, C, ...]` with `C` the largest divisor of `T` not above `chunk`."""
    steps = inputs.shape[0]
    c = max(d for d in range(1, min(chunk, steps) + 1) if steps % d == 0)
    return lambda a: a.reshape((steps // c, c) + a.shape[1:])


def _offline(dyn, traces, layout, w, init, inputs, task, batch, feedback, rule):
    T, nb = inputs.shape[0], inputs.shape[1]
    dtype = inputs.dtype
    n_rec = init[1].shape[-1]
    chunked = _chunks(inputs, rule.chunk or (200 if traces.per_synapse else 50))
    x_chunks = chunked(inputs)

    # Pass 1: the readout trajectory (input projection one matmul per chunk).
    def forward_chunk(carry, x_c):
        def inner(c, d_t):
            (state, total) = c
            state, _ = dyn.step(w, state, None, drive_in=d_t)
            return (state, total + state[1].sum(0)), state[2]

        return jax.lax.scan(inner, carry, dyn.input_drive(w, x_c))

    (_, spike_sum), readout = jax.lax.scan(forward_chunk, (init, jnp.zeros((n_rec,), dtype)), x_chunks)
    readout = readout.reshape((T,) + readout.shape[2:])
    loss, aux, g = trajectory_error(task, readout, batch)
    g_tilde = reverse_filter(g, dyn.kappa)
    b = _signal_matrix(feedback, w)

    rate_signal = jnp.zeros((n_rec,), dtype)
    use_rate = not (is_concrete(rule.rate_weight) and float(rule.rate_weight) == 0.0)
    if use_rate:
        fbar = spike_sum / (T * nb)
        f_star = rule.rate_target * dyn.dt / 1000.0
        rate_loss = 0.5 * rule.rate_weight * jnp.sum((fbar - f_star) ** 2)
        rate_signal = rule.rate_weight * (fbar - f_star) / (T * nb)
        loss = loss + rate_loss
        aux = {**aux, "rate_loss": rate_loss}

    # Pass 2: traces forward; sum_t e^t Ltilde^t is one matmul per block over (time x batch), plus
    # the per-synapse state's part once per block (`_linear_block`).
    def chunk_body(carry, xs):
        state, tr, acc = carry
        x_c, g_c = xs
        signal = dyn.gain * g_c @ b.T + rate_signal                       # [C, B, N]

        def inner(state, d_t):
            state, psi = dyn.step(w, state, None, with_psi=True, drive_in=d_t)
            return state, (psi, state[1])

        z_start = state[1]
        state, (psi_c, z_c) = jax.lax.scan(inner, state, dyn.input_drive(w, x_c))
        p_c = layout.concat(x_c, jnp.concatenate([z_start[None], z_c[:-1]]))   # presynaptic activity
        rows = lambda a: a.reshape((-1, a.shape[-1]))  # noqa: E731
        if traces.per_synapse:
            x, q_c, boundary = _linear_block(tr["x"], p_c, traces.coefficients, psi_c, z_c, signal)
            tr = {**tr, "x": x}
        else:
            tr, q_c, boundary = _factorised_block(tr, p_c, psi_c * signal, dyn.alpha)
        acc_pre = acc["pre"] + boundary
        if layout.total:
            acc_pre = acc_pre + rows(p_c).T @ rows(q_c)
        acc = {"pre": acc_pre,
               "w_out": acc["w_out"] + dyn.gain * rows(z_c).T @ rows(g_c),
               "b_out": acc["b_out"] + dyn.gain * rows(g_c).sum(0)}
        return (state, tr, acc), None

    tr0, acc0 = _zeros(traces, layout, w, inputs, init)
    (_, _, acc), _ = jax.lax.scan(chunk_body, (init, tr0, acc0), (x_chunks, chunked(g_tilde)))
    return loss, aux, _dense(acc, layout, w)


def _factorised_block(tr, p_c, q_c, alpha):
    r"""The factorised trace `pbar^t = alpha pbar^{t-1} + p^t` over one block of `C` steps, without
    stepping it: with `t = 0 ... C-1` in the block and `pbar^{-1}` carried from the last block,

        sum_t pbar^{tT} q^t = pbar^{-1 T} (sum_t alpha^{t+1} q^t) + sum_s p^{sT} qbar^s,
        qbar^s = sum_{t >= s} alpha^{t-s} q^t          (one (C x C) x (C, batch n) product)
        pbar^{C-1} = alpha^C pbar^{-1} + sum_s alpha^{C-1-s} p^s

    **Returns:** `(traces with the new pbar, qbar [C, batch, n_post], boundary [n_pre, n_post])`.
    """
    steps = jnp.arange(q_c.shape[0])
    lag = steps[None, :] - steps[:, None]                                # t - s
    filt = jnp.where(lag >= 0, alpha ** jnp.maximum(lag, 0), 0.0).astype(q_c.dtype)
    q_bar = jnp.einsum("st,tbn->sbn", filt, q_c)
    weight = (alpha ** (steps + 1)).astype(q_c.dtype)
    p0 = tr["p"]
    boundary = jnp.einsum("bi,bn->in", p0, jnp.einsum("t,tbn->bn", weight, q_c))
    p_end = alpha ** q_c.shape[0] * p0 + jnp.einsum("s,sbi->bi", weight[::-1] / alpha, p_c)
    return {**tr, "p": p_end}, q_bar, boundary


def _linear_block(x0, p_c, coefficients, psi_c, z_c, signal):
    r"""The per-synapse recursion `X^t = M^t X^{t-1} + u^t p^t` over one block of `C` steps,
    touching the per-synapse state `X` once.

    With the learning signal `L^t`, the block's contribution `sum_t L^t e^t` (`e^t = g^t . X^{t-1}
    + d^t p^t`) is rewritten with the per-neuron adjoint `lam^{t-1} = L^t g^t + M^{tT} lam^t`
    (`lam^C = 0`) and propagator `P^{t-1} = P^t M^t` (`P^C = I`), both from one backward pass
    over the block (`O(C batch n_post k^2)` for `k` components):

        sum_t L^t e^t = lam^0 . X^0 + sum_t p^t (L^t d^t + lam^t . u^t)      (the latter: one matmul)
        X^C = P^0 X^0 + sum_t p^t (P^t u^t)                                  (batched matmuls)

    **Arguments:** `x0`: the `k` components of `X` (`[batch, n_pre, n_post]`); `p_c
    [C, batch, n_pre]`; `coefficients`: `_Traces.coefficients`, applied per step to the block's
    `psi_c` and spikes `z_c`; `signal [C, batch, n_post]`.
    **Returns:** `(X^C, per-step coefficients of p [C, batch, n_post], lam^0 . X^0 [n_pre, n_post])`.
    """
    k = len(x0)

    def back(carry, xs):
        lam, prop = carry
        psi, z, sig = xs
        mat, u, g, d = coefficients(psi, z)
        coef = sig * d + sum(lam[i] * u[i] for i in range(k))
        reach = tuple(sum(prop[i][j] * u[j] for j in range(k)) for i in range(k))
        lam = tuple(sig * g[j] + sum(lam[i] * mat[i][j] for i in range(k)) for j in range(k))
        prop = tuple(tuple(sum(prop[i][l] * mat[l][j] for l in range(k)) for j in range(k)) for i in range(k))
        return (lam, prop), (coef, reach)

    zeros, ones = jnp.zeros_like(signal[0]), jnp.ones_like(signal[0])
    identity = tuple(tuple(ones if i == j else zeros for j in range(k)) for i in range(k))
    (lam0, prop0), (coef, reach) = jax.lax.scan(back, ((zeros,) * k, identity), (psi_c, z_c, signal), reverse=True)
    boundary = jnp.sum(sum(lam0[i][:, None, :] * x0[i] for i in range(k)), axis=0)   # one fused reduction
    x = tuple(sum(prop0[i][j][:, None, :] * x0[j] for j in range(k)) + jnp.einsum("tbi,tbj->bij", p_c, reach[i])
              for i in range(k))
    return x, coef, boundary


def _zeros(traces, layout, w, inputs, init):
    nb, dtype = inputs.shape[1], inputs.dtype
    n_rec = init[1].shape[-1]
    tr = traces.init(nb, layout.total, n_rec, dtype)
    acc = {"pre": jnp.zeros((layout.total, n_rec), dtype), "w_out": jnp.zeros_like(w["w_out"]),
           "b_out": jnp.zeros_like(w["b_out"])}
    return tr, acc


def _dense(acc, layout, w):
    """Accumulated `{"pre", "w_out", "b_out"}` as gradients of the named dense weights."""
    out = {**layout.split(acc["pre"]), "w_out": acc["w_out"], "b_out": acc["b_out"]}
    if "b_rec" in out:
        out["b_rec"] = out["b_rec"].reshape(w["b_rec"].shape)
    return out


def _online(dyn, traces, layout, w, init, inputs, task, batch, feedback, rule, self_connections):
    nb = inputs.shape[1]
    n_rec = init[1].shape[-1]
    dtype = inputs.dtype
    per_step, shared = task.step_terms(batch)
    k_every, eta = rule.online_every, rule.learning_rate.astype(dtype)
    mask = None if self_connections else 1.0 - jnp.eye(n_rec, dtype=dtype)
    tr0, acc0 = _zeros(traces, layout, w, inputs, init)
    ebar0 = jnp.zeros((nb, layout.total, n_rec), dtype)
    zhat0 = (jnp.zeros((nb, n_rec), dtype), jnp.zeros((), dtype))

    def body(carry, xs):
        state, tr, ebar, zhat, chunk, total, wt, loss = carry
        x_t, terms_t = xs
        t = loss[1]
        z_prev = state[1]
        state, psi = dyn.step(wt, state, x_t, with_psi=True)
        z, o = state[1], state[2]
        loss_t, g_t = step_error(task, o, terms_t, shared)
        b = _signal_matrix(feedback, wt)
        signal = dyn.gain * g_t @ b.T
        new_tr, e = traces.step(tr, layout.concat(x_t, z_prev), psi, z)
        new_ebar = dyn.kappa * ebar + _expand(e, psi)
        new_chunk = {"pre": chunk["pre"] + jnp.einsum("bij,bj->ij", new_ebar, signal)}
        zh = dyn.kappa * zhat[0] + dyn.gain * z
        ch = dyn.kappa * zhat[1] + dyn.gain
        new_chunk["w_out"] = chunk["w_out"] + zh.T @ g_t
        new_chunk["b_out"] = chunk["b_out"] + ch * g_t.sum(0)
        apply = (t + 1) % k_every == 0
        delta = _dense(new_chunk, layout, wt)
        if mask is not None and "w_rec" in delta:
            delta["w_rec"] = delta["w_rec"] * mask
        wt = {k: jnp.where(apply, v - eta * delta[k], v) if k in delta else v for k, v in wt.items()}
        total = {k: jnp.where(apply, total[k] + new_chunk[k], total[k]) for k in total}
        new_chunk = {k: jnp.where(apply, jnp.zeros_like(v), v) for k, v in new_chunk.items()}
        return (state, new_tr, new_ebar, (zh, ch), new_chunk, total, wt, (loss[0] + loss_t, t + 1)), None

    carry0 = (init, tr0, ebar0, zhat0, acc0, jax.tree.map(jnp.zeros_like, acc0), w,
              (jnp.zeros((), dtype), jnp.zeros((), jnp.int32)))
    (_, _, _, _, chunk, total, _, (loss, _)), _ = jax.lax.scan(body, carry0, (inputs, per_step))
    total = {k: total[k] + chunk[k] for k in total}
    return loss, {"loss": loss}, _dense(total, layout, w)


__all__ = ["EProp", "VARIANTS", "effective_weights", "eligibility_traces", "network_kind"]
