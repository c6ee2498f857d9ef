r"""The nodes of a NIR graph as simjax modules, clock-driven.

NIR (Pedersen et al., Nature Communications 15:8122, 2024) defines every node in continuous time.
Signals between nodes are either *impulsive* (spikes: sums of Dirac deltas of unit area, and the
inputs of a graph) or *continuous* (the potential of an `LI` or `I` node, and the bias of an
`Affine`/`Conv2d`). On a clock grid of step `dt` every edge carries the signal's integral over the
step (its *area*): a spike count, or `value * dt` for a continuous signal. A neuron applies the
area it receives at the end of the step, after the exact decay over the step (the same as
`simjax.neurons.LIF.step`), so

- `LIF`:      `tau dv/dt = (v_leak - v) + r I`          -> `v += (r / tau) A`
- `CubaLIF`:  `tau_syn dI/dt = -I + w_in S`, `tau_mem dv/dt = (v_leak - v) + r I`
              -> simjax `LIF(tau_syn=...)` with current `i = r I`: `i += (r w_in / tau_syn) A`
- `IF`:       `dv/dt = r I` -> `v += r A`;   `I`: the same without threshold
- `LI`:       `tau dv/dt = (v_leak - v) + r I` -> `v += (r / tau) A`, output `v`

and spiking nodes emit `z = H(v - v_threshold)` (the surrogate Heaviside of `simjax.surrogates`)
and reset `v` to `v_reset`. `Affine` is `y = W x + b`, `Conv2d` the cross-correlation of NIR/PyTorch
(`[C_out, C_in, k_x, k_y]` weights), `Flatten` a reshape of the non-batch axes.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._checks import as_float_array
from ..neurons._lif import LIF
from ..surrogates._surrogates import AbstractSurrogate
from ..synapses._kernels import synaptic_coupling


def _shape_of(*params) -> tuple[int, ...]:
    """The population shape: the broadcast shape of a neuron node's parameters."""
    return tuple(jnp.broadcast_shapes(*(jnp.shape(p) for p in params if p is not None)))


class AbstractNode(eqx.Module):
    """A node of a clock-driven NIR graph: `apply(state, area, dt) -> (state, area_out, value)`,
    where `area` is the input integrated over the step, `area_out` what the outgoing edges carry
    and `value` what an `Output` node records (spikes for spiking nodes, `v` for integrators)."""

    @abc.abstractmethod
    def init_state(self, batch_shape: tuple[int, ...], dtype: Any) -> Any:
        """The node's state (`None` for stateless nodes)."""

    @abc.abstractmethod
    def apply(self, state: Any, area: Array, dt: Any) -> tuple[Any, Array, Array]:
        """One step."""

    @abc.abstractmethod
    def apply_timed(self, state: Any, area: Array, moment: Array, dt: Any
                    ) -> tuple[Any, tuple[Array, Array], Array, Array | None]:
        """One step with interpolated timing: `(state, (area_out, moment_out), value, lag)`, where
        `lag` is the time from each spike to the end of the step (`None` for non-spiking nodes)."""

    @property
    @abc.abstractmethod
    def out_shape(self) -> tuple[int, ...]:
        """The shape of one sample of the node's output."""


class Affine(AbstractNode):
    """`y = W x + b` (`weight [out, in]`, NIR's layout; `bias [out]` or `None` for NIR's `Linear`).
    The bias is a continuous signal: its area over a step is `b dt`."""

    weight: Float[Array, "out in"]
    bias: Float[Array, " out"] | None

    def __init__(self, weight, bias=None):
        self.weight = as_float_array(weight)
        self.bias = None if bias is None else as_float_array(bias)
        if self.weight.ndim != 2:
            raise ValueError(f"Affine: weight must be [out, in], got shape {self.weight.shape}")
        if self.bias is not None and self.bias.shape != self.weight.shape[:1]:
            raise ValueError(f"Affine: bias has shape {self.bias.shape}, expected {self.weight.shape[:1]}")

    @property
    def out_shape(self):
        return (self.weight.shape[0],)

    def init_state(self, batch_shape, dtype):
        return None

    def apply(self, state, area, dt):
        y = area @ self.weight.T
        if self.bias is not None:
            y = y + self.bias * dt
        return None, y, y

    def apply_timed(self, state, area, moment, dt):
        y, m = area @ self.weight.T, moment @ self.weight.T
        if self.bias is not None:
            y, m = y + self.bias * dt, m + self.bias * (dt * dt / 2)
        return None, (y, m), y, None


