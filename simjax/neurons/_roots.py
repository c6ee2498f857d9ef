r"""First upward zero crossing of a scalar function of time, with implicit-function-theorem gradients.

Event-driven simulation needs the time `t*` at which a neuron's `threshold` first crosses zero
from below under its free flow. Where no closed form exists, `first_crossing` finds it by
bracketing, bisection and regula falsi, and differentiates it by the implicit
function theorem: at `f(t*, p) = 0`,

    dt*/dp = -(df/dp) / (df/dt)

so gradients are exact (to the accuracy of `t*`) and do not depend on the iterations that found
`t*` (the search runs without gradients).

Why not optimistix's bisection with its implicit-function adjoint: the search here is a fixed
number of vectorised bracketing steps over all neurons at once, which `benchmarks/root_finding.py`
measures against `optimistix.root_find(optimistix.Bisection)` on the same crossing problems (the
figures are on the benchmarks page); optimistix is slower there, most of all for gradients.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PyTree

from .._checks import is_concrete


def _search(fn, grid, iterations, polish, dynamic, horizon, knots):
    """The crossing time without gradients (see `first_crossing`)."""
    h = horizon
    u = jnp.linspace(0.0, 1.0, grid, dtype=h.dtype).reshape((grid,) + (1,) * h.ndim)
    ts = u * h
    if knots is not None:
        ks = jnp.clip(jnp.where(jnp.isfinite(knots), knots, 0.0), 0.0, h)
        ts = jnp.sort(jnp.concatenate([ts, ks], axis=0), axis=0)
    fs = jax.vmap(lambda t: fn(t, dynamic))(ts)
    up = fs >= 0  # NaN counts as "not crossed"
    found = jnp.any(up, axis=0)
    j = jnp.argmax(up, axis=0)
    hi = jnp.take_along_axis(ts, j[None], axis=0)[0]
    lo = jnp.take_along_axis(ts, jnp.maximum(j - 1, 0)[None], axis=0)[0]
    f_hi = jnp.take_along_axis(fs, j[None], axis=0)[0]
    f_lo = jnp.take_along_axis(fs, jnp.maximum(j - 1, 0)[None], axis=0)[0]

    def refine(point):
        def body(_, bracket):
            lo, hi, f_lo, f_hi = bracket
            t = point(lo, hi, f_lo, f_hi)
            f = fn(t, dynamic)
            above = f >= 0
            return (jnp.where(above, lo, t), jnp.where(above, t, hi), jnp.where(above, f_lo, f),
                    jnp.where(above, f, f_hi))

        return body

    def midpoint(lo, hi, f_lo, f_hi):
        return 0.5 * (lo + hi)

    def secant(lo, hi, f_lo, f_hi):
        # Linear interpolation of f in the bracket (regula falsi); the midpoint where it is degenerate.
        gap = f_hi - f_lo
        t = lo - f_lo * (hi - lo) / jnp.where(gap > 0, gap, 1.0)
        ok = (gap > 0) & (t >= lo) & (t <= hi)
        return jnp.where(ok, t, 0.5 * (lo + hi))

    bracket = jax.lax.fori_loop(0, iterations, refine(midpoint), (lo, hi, f_lo, f_hi))
    bracket = jax.lax.fori_loop(0, polish, refine(secant), bracket)
    t = secant(*bracket)
    t = jnp.where(j == 0, jnp.zeros_like(t), t)
    return jnp.where(found, t, jnp.inf)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3))
def _root(fn, grid, iterations, polish, dynamic, horizon, knots):
    return _search(fn, grid, iterations, polish, dynamic, horizon, knots)


@_root.defjvp
def _root_jvp(fn, grid, iterations, polish, primals, tangents):
    dynamic, horizon, knots = primals
    d_dynamic = tangents[0]
    t = _root(fn, grid, iterations, polish, dynamic, horizon, knots)
    # At t* = 0 (already crossed) and t* = inf (no crossing) the time is locally constant.
    ok = jnp.isfinite(t) & (t > 0)
    t_safe = jnp.where(ok, t, 0.0)
    _, f_t = jax.jvp(lambda s: fn(s, dynamic), (t_safe,), (jnp.ones_like(t_safe),))
    _, f_p = jax.jvp(lambda d: fn(t_safe, d), (dynamic,), (d_dynamic,))
    ok = ok & (f_t > 0)
    dt = jnp.where(ok, -f_p / jnp.where(ok, f_t, 1.0), 0.0)
    return t, dt.astype(t.dtype)


def first_crossing(fn: Callable[[Any, PyTree], Float[Array, "*shape"]], args: PyTree, horizon: Any, *,
                   knots: Float[Array, "k *shape"] | None = None, grid: int = 32,  # noqa: F821 (a jaxtyping shape)
                   iterations: int | None = None, polish: int = 3) -> Float[Array, "*shape"]:
    r"""The first time `t` in `[0, horizon]` at which `fn(t, args)` crosses zero from below.

    Computed element by element: element `k` of the result is the first crossing of
    `t -> fn(t, args)[k]`.

    **Arguments:**

    - `fn`: `(t, args) -> f` with `f` of shape `*shape` (e.g. a population). It must act
      elementwise in time: `t` is passed as an array of shape `*shape` (or a scalar while the
      shape is being determined) and `f[k]` may depend on `t` only through `t[k]`. It must
      be differentiable in `t` and in the arrays of `args`. Values it closes over are treated
      like `args` (gradients flow to them too), but passing them in `args` is clearer.
    - `args`: a pytree (e.g. `(neuron, state)`); its floating-point arrays are what gradients
      flow to, other leaves are held fixed.
    - `horizon`: finite end of the search interval (scalar or broadcastable to `*shape`).
    - `knots`: optional times `[k, *shape]` (outside `[0, horizon]` or non-finite: ignored)
      that split `[0, horizon]` into pieces on which `f` is monotone, e.g. the end of a
      refractory hold and the time of an extremum. With them the first crossing is bracketed
      exactly and `grid` may be as small as 2 (the end points).
    - `grid`: number of equally spaced points (end points included, >= 2) at which `f` is
      sampled to bracket the crossing.
    - `iterations`: bisection steps refining the bracket (default: a third of the mantissa bits
      of the dtype, 17 in float64, 7 in float32: a bracket of `~1e-5` of the grid spacing).
    - `polish`: regula-falsi steps that follow: each evaluates `f` at the linear interpolation
      of the bracket (its midpoint where that is degenerate) and keeps the sub-bracket that holds
      the crossing. Once the bracket is small, each step multiplies the error by about
      `(f''/f') x bracket`, so the default 3 steps and a final interpolation reach float
      precision; the bracket itself never widens, whatever `f`.

    **Returns:** `t*` of shape `*shape`: `0` where `f(0) >= 0` (already at or above
    threshold), `inf` where no sample point of `[0, horizon]` has `f >= 0`, else the crossing
    within the first bracket `[t_a, t_b]` of sample points with `f(t_a) < 0 <= f(t_b)`.

    **Guarantees and limits.** The crossing found is the first one whenever `f` is monotone
    between consecutive sample points (give `knots` to ensure this); a pair of crossings closer
    together than the grid spacing can be missed or mis-ordered otherwise.

    **Gradients** (forward and reverse mode) follow the implicit function theorem at `f(t*) = 0`:
    `dt* = -(df/dargs . dargs) / (df/dt)`. They are zero where `t*` is `0` or `inf` and where
    `df/dt <= 0` (a tangential touch, where the exact derivative is unbounded). `horizon` and
    `knots` receive no gradient.
    """
    if not isinstance(grid, int) or grid < 2:
        raise ValueError(f"first_crossing: grid must be an int >= 2, got {grid!r}")
    for name, value in (("iterations", iterations), ("polish", polish)):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValueError(f"first_crossing: {name} must be a non-negative int, got {value!r}")
    dynamic, static = eqx.partition(args, eqx.is_array)
    out = jax.eval_shape(lambda d: fn(jnp.zeros(()), eqx.combine(d, static)), dynamic)
    if not jnp.issubdtype(out.dtype, jnp.floating):
        raise TypeError(f"first_crossing: fn must return floating-point values, got dtype {out.dtype}")
    dtype = out.dtype
    shape = jnp.broadcast_shapes(out.shape, jnp.shape(horizon))
    if is_concrete(horizon) and not np.all(np.isfinite(np.asarray(horizon))):
        raise ValueError(f"first_crossing: horizon must be finite (the search spans [0, horizon]), got {horizon!r}")
    horizon = jnp.broadcast_to(jnp.asarray(horizon, dtype=dtype), shape)
    if knots is not None:
        knots = jnp.asarray(knots, dtype=dtype)
        knots = jax.lax.stop_gradient(jnp.broadcast_to(knots, knots.shape[:1] + shape))
    if iterations is None:
        iterations = int(jnp.finfo(dtype).nmant) // 3

    def g(t, d):
        return jnp.broadcast_to(fn(t, eqx.combine(d, static)), shape)

    converted, consts = jax.closure_convert(g, jnp.zeros(shape, dtype), dynamic)

    def h(t, packed):
        d, c = packed
        return converted(t, d, *c)

    return _root(h, grid, iterations, polish, (dynamic, tuple(consts)), jax.lax.stop_gradient(horizon), knots)
