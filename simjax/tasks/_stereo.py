r"""Dynamic random-dot stereograms (DRDS) as event-camera data: a synthetic stand-in for MVSEC that
only binocular disparity can solve (Julesz's random-dot stereograms, animated; used here to test
StereoSpike, Rançon et al., IEEE Access 2022).

One scene (`H x W`, deterministic given its key):

1. Surfaces: a background plane at depth `Z_bg ~ U(4, 8)` m and 1 to `max_objects` fronto-parallel
   rectangles or discs (centre uniform in the image, half-sizes `U(0.1, 0.3) H`) at
   `Z ~ U(1, 4)` m. Disparity `d = f B / Z` (`f B = 8` px m, so `d in [1, 8]` px).
2. Texture: every surface carries its own random dots (density 0.3; dot intensity 1, gap
   `1 / contrast`) in left-image coordinates. The left camera sees, at pixel `(x, y)`, the nearest
   surface covering `(x, y)`; the right camera sees at `(x, y)` the nearest surface covering
   `(x + d_k, y)` in its own coordinates (a z-buffer: occlusions are exact, half-occluded regions
   included), its texture sampled at `x + d_k` with linear interpolation (sub-pixel disparity).
3. Events: over one window, `substeps` times, every dot is redrawn with probability `flicker`,
   identically for both eyes (no motion, so no motion parallax and no monocular depth cue: sizes,
   textures and dot statistics do not depend on depth). A pixel emits `floor(|L - L_ref| / C)`
   events when its log intensity `L` moved by at least `C = 0.2` from its reference `L_ref` (ON if
   up, OFF if down), and `L_ref` moves by the events' total. The counts per polarity give
   `[left ON, left OFF, right ON, right OFF]` (`cameras="left"`: the first two only).
4. Label: the left camera's depth map; a fraction `nan_fraction` of random pixels is set to NaN.

A split (`"train"`, `"validation"`, `"test"`) is `size` scenes, scene `i` drawn from
`fold_in(key(seed) split, i)`: scenes are generated when sampled, never stored, and the splits
are disjoint key streams.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Literal

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from .._checks import as_float_array, check_choice, check_int, check_positive
from .._simulate.output import Output
from ..losses._depth import depth_loss, mean_depth_error, spike_penalty
from ..networks._stereospike import StereoSpike, firing_rates
from ._base import AbstractTask, Batch

_SPLITS = ("train", "validation", "test")


def render_stereogram(key: PRNGKeyArray, height: int, width: int, *, focal_baseline: float = 8.0,
                      background_depth: tuple[float, float] = (4.0, 8.0),
                      object_depth: tuple[float, float] = (1.0, 4.0), max_objects: int = 3,
                      density: float = 0.3, flicker: float = 0.3, substeps: int = 5, threshold: float = 0.2,
                      contrast: float = 2.0, nan_fraction: float = 0.0,
                      dtype: Any = jnp.float32) -> tuple[Float[Array, "4 H W"], Float[Array, "H W"]]:
    """One dynamic random-dot stereogram (module docstring): `(counts, depth)` with event counts
    `[4, H, W]` (left ON, left OFF, right ON, right OFF) and the left depth map `[H, W]` (NaN at
    masked pixels). Pure and jittable; `vmap` it over keys for a batch."""
    ks = jax.random.split(key, 12)
    n_surf = max_objects + 1
    n_obj = jax.random.randint(ks[0], (), 1, max_objects + 1)
    active = jnp.concatenate([jnp.ones((1,), bool), jnp.arange(max_objects) < n_obj])
    z = jnp.concatenate([jax.random.uniform(ks[1], (1,), dtype, *background_depth),
                         jax.random.uniform(ks[2], (max_objects,), dtype, *object_depth)])
    disparity = focal_baseline / z
    is_disc = jax.random.bernoulli(ks[3], 0.5, (n_surf,))
    cx = jax.random.uniform(ks[4], (n_surf,), dtype, 0, width)
    cy = jax.random.uniform(ks[5], (n_surf,), dtype, 0, height)
    half = jax.random.uniform(ks[6], (2, n_surf), dtype, 0.1 * height, 0.3 * height)
    ys = jnp.arange(height, dtype=dtype)[None, :, None]

    def covers(x):  # x: [surfaces, 1, W] continuous left-image coordinates
        dx, dy = x - cx[:, None, None], ys - cy[:, None, None]
        hx, hy = half[0][:, None, None], half[1][:, None, None]
        rect = (jnp.abs(dx) <= hx) & (jnp.abs(dy) <= hy)
        disc = dx**2 + dy**2 <= hx**2
        inside = jnp.where(is_disc[:, None, None], disc, rect)
        inside = inside.at[0].set(True)  # the background plane covers everything
        return inside & active[:, None, None]

    def visible(x):  # nearest covering surface per pixel
        zs = jnp.where(covers(x), z[:, None, None], jnp.inf)
        return jnp.argmin(zs, axis=0), jnp.min(zs, axis=0)

    xs = jnp.arange(width, dtype=dtype)[None, None, :]
    vis_left, depth = visible(jnp.broadcast_to(xs, (n_surf, 1, width)))
    x_right = xs + disparity[:, None, None]  # where each surface's texture sits under a right-image pixel
    vis_right, _ = visible(x_right)

    tex_width = width + int(math.ceil(focal_baseline / object_depth[0])) + 2
    shape = (n_surf, height, tex_width)
    dots = jax.random.bernoulli(ks[7], density, shape)
    flips = jax.random.bernoulli(ks[8], flicker, (substeps, *shape))
    redraw = jax.random.bernoulli(ks[9], density, (substeps, *shape))
    frames = [dots]
    for s in range(substeps):
        frames.append(jnp.where(flips[s], redraw[s], frames[-1]))
    low = 1.0 / contrast
    intensity = low + (1.0 - low) * jnp.stack(frames).astype(dtype)  # [S+1, surfaces, H, Wt]

    x0 = jnp.floor(x_right).astype(jnp.int32)
    frac = (x_right - x0)[None]
    x0 = jnp.broadcast_to(x0, (n_surf, height, width))
    at = lambda idx: jnp.take_along_axis(intensity, jnp.broadcast_to(idx[None], (substeps + 1, *idx.shape)), axis=-1)
    right_all = (1 - frac) * at(x0) + frac * at(x0 + 1)  # [S+1, surfaces, H, W]
    pick = lambda img, vis: jnp.take_along_axis(img, jnp.broadcast_to(vis[None, None], (img.shape[0], 1,
                                                                                       height, width)), 1)[:, 0]
    left = pick(intensity[..., :width], vis_left)
    right = pick(right_all, vis_right)

    def events(frames):
        log = jnp.log(frames)
        ref, on, off = log[0], jnp.zeros_like(log[0]), jnp.zeros_like(log[0])
        for s in range(1, substeps + 1):
            n = jnp.trunc((log[s] - ref) / threshold)
            on, off = on + jnp.maximum(n, 0), off + jnp.maximum(-n, 0)
            ref = ref + n * threshold
        return on, off

    counts = jnp.stack([*events(left), *events(right)]).astype(dtype)
    if nan_fraction > 0:
        depth = jnp.where(jax.random.bernoulli(ks[10], nan_fraction, depth.shape), jnp.nan, depth)
    return counts, depth.astype(dtype)


@functools.partial(jax.jit, static_argnums=(1, 3, 4, 5))
def _render_split(indices, seed, split, height, width, scene):
    base = jax.random.fold_in(jax.random.key(seed), split)
    keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(indices)
    return jax.vmap(lambda k: render_stereogram(k, height, width, **dict(scene)))(keys)


class RandomDotStereo(AbstractTask):
    """Depth from dynamic random-dot stereogram events (module docstring), scored with StereoSpike's
    loss and mean depth error.

    **Arguments:**

    - `height`, `width`: image size (32 x 48 or 64 x 96).
    - `split`: `"train"`, `"validation"` or `"test"`; `size`: scenes in the split; `seed`: the
      data set's seed (splits of one seed are disjoint).
    - `cameras`: `"both"` (4 input maps) or `"left"` (2, monocular).
    - `nan_fraction`: share of ground-truth pixels set to NaN.
    - `grad_weight`: weight of the Sobel gradient term (0.5); `spike_weight`: weight `beta` of the
      spike penalty (0).
    - `focal_baseline`, `background_depth`, `object_depth`, `max_objects`, `density`, `flicker`,
      `substeps`, `threshold`, `contrast`: the scene and event parameters of `render_stereogram`.

    **Batch:** `inputs [batch, 4 or 2, H, W]` event counts, `targets [batch, H, W]` depth (m, NaN
    where masked). The model is a `simjax.networks.StereoSpike`; its `Output.readout` is the
    `[stages, batch, H, W]` depth maps, `info` holds the spike penalty and firing rates.
    """

    grad_weight: Float[Array, ""]
    spike_weight: Float[Array, ""]
    height: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    split: str = eqx.field(static=True)
    size: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    cameras: str = eqx.field(static=True)
    scene: tuple[tuple[str, Any], ...] = eqx.field(static=True)

    def __init__(self, height: int = 32, width: int = 48, split: Literal["train", "validation", "test"] = "train",
                 size: int = 2000, seed: int = 0, *, cameras: Literal["both", "left"] = "both",
                 nan_fraction: float = 0.0, grad_weight: Float[ArrayLike, ""] = 0.5,
                 spike_weight: Float[ArrayLike, ""] = 0.0, focal_baseline: float = 8.0,
                 background_depth: tuple[float, float] = (4.0, 8.0), object_depth: tuple[float, float] = (1.0, 4.0),
                 max_objects: int = 3, density: float = 0.3, flicker: float = 0.3, substeps: int = 5,
                 threshold: float = 0.2, contrast: float = 2.0):
        owner = "RandomDotStereo"
        self.height = check_int("height", height, owner=owner)
        self.width = check_int("width", width, owner=owner)
        check_choice("split", split, _SPLITS, owner=owner)
        check_choice("cameras", cameras, ("both", "left"), owner=owner)
        self.split, self.cameras = split, cameras
        self.size = check_int("size", size, owner=owner)
        self.seed = check_int("seed", seed, minimum=0, owner=owner)
        check_int("max_objects", max_objects, owner=owner)
        check_int("substeps", substeps, owner=owner)
        for name, value in (("focal_baseline", focal_baseline), ("threshold", threshold)):
            check_positive(name, value, owner=owner)
        for name, value in (("density", density), ("flicker", flicker)):
            if not 0.0 < float(value) < 1.0:
                raise ValueError(f"{owner}: {name} must lie in (0, 1), got {value!r}")
        if not 0.0 <= float(nan_fraction) < 1.0:
            raise ValueError(f"{owner}: nan_fraction must lie in [0, 1), got {nan_fraction!r}")
        if not float(contrast) > 1.0:
            raise ValueError(f"{owner}: contrast (dot / gap intensity) must be > 1, got {contrast!r}")
        for name, (lo, hi) in (("background_depth", background_depth), ("object_depth", object_depth)):
            if not 0.0 < float(lo) <= float(hi):
                raise ValueError(f"{owner}: {name} must be a range (low, high) with 0 < low <= high, got "
                                 f"{(lo, hi)!r}")
        check_positive("grad_weight", grad_weight, allow_zero=True, owner=owner)
        check_positive("spike_weight", spike_weight, allow_zero=True, owner=owner)
        self.grad_weight, self.spike_weight = as_float_array(grad_weight), as_float_array(spike_weight)
        self.scene = (("focal_baseline", float(focal_baseline)),
                      ("background_depth", (float(background_depth[0]), float(background_depth[1]))),
                      ("object_depth", (float(object_depth[0]), float(object_depth[1]))),
                      ("max_objects", int(max_objects)), ("density", float(density)), ("flicker", float(flicker)),
                      ("substeps", int(substeps)), ("threshold", float(threshold)), ("contrast", float(contrast)),
                      ("nan_fraction", float(nan_fraction)))

    @property
    def n_in(self) -> int:
        """Input maps: 4 (binocular) or 2 (left camera only)."""
        return 4 if self.cameras == "both" else 2

    def with_split(self, split: Literal["train", "validation", "test"], size: int | None = None) -> RandomDotStereo:
        """The same data set's `split` (of `size` scenes, default this split's size)."""
        check_choice("split", split, _SPLITS, owner="RandomDotStereo")
        size = self.size if size is None else check_int("size", size, owner="RandomDotStereo")
        return RandomDotStereo(self.height, self.width, split, size, self.seed, cameras=self.cameras,
                               grad_weight=self.grad_weight, spike_weight=self.spike_weight, **dict(self.scene))

    def scenes(self, indices: ArrayLike) -> Batch:
        """The scenes of this split at `indices` (ints in `[0, size)`) as one batch."""
        counts, depth = _render_split(jnp.asarray(indices), self.seed, _SPLITS.index(self.split), self.height,
                                      self.width, self.scene)
        return Batch(inputs=counts[:, : self.n_in], targets=depth)

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        check_int("batch_size", batch_size, maximum=self.size, what=f"the size of the {self.split} split at most",
                  owner="RandomDotStereo")
        return self.scenes(jax.random.choice(key, self.size, (batch_size,), replace=False))

    def full(self) -> Batch:
        """Every scene of the split, in order."""
        return self.scenes(jnp.arange(self.size))

    def forward(self, model: StereoSpike, batch: Batch, key: PRNGKeyArray | None = None, **kwargs: Any) -> Output:
        out = model(batch.inputs)
        info = {"spike_penalty": spike_penalty(model.penalised(out.spikes)), "firing_rates": firing_rates(out.spikes)}
        return Output(spikes=None, v=None, readout=out.depths, final_state=None, info=info)

    def loss(self, outputs: Output, batch: Batch) -> Float[Array, ""]:
        loss = depth_loss(outputs.readout, batch.targets, grad_weight=self.grad_weight)
        return loss + self.spike_weight * outputs.info["spike_penalty"]

    def metrics(self, outputs: Output, batch: Batch) -> dict[str, Float[Array, ""]]:
        rates = outputs.info["firing_rates"]
        return {"loss": self.loss(outputs, batch), "mde": mean_depth_error(outputs.readout[-1], batch.targets),
                "firing_rate": sum(rates.values()) / len(rates), "spike_penalty": outputs.info["spike_penalty"]}

    def evaluate(self, model: StereoSpike, batch_size: int = 50) -> dict[str, Float[Array, ""]]:
        """`metrics` of `model` on the whole split, in chunks of `batch_size` scenes (pixel-pooled MDE,
        mean of the other metrics over the chunks)."""
        results, weights = [], []
        for start in range(0, self.size, batch_size):
            idx = jnp.arange(start, min(start + batch_size, self.size))
            batch = self.scenes(idx)
            m = self.metrics(self.forward(model, batch), batch)
            results.append(m)
            weights.append(jnp.sum(jnp.isfinite(batch.targets)))
        w = jnp.asarray(weights, jnp.result_type(float))
        out = {k: jnp.sum(jnp.stack([r[k] for r in results]) * w) / jnp.sum(w) for k in results[0]}
        return out

    def mean_depth(self) -> Float[Array, ""]:
        """Mean ground-truth depth over the split's valid pixels (the constant baseline's prediction)."""
        t = self.full().targets
        valid = jnp.isfinite(t)
        return jnp.sum(jnp.where(valid, t, 0)) / jnp.sum(valid)
