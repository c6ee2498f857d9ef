r"""The clock-driven fast path of a recurrent LIF network: one scan forward, a hand-derived backward.

For `RSNN` with a current-free `LIF` population (delta synapses, no refractory period, detached
reset) and dense weights, `simulate(..., memory="store")` runs this instead of autodiff through the
generic step. The dynamics are identical to `LIF.step` + `RSNN.step`:

    u_t = a v_{t-1} + c + d_t + s_{t-1} W,           a = exp(-dt/tau_mem),  c = (1 - a)(v_rest + bias)
    s_t = H(u_t - theta)                             (pseudo-derivative h = surrogate.derivative)
    v_t = u_t - s_t theta     (reset="subtract")  or  u_t (1 - s_t) + s_t v_reset   (reset="zero")
    o_t = kappa o_{t-1} + s_t W_out + b

with `d_t = x_t W_in` and `s_t` treated as a constant in the reset. The input current is
computed inside the loop, step by step: a `[T, B, N]` current written by one large matmul and read
back costs more memory traffic than the small per-step product (measured in
`docs/further_details/benchmarks.md`); its gradient is still one matmul over time x batch. The
gradient is the same as autodiff's (the tests compare them in float64) but computed differently:

- Under differentiation the forward keeps one float trace, the pre-reset voltage `u`, and the
  spikes as one byte each; the readout is computed after the loop. Evaluated without
  differentiation it is a single scan with the readout inside.
- The backward recursion only propagates `delta_t = dL/du_t`, and writes it over `u_t` (read
  for the last time in that step), so the backward pass needs no second float trace:

      delta_t = gv_t r_t + gs_t h(u_t - theta),     r_t = 1 (subtract) or 1 - s_t (zero)
      gv_t = a delta_{t+1} + dL/dv_t,   gs_t = delta_{t+1} W^T + obar_t W_out^T + dL/ds_t
      obar_t = kappa obar_{t+1} + dL/do_t

- Every parameter gradient is then a reduction over time x batch, e.g.
  `dL/dW = sum_t s_{t-1}^T delta_t` as `(N, R) x (R, N)` matmuls over chunks of `R ~`
  `CHUNK_ROWS` rows (time steps x batch), instead of a small outer product accumulated at every
  step (Pehle et al. 2023 and others use the same split); the float spikes exist one chunk at a
  time. (The leak's gradient `sum_t delta_t v_{t-1}`, which needs the voltages, is accumulated
  inside the backward loop, and only when it is wanted.)

Scratch memory of a training step is therefore about 1.25 float traces `[T, B, N]` (u, then
delta, and the spikes), instead of the four of storing spikes, shifted spikes, voltages and
deltas. Beyond the memory itself this matters on Linux: glibc serves allocations above 32 MiB
with fresh pages from the kernel on every call, and XLA's CPU backend allocates a program's
scratch memory as one block per run, so a step whose scratch exceeds that threshold pays a page
fault per 4 KiB page on every call (the figures are in `docs/further_details/benchmarks.md`).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp

from ..neurons._lif import LIF
from ..synapses._base import project
from ..synapses._dale import Dale
from ..synapses._dense import Dense
from ._base import AbstractNetwork


def _post_reset(u, s, theta, v_reset, reset):
    return u - s * theta if reset == "subtract" else u * (1.0 - s) + s * v_reset


def _sum_to(x, like):
    """Sums `x` over its leading axes down to the shape of `like` (per-neuron parameters)."""
    return jnp.sum(x, axis=tuple(range(x.ndim - like.ndim)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def lif_scan(reset: str, unroll: int, x, w_in, w_rec, w_out, b_out, kappa, a, c, theta, v_reset, surrogate, v0, s0,
             o0):
    """`(spikes, v, readout, (v_T, s_T, o_T))` traces `[T, *batch, ...]` of the recurrent LIF network above.

    **Arguments:** the inputs `x [T, *batch, n_in]` and `w_in [n_in, N]` (or `w_in = None` and
    `x` the input current `d [T, *batch, N]` itself), `w_rec [N, N]` (masked), `w_out [N, O]`,
    `b_out [O]`, scalar `kappa`, per-neuron `a, c, theta, v_reset [N]`, the surrogate, and the
    initial `v0, s0 [*batch, N]`, `o0 [*batch, O]`.
    """
    # Not differentiated: one scan with the input current and the readout inside.
    lay = _Layout(x, w_rec)
    step, current = lay.lif_step(reset, a, c, theta, v_reset), lay.input_current(w_in)
    post_reset = lay.post_reset(reset, theta, v_reset)
    readout = lay.right(w_out)
    (b_out_,) = lay.per_neuron(b_out)

    def body(carry, x_t):
        u, s, o, keep = carry
        u, s = step(u, s, keep, current(x_t))
        o = kappa * o + readout(s) + b_out_
        return (u, s, o, 1.0), (s, post_reset(u, s), o)

    (u_t, s_t, o_t, _), traces = jax.lax.scan(body, (*lay.states(v0, s0, o0), 0.0), lay.traces(x)[0], unroll=unroll)
    return (*lay.untraces(*traces), lay.unstates(post_reset(u_t, s_t), s_t, o_t))


class _Layout:
    """Row-major (`[batch, neurons]`, the arrays' own layout) or neuron-major (`[neurons, batch]`)
    loops. One step's recurrent product `s W` is a `(B, N) x (N, N)` matmul; XLA's CPU backend
    runs it at a third of its matmul rate once `W` no longer fits the core's cache (measured on one
    thread, B = 32: 65 / 50 / 62 GFLOP/s at N = 256 / 512 / 768, then 19 at N = 1024 and 17 at 2048),
    while the transposed product `W^T s^T` keeps 64-68 GFLOP/s there. So from `NEURON_MAJOR_FROM`
    neurons the loops carry their state transposed (the traces are transposed once, outside).
    """

    def __init__(self, trace, w_rec):
        # measured on XLA's CPU backend only; elsewhere the arrays' own layout is kept
        self.major = w_rec.shape[0] >= NEURON_MAJOR_FROM and jax.default_backend() == "cpu"
        self.batch = trace.shape[1:-1]      # of any [T, *batch, K] trace (inputs, voltages)
        self.w_rec = w_rec
        # Transposed here, outside the loops: inside a loop body XLA folds the transpose into the
        # product and picks its slower transposed-operand kernel (neuron-major forward; and the
        # row-major backward's `delta W^T`).
        self.w_rec_t = w_rec.T

    def recurrent(self, s):
        """`s W` (forward step)."""
        return self.w_rec_t @ s if self.major else s @ self.w_rec

    def recurrent_adjoint(self, delta):
        """`delta W^T` (backward step)."""
        return self.w_rec @ delta if self.major else delta @ self.w_rec_t

    def right(self, w):
        """`x -> x w` in this layout."""
        if not self.major:
            return lambda x: x @ w
        w_t = w.T
        return lambda x: w_t @ x

    def input_current(self, w_in):
        """`x_t -> x_t W_in` in this layout (`w_in = None`: `x_t` is the current already)."""
        return (lambda x_t: x_t) if w_in is None else self.right(w_in)

    def sum_batch(self, x):
        """Sums a per-step `[*batch, N]` (or `[N, B]`) array over the batch: `[N]`."""
        return jnp.sum(x, axis=-1) if self.major else jnp.sum(x, axis=tuple(range(x.ndim - 1)))

    def per_neuron(self, *params):
        return tuple(p[:, None] for p in params) if self.major else params

    def lif_step(self, reset, a, c, theta, v_reset):
        """`(u, s, keep, d_t) -> (u', s')`: one step of the recurrent LIF network (module docstring)
        from the previous step's pre-reset voltage `u` and spikes `s`.

        The loops carry `u`, not the post-reset `v`: the new spikes then read the new `u`, and
        the old `u` is read only by the step's first fusion, so XLA updates the state in place
        (carrying `v`, which the reset and the spikes both compute from the new `u`, cost a copy
        of the state per step: 4 % of a forward pass at N = 256). `keep` is 0 at the first step,
        whose `u` is the initial (already reset) `v0`, and 1 after.
        """
        a, c, theta_ = self.per_neuron(a, c, theta)
        post_reset = self.post_reset(reset, theta, v_reset)

        def step(u, s, keep, d_t):
            u = a * post_reset(u, keep * s) + c + d_t + self.recurrent(s)
            return u, (u - theta_ > 0).astype(u.dtype)

        return step

    def post_reset(self, reset, theta, v_reset):
        """`(u, s) -> v` in this layout."""
        theta, v_reset = self.per_neuron(theta, v_reset)
        return lambda u, s: _post_reset(u, s, theta, v_reset, reset)

    def traces(self, *xs):
        """`[T, *batch, K] -> [T, K, B]` (neuron-major) or unchanged; `None` stays `None`."""
        if not self.major:
            return xs
        return tuple(None if x is None else jnp.swapaxes(x.reshape(x.shape[0], -1, x.shape[-1]), 1, 2) for x in xs)

    def untraces(self, *xs):
        if not self.major:
            return xs
        return tuple(jnp.swapaxes(x, 1, 2).reshape(x.shape[0], *self.batch, x.shape[1]) for x in xs)

    def states(self, *xs):
        """`[*batch, K] -> [K, B]` (neuron-major) or unchanged."""
        return tuple(x.reshape(-1, x.shape[-1]).T for x in xs) if self.major else xs

    def unstates(self, *xs):
        return tuple(x.T.reshape(*self.batch, x.shape[0]) for x in xs) if self.major else xs


def _leaky_sum(z, start, kappa, reverse=False):
    """`y_t = kappa y_{t-1} + z_t` from `y_{-1} = start` (or backwards in time)."""
    def body(y, z_t):
        y = kappa * y + z_t
        return y, y

    return jax.lax.scan(body, start, z, reverse=reverse)


def _forward(reset, unroll, x, w_in, w_rec, w_out, b_out, kappa, a, c, theta, v_reset, v0, s0, o0):
    lay = _Layout(x, w_rec)
    step, current = lay.lif_step(reset, a, c, theta, v_reset), lay.input_current(w_in)

    def body(carry, x_t):
        u, s, keep = carry
        u, s = step(u, s, keep, current(x_t))
        return (u, s, 1.0), (u, s.astype(jnp.int8))

    (u_t, s_t, _), (u_loop, spikes) = jax.lax.scan(body, (*lay.states(v0, s0), 0.0), lay.traces(x)[0],
                                                   unroll=unroll)
    # u stays in the loops' layout for the backward pass (transposed only for the voltage output,
    # which is not computed unless used).
    (u, spikes), (u_t, s_t) = lay.untraces(u_loop, spikes), lay.unstates(u_t, s_t)
    v_t = _post_reset(u_t, s_t, theta, v_reset, reset)
    # The readout does not feed back: large matmuls over chunks of time (the spikes are kept as one
    # byte each, never as a full-length float trace; see `_time_chunks`), then a cheap n_out-wide
    # recursion.
    current = _time_chunks(lambda _, s_c: (None, project(s_c.astype(u.dtype), w_out)), None, spikes)[1]
    o_t, o = _leaky_sum(current + b_out, o0, kappa)
    s_float = spikes.astype(u.dtype)
    return (s_float, _post_reset(u, s_float, theta, v_reset, reset), o, (v_t, s_t, o_t)), (u_loop, spikes)


def _fwd(reset, unroll, x, w_in, w_rec, w_out, b_out, kappa, a, c, theta, v_reset, surrogate, v0, s0, o0):
    primal = jax.custom_derivatives.CustomVJPPrimal
    a_perturbed = a.perturbed
    (x, w_in, w_rec, w_out, b_out, kappa, a, c, theta, v_reset, surrogate, v0, s0, o0) = jax.tree.map(
        lambda p: p.value, (x, w_in, w_rec, w_out, b_out, kappa, a, c, theta, v_reset, surrogate, v0, s0, o0),
        is_leaf=lambda p: isinstance(p, primal))
    out, (u, spikes) = _forward(reset, unroll, x, w_in, w_rec, w_out, b_out, kappa, a, c, theta, v_reset, v0, s0, o0)
    # Residuals: u (one float trace, in the loops' layout), the spikes (one byte each), the n_out-wide
    # readout trace, the inputs (the caller's), and whether the leak's gradient is wanted (`()`)
    # or not (`None`): it is the one reduction that needs the voltages, which the backward loop
    # overwrites.
    leak_grad = () if a_perturbed else None
    return out, (u, spikes, out[2], x, w_in, w_rec, w_out, kappa, a, theta, v_reset, surrogate, v0, s0, o0,
                 leak_grad)


def _contract_leading(x, y):
    """`sum_{t,b} x[t, b, :]^T y[t, b, :]`: one `(I, T B) x (T B, J)` matmul.

    The leading axes are merged first (a free reshape): XLA's CPU backend runs a `dot_general`
    that contracts two axes several times slower than the same product on merged 2-D operands.
    """
    x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
    return jax.lax.dot_general(x2, y2, (((0,), (0,)), ((), ())))


def _is_symbolic_zero(g):
    return isinstance(g, jax.custom_derivatives.SymbolicZero)


def _chunk_length(steps, rows, neurons):
    """Time steps per chunk of `_time_chunks`: a divisor of `steps` (so that chunking is a free
    reshape, not a copy) near `max(CHUNK_ROWS, 4 neurons) / rows`, and `steps` itself when no
    divisor is at least a quarter of that (e.g. a prime number of steps: one chunk)."""
    target = max(1.0, max(CHUNK_ROWS, 4 * neurons) / max(rows, 1))
    divisors = [d for d in range(1, steps) if steps % d == 0 and d >= target / 4] + [max(steps, 1)]
    return min(divisors, key=lambda d: abs(math.log(d / target)))


def _time_chunks(fn, acc, *traces):
    """`fn(acc, *chunks) -> (acc, out)` over consecutive chunks of the `[T, ...]` traces; returns
    the final `acc` and the chunks' `out` in time order (`[T, ...]`, or `None`).

    The products over time x batch (weight gradients, the readout) run chunk by chunk so that their
    float operands (the spikes) never exist as full-length traces: a chunk of about `CHUNK_ROWS`
    rows (time steps x batch) is as fast as one large matmul, and the step's scratch memory stays
    small (see the module docstring).
    """
    steps = traces[0].shape[0]
    length = _chunk_length(steps, math.prod(traces[0].shape[1:-1]), traces[0].shape[-1])
    chunked = tuple(t.reshape(steps // length, length, *t.shape[1:]) for t in traces)
    acc, out = jax.lax.scan(lambda acc, xs: fn(acc, *xs), acc, chunked)
    return acc, None if out is None else out.reshape(steps, *out.shape[2:])


def _bwd(reset, unroll, residuals, cotangents):
    u, spikes, o, x, w_in, w_rec, w_out, kappa, a, theta, v_reset, surrogate, v0, s0, o0, leak_grad = residuals
    # `None` for the symbolic zeros (outputs the loss does not use)
    g_s, g_v, g_o, (g_vT, g_sT, g_oT) = jax.tree.map(lambda g: None if _is_symbolic_zero(g) else g, cotangents,
                                                     is_leaf=_is_symbolic_zero)
    g_vT = jnp.zeros_like(v0) if g_vT is None else g_vT
    g_sT = jnp.zeros_like(s0) if g_sT is None else g_sT

    # Readout adjoint: obar_t = kappa obar_{t+1} + dL/do_t (obar_T also gets the final state's).
    g_o = jnp.zeros_like(o) if g_o is None else g_o
    if g_oT is not None:
        g_o = g_o.at[-1].add(g_oT)
    _, obar = _leaky_sum(g_o, jnp.zeros_like(o0), kappa, reverse=True)

    lay = _Layout(spikes, w_rec)
    a_, theta_ = lay.per_neuron(a, theta)
    readout_adjoint = lay.right(w_out.T)
    post_reset = lay.post_reset(reset, theta, v_reset)
    (v0_,) = lay.states(v0)

    def body(carry, xs):
        carry_v, carry_s, buf, g_a = carry
        t, obar_t, g_s_t, g_v_t = xs
        x = jax.lax.dynamic_index_in_dim(buf, t, keepdims=False) - theta_
        gv = carry_v if g_v_t is None else carry_v + g_v_t
        gs = readout_adjoint(obar_t) + carry_s  # (n_out wide: cheaper here than as a full-length trace)
        gs = gs if g_s_t is None else gs + g_s_t
        reach = gv if reset == "subtract" else gv * (1.0 - (x > 0).astype(x.dtype))
        delta = reach + gs * surrogate.derivative(x)
        if g_a is not None:  # sum_t delta_t v_{t-1}, while u_{t-1} is still in the buffer
            u_prev = jax.lax.dynamic_index_in_dim(buf, jnp.maximum(t - 1, 0), keepdims=False)
            v_prev = jnp.where(t > 0, post_reset(u_prev, (u_prev - theta_ > 0).astype(x.dtype)), v0_)
            g_a = g_a + lay.sum_batch(delta * v_prev)
        buf = jax.lax.dynamic_update_index_in_dim(buf, delta, t, 0)
        return (a_ * delta, lay.recurrent_adjoint(delta), buf, g_a), None

    # delta_t is written over u_t, which is not read again (in place: one float trace in all).
    g_a0 = None if leak_grad is None else jnp.zeros_like(a_[..., 0] if lay.major else a_)
    (g_v0, g_s0, delta_loop, g_a), _ = jax.lax.scan(
        body, (*lay.states(g_vT, g_sT), u, g_a0),
        (jnp.arange(u.shape[0]), *lay.traces(obar, g_s, g_v)), reverse=True, unroll=unroll)
    # delta in the arrays' layout (a transpose, neuron-major) for the input weights' gradient, one
    # large matmul, and the per-neuron gradients; the other weight gradients transpose it one chunk
    # at a time.
    (delta,), (g_v0, g_s0) = lay.untraces(delta_loop), lay.unstates(g_v0, g_s0)

    # Everything else is a reduction over time x batch: the weight gradients chunk by chunk.
    # (Accumulated transposed, as delta^T s and obar^T s: XLA's CPU backend runs the n_out-wide product
    # several times faster that way round.)
    def weight_gradients(acc, s, delta, obar):
        g_w_rec_t, g_w_out_t, s_last = acc  # s_last: the spikes of the previous chunk's last step
        (delta,) = lay.untraces(delta)
        s = s.astype(delta.dtype)
        s_prev = jnp.concatenate([s_last[None], s[:-1]])
        return (g_w_rec_t + _contract_leading(delta, s_prev), g_w_out_t + _contract_leading(obar, s), s[-1]), None

    (g_w_rec_t, g_w_out_t, _), _ = _time_chunks(
        weight_gradients, (jnp.zeros_like(w_rec.T), jnp.zeros_like(w_out.T), s0), spikes, delta_loop, obar)
    g_w_rec, g_w_out = g_w_rec_t.T, g_w_out_t.T
    time_and_batch = tuple(range(spikes.ndim - 1))
    s = spikes.astype(u.dtype)
    g_b_out = jnp.sum(obar, axis=time_and_batch)
    g_kappa = jnp.sum(obar[1:] * o[:-1]) + jnp.sum(obar[0] * o0)
    g_o0 = kappa * obar[0]
    g_a = jnp.zeros_like(a) if g_a is None else g_a
    g_c = _sum_to(delta, a)
    # gv_t, the cotangent of the post-reset v_t, is a delta_{t+1} + dL/dv_t (dL/dv_T at the end):
    # the threshold and reset-value gradients are reductions of it.
    gv_last = g_vT if g_v is None else g_vT + g_v[-1]
    gv = a * delta[1:] if g_v is None else a * delta[1:] + g_v[:-1]
    # dL/dtheta = -sum (gs h + gv s [subtract]) = -sum (delta - gv (1 - s)) for both resets.
    g_theta = -(_sum_to(delta[:-1] - gv * (1.0 - s[:-1]), theta) + _sum_to(delta[-1] - gv_last * (1.0 - s[-1]), theta))
    if reset == "subtract":
        g_v_reset = jnp.zeros_like(v_reset)
    else:
        g_v_reset = _sum_to(gv * s[:-1], v_reset) + _sum_to(gv_last * s[-1], v_reset)
    g_surrogate = jax.tree.map(jnp.zeros_like, surrogate)
    g_x, g_w_in = (delta, None) if w_in is None else (project(delta, w_in.T), _contract_leading(x, delta))
    return (g_x, g_w_in, g_w_rec, g_w_out, g_b_out, g_kappa, g_a, g_c, g_theta, g_v_reset, g_surrogate, g_v0, g_s0,
            g_o0)


lif_scan.defvjp(_fwd, _bwd, symbolic_zeros=True)


#: Rows (time steps x batch) per chunk of `_time_chunks` (at least four times the number of neurons:
#: a chunk's product must outweigh adding it to the accumulated weight gradient).
CHUNK_ROWS = 1024

#: From this many neurons the fast path's loops run neuron-major on the CPU backend (see `_Layout`;
#: measured on one CPU thread, the switch pays between N = 768 and 1024).
NEURON_MAJOR_FROM = 1024


def supports(net: AbstractNetwork) -> bool:
    """Whether `net` (an `RSNN`) can take the fast path: an `LIF` population without synaptic
    current or refractory period, detached reset, and dense (or Dale) recurrent and readout weights."""
    neuron = net.neuron
    return (type(neuron) is LIF and neuron.tau_syn is None and not neuron.refractoriness and neuron.detach_reset
            and all(type(p) in (Dense, Dale) for p in (net.w_rec, net.w_out)))