class Conv2d(AbstractNode):
    """NIR's `Conv2d`: cross-correlation of `[batch, C_in, N_x, N_y]` with `weight [C_out, C_in,
    k_x, k_y]`, plus `bias [C_out]` (a continuous signal, area `b dt`)."""

    weight: Float[Array, "c_out c_in kx ky"]
    bias: Float[Array, " c_out"]
    input_shape: tuple[int, int] = eqx.field(static=True)
    stride: tuple[int, int] = eqx.field(static=True)
    padding: tuple[tuple[int, int], tuple[int, int]] | str = eqx.field(static=True)
    dilation: tuple[int, int] = eqx.field(static=True)
    groups: int = eqx.field(static=True)

    def __init__(self, weight, bias, input_shape, stride=1, padding=0, dilation=1, groups=1):
        pair = lambda v: (int(v), int(v)) if np.ndim(v) == 0 else tuple(int(x) for x in v)
        self.weight, self.bias = as_float_array(weight), as_float_array(bias)
        if self.weight.ndim != 4:
            raise ValueError(f"Conv2d: weight must be [C_out, C_in, k_x, k_y], got shape {self.weight.shape}")
        if input_shape is None:
            raise ValueError("Conv2d: the NIR node has no input_shape; simjax needs the spatial input size")
        self.input_shape, self.stride, self.dilation = pair(input_shape), pair(stride), pair(dilation)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: padding must be 'same', 'valid' or ints, got {padding!r}")
            self.padding = padding.upper()
        else:
            p = pair(padding)
            self.padding = ((p[0], p[0]), (p[1], p[1]))
        self.groups = int(groups)

    @property
    def out_shape(self):
        shape = jax.eval_shape(lambda x: self._conv(x), jax.ShapeDtypeStruct(
            (1, self.weight.shape[1] * self.groups, *self.input_shape), self.weight.dtype))
        return tuple(shape.shape[1:])

    def _conv(self, x):
        return jax.lax.conv_general_dilated(x, self.weight.astype(x.dtype), self.stride, self.padding,
                                            rhs_dilation=self.dilation, feature_group_count=self.groups,
                                            dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def init_state(self, batch_shape, dtype):
        return None

    def _linear(self, x):
        lead = x.shape[:-3]
        y = self._conv(x.reshape((-1, *x.shape[-3:])))
        return y.reshape((*lead, *y.shape[1:]))

    def apply(self, state, area, dt):
        y = self._linear(area) + (self.bias * dt)[:, None, None]
        return None, y, y

    def apply_timed(self, state, area, moment, dt):
        y = self._linear(area) + (self.bias * dt)[:, None, None]
        m = self._linear(moment) + (self.bias * (dt * dt / 2))[:, None, None]
        return None, (y, m), y, None


class Flatten(AbstractNode):
    """NIR's `Flatten` of the axes `start_dim..end_dim` of one sample (shape `input_shape`)."""

    input_shape: tuple[int, ...] = eqx.field(static=True)
    start_dim: int = eqx.field(static=True)
    end_dim: int = eqx.field(static=True)

    def __init__(self, input_shape, start_dim=0, end_dim=-1):
        self.input_shape = tuple(int(s) for s in input_shape)
        self.start_dim, self.end_dim = int(start_dim), int(end_dim)

    @property
    def out_shape(self):
        n = len(self.input_shape)
        start, end = self.start_dim % n, self.end_dim % n
        shape = self.input_shape
        return (*shape[:start], int(np.prod(shape[start: end + 1])), *shape[end + 1:])

    def init_state(self, batch_shape, dtype):
        return None

    def apply(self, state, area, dt):
        lead = area.shape[: area.ndim - len(self.input_shape)]
        y = area.reshape((*lead, *self.out_shape))
        return None, y, y

    def apply_timed(self, state, area, moment, dt):
        _, y, _ = self.apply(state, area, dt)
        _, m, _ = self.apply(state, moment, dt)
        return None, (y, m), y, None


class LIFNode(AbstractNode):
    """NIR's `LIF` (`neuron.tau_syn is None`) or `CubaLIF` as a simjax `LIF` with `reset="zero"`,
    `v_rest = v_leak`, driven by `gain A` with `gain = r / tau` (LIF) or `r w_in / tau_syn` (CubaLIF;
    simjax's current is `r I`). `r` and `w_in` are kept as given so that the node exports back
    unchanged."""

    neuron: LIF
    r: Float[Array, "*pop"]
    w_in: Float[Array, "*pop"]

    def __init__(self, neuron: LIF, r, w_in=1.0):
        if neuron.reset_mode != "zero" or neuron.refractoriness:
            raise ValueError("LIFNode: NIR's LIF resets to v_reset and has no refractory period; the simjax neuron "
                             f"has reset={neuron.reset_mode!r} and t_ref={neuron.t_ref!r}")
        self.neuron, self.r, self.w_in = neuron, as_float_array(r), as_float_array(w_in)

    @property
    def out_shape(self):
        n = self.neuron
        return _shape_of(n.tau_mem, n.v_th, n.v_reset, n.v_rest, n.bias, n.tau_syn, self.r, self.w_in)

    @property
    def gain(self):
        tau = self.neuron.tau_mem if self.neuron.tau_syn is None else self.neuron.tau_syn
        return self.r * self.w_in / tau

    def init_state(self, batch_shape, dtype):
        return self.neuron.init(None, (*batch_shape, *self.out_shape))

    def apply(self, state, area, dt):
        state, spikes = self.neuron.step(state, self.gain * area, dt)
        return state, spikes, spikes

    def apply_timed(self, state, area, moment, dt):
        n = self.neuron
        free = n.free_flow(state, dt)
        if n.tau_syn is None:
            v1, i = free.v + self.gain * (area - moment / n.tau_mem), free.i
        else:
            i = free.i + self.gain * (area - moment / n.tau_syn)
            v1 = free.v + self.gain * moment / n.tau_mem
        spikes = n.surrogate(v1 - n.v_th)
        s = jax.lax.stop_gradient(spikes)
        lag = _crossing_lag(state.v, v1, n.v_th, s, dt)
        v = v1 + s * (n.v_reset - n.v_th) * jnp.exp(-lag / n.tau_mem)
        new = type(state)(v=v, i=i, refractory=free.refractory)
        return new, (spikes, spikes * lag), spikes, s * lag


class IFNode(AbstractNode):
    """NIR's `IF` (`dv/dt = r I`, spike when `v > v_threshold`, reset to `v_reset`), or NIR's
    integrator `I` (`spiking=False`: no threshold, output `v`)."""

    r: Float[Array, "*pop"]
    v_threshold: Float[Array, "*pop"] | None
    v_reset: Float[Array, "*pop"] | None
    surrogate: AbstractSurrogate | None

    def __init__(self, r, v_threshold=None, v_reset=None, surrogate=None):
        self.r = as_float_array(r)
        self.v_threshold = None if v_threshold is None else as_float_array(v_threshold)
        self.v_reset = None if v_reset is None else as_float_array(v_reset)
        if self.v_threshold is not None and self.v_reset is None:
            self.v_reset = jnp.zeros_like(self.v_threshold)
        self.surrogate = LIF().surrogate if surrogate is None and v_threshold is not None else surrogate

    @property
    def out_shape(self):
        return _shape_of(self.r, self.v_threshold, self.v_reset)

    def init_state(self, batch_shape, dtype):
        return jnp.zeros((*batch_shape, *self.out_shape), dtype)

    def apply(self, state, area, dt):
        v = state + self.r * area
        if self.v_threshold is None:
            return v, v * dt, v
        spikes = self.surrogate(v - self.v_threshold)
        s = jax.lax.stop_gradient(spikes)
        v = v * (1 - s) + s * self.v_reset
        return v, spikes, spikes

    def apply_timed(self, state, area, moment, dt):
        v1 = state + self.r * area  # no leak: an impulse's time within the step does not matter
        if self.v_threshold is None:
            return v1, _continuous_area_moment(state, v1, dt), v1, None
        spikes = self.surrogate(v1 - self.v_threshold)
        s = jax.lax.stop_gradient(spikes)
        lag = _crossing_lag(state, v1, self.v_threshold, s, dt)
        v = v1 + s * (self.v_reset - self.v_threshold)
        return v, (spikes, spikes * lag), spikes, s * lag


class LINode(AbstractNode):
    """NIR's `LI` (`tau dv/dt = (v_leak - v) + r I`), or `CubaLI` with `tau_syn` (a synaptic current
    `tau_syn dI/dt = -I + w_in S` in front); output `v`, exact decay over the step."""

    tau: Float[Array, "*pop"]
    r: Float[Array, "*pop"]
    v_leak: Float[Array, "*pop"]
    tau_syn: Float[Array, "*pop"] | None
    w_in: Float[Array, "*pop"]

    def __init__(self, tau, r, v_leak, tau_syn=None, w_in=1.0):
        self.tau, self.r, self.v_leak = as_float_array(tau), as_float_array(r), as_float_array(v_leak)
        self.tau_syn = None if tau_syn is None else as_float_array(tau_syn)
        self.w_in = as_float_array(w_in)

    @property
    def out_shape(self):
        return _shape_of(self.tau, self.r, self.v_leak, self.tau_syn, self.w_in)

    def init_state(self, batch_shape, dtype):
        shape = (*batch_shape, *self.out_shape)
        return (jnp.zeros(shape, dtype) + self.v_leak, jnp.zeros(shape, dtype))

    def apply(self, state, area, dt):
        v, current = state
        a = jnp.exp(-dt / self.tau)
        if self.tau_syn is None:
            v = self.v_leak + a * (v - self.v_leak) + (self.r / self.tau) * area
        else:
            # `current` is `r I` (potential units): v gains the exact coupling of the decaying current
            coupling = synaptic_coupling(dt, self.tau, self.tau_syn)
            v = self.v_leak + a * (v - self.v_leak) + coupling * current
            current = current * jnp.exp(-dt / self.tau_syn) + (self.r * self.w_in / self.tau_syn) * area
        return (v, current), v * dt, v

    def apply_timed(self, state, area, moment, dt):
        v0, current = state
        a = jnp.exp(-dt / self.tau)
        if self.tau_syn is None:
            v = self.v_leak + a * (v0 - self.v_leak) + (self.r / self.tau) * (area - moment / self.tau)
        else:
            gain = self.r * self.w_in / self.tau_syn
            v = (self.v_leak + a * (v0 - self.v_leak) + synaptic_coupling(dt, self.tau, self.tau_syn) * current
                 + gain * moment / self.tau)
            current = current * jnp.exp(-dt / self.tau_syn) + gain * (area - moment / self.tau_syn)
        return (v, current), _continuous_area_moment(v0, v, dt), v, None


def _crossing_lag(v0, v1, v_th, spiked, dt):
    """The time from the threshold crossing to the end of the step, `dt (v1 - v_th) / (v1 - v0)`
    (linear interpolation), in `[0, dt]`; 0 where there is no spike."""
    rise = jnp.where(spiked > 0, v1 - v0, 1.0)
    safe = jnp.where(rise > 0, rise, 1.0)
    lag = jnp.where(rise > 0, dt * (v1 - v_th) / safe, 0.0)
    return jax.lax.stop_gradient(jnp.clip(lag, 0.0, dt) * spiked)


def _continuous_area_moment(v0, v1, dt):
    """Area and moment over the step of a continuous signal that goes linearly from `v0` to `v1`:
    `dt (v0 + v1) / 2` and `dt^2 (2 v0 + v1) / 6`."""
    return dt * (v0 + v1) / 2, dt * dt * (2 * v0 + v1) / 6
