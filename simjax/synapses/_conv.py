"""2-D convolution and nearest-neighbour upsampling for spiking convolutional networks."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_float_array, as_optional_float, check_int
from ._base import AbstractProjection


def _pair(x, name):
    t = (x, x) if isinstance(x, (int, np.integer)) else tuple(x)
    if len(t) != 2 or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0 for v in t):
        raise ValueError(f"Conv2d: {name} must be a non-negative int or a pair of them, got {x!r}")
    return tuple(int(v) for v in t)


class Conv2d(AbstractProjection):
    r"""`post[o, y, x] = sum_{c, i, j} W[o, c, i, j] pre[c, s_y y + i - p_y, s_x x + j - p_x] + b[o]`
    on channels-first activity `[..., C, H, W]` (leading batch/time axes are flattened for
    `lax.conv_general_dilated`).

    Unlike dense projections, a convolution acts on images: `shape` is `(in_channels,
    out_channels)` and `dense` raises (a dense matrix depends on the image size; build one with
    `jax.jacfwd` on a small input if needed).

    **Arguments:** `weight [out_c, in_c, kh, kw]`, `bias` (`None` or `[out_c]`),
    `stride` (int or pair), `padding` (`"SAME"`, `"VALID"`, an int or a pair).
    """

    trainable: ClassVar[tuple[str, ...]] = ("weight", "bias")

    weight: Float[Array, "out_c in_c kh kw"]
    bias: Float[Array, " out_c"] | None
    stride: tuple[int, int] = eqx.field(static=True)
    padding: str | tuple[tuple[int, int], tuple[int, int]] = eqx.field(static=True)

    def __init__(self, weight, bias=None, stride=1, padding="SAME"):
        self.weight = as_float_array(weight)
        self.bias = as_optional_float(bias)
        self.stride = _pair(stride, "stride")
        if isinstance(padding, str):
            if padding not in ("SAME", "VALID"):
                raise ValueError(f"Conv2d: padding must be 'SAME', 'VALID' or ints, got {padding!r}")
            self.padding = padding
        else:
            p = _pair(padding, "padding")
            self.padding = ((p[0], p[0]), (p[1], p[1]))

    def __check_init__(self):
        if self.weight.ndim != 4:
            raise ValueError(f"Conv2d: weight must be [out_c, in_c, kh, kw], got shape {self.weight.shape}")
        if self.bias is not None and self.bias.shape != (self.weight.shape[0],):
            raise ValueError(f"Conv2d: bias has shape {self.bias.shape}, expected ({self.weight.shape[0]},)")

    @classmethod
    def init(cls, in_channels: int, out_channels: int, kernel_size=3, *, key, stride=1, padding="SAME",
             bias: bool = False, scale: float = 1.0) -> Conv2d:
        """He-like initialisation `N(0, scale^2 * 2 / (in_channels kh kw))`."""
        kh, kw = _pair(kernel_size, "kernel_size")
        fan_in = in_channels * kh * kw
        w = scale * np.sqrt(2.0 / fan_in) * jax.random.normal(key, (out_channels, in_channels, kh, kw),
                                                              dtype=jnp.result_type(float))
        return cls(w, jnp.zeros((out_channels,)) if bias else None, stride, padding)

    def __call__(self, pre):
        if pre.ndim < 3 or pre.shape[-3] != self.weight.shape[1]:
            raise ValueError(f"Conv2d: input has shape {pre.shape}, expected [..., {self.weight.shape[1]}, H, W]")
        lead = pre.shape[:-3]
        x = pre.reshape((-1,) + pre.shape[-3:])
        y = jax.lax.conv_general_dilated(x, self.weight.astype(x.dtype), self.stride, self.padding,
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
        if self.bias is not None:
            y = y + self.bias[:, None, None]
        return y.reshape(lead + y.shape[1:])

    @property
    def shape(self):
        return (self.weight.shape[1], self.weight.shape[0])

    def dense(self):
        raise NotImplementedError("Conv2d has no image-size-independent dense matrix; use jax.jacfwd on an input")

    def without_self_connections(self):
        return self

    def constrain(self):
        return self


def upsample_nearest(x: Float[Array, "... C H W"], factor: int = 2) -> Float[Array, "... C H2 W2"]:
    """Nearest-neighbour upsampling of the last two axes by an integer `factor` (the decoder
    of a spiking U-Net upsamples, then convolves)."""
    check_int("factor", factor, owner="upsample_nearest")
    return jnp.repeat(jnp.repeat(x, factor, axis=-2), factor, axis=-1)


def resize_nearest(x: Float[Array, "... C H W"], size: tuple[int, int]) -> Float[Array, "... C H2 W2"]:
    """Nearest-neighbour resizing of the last two axes to `size = (H2, W2)`: output pixel
    `(i, j)` copies input pixel `(floor(i H / H2), floor(j W / W2))` (PyTorch's `nearest` mode,
    computed in integers). With `H2 = factor H` it equals `upsample_nearest(x, factor)`.

    **Arguments:**

    - `x`: `[..., C, H, W]`.
    - `size`: the output height and width, positive ints.

    **Returns:** `[..., C, H2, W2]`.
    """
    if len(size) != 2:
        raise ValueError(f"resize_nearest: size must be (height, width), got {size!r}")
    h2 = check_int("size[0]", size[0], owner="resize_nearest")
    w2 = check_int("size[1]", size[1], owner="resize_nearest")
    h, w = x.shape[-2:]
    rows = (np.arange(h2) * h) // h2
    cols = (np.arange(w2) * w) // w2
    return jnp.take(jnp.take(x, rows, axis=-2), cols, axis=-1)
