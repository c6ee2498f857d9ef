r"""Teacher-student regression: a fixed random network (the teacher) labels Gaussian inputs.

    x ~ N(0, C),     y = f_teacher(x) + noise * eps,     eps ~ N(0, I)

with `C = I` unless `input_cov` is given. Teachers, drawn once from `seed`:

- `"linear"`: `f(x) = x W`, `W_ij ~ N(0, 1 / n_in)`;
- `"mlp"`: `f(x) = phi(x W_1) W_2`, `W_1 ~ N(0, 1 / n_in)`, `W_2 ~ N(0, 1 / hidden)`.

(the standard setting for learning dynamics of students on teacher data, e.g. Saad & Solla 1995,
and for linear teachers Sarussi, Brutzkus & Globerson 2021). The task is static: inputs are
`[1, batch, n_in]` (one time step) and the loss is the mean squared error of the readout at
that step. The teacher's arrays are fields, so `jax.vmap` over a stack of tasks (different
teachers) works.
"""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_float_array, check_choice, check_int, check_positive
from ._base import AbstractClockTask, Batch

_ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid, "linear": lambda x: x}


class TeacherStudent(AbstractClockTask):
    """Regression of a fixed random teacher's outputs (module docstring).

    **Arguments:**

    - `n_in`, `n_out`: input and output sizes.
    - `teacher`: `"linear"` or `"mlp"` (one hidden layer of `hidden` units with `activation`
      `"tanh"`, `"relu"`, `"sigmoid"` or `"linear"`).
    - `noise`: standard deviation of the label noise (`>= 0`).
    - `input_cov`: optional `(n_in, n_in)` positive-definite input covariance (default `I`).
    - `seed`: draws the teacher (NumPy generator `default_rng(seed)`). `dt`: the simulation time
      step of the single input step (ms).

    **Batch:** `inputs [1, batch, n_in]`, `targets [1, batch, n_out]`.
    """

    w1: Float[Array, "n_in hidden"]
    w2: Float[Array, "hidden n_out"] | None
    input_factor: Float[Array, "n_in n_in"] | None
    noise: Float[Array, ""]
    teacher: str = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    def __init__(self, n_in: int = 10, n_out: int = 1, teacher: Literal["linear", "mlp"] = "linear",
                 hidden: int = 32, activation: str = "tanh", noise: float = 0.0, input_cov=None,
                 seed: int = 0, dt: float = 1.0):
        for name, v in (("n_in", n_in), ("n_out", n_out), ("hidden", hidden)):
            check_int(name, v, owner="TeacherStudent")
        check_choice("teacher", teacher, ("linear", "mlp"), owner="TeacherStudent")
        check_choice("activation", activation, tuple(_ACTIVATIONS), owner="TeacherStudent")
        check_positive("noise", noise, allow_zero=True, owner="TeacherStudent")
        check_positive("dt", dt, owner="TeacherStudent")
        dtype = jnp.result_type(float)
        rng = np.random.default_rng(seed)  # drawn once, on the host
        if teacher == "linear":
            self.w1 = jnp.asarray(rng.standard_normal((n_in, n_out)) / np.sqrt(n_in), dtype)
            self.w2 = None
        else:
            self.w1 = jnp.asarray(rng.standard_normal((n_in, hidden)) / np.sqrt(n_in), dtype)
            self.w2 = jnp.asarray(rng.standard_normal((hidden, n_out)) / np.sqrt(hidden), dtype)
        self.input_factor = None if input_cov is None else _cholesky(input_cov, n_in)
        self.noise = as_float_array(noise)
        self.teacher, self.activation, self.dt = teacher, activation, float(dt)

    @property
    def n_in(self) -> int:
        return self.w1.shape[0]

    @property
    def n_out(self) -> int:
        return self.w1.shape[1] if self.w2 is None else self.w2.shape[1]

    def target_function(self, x: Float[Array, "... n_in"]) -> Float[Array, "... n_out"]:
        """The noiseless teacher `f(x)`."""
        h = x @ self.w1
        if self.w2 is None:
            return h
        return _ACTIVATIONS[self.activation](h) @ self.w2

    def sample(self, key, batch_size):
        check_int("batch_size", batch_size, owner="TeacherStudent")
        dtype = self.w1.dtype
        n_in, n_out = self.n_in, self.n_out
        # One draw for inputs and label noise (one random-number kernel: cheap to compile).
        z = jax.random.normal(key, (batch_size * (n_in + n_out),), dtype).reshape(1, batch_size, n_in + n_out)
        x, eps = z[..., :n_in], z[..., n_in:]
        if self.input_factor is not None:
            x = x @ self.input_factor.T
        y = self.target_function(x) + self.noise * eps
        return Batch(inputs=x, targets=y)

    def loss(self, outputs, batch):
        readout = check_readout(outputs.readout, batch.targets, "TeacherStudent")
        return jnp.mean((readout - batch.targets) ** 2)

    def metrics(self, outputs, batch):
        mse = self.loss(outputs, batch)
        return {"loss": mse, "nmse": mse / jnp.maximum(jnp.var(batch.targets), 1e-12)}


def check_readout(readout, targets, owner: str):
    """`readout` after checking that it has the shape of `targets` (a clear error otherwise)."""
    if readout is None:
        raise ValueError(f"{owner}: the outputs have no readout (simulate with 'readout' in record)")
    if tuple(readout.shape) != tuple(jnp.shape(targets)):
        raise ValueError(f"{owner}: readout has shape {tuple(readout.shape)} but targets have shape "
                         f"{tuple(jnp.shape(targets))} (time, batch and n_out must match)")
    return readout


def _cholesky(cov, n_in):
    cov = np.asarray(cov, dtype=np.float64)
    if cov.shape != (n_in, n_in):
        raise ValueError(f"TeacherStudent: input_cov has shape {cov.shape}, expected ({n_in}, {n_in})")
    if not np.allclose(cov, cov.T) or np.any(np.linalg.eigvalsh(cov) <= 0):
        raise ValueError("TeacherStudent: input_cov must be symmetric positive definite")
    return jnp.asarray(np.linalg.cholesky(cov), dtype=jnp.result_type(float))
