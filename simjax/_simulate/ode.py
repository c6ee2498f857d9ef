r"""Continuous-time simulation: `simulate(net, inputs, method="ode")` with `diffrax.diffeqsolve`.

**Input convention.** `inputs[k]` is held constant on `[k dt, (k+1) dt)` — the clock-driven
convention that input `k` applies during step `k` — so the clock-driven simulation of a rate
network converges to this solution as `dt -> 0` (at first order for exponential Euler).

Because a piecewise-constant input jumps at every grid point, the solve is split there: a
`lax.scan` over the `n` input steps runs one `diffeqsolve` from `k dt` to `(k+1) dt` with
`inputs[k]` fixed. Every solver stage therefore sees the input of its own interval (no stage
sits on the wrong side of a jump), for any solver, step-size controller and adjoint.
The whole batch is one ODE system (the network's vector field acts on `[*batch, n]` arrays), so
trials share the solver's steps; with an adaptive controller the error norm is taken over the
batch (pass e.g. `diffrax.PIDController(..., norm=optimistix.max_norm)` to control the worst
trial, or `jax.vmap` the simulation over trials for per-trial steps).
"""

from __future__ import annotations

from typing import Any

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import check_int, check_positive, grid_count, is_concrete
from ..networks._base import AbstractNetwork
from .output import Output, Record


class _VectorField(eqx.Module):
    """`(t, y, u) -> net.vector_field(t, y, u)` holding `net` as a pytree (not a closure), so that
    adjoints that differentiate the vector field's parameters (`BacksolveAdjoint`) see it."""

    net: AbstractNetwork

    def __call__(self, t, y, u):
        return self.net.vector_field(t, y, u)


def _grid(n_inputs: int, dt, t1) -> tuple[int, Any]:
    """Number of input steps to integrate and the step length."""
    if dt is None and t1 is None:
        raise ValueError("simulate(method='ode'): give t1 (end time) or dt (the spacing of the input samples)")
    if dt is None:
        check_positive("t1", t1, owner="simulate(method='ode')")
        return n_inputs, t1 / n_inputs
    check_positive("dt", dt, owner="simulate(method='ode')")
    if t1 is None:
        return n_inputs, dt
    check_positive("t1", t1, owner="simulate(method='ode')")
    if not (is_concrete(dt) and is_concrete(t1)):
        raise ValueError("simulate(method='ode'): with both dt and t1 given they must be concrete numbers; "
                         "give only one of them under jit")
    n = grid_count(t1, dt, owner="simulate(method='ode')")
    if n > n_inputs:
        raise ValueError(f"simulate(method='ode'): t1={t1!r} must be a multiple k dt of dt={dt!r} with "
                         f"1 <= k <= {n_inputs} (the number of input steps), got k={n}")
    return n, dt


def _save_indices(saveat, n: int, dt) -> Array | None:
    """Grid indices `k` (time `k dt`) to save, or `None` for every step end `k = 1..n`."""
    if saveat is None:
        return None
    if not isinstance(saveat, diffrax.SaveAt):
        raise TypeError(f"simulate(method='ode'): saveat must be None or a diffrax.SaveAt, got {saveat!r}")
    sub = saveat.subs
    if (saveat.dense or not isinstance(sub, diffrax.SubSaveAt) or sub.steps
            or sub.fn is not diffrax.SaveAt(t1=True).subs.fn):
        raise ValueError("simulate(method='ode'): saveat supports t0, t1 and ts on the input grid only "
                         "(not dense, steps or fn)")
    idx = [0] if sub.t0 else []
    if sub.ts is not None:
        k = jnp.round(sub.ts / dt).astype(jnp.int32)
        if is_concrete(sub.ts) and is_concrete(dt):
            ts, kk = np.asarray(sub.ts, dtype=np.float64), np.asarray(k)
            bad = (np.abs(kk * float(dt) - ts) > 1e-9 * np.maximum(1.0, np.abs(ts))) | (kk < 0) | (kk > n)
            if np.any(bad):
                raise ValueError(f"simulate(method='ode'): saveat.ts must lie on the input grid k dt "
                                 f"(dt={float(dt)}, 0 <= k <= {n}); got {ts[bad]}")
        idx.append(jnp.clip(k, 0, n))
    if sub.t1:
        idx.append(n)
    if not idx:
        raise ValueError("simulate(method='ode'): saveat saves nothing")
    return jnp.concatenate([jnp.atleast_1d(jnp.asarray(i, dtype=jnp.int32)) for i in idx])


