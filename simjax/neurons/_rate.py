r"""Rate neurons: a leaky integrator of its input current, and its memoryless (`tau -> 0`) limit.

`LeakyRate` (the standard firing-rate unit, e.g. Sompolinsky, Crisanti & Sommers 1988):

    tau dx/dt = -x + I(t),        r = phi(x)

Its `step` is the exact solution for an input `I = drive` held constant over the step
(exponential Euler):

    x <- a x + (1 - a) drive,     a = exp(-dt / tau)

`InstantaneousRate` is the memoryless unit of a static network (an MLP layer, or a discrete-time
Elman RNN): `x <- drive`, `r = phi(x)`; it has no continuous-time form.

Activations are named (`"tanh"`, `"relu"`, `"softplus"`, `"sigmoid"`, `"linear"`) or any
callable acting elementwise.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_choice, check_positive
from ._base import AbstractRateNeuron

ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "softplus": jax.nn.softplus,
    "sigmoid": jax.nn.sigmoid,
    "linear": lambda x: x,
}

Activation = str | Callable[[Array], Array]


def get_activation(activation: Activation, *, owner: str = "") -> Callable[[Array], Array]:
    """The elementwise function for an activation name (or the callable itself).

    **Raises:** `ValueError` naming the value and the known names for an unknown name;
    `TypeError` for something that is neither a name nor a callable.
    """
    if isinstance(activation, str):
        check_choice("activation", activation, tuple(ACTIVATIONS), owner=owner)
        return ACTIVATIONS[activation]
    if callable(activation):
        return activation
    where = f"{owner}: " if owner else ""
    raise TypeError(f"{where}activation must be one of {', '.join(map(repr, ACTIVATIONS))} or a callable, "
                    f"got {activation!r}")


class LeakyRate(AbstractRateNeuron):
    """Leaky rate unit `tau dx/dt = -x + drive`, rate `phi(x)` (module docstring).

    The state is the array `x` (the "membrane potential" of the unit).

    **Arguments:**

    - `tau`: time constant (ms, > 0), broadcastable to the population.
    - `activation`: `"tanh"`, `"relu"`, `"softplus"`, `"sigmoid"`, `"linear"` or a callable.
    """

    tau: Float[Array, "*pop"]
    activation: Activation = eqx.field(static=True)

    def __init__(self, tau=10.0, activation: Activation = "tanh"):
        get_activation(activation, owner="LeakyRate")
        self.tau = as_float_array(tau)
        self.activation = activation

    def __check_init__(self):
        check_positive("tau", self.tau, owner="LeakyRate")

    def phi(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """The activation function."""
        return get_activation(self.activation)(x)

    def init(self, key, shape):
        del key
        return jnp.zeros(shape, dtype=jnp.result_type(self.tau))

    def vector_field(self, t, state, drive):
        del t
        return (drive - state) / self.tau

    def step(self, state, drive, dt):
        a = jnp.exp(-dt / self.tau)
        x = a * state + (1.0 - a) * drive
        return x, self.phi(x)

    def output(self, state):
        return self.phi(state)


class InstantaneousRate(AbstractRateNeuron):
    """Memoryless rate unit: `x = drive`, rate `phi(x)` (the `tau -> 0` limit of `LeakyRate`).

    `step` ignores `dt` and the previous state, so a network of these units is a static map per
    time step (an MLP), or a discrete-time RNN `x_t = W phi(x_{t-1}) + U u_t` when recurrent.

    **Arguments:** `activation` (as for `LeakyRate`, default `"relu"`).
    """

    activation: Activation = eqx.field(static=True)

    def __init__(self, activation: Activation = "relu"):
        get_activation(activation, owner="InstantaneousRate")
        self.activation = activation

    def phi(self, x: Float[Array, "..."]) -> Float[Array, "..."]:
        """The activation function."""
        return get_activation(self.activation)(x)

    def init(self, key, shape):
        del key
        return jnp.zeros(shape, dtype=jnp.result_type(float))

    def vector_field(self, t, state, drive):
        raise NotImplementedError("InstantaneousRate is algebraic (x = drive) and has no continuous-time "
                                  "vector field; use LeakyRate(tau=...) for method='ode'")

    def step(self, state, drive, dt):
        del state, dt
        x = jnp.asarray(drive)
        return x, self.phi(x)

    def output(self, state):
        return self.phi(state)
