"""StereoSpike on dynamic random-dot stereograms: a one-step spiking U-Net learns metric depth from
binocular event counts (Rançon et al., IEEE Access 2022), with the ablations of the paper at the
scaled size (readout scales, skip connections, spike penalty, monocular input) and the constant
mean-depth baseline. Each variant trains with Adam in chunks of `eval_every` steps; the model with
the best validation MDE is scored on the test split (model selection as in the paper).

Writes `summary.json` (test MDE per variant and seed, mean and spread, the baseline, per-layer
firing rates), `history.csv` (training and validation curves) and, with matplotlib, depth maps
(input events, prediction, truth), learning curves and firing rates.

Each finished training (one variant from one seed) is saved at once in `runs/` of the run folder:
`<variant>-seed<seed>.json` (curves, test metrics, the hash of the settings it was trained with)
and the selected model (`.eqx`). Rerunning the same config with the same `--out` folder loads the
finished ones and trains only the rest, so an interrupted ablation run (hours on a CPU) resumes;
a result trained with other data, model or training settings is never reused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...losses import mean_depth_error
from ...networks import StereoSpike
from ...networks._stereospike import firing_rates
from ...parameters import partition
from ...rules import Exact
from ...tasks import RandomDotStereo
from .. import io
from ..config import ConfigError, digest, require

#: Variants: overrides of the model (readout stages, skips), the data (cameras) and the loss.
VARIANTS = {
    "binocular": {},
    "monocular": {"cameras": "left"},
    "top_readout": {"readout": [1]},
    "no_skips": {"skips": False},
    "spike_penalty": {"spike_weight": 0.5},
}

DEFAULTS = {
    "experiment": {"name": "stereospike", "seeds": [0]},
    "data": {"height": 32, "width": 48, "train_size": 2000, "validation_size": 200, "test_size": 200,
             "nan_fraction": 0.05, "data_seed": 0},
    "model": {"channels": [16, 32, 64, 64], "scale": 1.0},
    "train": {"steps": 1000, "eval_every": 200, "batch_size": 8, "learning_rate": 1e-3, "float32": True},
    "compare": {"variants": ["binocular"]},
}
QUICK = {"data": {"height": 16, "width": 24, "train_size": 40, "validation_size": 8, "test_size": 8},
         "model": {"channels": [2, 4, 8]}, "train": {"steps": 4, "eval_every": 2, "batch_size": 2}}


def validate(cfg: dict) -> None:
    d, m, tr = cfg["data"], cfg["model"], cfg["train"]
    seeds = cfg["experiment"]["seeds"]
    require(len(seeds) >= 1 and all(isinstance(s, int) and s >= 0 for s in seeds), "experiment.seeds", seeds,
            "a list of non-negative integers")
    for key in ("height", "width", "train_size", "validation_size", "test_size"):
        require(isinstance(d[key], int) and d[key] > 0, f"data.{key}", d[key], "a positive integer")
    require(0 <= d["nan_fraction"] < 1, "data.nan_fraction", d["nan_fraction"], "a number in [0, 1)")
    ch = m["channels"]
    require(len(ch) >= 2 and all(isinstance(c, int) and c > 0 for c in ch), "model.channels", ch,
            "a list of at least two positive integers (bottom and encoder widths)")
    require(d["height"] % 2 ** (len(ch) - 1) == 0 and d["width"] % 2 ** (len(ch) - 1) == 0, "data.height/width",
            (d["height"], d["width"]), f"multiples of 2^{len(ch) - 1} (one halving per encoder stage)")
    require(m["scale"] > 0, "model.scale", m["scale"], "a positive number")
    for key in ("steps", "eval_every", "batch_size"):
        require(isinstance(tr[key], int) and tr[key] > 0, f"train.{key}", tr[key], "a positive integer")
    require(tr["steps"] % tr["eval_every"] == 0, "train.steps", tr["steps"], "a multiple of train.eval_every")
    require(tr["batch_size"] <= d["train_size"], "train.batch_size", tr["batch_size"], "at most data.train_size")
    require(tr["learning_rate"] > 0, "train.learning_rate", tr["learning_rate"], "a positive number")
    variants = cfg["compare"]["variants"]
    require(len(variants) >= 1, "compare.variants", variants, f"a non-empty list among {', '.join(VARIANTS)}")
    for v in variants:
        if v not in VARIANTS:
            raise ConfigError(f"compare.variants: {v!r} is not a known variant; expected one of {', '.join(VARIANTS)}")


def _tasks(cfg: dict, variant: dict) -> tuple[RandomDotStereo, RandomDotStereo, RandomDotStereo]:
    d = cfg["data"]
    train = RandomDotStereo(d["height"], d["width"], "train", d["train_size"], d["data_seed"],
                            cameras=variant.get("cameras", "both"), nan_fraction=d["nan_fraction"],
                            spike_weight=variant.get("spike_weight", 0.0))
    return train, train.with_split("validation", d["validation_size"]), train.with_split("test", d["test_size"])


def _to32(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float32) if eqx.is_inexact_array(a) else a, tree)


def network(cfg: dict, name: str, seed: int) -> StereoSpike:
    """The untrained network of variant `name` from weight seed `seed` (its input maps those of the
    variant's cameras)."""
    variant, m = VARIANTS[name], cfg["model"]
    n_in = _tasks(cfg, variant)[0].n_in
    net = StereoSpike(n_in, m["channels"], key=jax.random.key(seed), readout=variant.get("readout"),
                      skips=variant.get("skips", True), scale=m["scale"])
    return _to32(net) if cfg["train"]["float32"] else net


def train_variant(cfg: dict, name: str, seed: int) -> dict:
    """Trains one variant from one seed; returns the selected model, its curves and test metrics."""
    tr = cfg["train"]
    train, validation, test = _tasks(cfg, VARIANTS[name])
    net = network(cfg, name, seed)
    optimizer = optax.adam(tr["learning_rate"])
    params, static = partition(net)
    state = (params, optimizer.init(params))

    @eqx.filter_jit
    def chunk(state, key):  # eval_every Adam steps; the optimiser state carries over between chunks
        def one(carry, k):
            params, opt_state = carry
            k_batch, k_rule = jax.random.split(k)
            loss, grads, aux = Exact()(eqx.combine(params, static), train, train.sample(k_batch, tr["batch_size"]),
                                       k_rule)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (eqx.apply_updates(params, updates), opt_state), {"loss": loss, **aux}

        return jax.lax.scan(one, state, jax.random.split(key, tr["eval_every"]))

    best, best_mde, curves = net, np.inf, []
    key = jax.random.key(1000 + seed)
    for c in range(tr["steps"] // tr["eval_every"]):
        key, k = jax.random.split(key)
        state, hist = chunk(state, k)
        net = eqx.combine(state[0], static)
        val = validation.evaluate(net)
        curves.append({"step": (c + 1) * tr["eval_every"], "train_loss": float(np.mean(hist["loss"])),
                       "train_mde": float(np.mean(hist["mde"])), "validation_mde": float(val["mde"]),
                       "validation_firing_rate": float(val["firing_rate"])})
        if float(val["mde"]) < best_mde:
            best, best_mde = net, float(val["mde"])
    metrics = {k: float(v) for k, v in test.evaluate(best).items()}
    batch = test.scenes(jnp.arange(min(8, test.size)))
    rates = {k: float(v) for k, v in firing_rates(best(batch.inputs).spikes).items()}
    return {"model": best, "curves": curves, "test": metrics, "validation_mde": best_mde, "rates": rates}


def _settings_hash(cfg: dict, name: str, seed: int) -> str:
    """The hash of everything one training's result depends on."""
    return digest({"data": cfg["data"], "model": cfg["model"], "train": cfg["train"], "variant": name, "seed": seed})


def _save(folder: Path, cfg: dict, name: str, seed: int, res: dict, seconds: float) -> None:
    """Saves one finished training: the model first, then the JSON that marks it finished."""
    stem = folder / f"{name}-seed{seed}"
    io.save_model(stem.with_suffix(".eqx"), res["model"])
    io.write_json(stem.with_suffix(".json"), {"hash": _settings_hash(cfg, name, seed), "seconds": seconds,
                                              "layers": list(res["rates"]),  # (the JSON keys are sorted)
                                              **{k: v for k, v in res.items() if k != "model"}})


def _load(folder: Path, cfg: dict, name: str, seed: int) -> dict | None:
    """A finished training saved by `_save` with the same settings, or `None`."""
    stem = folder / f"{name}-seed{seed}"
    marker, weights = stem.with_suffix(".json"), stem.with_suffix(".eqx")
    if not (marker.exists() and weights.exists()):
        return None
    saved = json.loads(marker.read_text())
    if saved.get("hash") != _settings_hash(cfg, name, seed):
        return None
    model = eqx.tree_deserialise_leaves(weights, network(cfg, name, seed))
    rates = {layer: saved["rates"][layer] for layer in saved["layers"]}  # in the network's order
    return {"model": model, **{k: v for k, v in saved.items() if k not in ("hash", "seconds", "layers")},
            "rates": rates}


def run(cfg: dict, out_dir: Path) -> dict:
    seeds, variants = cfg["experiment"]["seeds"], cfg["compare"]["variants"]
    d = cfg["data"]
    train, _, test = _tasks(cfg, {})
    mean = train.mean_depth()
    targets = test.full().targets
    baseline = float(mean_depth_error(jnp.full_like(targets, mean), targets))
    print(f"stereospike: DRDS {d['height']}x{d['width']}, {d['train_size']} training scenes; constant-depth "
          f"baseline ({float(mean):.2f} m) test MDE {baseline:.3f} m")
    summary = {"baseline_mde": baseline, "baseline_depth": float(mean), "variants": {}}
    rows, results, finished = [], {}, out_dir / "runs"
    for name in variants:
        per_seed = []
        for seed in seeds:
            res = _load(finished, cfg, name, seed)
            if res is None:
                start = time.perf_counter()
                res = train_variant(cfg, name, seed)
                seconds = time.perf_counter() - start
                _save(finished, cfg, name, seed, res, seconds)
                timing = f"{seconds:.0f} s"
            else:
                timing = f"finished earlier, loaded from {finished.name}/"
            per_seed.append(res)
            results[(name, seed)] = res
            rows += [{"variant": name, "seed": seed, **c} for c in res["curves"]]
            print(f"  {name} seed {seed}: test MDE {res['test']['mde']:.3f} m "
                  f"({res['test']['mde'] / baseline:.2f} x baseline), firing rate {res['test']['firing_rate']:.3f}"
                  f"  ({timing})", flush=True)
        mdes = np.array([r["test"]["mde"] for r in per_seed])
        fr = np.array([r["test"]["firing_rate"] for r in per_seed])
        summary["variants"][name] = {
            "test_mde": mdes.tolist(), "test_mde_mean": float(mdes.mean()), "test_mde_std": float(mdes.std()),
            "ratio_to_baseline": float(mdes.mean() / baseline), "firing_rate_mean": float(fr.mean()),
            "validation_mde": [r["validation_mde"] for r in per_seed], "layer_firing_rates": per_seed[0]["rates"]}
    io.write_rows(out_dir / "history.csv", rows)
    io.write_json(out_dir / "summary.json", summary)
    _plot(out_dir, cfg, results, baseline)
    return summary


def _plot(out_dir: Path, cfg: dict, results: dict, baseline: float) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'simjax[plot]')")
        return
    first = cfg["experiment"]["seeds"][0]  # depth maps of the binocular network when it was trained
    name, seed = ("binocular", first) if ("binocular", first) in results else next(iter(results))
    res = results[(name, seed)]
    _, _, test = _tasks(cfg, VARIANTS[name])
    batch = test.scenes(jnp.arange(3))
    depth = np.asarray(res["model"](batch.inputs).depths[-1])
    fig, axes = plt.subplots(3, 3, figsize=(10, 7))
    for i in range(3):
        events = np.asarray(batch.inputs[i, 0] - batch.inputs[i, 1])
        truth = np.asarray(batch.targets[i])
        lo, hi = np.nanmin(truth), np.nanmax(truth)
        for ax, img, title in zip(axes[i], (events, depth[i], truth), ("left events (ON - OFF)",
                                                                     f"{name} prediction (m)", "truth (m)")):
            im = ax.imshow(img, vmin=None if title.startswith("left") else lo, vmax=None if title.startswith("left")
                           else hi, cmap="gray" if title.startswith("left") else "viridis_r")
            ax.set(title=title, xticks=[], yticks=[])
            fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(out_dir / "depth_maps.png", dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for (name, seed), res in results.items():
        steps = [c["step"] for c in res["curves"]]
        axes[0].plot(steps, [c["validation_mde"] for c in res["curves"]], label=f"{name} (seed {seed})")
    axes[0].axhline(baseline, color="k", ls="--", label="constant-depth baseline")
    axes[0].set(xlabel="training step", ylabel="validation MDE (m)", title="learning curves")
    axes[0].legend(fontsize=7)
    for (name, seed), res in results.items():
        if seed == cfg["experiment"]["seeds"][0]:
            axes[1].plot(list(res["rates"]), list(res["rates"].values()), "o-", label=name)
    axes[1].set(ylabel="fraction of non-zero outputs", title="firing rate per layer (test scenes)")
    axes[1].tick_params(axis="x", rotation=60)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "curves.png", dpi=100)
    plt.close(fig)