def simulate_ode(net: AbstractNetwork, inputs: Float[Array, "time *batch n_in"], *, dt=None, t1=None,
                 state: PyTree[Array] | None = None, key: Any = None,
                 record: tuple[str, ...] = ("spikes", "v", "readout"),
                 solver: diffrax.AbstractSolver | None = None,
                 stepsize_controller: diffrax.AbstractStepSizeController | None = None,
                 adjoint: diffrax.AbstractAdjoint | None = None, dt0=None,
                 saveat: diffrax.SaveAt | None = None, max_steps: int = 4096) -> Output:
    r"""Integrates `net.vector_field` with diffrax under piecewise-constant input (module docstring).

    **Arguments:**

    - `net`: a network with a continuous-time form (`RateRNN`; `FeedForward` of rate units).
      Spiking networks raise `NotImplementedError`.
    - `inputs`: `[time, *batch, n_in]`, sample `k` applying on `[k dt, (k+1) dt)`.
    - `dt`: spacing of the input samples; `t1`: end time. Give either (`dt = t1 / time` or
      `t1 = time * dt`) or both (`t1` a multiple of `dt`; later inputs are ignored).
    - `state`: initial state (default `net.init(key, batch)`).
    - `record`: which of `"spikes"`, `"v"`, `"readout"` to keep.
    - `solver` (default `diffrax.Tsit5()`), `stepsize_controller` (default
      `diffrax.ConstantStepSize()`; e.g. `diffrax.PIDController(rtol, atol)`), `adjoint`
      (default `diffrax.RecursiveCheckpointAdjoint()`; e.g. `diffrax.BacksolveAdjoint()`):
      passed to every `diffeqsolve`.
    - `dt0`: initial (or constant) solver step within an input step (default `dt`: one step per
      input step with the constant controller).
    - `saveat`: `None` (default) saves at the end of every input step, `t = dt, 2 dt, ...`,
      aligned with the clock-driven output; or a `diffrax.SaveAt` with `t0`/`ts`/`t1` where
      `ts` lies on the grid `k dt`.
    - `max_steps`: solver step limit per input step.

    **Returns:** an `simjax.Output` with traces `[save times, *batch, ...]`, the final state, and
    `info = {"ts": save times, "num_steps": number of solver steps}`.
    """
    solver = diffrax.Tsit5() if solver is None else solver
    controller = diffrax.ConstantStepSize() if stepsize_controller is None else stepsize_controller
    adjoint = diffrax.RecursiveCheckpointAdjoint() if adjoint is None else adjoint
    check_int("max_steps", max_steps, owner="simulate(method='ode')")
    inputs = jnp.asarray(inputs)
    if not jnp.issubdtype(inputs.dtype, jnp.floating):
        raise TypeError(f"simulate(method='ode'): inputs must be floating point, got {inputs.dtype}")
    n, dt = _grid(inputs.shape[0], dt, t1)
    check_positive("dt0", dt0, owner="simulate(method='ode')")
    indices = _save_indices(saveat, n, dt)
    inputs = inputs[:n]
    tdtype = inputs.dtype
    dt = jnp.asarray(dt, dtype=tdtype)
    dt0 = dt if dt0 is None else jnp.asarray(dt0, dtype=tdtype)
    batch_shape = inputs.shape[1:-1]
    if state is None:
        state = net.init(key, batch_shape)
    fields = ("spikes", "v", "readout")
    keep = lambda rec: Record(**{f: (getattr(rec, f) if f in record else None) for f in fields})
    term = diffrax.ODETerm(_VectorField(net))
    save_end = diffrax.SaveAt(t1=True)

    def interval(y, xs):  # one input step: y is the state of the whole batch, u_k [*batch, n_in]
        k, u_k = xs
        t_start = k.astype(tdtype) * dt
        sol = diffrax.diffeqsolve(term, solver, t_start, t_start + dt, dt0, y, args=u_k,
                                  stepsize_controller=controller, adjoint=adjoint, saveat=save_end,
                                  max_steps=max_steps)
        y1 = jax.tree.map(lambda a: a[0], sol.ys)
        return y1, (keep(net.observe(y1)), sol.stats["num_steps"])

    final, (recs, steps) = jax.lax.scan(interval, state, (jnp.arange(n), inputs))
    if indices is not None:
        first = jax.tree.map(lambda a: a[None], keep(net.observe(state)))
        recs = jax.tree.map(lambda a, b: jnp.concatenate([a, b])[indices], first, recs)
    grid = jnp.arange(n + 1, dtype=tdtype) * dt
    ts = grid[1:] if indices is None else grid[indices]
    return Output(spikes=recs.spikes, v=recs.v, readout=recs.readout, final_state=final,
                  info={"ts": ts, "num_steps": jnp.sum(steps)})
