r"""Losses and metrics of dense depth regression with missing ground truth (StereoSpike: Rançon et al.,
IEEE Access 2022; the regression term is the scale-invariant loss of Eigen et al., NeurIPS 2014, on
linear depth, the gradient term the zero-padded Sobel matching of the StereoSpike code).

Ground-truth pixels that are not finite (NaN: no LIDAR return) are invalid and ignored. With the
residual `R = D_hat - D` on the `n` valid pixels of an image and `R = 0` elsewhere:

    L_reg  = (1/n) sum R^2 - (1/n^2) (sum R)^2                (the residual's variance)
    L_grad = (1/n) sum_pixels (|S_x * R| + |S_y * R|)         (Sobel filters, zero padding)
    L      = sum over readout stages s of [L_reg(D_s) + w L_grad(D_s)],   w = 0.5

`L_reg` ignores a constant offset of the prediction. `L_grad` would too if the Sobel filters only
saw valid pixels; with zero padding and zeroed invalid pixels, an offset shows at the image border
and around holes, which is the only way the network learns absolute depth. An image without valid
pixels contributes 0 to the losses (they stay NaN-free) and is left out of the batch mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float


def _residual(prediction, target):
    prediction, target = jnp.asarray(prediction), jnp.asarray(target)
    if prediction.shape != target.shape:
        raise ValueError(f"depth loss: prediction has shape {prediction.shape}, target {target.shape}; expected "
                         "equal [batch, H, W] shapes")
    if prediction.ndim < 2:
        raise ValueError(f"depth loss: expected [..., H, W] depth maps, got shape {prediction.shape}")
    valid = jnp.isfinite(target)
    r = jnp.where(valid, prediction - jnp.where(valid, target, 0), 0)
    n = jnp.sum(valid, axis=(-2, -1)).astype(r.dtype)
    return r, valid, n


def _image_mean(per_image, n):
    has = n > 0
    return jnp.sum(jnp.where(has, per_image, 0)) / jnp.maximum(jnp.sum(has), 1)


def scale_invariant_loss(prediction: Float[ArrayLike, "*batch H W"],
                         target: Float[ArrayLike, "*batch H W"]) -> Float[Array, ""]:
    """`L_reg`, the variance of the residual over an image's valid pixels, averaged over the images
    (module docstring).

    **Arguments:**

    - `prediction`: predicted depth `[..., H, W]`.
    - `target`: ground truth of the same shape, NaN where missing.

    **Returns:** the scalar loss.
    """
    r, _, n = _residual(prediction, target)
    safe = jnp.maximum(n, 1)
    per_image = jnp.sum(r**2, axis=(-2, -1)) / safe - (jnp.sum(r, axis=(-2, -1)) / safe) ** 2
    return _image_mean(per_image, n)


def sobel(x: Float[ArrayLike, "*batch H W"]) -> tuple[Float[Array, "*batch H W"], Float[Array, "*batch H W"]]:
    """The horizontal and vertical Sobel responses of `x` with zero padding (same size as `x`);
    `S_x = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]` (cross-correlation), `S_y = S_x^T`.

    Computed as sums of shifted copies of the zero-padded image (one fused elementwise pass; a
    one-channel convolution is far slower on a CPU, forward and backward)."""
    x = jnp.asarray(x)
    h, w = x.shape[-2:]
    p = jnp.pad(x, [(0, 0)] * (x.ndim - 2) + [(1, 1), (1, 1)])
    s = lambda i, j: p[..., i:i + h, j:j + w]
    gx = (s(0, 2) - s(0, 0)) + 2 * (s(1, 2) - s(1, 0)) + (s(2, 2) - s(2, 0))
    gy = (s(2, 0) - s(0, 0)) + 2 * (s(2, 1) - s(0, 1)) + (s(2, 2) - s(0, 2))
    return gx, gy


def sobel_gradient_loss(prediction: Float[ArrayLike, "*batch H W"],
                        target: Float[ArrayLike, "*batch H W"]) -> Float[Array, ""]:
    """`L_grad = (1/n) sum (|S_x * R| + |S_y * R|)`, the residual `R` zeroed at invalid pixels and
    zero-padded (module docstring), averaged over the images.

    **Arguments:** as `scale_invariant_loss`.

    **Returns:** the scalar loss.
    """
    r, _, n = _residual(prediction, target)
    gx, gy = sobel(r)
    per_image = jnp.sum(jnp.abs(gx) + jnp.abs(gy), axis=(-2, -1)) / jnp.maximum(n, 1)
    return _image_mean(per_image, n)


def depth_loss(depths: Float[ArrayLike, "stages *batch H W"], target: Float[ArrayLike, "*batch H W"], *,
               grad_weight: Float[ArrayLike, ""] = 0.5) -> Float[Array, ""]:
    """StereoSpike's multi-scale loss: `sum_s [L_reg(D_s) + grad_weight L_grad(D_s)]` over the
    readout stages (every one compared with the full-resolution ground truth).

    **Arguments:**

    - `depths`: `[stages, ..., H, W]`, the I-neuron potential after each readout stage.
    - `target`: `[..., H, W]`, NaN where missing.
    - `grad_weight`: weight of the gradient term (0.5 in the paper).

    **Returns:** the scalar loss.
    """
    depths = jnp.asarray(depths)
    total = jnp.zeros((), jnp.result_type(depths.dtype, float))
    for s in range(depths.shape[0]):
        total = total + scale_invariant_loss(depths[s], target) + grad_weight * sobel_gradient_loss(depths[s], target)
    return total


def mean_depth_error(prediction: Float[ArrayLike, "*batch H W"],
                     target: Float[ArrayLike, "*batch H W"]) -> Float[Array, ""]:
    """Mean depth error `mean |D_hat - D|` over every valid pixel of the batch (pooled), in the
    unit of the depths (the paper reports centimetres).

    Raises an error (also under `jit`, through `equinox.error_if`) when no pixel is valid.

    **Arguments:** as `scale_invariant_loss`.

    **Returns:** the scalar error.
    """
    r, _, n = _residual(prediction, target)
    total = jnp.sum(n)
    mde = jnp.sum(jnp.abs(r)) / jnp.maximum(total, 1)
    return eqx.error_if(mde, total == 0, "mean_depth_error: every ground-truth pixel is masked (NaN); there is no "
                                         "valid pixel to score")


def spike_penalty(spikes: Sequence[Any]) -> Float[Array, ""]:
    """`L_spikes = sum over tensors of (1 / (2K)) sum_k S_k^2` (`K` entries per tensor): StereoSpike's
    activity regulariser, applied to spike counts as they are (not binarised).

    **Arguments:** `spikes`, a sequence of spike tensors.

    **Returns:** the scalar penalty.
    """
    if not spikes:
        raise ValueError("spike_penalty: needs at least one spike tensor")
    return sum(jnp.mean(jnp.asarray(s) ** 2) / 2 for s in spikes)
