r"""Fixed points of a rate network's autonomous (or constant-input) dynamics.

For a network whose state holds the units' variable `x` in its `neuron` field
(`simjax.networks.RateRNN`), the fixed points solve `F(x) = 0` with `F` the network's
`vector_field` at a constant input. They are found by optimistix's trust-region (dogleg) Newton
method, started from states where the dynamics has settled (the ends of trajectories), as in
Sussillo & Barak (2013); the trust region keeps the iterations from diverging when a start is far
from any fixed point. Linear stability comes from the eigenvalues of `J = dF/dx` at the
solution (stable: every real part negative).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, Bool, Complex, Float

from ..networks._rate_rnn import RateRNN


class FixedPoints(eqx.Module):
    """Newton's result for each start: `x` (`[*starts, N]`), `residual` (`max |F(x)|`),
    `eigenvalues` of `dF/dx` (`[*starts, N]`, complex), `max_real` (their largest real part),
    `stable` (`max_real < 0`) and `converged` (`residual < tol`)."""

    x: Float[Array, "*starts n"]
    residual: Float[Array, "*starts"]
    eigenvalues: Complex[Array, "*starts n"] | None
    max_real: Float[Array, "*starts"] | None
    stable: Bool[Array, "*starts"] | None
    converged: Bool[Array, "*starts"]


def network_field(model: RateRNN, inputs_t: Float[Array, " n_in"] | None = None):
    """`F(x)`: the `neuron` part of `model.vector_field` at state `x` and constant input
    `inputs_t` (zeros by default), for a single state `x [N]`."""
    if not isinstance(model, RateRNN):
        raise TypeError(f"network_field: needs a rate network (simjax.networks.RateRNN, whose state has one array "
                        f"'neuron'), got {type(model).__name__}")
    template = model.init(None, ())
    u = jnp.zeros((model.n_in,), template.neuron.dtype) if inputs_t is None else inputs_t

    def field(x):
        state = eqx.tree_at(lambda s: s.neuron, template, x)
        return model.vector_field(0.0, state, u).neuron

    return field


def find_fixed_points(model: RateRNN, starts: Float[Array, "*starts n"], *, inputs_t=None, iterations: int = 40,
                      tol: float = 1e-8, eigenvalues: bool = True) -> FixedPoints:
    """Fixed points of `model` reached by Newton from each of `starts`.

    **Arguments:**

    - `model`: a rate network (state with an array `neuron` field; e.g. `simjax.networks.RateRNN`).
    - `starts`: initial guesses `[*starts, N]`, e.g. the final states of simulated trials.
    - `inputs_t`: the constant input `[n_in]` (default zero: the autonomous dynamics).
    - `iterations`: the most solver steps per start; `tol`: residual under which a point counts as
      converged (also the solver's tolerance).
    - `eigenvalues`: also compute the Jacobian's spectrum (on CPU; skip it on accelerators
      without a non-symmetric eigensolver).

    **Returns:** a `FixedPoints`.
    """
    return _find(model, starts, inputs_t, iterations, tol, eigenvalues)


@eqx.filter_jit
def _find(model, starts, inputs_t, iterations, tol, eigenvalues):
    field = network_field(model, inputs_t)
    flat = starts.reshape(-1, starts.shape[-1])
    solver = optx.Dogleg(rtol=tol, atol=tol)
    solve = lambda x0: optx.root_find(lambda x, _: field(x), solver, x0, max_steps=iterations, throw=False).value
    x = jax.vmap(solve)(flat)
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
