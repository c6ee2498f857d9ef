"""`fit_classifier`: full-batch gradient descent of a static binary classifier, as one `lax.scan`."""

from __future__ import annotations

from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from .._checks import check_choice, check_int
from ..networks._two_layer import AbstractTwoLayer

LOSSES = ("hinge", "logistic")


def margin_loss(outputs: Float[Array, " n"], targets: Float[Array, " n"], loss: str,
                weights: Float[Array, " n"] | None = None) -> Float[Array, ""]:
    """The mean (weighted by `weights` where given) of `max(0, 1 - y N)` (`"hinge"`) or
    `log(1 + exp(-y N))` (`"logistic"`)."""
    z = targets * outputs
    per = jax.nn.relu(1.0 - z) if loss == "hinge" else jax.nn.softplus(-z)
    if weights is None:
        return jnp.mean(per)
    return jnp.sum(weights * per) / jnp.maximum(jnp.sum(weights), 1.0)


def _trainable_spec(model: AbstractTwoLayer):
    spec = jax.tree.map(lambda _: False, model)
    fields = model.trainable
    return eqx.tree_at(lambda m: [getattr(m, f) for f in fields], spec, replace=[True] * len(fields))


def fit_classifier(model: AbstractTwoLayer, inputs: Float[ArrayLike, "n ..."], targets: Float[ArrayLike, " n"], *,
                   learning_rate: Float[ArrayLike, ""], steps: int, loss: Literal["hinge", "logistic"] = "hinge",
                   weights: Float[ArrayLike, " n"] | None = None) -> tuple[AbstractTwoLayer, dict[str, Array]]:
    r"""Full-batch gradient descent `theta <- theta - learning_rate * dL/dtheta` on the mean margin
    loss `L = mean_n l(y_n N(x_n))` (`margin_loss`) of the fields `model.trainable` names.

    Pure and traceable: `jax.vmap` over seeds, learning rates, or training sets of different sizes
    (pad them to one size and give `weights` 1 for real points and 0 for padding) trains many runs as
    one program.

    **Arguments:**

    - `model`: an `simjax.networks.AbstractTwoLayer`.
    - `inputs`, `targets`: the training set (`targets` in `{-1, +1}`).
    - `learning_rate`: the step size; `steps`: number of updates.
    - `loss`: `"hinge"` or `"logistic"`.
    - `weights`: optional per-point weights (0 = padding).

    **Returns:**

    - `(trained_model, history)` with `history["loss"]` and `history["train_error"]` (fraction of
      weighted points with `sign N(x) != y`), each `[steps]`, measured before each update.
    """
    check_int("steps", steps, owner="fit_classifier")
    check_choice("loss", loss, LOSSES, owner="fit_classifier")
    inputs, targets = jnp.asarray(inputs), jnp.asarray(targets)
    if targets.shape != inputs.shape[:1]:
        raise ValueError(f"fit_classifier: targets have shape {targets.shape}, expected ({inputs.shape[0]},) "
                         f"(one label per input of shape {inputs.shape})")
    w = jnp.ones_like(targets) if weights is None else jnp.asarray(weights, targets.dtype)
    lr = jnp.asarray(learning_rate, targets.dtype)
    params, static = eqx.partition(model, _trainable_spec(model))

    def objective(p):
        out = eqx.combine(p, static)(inputs)
        return margin_loss(out, targets, loss, w), out

    def step(p, _):
        (value, out), grads = jax.value_and_grad(objective, has_aux=True)(p)
        err = jnp.sum(w * (jnp.sign(out) != targets)) / jnp.maximum(jnp.sum(w), 1.0)
        p = jax.tree.map(lambda a, g: a - lr * g, p, grads)
        return p, {"loss": value, "train_error": err}

    params, history = jax.lax.scan(step, params, None, length=steps)
    return eqx.combine(params, static), history
