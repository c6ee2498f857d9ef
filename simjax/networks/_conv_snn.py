r"""Building blocks of one-step convolutional spiking networks (StereoSpike: Rançon, Cuadrado-Anibarro,
Cottereau & Masquelier, IEEE Access 2022, arXiv 2109.13751).

Every layer is reset before each sample and runs for a single time step, so an integrate-and-fire
neuron starting from rest (`v = 0`) with input current `I` fires iff `I >= v_th`:

    S = H(I - v_th)            (stateless IF, SpikingJelly's `IFNode` for one step)

The blocks take and return channels-first tensors `[batch, C, H, W]`:

- `SpikingConv`: `S = IF(conv(x))` (the bottom and encoder layers);
- `SEWBlock`: spike-element-wise residual block `IF(conv2(IF(conv1(x)))) + x` (Fang et al.,
  NeurIPS 2021, "ADD" connection): its output counts spikes, integers that can exceed 1;
- `UpsampleConv`: nearest-neighbour resize to `target + k - 1`, then a valid `k x k` convolution,
  so the output is exactly `target` (no checkerboard artefacts of transposed convolutions);
- `DecoderStage`: `IF(UpsampleConv(x, skip size)) + skip` (the U-Net decoder with summed skips);
- `DepthReadout`: prediction layers (`UpsampleConv` to the full resolution, with a bias) that
  inject current into one pool of non-firing "I-neurons" (infinite threshold); the potential
  after stage `s` is the running sum `D_s = sum_{s' <= s} p_{s'}`, and every `D_s` is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_int
from ..surrogates._surrogates import AbstractSurrogate, Arctan
from ..synapses._conv import Conv2d, resize_nearest


class StatelessIF(eqx.Module):
    r"""Integrate-and-fire neuron run for one time step from rest: `S = H(I - v_th)`, spiking when
    the input current reaches the threshold (`I >= v_th`, as SpikingJelly's `IFNode`).

    Backward, `dS/dI` is the surrogate's pseudo-derivative at `I - v_th` (`Arctan(alpha=2)`:
    `(alpha / 2) / (1 + (pi alpha (I - v_th) / 2)^2)`, equal to 1 at the threshold). It is computed
    as `1 - H(v_th - I)`, which gives `H(0) = 1` and, for the symmetric surrogates of
    `simjax.surrogates`, the same pseudo-derivative.

    **Arguments:**

    - `surrogate`: the pseudo-derivative (default `Arctan(alpha=2.0)`).
    - `v_th`: the threshold (a fixed constant, not learned).
    """

    surrogate: AbstractSurrogate
    v_th: float = eqx.field(static=True)

    def __init__(self, surrogate: AbstractSurrogate | None = None, v_th: float = 1.0):
        self.surrogate = Arctan(2.0) if surrogate is None else surrogate
        self.v_th = float(v_th)

    def __call__(self, current: Float[Array, "..."]) -> Float[Array, "..."]:
        """Spikes (0 or 1) of neurons receiving `current` during their single step."""
        current = jnp.asarray(current)
        return 1 - self.surrogate(self.v_th - current)


class SpikingConv(eqx.Module):
    """`S = IF(conv(x))`: a convolution followed by stateless IF neurons.

    **Arguments:** `conv` (a `simjax.synapses.Conv2d`), `neuron` (a `StatelessIF`).
    """

    conv: Conv2d
    neuron: StatelessIF

    @classmethod
    def init(cls, in_channels: int, out_channels: int, kernel_size: int = 5, *, key: PRNGKeyArray,
             stride: int = 1, neuron: StatelessIF | None = None, scale: float = 1.0) -> SpikingConv:
        """A bias-free `kernel_size` convolution with `padding = kernel_size // 2` (so `stride=2`
        halves the image, rounding up) and He-initialised weights."""
        conv = Conv2d.init(in_channels, out_channels, kernel_size, key=key, stride=stride,
                           padding=kernel_size // 2, scale=scale)
        return cls(conv, StatelessIF() if neuron is None else neuron)

    def __call__(self, x: Float[Array, "batch c h w"]) -> Float[Array, "batch c2 h2 w2"]:
        return self.neuron(self.conv(x))


class SEWBlock(eqx.Module):
    """Spike-element-wise residual block with the "ADD" connection (Fang et al., NeurIPS 2021):
    `out = IF(conv2(IF(conv1(x)))) + x`. Outputs are spike counts (integers, possibly above 1);
    they are passed on as they are, never binarised.

    **Arguments:** `conv1`, `conv2` (`Conv2d`, `C -> C`, same padding), `neuron` (`StatelessIF`,
    shared by both layers).
    """

    conv1: Conv2d
    conv2: Conv2d
    neuron: StatelessIF

    @classmethod
    def init(cls, channels: int, kernel_size: int = 3, *, key: PRNGKeyArray, neuron: StatelessIF | None = None,
             scale: float = 1.0) -> SEWBlock:
        k1, k2 = jax.random.split(key)
        conv = lambda k: Conv2d.init(channels, channels, kernel_size, key=k, padding=kernel_size // 2, scale=scale)
        return cls(conv(k1), conv(k2), StatelessIF() if neuron is None else neuron)

    def __call__(self, x: Float[Array, "batch c h w"]) -> Float[Array, "batch c h w"]:
        return self.neuron(self.conv2(self.neuron(self.conv1(x)))) + x


class UpsampleConv(eqx.Module):
    """Nearest-neighbour resize to `(H + k - 1, W + k - 1)`, then a valid `k x k` convolution:
    the output is exactly `size = (H, W)` ("NN-upsampling + conv" of StereoSpike's decoder and
    prediction layers). Returns the convolution's output (a current), no spikes. A layer with one
    output channel (or with `out_c kh kw < in_c`) contracts the channels at the input resolution and
    resizes the `kh kw` tap maps instead (the same sums in another order; much faster on a CPU).

    **Arguments:** `conv`, a `Conv2d` with `padding="VALID"` and stride 1 (with a bias for the
    prediction layers).
    """

    conv: Conv2d

    def __check_init__(self):
        if self.conv.padding != "VALID" or self.conv.stride != (1, 1):
            raise ValueError(f"UpsampleConv: the convolution must be valid with stride 1, got padding="
                             f"{self.conv.padding!r} and stride={self.conv.stride!r}")

    @classmethod
    def init(cls, in_channels: int, out_channels: int, kernel_size: int = 5, *, key: PRNGKeyArray,
             bias: bool = False, scale: float = 1.0) -> UpsampleConv:
        return cls(Conv2d.init(in_channels, out_channels, kernel_size, key=key, padding="VALID", bias=bias,
                               scale=scale))

    def __call__(self, x: Float[Array, "batch c h w"], size: tuple[int, int]) -> Float[Array, "batch c2 h2 w2"]:
        out_c, in_c, kh, kw = self.conv.weight.shape
        h = check_int("size[0]", size[0], owner="UpsampleConv")
        w = check_int("size[1]", size[1], owner="UpsampleConv")
        if (out_c > 1 and out_c * kh * kw >= in_c) or x.ndim != 4 or x.shape[1] != in_c:
            return self.conv(resize_nearest(x, (h + kh - 1, w + kw - 1)))
        # Few outputs (the prediction layers, C -> 1): contract the channels with every kernel tap at
        # the input resolution, z[o, i, j] = sum_c W[o, c, i, j] pre[c] (a nearest resize copies
        # pixels, so it commutes with this per-pixel sum), then post[o, y, x] =
        # sum_{i, j} z[o, i, j, rows[y + i], cols[x + j]] with the resize's source rows and columns,
        # gathered one axis at a time (the same products, summed in another order). On a CPU this
        # is faster than a one-output-channel convolution even when kh kw > in_c.
        rows = (np.arange(h + kh - 1) * x.shape[-2]) // (h + kh - 1)
        cols = (np.arange(w + kw - 1) * x.shape[-1]) // (w + kw - 1)
        z = jnp.einsum("nchw,ocij->noijhw", x, self.conv.weight.astype(x.dtype))
        u = sum(jnp.take(z[:, :, :, j], cols[j:j + w], axis=-1) for j in range(kw))  # [n, o, kh, h_in, w]
        y = sum(jnp.take(u[:, :, i], rows[i:i + h], axis=-2) for i in range(kh))
        return y if self.conv.bias is None else y + self.conv.bias[:, None, None]


class DecoderStage(eqx.Module):
    """One decoder stage of a spiking U-Net: `IF(UpsampleConv(x, skip size)) + skip` (or without
    the sum when `skip` is `None`; then `size` gives the output size).

    **Arguments:** `upconv` (`UpsampleConv`), `neuron` (`StatelessIF`).
    """

    upconv: UpsampleConv
    neuron: StatelessIF

    @classmethod
    def init(cls, in_channels: int, out_channels: int, kernel_size: int = 5, *, key: PRNGKeyArray,
             neuron: StatelessIF | None = None, scale: float = 1.0) -> DecoderStage:
        return cls(UpsampleConv.init(in_channels, out_channels, kernel_size, key=key, scale=scale),
                   StatelessIF() if neuron is None else neuron)

    def __call__(self, x: Float[Array, "batch c h w"], skip: Float[Array, "batch c2 h2 w2"] | None = None,
                 size: tuple[int, int] | None = None) -> Float[Array, "batch c2 h2 w2"]:
        if skip is None and size is None:
            raise ValueError("DecoderStage: give the skip tensor or the output size")
        target = tuple(skip.shape[-2:]) if skip is not None else tuple(size)
        out = self.neuron(self.upconv(x, target))
        return out if skip is None else out + skip


class DepthReadout(eqx.Module):
    """Multi-scale readout into one pool of I-neurons (non-firing integrators whose membrane
    potential is the prediction). Stage `s` of `features` (coarsest first) drives the pool through
    `predictions[s]` (an `UpsampleConv` to the full resolution, `C_s -> 1`, with a bias, which acts as
    a learnable reset potential); the potential after stage `s` is `D_s = sum_{s' <= s} p_{s'}`.

    **Arguments:** `predictions`, one `UpsampleConv` per stage that feeds the pool.
    """

    predictions: tuple[UpsampleConv, ...]

    def __init__(self, predictions: Sequence[UpsampleConv]):
        self.predictions = tuple(predictions)
        if not self.predictions:
            raise ValueError("DepthReadout: needs at least one prediction layer")

    @classmethod
    def init(cls, channels: Sequence[int], kernel_size: int = 3, *, key: PRNGKeyArray,
             scale: float = 1.0) -> DepthReadout:
        """One prediction layer (`C_s -> 1`, with a zero bias) per entry of `channels`."""
        keys = jax.random.split(key, len(channels))
        return cls([UpsampleConv.init(c, 1, kernel_size, key=k, bias=True, scale=scale)
                    for c, k in zip(channels, keys)])

    def __call__(self, features: Sequence[Float[Array, "..."]],
                 size: tuple[int, int]) -> Float[Array, "stages batch H W"]:
        """`[stages, batch, H, W]`: the I-neuron potential after each stage (the last is the prediction)."""
        if len(features) != len(self.predictions):
            raise ValueError(f"DepthReadout: got {len(features)} feature maps, expected {len(self.predictions)} "
                             "(one per prediction layer)")
        depth, depths = None, []
        for p, f in zip(self.predictions, features):  # running sums (a cumsum lowers to a slow reduce-window)
            current = p(f, size)[:, 0]
            depth = current if depth is None else depth + current
            depths.append(depth)
        return jnp.stack(depths)
