"""BTSP studies, one per ``protocol.kind``:

- ``"place_field"``: the weight changes of the two-state BTSP rule (Milstein et al. 2021, model WD_D)
  on the 187-cm track: one plateau at ``plateau`` cm on a silent cell (peak change, its position,
  half-maximum extent) and the bidirectional protocol (``repeats`` plateaus at ``strong`` cm, then
  one at ``shift`` cm: the change near ``strong`` and near ``shift - 10``); writes
  ``weights.csv`` (change per input position).
- ``"network"``: the 21-7-21 dendritic E/I network on the one-hot patterns, trained with each rule
  of ``network.rules`` over ``seeds`` seeds in one vmapped program: ``"btsp"`` (top-down gated
  BTSP), ``"btsp_output_only"`` (hidden plasticity frozen), ``"btsp_stale_nudge"`` (the original
  code's nudge carry-over) and ``"backprop"`` (the exact gradient through the same network, Dale
  signs and bounds kept, SGD with ``backprop_lr``); reports the final accuracy (mean over the last
  ``window`` epochs) and the cosine of the BTSP hidden update with the negative gradient at the
  end; writes ``curves.csv`` (accuracy and loss per epoch, rule and seed).

Every kind writes ``summary.json`` and a figure ``btsp_<kind>.png`` (with matplotlib).
"""

from __future__ import annotations

import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ... import plasticity as P
from ..._fit.fit import fit
from ...networks import DendriticEINetwork
from ...rules import BTSP, Exact
from ...tasks import OneHotPatterns
from .. import io
from ..config import require

DEFAULTS = {
    "experiment": {"name": "btsp", "seed": 0},
    "protocol": {"kind": "place_field"},
    "place_field": {"dt": 1.0, "plateau": 90.0, "strong": 150.0, "repeats": 3, "shift": 130.0},
    "network": {"rules": ["btsp", "btsp_output_only", "backprop"], "seeds": 10, "epochs": 300, "window": 50,
                "backprop_lr": 10.0, "n_hidden": 7, "n_patterns": 21},
}
QUICK = {"place_field": {"dt": 10.0}, "network": {"seeds": 2, "epochs": 20, "window": 5}}
KINDS = ("place_field", "network")
RULE_NAMES = ("btsp", "btsp_output_only", "btsp_stale_nudge", "backprop")


def validate(cfg: dict) -> None:
    kind = cfg["protocol"]["kind"]
    require(kind in KINDS, "protocol.kind", kind, ", ".join(map(repr, KINDS)))
    p, n = cfg["place_field"], cfg["network"]
    require(p["dt"] > 0, "place_field.dt", p["dt"], "a positive step (ms)")
    for key in ("plateau", "strong", "shift"):
        require(0 <= p[key] < 187.0, f"place_field.{key}", p[key], "a position in [0, 187) cm")
    require(p["repeats"] >= 1, "place_field.repeats", p["repeats"], "a positive integer")
    require(len(n["rules"]) > 0 and all(r in RULE_NAMES for r in n["rules"]), "network.rules", n["rules"],
            "a non-empty list of " + ", ".join(map(repr, RULE_NAMES)))
    for key in ("seeds", "epochs", "window", "n_hidden", "n_patterns"):
        require(n[key] >= 1, f"network.{key}", n[key], "a positive integer")
    require(n["window"] <= n["epochs"], "network.window", n["window"], "at most network.epochs")
    require(n["backprop_lr"] > 0, "network.backprop_lr", n["backprop_lr"], "a positive learning rate")


def run(cfg: dict, out_dir: Path) -> dict:
    jax.config.update("jax_enable_x64", True)
    kind = cfg["protocol"]["kind"]
    start = time.perf_counter()
    summary = {"place_field": _place_field, "network": _network}[kind](cfg, out_dir)
    summary = {"kind": kind, **summary, "seconds": time.perf_counter() - start}
    io.write_json(out_dir / "summary.json", summary)
    return summary


# ---------------------------------------------------------------- place field


def _near(x: np.ndarray, centres: np.ndarray, position: float) -> float:
    return float(x[int(np.argmin(np.abs(centres - position)))])


def _place_field(cfg, out_dir):
    c = cfg["place_field"]
    track = P.Track(dt=c["dt"])
    rule = P.BTSP(update="gated")
    centres = np.asarray(track.centres)
    w0 = jnp.ones(track.n_inputs)
    single = np.asarray(P.place_field(rule, w0, [np.nan, c["plateau"], np.nan], track=track) - w0)
    strong = P.place_field(rule, w0, [c["strong"]] * c["repeats"], track=track)
    shifted = np.asarray(P.place_field(rule, strong, [np.nan, c["shift"], np.nan], track=track) - strong)
    offset = centres - c["plateau"]
    offset = (offset + track.length / 2) % track.length - track.length / 2
    half = offset[single > single.max() / 2]
    io.write_rows(out_dir / "weights.csv", [
        {"position_cm": float(x), "dw_single": float(a), "w_strong": float(b), "dw_shift": float(d)}
        for x, a, b, d in zip(centres, single, np.asarray(strong), shifted)])

    def draw(ax):
        ax.plot(centres, single, label=f"one plateau at {c['plateau']:g} cm")
        ax.plot(centres, shifted, label=f"plateau at {c['shift']:g} cm after {c['repeats']} at {c['strong']:g} cm")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("input field centre (cm)")
        ax.set_ylabel("weight change")
        ax.legend(fontsize=8)

    _plot(out_dir, "place_field", draw)
    return {"peak_dw": float(single.max()), "peak_offset_cm": float(offset[single.argmax()]),
            "half_max_from_cm": float(half.min()), "half_max_to_cm": float(half.max()),
            "min_dw": float(single.min()), "strong_w_near": _near(np.asarray(strong), centres, c["strong"]),
            "shift_dw_near_strong": _near(shifted, centres, c["strong"]),
            "shift_dw_before_shift": _near(shifted, centres, c["shift"] - 10.0), "dt_ms": c["dt"]}


