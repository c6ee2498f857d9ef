r"""Fixed points of a rate network's autonomous (or constant-input) dynamics, by damped Newton.

For a network whose state holds the units' variable ``x`` in its ``neuron`` field (e.g.
`simjax.networks.RateRNN`), the fixed points solve ``F(x) = 0`` with ``F`` the network's
``vector_field`` at a constant input. Newton's method with a backtracking line search,

    x <- x - eta J(x)^{-1} F(x),     J = dF/dx,     eta = the first of 1, 1/2, 1/4, ... that lowers |F|,

is started from states where the dynamics has settled (the ends of trajectories), as in Sussillo &
Barak (2013). Linear stability comes from the eigenvalues of ``J`` at the solution (stable: every real
part negative).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Complex, Float

from ..networks._rate_rnn import RateRNN


class FixedPoints(eqx.Module):
    """Newton's result for each start: ``x`` (``[*starts, N]``), ``residual`` (``max |F(x)|``),
    ``eigenvalues`` of ``dF/dx`` (``[*starts, N]``, complex), ``max_real`` (their largest real part),
    ``stable`` (``max_real < 0``) and ``converged`` (``residual < tol``)."""

    x: Float[Array, "*starts n"]
    residual: Float[Array, "*starts"]
    eigenvalues: Complex[Array, "*starts n"] | None
    max_real: Float[Array, "*starts"] | None
    stable: Bool[Array, "*starts"] | None
    converged: Bool[Array, "*starts"]


def network_field(model: Any, inputs_t: Float[Array, " n_in"] | None = None):
    """``F(x)``: the ``neuron`` part of ``model.vector_field`` at state ``x`` and constant input
    ``inputs_t`` (zeros by default), for a single state ``x [N]``."""
    if not isinstance(model, RateRNN):
        raise TypeError(f"network_field: needs a rate network (simjax.networks.RateRNN, whose state has one array "
                        f"'neuron'), got {type(model).__name__}")
    template = model.init(None, ())
    u = jnp.zeros((model.n_in,), template.neuron.dtype) if inputs_t is None else inputs_t

    def field(x):
        state = eqx.tree_at(lambda s: s.neuron, template, x)
        return model.vector_field(0.0, state, u).neuron

    return field


def newton(field, x0: Float[Array, " n"], *, iterations: int = 40, backtracks: int = 12):
    """Damped Newton iterations for ``field(x) = 0`` from ``x0`` (a fixed number, for ``vmap``).

    Each iteration tries the steps ``eta = 1, 1/2, ..., 2^-(backtracks-1)`` at once and keeps the one
    with the smallest ``|F|``, or no step if none improves. **Returns:** the final ``x``.
    """
    etas = 0.5 ** jnp.arange(backtracks, dtype=x0.dtype)

    def body(x, _):
        f = field(x)
        step = jnp.linalg.solve(jax.jacfwd(field)(x), f)
        step = jnp.where(jnp.all(jnp.isfinite(step)), step, jnp.zeros_like(step))
        trials = x[None] - etas[:, None] * step[None]
        norms = jax.vmap(lambda y: jnp.sum(field(y) ** 2))(trials)
        norms = jnp.where(jnp.isfinite(norms), norms, jnp.inf)
        best = jnp.argmin(norms)
        x = jnp.where(norms[best] < jnp.sum(f**2), trials[best], x)
        return x, None

    x, _ = jax.lax.scan(body, x0, None, length=iterations)
    return x


def find_fixed_points(model: Any, starts: Float[Array, "*starts n"], *, inputs_t=None, iterations: int = 40,
                      tol: float = 1e-8, eigenvalues: bool = True) -> FixedPoints:
    """Fixed points of ``model`` reached by Newton from each of ``starts``.

    **Arguments:**
    - ``model``: a rate network (state with an array ``neuron`` field; e.g. `simjax.networks.RateRNN`).
    - ``starts``: initial guesses ``[*starts, N]``, e.g. the final states of simulated trials.
    - ``inputs_t``: the constant input ``[n_in]`` (default zero: the autonomous dynamics).
    - ``iterations``: Newton iterations; ``tol``: residual under which a point counts as converged.
    - ``eigenvalues``: also compute the Jacobian's spectrum (on CPU; skip it on accelerators
      without a non-symmetric eigensolver).

    **Returns:** a `FixedPoints`.
    """
    return _find(model, starts, inputs_t, iterations, tol, eigenvalues)


@eqx.filter_jit
def _find(model, starts, inputs_t, iterations, tol, eigenvalues):
    field = network_field(model, inputs_t)
    flat = starts.reshape(-1, starts.shape[-1])
    x = jax.vmap(lambda x0: newton(field, x0, iterations=iterations))(flat)
    residual = jnp.max(jnp.abs(jax.vmap(field)(x)), axis=-1)
    shape = starts.shape[:-1]
    eig = max_real = stable = None
    if eigenvalues:
        eig = jax.vmap(lambda y: jnp.linalg.eigvals(jax.jacfwd(field)(y)))(x)
        max_real = jnp.max(eig.real, axis=-1).reshape(shape)
        stable = max_real < 0
        eig = eig.reshape(*shape, -1)
    return FixedPoints(x=x.reshape(starts.shape), residual=residual.reshape(shape), eigenvalues=eig,
                       max_real=max_real, stable=stable, converged=(residual < tol).reshape(shape))
