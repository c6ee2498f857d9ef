r"""StereoSpike: a one-step spiking U-Net that regresses dense metric depth from event counts
(Rançon, Cuadrado-Anibarro, Cottereau & Masquelier, IEEE Access 2022, arXiv 2109.13751).

With `channels = (c_0, c_1, ..., c_L)` (paper: `(32, 64, 128, 256, 512)`, 4 x 2 = `in_channels`
input maps [left ON, left OFF, right ON, right OFF]; a monocular network takes one camera's 2):

    bottom:     S_0 = IF(conv5x5(x))                                       c_0, H x W
    encoder l:  S_l = IF(conv5x5, stride 2, padding 2 (S_{l-1}))           c_l, ceil(H / 2^l)
    bottleneck: B = SEW(SEW(S_L))                                          c_L (spike counts)
    decoder l:  A_l = IF(upconv(A_{l+1} or B, size of S_{l-1})) + S_{l-1}  c_{l-1}, l = L..1
    readout:    D_s = sum of p_{s'} for the stages s' up to s,  p_s = upconv3x3(A_s, H x W) + b_s

Every `D_s` is returned (they are all supervised; the last one is the prediction). `readout`
chooses which decoder stages feed the I-neurons (`(L, ..., 1)`, the paper's 4 scales, down to
`(1,)`, the full-resolution stage only); `skips=False` drops the summed skip connections. Only
the prediction layers have biases (no BatchNorm). Neurons use the arctan surrogate (`alpha = 2`);
the bottleneck blocks use SpikingJelly's default sigmoid surrogate (`alpha = 4`), as the
published code does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from .._checks import check_int
from ..surrogates._surrogates import AbstractSurrogate, Arctan, Sigmoid
from ._base import AbstractNetwork
from ._conv_snn import DecoderStage, DepthReadout, SEWBlock, SpikingConv, StatelessIF

#: Channels of the published network and of the scaled CPU network (same topology).
FULL_CHANNELS = (32, 64, 128, 256, 512)
SCALED_CHANNELS = (4, 8, 16, 32, 64)


class DepthOutput(eqx.Module):
    """What `StereoSpike` returns: `depths [stages, batch, H, W]` (the I-neuron potential after each
    readout stage, the last one the prediction) and `spikes`, every layer's output by name
    (`"bottom"`, `"encoder1"`.., `"bottleneck"`, `"decoder4"`..`"decoder1"` — decoder outputs include
    the summed skips, so they hold spike counts)."""

    depths: Float[Array, "stages batch H W"]
    spikes: dict[str, Array]


class StereoSpike(AbstractNetwork):
    """The StereoSpike network (see the module docstring for the equations).

    **Arguments:**

    - `in_channels`: input maps (4 binocular, 2 monocular).
    - `channels`: `(c_0, c_1, .., c_L)`, bottom and encoder widths (`FULL_CHANNELS` or
      `SCALED_CHANNELS`).
    - `key`: PRNG key for the weights.
    - `kernel_size`: encoder/decoder kernel (5); `block_kernel_size`: bottleneck kernel (3);
      `n_blocks`: SEW blocks in the bottleneck (2).
    - `readout`: decoder stages (numbered `L` coarsest to `1` finest) that feed the I-neurons.
    - `skips`: sum the encoder spikes into the decoder.
    - `surrogate`, `bottleneck_surrogate`: the pseudo-derivatives (default `Arctan(2)`, `Sigmoid(4)`).
    - `scale`: multiplies the He-initialised weights.
    """

    bottom: SpikingConv
    encoders: tuple[SpikingConv, ...]
    bottleneck: tuple[SEWBlock, ...]
    decoders: tuple[DecoderStage, ...]
    readout: DepthReadout
    readout_stages: tuple[int, ...] = eqx.field(static=True)
    skips: bool = eqx.field(static=True)
    in_channels: int = eqx.field(static=True)

    trainable: ClassVar[tuple[str, ...]] = ("bottom", "encoders", "bottleneck", "decoders", "readout")
    local_prepare: ClassVar[bool] = True

    def __init__(self, in_channels: int = 4, channels: Sequence[int] = FULL_CHANNELS, *, key: PRNGKeyArray,
                 kernel_size: int = 5, block_kernel_size: int = 3, n_blocks: int = 2,
                 readout: Sequence[int] | None = None, skips: bool = True,
                 surrogate: AbstractSurrogate | None = None, bottleneck_surrogate: AbstractSurrogate | None = None,
                 scale: float = 1.0):
        self.in_channels = check_int("in_channels", in_channels, owner="StereoSpike")
        channels = tuple(channels)
        if len(channels) < 2:
            raise ValueError(f"StereoSpike: channels must hold the bottom width and at least one encoder width, "
                             f"got {channels!r}")
        for i, c in enumerate(channels):
            check_int(f"channels[{i}]", c, owner="StereoSpike")
        check_int("kernel_size", kernel_size, owner="StereoSpike")
        check_int("n_blocks", n_blocks, minimum=0, owner="StereoSpike")
        depth = len(channels) - 1
        stages = tuple(range(depth, 0, -1)) if readout is None else tuple(readout)
        if not stages or len(set(stages)) != len(stages) or any(
                isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= depth for s in stages):
            raise ValueError(f"StereoSpike: readout must list distinct decoder stages among 1..{depth}, "
                             f"got {readout!r}")
        self.readout_stages = tuple(sorted(stages, reverse=True))
        self.skips = bool(skips)
        neuron = StatelessIF(Arctan(2.0) if surrogate is None else surrogate)
        block_neuron = StatelessIF(Sigmoid(4.0) if bottleneck_surrogate is None else bottleneck_surrogate)
        keys = iter(jax.random.split(key, 3 * depth + n_blocks + 2))
        self.bottom = SpikingConv.init(in_channels, channels[0], kernel_size, key=next(keys), neuron=neuron,
                                       scale=scale)
        self.encoders = tuple(SpikingConv.init(c_in, c_out, kernel_size, key=next(keys), stride=2, neuron=neuron,
                                               scale=scale) for c_in, c_out in zip(channels[:-1], channels[1:]))
        self.bottleneck = tuple(SEWBlock.init(channels[-1], block_kernel_size, key=next(keys), neuron=block_neuron,
                                              scale=scale) for _ in range(n_blocks))
        # decoders[i] is stage L - i: channels[L - i] -> channels[L - i - 1]
        self.decoders = tuple(DecoderStage.init(channels[l], channels[l - 1], kernel_size, key=next(keys),
                                                neuron=neuron, scale=scale) for l in range(depth, 0, -1))
        self.readout = DepthReadout.init([channels[s - 1] for s in self.readout_stages], key=next(keys), scale=scale)

    @property
    def n_in(self) -> int:
        return self.in_channels

    @property
    def n_out(self) -> int:
        return 1

    @property
    def depth(self) -> int:
        """Number of encoder (and decoder) stages `L`."""
        return len(self.encoders)

    def __call__(self, x: Float[Array, "batch c H W"]) -> DepthOutput:
        """Depth maps and spikes of a batch of event-count images `x [batch, in_channels, H, W]`."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"StereoSpike: input has shape {tuple(x.shape)}, expected [batch, {self.in_channels}, "
                             f"H, W] ({self.in_channels} event-count maps: ON/OFF per camera)")
        size = tuple(x.shape[-2:])
        spikes: dict[str, Array] = {}
        skips = [self.bottom(x)]
        spikes["bottom"] = skips[0]
        for l, encoder in enumerate(self.encoders, start=1):
            skips.append(encoder(skips[-1]))
            spikes[f"encoder{l}"] = skips[-1]
        out = skips.pop()
        for block in self.bottleneck:
            out = block(out)
        spikes["bottleneck"] = out
        features = []
        for decoder, stage in zip(self.decoders, range(self.depth, 0, -1)):
            skip = skips.pop()
            out = decoder(out, skip) if self.skips else decoder(out, size=tuple(skip.shape[-2:]))
            spikes[f"decoder{stage}"] = out
            if stage in self.readout_stages:
                features.append(out)
        return DepthOutput(depths=self.readout(features, size), spikes=spikes)

    def penalised(self, spikes: dict[str, Array]) -> list[Array]:
        """The tensors of the spike penalty: the bottleneck output and every decoder output (with
        its summed skip)."""
        return [spikes["bottleneck"]] + [spikes[f"decoder{s}"] for s in range(self.depth, 0, -1)]

    def init(self, key: PRNGKeyArray | None, batch_shape: tuple[int, ...]) -> Any:
        """`None`: the network is stateless (every layer starts from rest for each sample)."""
        return None

    def prepare(self, inputs, dt):
        raise NotImplementedError("StereoSpike runs one time step per sample: call it on [batch, channels, H, W] "
                                  "event counts instead of simulating it")

    def step(self, state, prepared_t, dt):
        raise NotImplementedError("StereoSpike runs one time step per sample: call it on [batch, channels, H, W] "
                                  "event counts instead of simulating it")

    def step_fn(self, dt):
        raise NotImplementedError("StereoSpike runs one time step per sample: call it on [batch, channels, H, W] "
                                  "event counts instead of simulating it")

    def vector_field(self, t, state, inputs_t):
        raise NotImplementedError("StereoSpike has no continuous-time form")

    def observe(self, state):
        raise NotImplementedError("StereoSpike has no continuous-time form")


def firing_rates(spikes: dict[str, Array]) -> dict[str, Float[Array, ""]]:
    """Per layer, the fraction of non-zero entries of its output (the paper's firing rate)."""
    return {name: jnp.mean((s != 0).astype(jnp.result_type(float))) for name, s in spikes.items()}