# ---------------------------------------------------------------- 21-7-21 network


def _rule(name: str):
    if name == "btsp":
        return BTSP(), 1.0
    if name == "btsp_output_only":
        return BTSP(train_hidden=False), 1.0
    if name == "btsp_stale_nudge":
        return BTSP(compat_stale_nudge=True), 1.0
    return Exact(), None


def train_network(rule, lr: float, keys: jax.Array, *, epochs: int, n_hidden: int = 7, n_patterns: int = 21):
    """Trains the dendritic network with `rule` (SGD with `lr`) from each key, one trial per step
    (`epochs * n_patterns` steps); returns the trained networks and the histories."""
    task = OneHotPatterns(n=n_patterns)

    def one(key):
        k_net, k_fit = jax.random.split(key)
        net = DendriticEINetwork((n_patterns, n_hidden, n_patterns), key=k_net)
        return fit(net, rule, task, optax.sgd(lr), steps=epochs * n_patterns, key=k_fit, batch_size=1)

    return eqx.filter_jit(jax.vmap(one))(keys)


def hidden_cosine(net: DendriticEINetwork, task: OneHotPatterns) -> tuple[jax.Array, jax.Array]:
    """Per pattern: the cosine of the BTSP update of the first hidden layer's input weights with the
    exact gradient, and whether the pattern gave a hidden plateau."""
    rule = BTSP()

    def one(k):
        batch = task.batch(k[None])
        _, u, aux = rule(net, task, batch, None)
        _, g, _ = Exact()(net, task, batch, None)
        a, b = u.w_ff[0].weight.ravel(), g.w_ff[0].weight.ravel()
        return a @ b / jnp.maximum(jnp.linalg.norm(a) * jnp.linalg.norm(b), 1e-30), aux["hidden_plateaus"] > 0

    return jax.vmap(one)(jnp.arange(task.n))


def _network(cfg, out_dir):
    c = cfg["network"]
    keys = jax.random.split(jax.random.key(cfg["experiment"]["seed"]), c["seeds"])
    task = OneHotPatterns(n=c["n_patterns"])
    rows, summary, curves = [], {}, {}
    for name in c["rules"]:
        rule, lr = _rule(name)
        nets, history = train_network(rule, c["backprop_lr"] if lr is None else lr, keys, epochs=c["epochs"],
                                      n_hidden=c["n_hidden"], n_patterns=c["n_patterns"])
        acc = np.asarray(history["accuracy"]).reshape(c["seeds"], c["epochs"], -1).mean(-1)
        loss = np.asarray(history["loss"]).reshape(c["seeds"], c["epochs"], -1).mean(-1)
        final = acc[:, -c["window"]:].mean(1)
        cos, has = jax.jit(jax.vmap(lambda n: hidden_cosine(n, task)))(nets)
        cos, has = np.asarray(cos), np.asarray(has)
        per_seed = np.array([cos[s][has[s]].mean() if has[s].any() else np.nan for s in range(c["seeds"])])
        summary[name] = {"final_accuracy_mean": float(final.mean()), "final_accuracy_std": float(final.std()),
                         "final_accuracy_min": float(final.min()),
                         "final_mse_mean": float(loss[:, -c["window"]:].mean()),
                         "hidden_cosine_mean": float(np.nanmean(per_seed)),
                         "hidden_cosine_std": float(np.nanstd(per_seed))}
        curves[name] = acc
        rows += [{"rule": name, "seed": s, "epoch": e + 1, "accuracy": float(acc[s, e]), "loss": float(loss[s, e])}
                 for s in range(c["seeds"]) for e in range(c["epochs"])]
    io.write_rows(out_dir / "curves.csv", rows)

    def draw(ax):
        epochs = np.arange(1, c["epochs"] + 1)
        for name, acc in curves.items():
            m, s = acc.mean(0), acc.std(0)
            ax.plot(epochs, m, label=name)
            ax.fill_between(epochs, m - s, m + s, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_ylabel("training accuracy")
        ax.legend(fontsize=8)

    _plot(out_dir, "network", draw)
    return {"rules": summary, "seeds": c["seeds"], "epochs": c["epochs"]}


def _plot(out_dir: Path, name: str, draw) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plot; pip install 'simjax[plot]')")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    draw(ax)
    fig.tight_layout()
    fig.savefig(out_dir / f"btsp_{name}.png", dpi=100)
    plt.close(fig)
