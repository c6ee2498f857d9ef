"""BTSP studies, one per ``protocol.kind``:

- ``"place_field"``: the weight changes of the two-state BTSP rule (Milstein et al. 2021, model WD_D)
  on the 187-cm track: one plateau at ``plateau`` cm on a silent cell (peak change, its position,
  half-maximum extent) and the bidirectional protocol (``repeats`` plateaus at ``strong`` cm, then
  one at ``shift`` cm: the change near ``strong`` and near ``shift - 10``); writes
  ``weights.csv`` (change per input position).
- ``"meta"``: meta-learning the rule: the time constants and rates (``tau_ET``, ``tau_IS``,
  ``k+``, ``k-``) fitted by gradient descent (Adam on their logarithms, ``iterations`` steps,
  ``dt`` ms) to the weight changes the published values produce on two protocols (one plateau on a
  silent cell; a plateau at ``shift`` cm on a cell made strong at ``strong`` cm), starting from the
  published values scaled by ``start_scale``; reports the relative error of each parameter.
- ``"network"``: the 21-7-21 dendritic E/I network on the one-hot patterns, trained with each rule
  of ``network.rules`` over ``seeds`` seeds in one vmapped program: ``"btsp"`` (top-down gated
  BTSP), ``"btsp_output_only"`` (hidden plasticity frozen), ``"btsp_stale_nudge"`` (the original
  code's nudge carry-over), and the exact gradient (Adam with ``backprop_lr``) through the same
  architecture with the smooth activation ``SharpSoftplus(backprop_beta)`` in place of ReLU:
  ``"backprop"`` (feed-forward weights of any sign), ``"backprop_dale"`` (Dale signs and bounds
  kept by projection after every update), and ``"backprop_relu"`` (through BTSP's own ReLU
  network, Dale kept); ``"hebbian"`` (the study's unsupervised Hebbian baseline,
  `simjax.rules.NormalizedHebbian`, feedback inhibition ``(-0.988, -0.185)``) and
  ``"hebbian_supervised"`` (its output clamped to the target); reports the final accuracy (mean over
  the last ``window`` epochs) and, for the BTSP rules, the cosine of the BTSP hidden update with
  the negative gradient at the end; writes ``curves.csv`` (accuracy and loss per epoch, rule and seed).
- ``"digits"``: the 2025 extension at CPU scale: a two-hidden-layer dendritic E/I network
  (``digits.sizes``, default 64-32-32-10; each hidden layer with E cells, a somatic feedback
  inhibitory and a dendrite-targeting inhibitory population, top-down projections onto the
  dendrites) on scikit-learn's 8x8 digits (``simjax.tasks.Digits``: its train split cut into
  ``n_train`` training and ``n_validation`` validation images, its test split held out), each image
  held for ``steps`` forward steps, one image per update (drawn uniformly), ``epochs`` epochs of
  ``n_train`` updates, ``seeds`` seeds. Rules: ``"btsp"`` (`BTSP(phase="fixed")` with the ``DIGITS_BTSP``
  settings: plateaus fixed at once per layer, symmetric top-down weights, the forward top-down drive
  cancelled by the dendritic inhibition, at most ``max_fraction`` of a layer's units with a positive
  plateau), ``"btsp_frozen_h1"`` (the same with the first hidden layer's plasticity off),
  ``"btsp_dend_i"`` (the dendritic inhibition from the learned ``DendI`` population instead of the
  exact cancellation), ``"backprop"`` and ``"backprop_dale"`` (Adam through the same network with
  ``SharpSoftplus(backprop_beta)``, without and with Dale's law). Each rule's learning rate is
  chosen from its grid (``btsp_eta``, ``backprop_lr``) by the final validation accuracy (mean over
  seeds); reported: train, validation and test accuracy at the end (mean and standard deviation
  over seeds) of the chosen setting; writes ``digits_curves.csv`` (accuracy per epoch, split, rule,
  setting and seed).

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
from ...networks import DendriticEINetwork, SharpSoftplus
from ...neurons import TwoCompartment
from ...rules import BTSP, Exact, NormalizedHebbian
from ...tasks import Dataset, Digits, OneHotPatterns, Supervised
from .. import io
from ..config import require

DEFAULTS = {
    "experiment": {"name": "btsp", "seed": 0},
    "protocol": {"kind": "place_field"},
    "place_field": {"dt": 1.0, "plateau": 90.0, "strong": 150.0, "repeats": 3, "shift": 130.0},
    "meta": {"dt": 20.0, "iterations": 300, "learning_rate": 0.05, "start_scale": [1.5, 0.6, 0.7, 1.6]},
    "network": {"rules": ["btsp", "btsp_output_only", "backprop", "backprop_dale"], "seeds": 10, "epochs": 300,
                "window": 50, "backprop_lr": 0.003, "backprop_beta": 10.0, "n_hidden": 7, "n_patterns": 21},
    "digits": {"rules": ["btsp", "btsp_frozen_h1", "backprop", "backprop_dale"], "sizes": [64, 32, 32, 10],
               "seeds": 5, "epochs": 6, "n_train": 1138, "n_validation": 300, "steps": 10,
               "btsp_eta": [0.002, 0.004], "backprop_lr": [0.003], "backprop_beta": 10.0},
}
QUICK = {"place_field": {"dt": 10.0}, "meta": {"dt": 40.0, "iterations": 10},
         "network": {"seeds": 2, "epochs": 20, "window": 5},
         "digits": {"seeds": 2, "epochs": 2, "n_train": 200, "n_validation": 100, "btsp_eta": [0.004],
                    "backprop_lr": [0.003]}}
KINDS = ("place_field", "meta", "network", "digits")
DIGITS_RULES = ("btsp", "btsp_frozen_h1", "btsp_dend_i", "backprop", "backprop_dale")
# The two-hidden-layer network and BTSP settings of the digits study (chosen by hand on the
# validation split; docs/experiments/btsp.md): feed-forward init U(0, c) and bound per layer,
# feedback inhibition per layer, plateau thresholds (theta+, theta-) per layer.
DIGITS_NET = {"w_ff_init": (0.1, 0.2, 0.1), "w_ff_max": (2.0, 2.0, 3.0), "w_fbi": (-0.05, -0.05, -0.1),
              "w_dend_init": -0.05, "theta": ((0.05, -0.1), (0.05, -0.1), (0.2, -0.2))}
DIGITS_BTSP = {"phase": "fixed", "top_down_scale": 3.0, "cancel": True, "max_fraction": 0.1, "normalise_pre": True,
               "neg_discount": 0.25, "eta_td": 0.0, "eta_dend": 0.0}
RULE_NAMES = ("btsp", "btsp_output_only", "btsp_stale_nudge", "backprop", "backprop_dale", "backprop_relu", "hebbian",
              "hebbian_supervised")
HEBBIAN_FBI = (-0.988, -0.185)


def validate(cfg: dict) -> None:
    kind = cfg["protocol"]["kind"]
    require(kind in KINDS, "protocol.kind", kind, ", ".join(map(repr, KINDS)))
    p, n = cfg["place_field"], cfg["network"]
    require(p["dt"] > 0, "place_field.dt", p["dt"], "a positive step (ms)")
    for key in ("plateau", "strong", "shift"):
        require(0 <= p[key] < 187.0, f"place_field.{key}", p[key], "a position in [0, 187) cm")
    require(p["repeats"] >= 1, "place_field.repeats", p["repeats"], "a positive integer")
    m = cfg["meta"]
    require(m["dt"] > 0 and m["learning_rate"] > 0, "meta.dt/learning_rate", (m["dt"], m["learning_rate"]),
            "positive numbers")
    require(m["iterations"] >= 1, "meta.iterations", m["iterations"], "a positive integer")
    require(len(m["start_scale"]) == 4 and all(x > 0 for x in m["start_scale"]), "meta.start_scale",
            m["start_scale"], "four positive factors (tau_ET, tau_IS, k+, k-)")
    require(len(n["rules"]) > 0 and all(r in RULE_NAMES for r in n["rules"]), "network.rules", n["rules"],
            "a non-empty list of " + ", ".join(map(repr, RULE_NAMES)))
    for key in ("seeds", "epochs", "window", "n_hidden", "n_patterns"):
        require(n[key] >= 1, f"network.{key}", n[key], "a positive integer")
    require(n["window"] <= n["epochs"], "network.window", n["window"], "at most network.epochs")
    require(n["backprop_lr"] > 0, "network.backprop_lr", n["backprop_lr"], "a positive learning rate")
    require(n["backprop_beta"] > 0, "network.backprop_beta", n["backprop_beta"], "a positive softplus sharpness")
    d = cfg["digits"]
    require(len(d["rules"]) > 0 and all(r in DIGITS_RULES for r in d["rules"]), "digits.rules", d["rules"],
            "a non-empty list of " + ", ".join(map(repr, DIGITS_RULES)))
    require(len(d["sizes"]) == 4 and d["sizes"][0] == 64 and d["sizes"][-1] == 10 and min(d["sizes"]) >= 1,
            "digits.sizes", d["sizes"], "[64, h1, h2, 10] (two hidden layers, 64 pixels in, 10 classes out)")
    for key in ("seeds", "epochs", "steps", "n_validation"):
        require(d[key] >= 1, f"digits.{key}", d[key], "a positive integer")
    require(d["n_train"] >= 1, "digits.n_train", d["n_train"], "a positive integer")
    for key in ("btsp_eta", "backprop_lr"):
        require(len(d[key]) > 0 and all(v > 0 for v in d[key]), f"digits.{key}", d[key],
                "a non-empty list of positive learning rates")
    require(d["backprop_beta"] > 0, "digits.backprop_beta", d["backprop_beta"], "a positive softplus sharpness")


def run(cfg: dict, out_dir: Path) -> dict:
    jax.config.update("jax_enable_x64", True)
    kind = cfg["protocol"]["kind"]
    start = time.perf_counter()
    summary = {"place_field": _place_field, "meta": _meta, "network": _network, "digits": _digits}[kind](cfg, out_dir)
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


# ---------------------------------------------------------------- meta-learning the rule

META_NAMES = ("tau_et", "tau_is", "k_pot", "k_dep")


def rule_changes(log_params: jax.Array, cfg: dict) -> jax.Array:
    """The weight changes of the two meta-learning protocols (concatenated) under the gated rule
    with `exp(log_params)` as `(tau_ET, tau_IS, k+, k-)`."""
    p, m = cfg["place_field"], cfg["meta"]
    track = P.Track(dt=m["dt"])
    values = jnp.exp(log_params)
    rule = P.BTSP(update="gated")
    rule = eqx.tree_at(lambda r: tuple(getattr(r, n) for n in META_NAMES), rule, tuple(values))
    w0 = jnp.ones(track.n_inputs)
    single = P.place_field(rule, w0, [np.nan, p["plateau"]], track=track) - w0
    strong = P.place_field(P.BTSP(update="gated"), w0, [p["strong"]] * p["repeats"], track=track)
    shifted = P.place_field(rule, strong, [np.nan, p["shift"]], track=track) - strong
    return jnp.concatenate([single, shifted])


def _meta(cfg, out_dir):
    m = cfg["meta"]
    published = P.BTSP()
    truth = jnp.log(jnp.array([float(getattr(published, n)) for n in META_NAMES]))
    target = rule_changes(truth, cfg)
    loss = jax.jit(lambda lp: jnp.mean((rule_changes(lp, cfg) - target) ** 2))
    value_and_grad = jax.jit(jax.value_and_grad(lambda lp: jnp.mean((rule_changes(lp, cfg) - target) ** 2)))
    params = truth + jnp.log(jnp.array(m["start_scale"], truth.dtype))
    opt = optax.adam(m["learning_rate"])
    state = opt.init(params)
    rows = []
    for i in range(m["iterations"]):
        value, grad = value_and_grad(params)
        rows.append({"iteration": i, "loss": float(value),
                     **{n: float(v) for n, v in zip(META_NAMES, jnp.exp(params))}})
        updates, state = opt.update(grad, state)
        params = optax.apply_updates(params, updates)
    final_loss = float(loss(params))
    io.write_rows(out_dir / "meta.csv", rows)
    rel = np.abs(np.exp(np.asarray(params)) / np.exp(np.asarray(truth)) - 1.0)

    def draw(ax):
        ax.semilogy([r["loss"] for r in rows])
        ax.set_xlabel("iteration")
        ax.set_ylabel("mean squared weight-change error")

    _plot(out_dir, "meta", draw)
    return {"initial_loss": rows[0]["loss"], "final_loss": final_loss,
            "fitted": {n: float(v) for n, v in zip(META_NAMES, np.exp(np.asarray(params)))},
            "published": {n: float(v) for n, v in zip(META_NAMES, np.exp(np.asarray(truth)))},
            "relative_error": {n: float(e) for n, e in zip(META_NAMES, rel)}, "iterations": m["iterations"]}


# ---------------------------------------------------------------- 21-7-21 network


def _rule(name: str, cfg: dict):
    """`(rule, optimizer, network keywords)` of a rule name of the network study."""
    c = cfg["network"]
    if name.startswith("btsp"):
        rule = {"btsp": BTSP(), "btsp_output_only": BTSP(train_hidden=False),
                "btsp_stale_nudge": BTSP(compat_stale_nudge=True)}[name]
        return rule, optax.sgd(1.0), {}
    if name.startswith("hebbian"):
        return NormalizedHebbian(supervised=name == "hebbian_supervised"), optax.sgd(1.0), {"w_fbi": HEBBIAN_FBI}
    kwargs = {} if name == "backprop_relu" else {"neurons": smooth_neurons(c["backprop_beta"]),
                                                  "dale": name == "backprop_dale"}
    return Exact(), optax.adam(c["backprop_lr"]), kwargs


def smooth_neurons(beta: float) -> tuple[TwoCompartment, TwoCompartment]:
    """The default hidden and output neurons of the 21-7-21 network with `SharpSoftplus(beta)` in place
    of ReLU (the smooth forward pass the backprop baselines train)."""
    act = SharpSoftplus(beta)
    return TwoCompartment(activation=act), TwoCompartment(theta_plus=0.450, theta_minus=-0.724, activation=act)


def train_network(rule, optimizer, keys: jax.Array, *, epochs: int, n_hidden: int = 7, n_patterns: int = 21,
                  **net_kwargs):
    """Trains the dendritic network (built with `net_kwargs`) with `rule` and `optimizer` from each key,
    one trial per step (`epochs * n_patterns` steps); returns the trained networks and the histories."""
    task = OneHotPatterns(n=n_patterns)

    def one(key):
        k_net, k_fit = jax.random.split(key)
        net = DendriticEINetwork((n_patterns, n_hidden, n_patterns), key=k_net, **net_kwargs)
        return fit(net, rule, task, optimizer, steps=epochs * n_patterns, key=k_fit, batch_size=1)

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
        rule, optimizer, net_kwargs = _rule(name, cfg)
        nets, history = train_network(rule, optimizer, keys, epochs=c["epochs"], n_hidden=c["n_hidden"],
                                      n_patterns=c["n_patterns"], **net_kwargs)
        acc = np.asarray(history["accuracy"]).reshape(c["seeds"], c["epochs"], -1).mean(-1)
        loss = np.asarray(history["loss"]).reshape(c["seeds"], c["epochs"], -1).mean(-1)
        final = acc[:, -c["window"]:].mean(1)
        per_seed = np.full(c["seeds"], np.nan)
        if name.startswith("btsp"):
            cos, has = jax.jit(jax.vmap(lambda n: hidden_cosine(n, task)))(nets)
            cos, has = np.asarray(cos), np.asarray(has)
            per_seed = np.array([cos[s][has[s]].mean() if has[s].any() else np.nan for s in range(c["seeds"])])
        summary[name] = {"final_accuracy_mean": float(final.mean()), "final_accuracy_std": float(final.std()),
                         "final_accuracy_min": float(final.min()),
                         "final_mse_mean": float(loss[:, -c["window"]:].mean()),
                         "hidden_cosine_mean": float(np.nanmean(per_seed)) if name.startswith("btsp") else None,
                         "hidden_cosine_std": float(np.nanstd(per_seed)) if name.startswith("btsp") else None}
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


# ---------------------------------------------------------------- 2025 extension: two hidden layers on the digits


def digits_data(n_train: int = 1138, n_validation: int = 300, steps: int = 10, seed: int = 0
                ) -> tuple[Dataset, Dataset, Dataset]:
    """Train, validation and test sets of the digits study: `simjax.tasks.Digits`' images (pixel
    intensities in `[0, 1]`, held constant for `steps` forward steps) with one-hot targets; the
    first `n_validation` images of its train split (1438 images) validate, the next `n_train`
    train, its test split (359 images) tests."""
    def dataset(task, lo, hi):
        x, y = np.asarray(task.images)[lo:hi], np.asarray(task.labels)[lo:hi]
        return Dataset(np.broadcast_to(x, (steps, *x.shape)), np.eye(10, dtype=x.dtype)[y], Supervised("mse", "last"))

    train = Digits(split="train", seed=seed)
    end = n_validation + n_train
    if end > train.size:
        raise ValueError(f"btsp digits: n_train + n_validation = {end} exceeds the {train.size} training images")
    return dataset(train, n_validation, end), dataset(train, 0, n_validation), dataset(Digits(split="test", seed=seed),
                                                                                        0, None)


def digits_accuracy(net: DendriticEINetwork, data: Dataset) -> jax.Array:
    """Share of `data`'s images whose largest output (last forward step) is the label's."""
    out = data.forward(net, data.all())
    return jnp.mean(jnp.argmax(out.readout[-1], -1) == jnp.argmax(data.targets, -1))


def digits_rule(name: str, eta: float, *, beta: float = 10.0):
    """`(rule, optimizer, network keywords)` of a rule of the digits study at learning rate `eta`
    (BTSP: every feed-forward projection's rate; backprop: Adam's)."""
    thetas = DIGITS_NET["theta"]
    net = {k: v for k, v in DIGITS_NET.items() if k != "theta"}
    if name.startswith("btsp"):
        kwargs = dict(DIGITS_BTSP)
        kwargs["eta_ff"] = jnp.array([0.0 if name == "btsp_frozen_h1" else eta, eta, eta])
        if name == "btsp_dend_i":
            kwargs.update(cancel=False, eta_dend=eta)
        net["neurons"] = tuple(TwoCompartment(theta_plus=a, theta_minus=b) for a, b in thetas)
        return BTSP(**kwargs), optax.sgd(1.0), net
    act = SharpSoftplus(beta)
    net["neurons"] = tuple(TwoCompartment(theta_plus=a, theta_minus=b, activation=act) for a, b in thetas)
    net["dale"] = name == "backprop_dale"
    return Exact(), optax.adam(eta), net


def train_digits(rule, optimizer, keys: jax.Array, data: tuple[Dataset, Dataset, Dataset], *, sizes=(64, 32, 32, 10),
                 epochs: int = 10, **net_kwargs):
    """Trains the two-hidden-layer network from each key (one image per update, `epochs` epochs of
    `len(train)` updates); returns the trained networks and the accuracies `[seed, epoch + 1, split]`
    (epoch 0 = before training; splits train, validation, test)."""
    train = data[0]

    def evaluate(net):
        return jnp.stack([digits_accuracy(net, d) for d in data])

    def one(key):
        k_net, k_fit = jax.random.split(key)
        net = DendriticEINetwork(tuple(sizes), key=k_net, **net_kwargs)

        def epoch(net, k):
            net, _ = fit(net, rule, train, optimizer, steps=train.size, key=k, batch_size=1)
            return net, evaluate(net)

        start = evaluate(net)
        net, acc = jax.lax.scan(epoch, net, jax.random.split(k_fit, epochs))
        return net, jnp.concatenate([start[None], acc])

    return eqx.filter_jit(jax.vmap(one))(keys)


def _digits(cfg, out_dir):
    c = cfg["digits"]
    data = digits_data(c["n_train"], c["n_validation"], c["steps"], seed=cfg["experiment"]["seed"])
    keys = jax.random.split(jax.random.key(cfg["experiment"]["seed"]), c["seeds"])
    rows, summary, curves = [], {}, {}
    splits = ("train", "validation", "test")
    for name in c["rules"]:
        grid = c["btsp_eta"] if name.startswith("btsp") else c["backprop_lr"]
        best = None
        for eta in grid:
            rule, optimizer, net_kwargs = digits_rule(name, eta, beta=c["backprop_beta"])
            _, acc = train_digits(rule, optimizer, keys, data, sizes=c["sizes"], epochs=c["epochs"], **net_kwargs)
            acc = np.asarray(acc)
            rows += [{"rule": name, "learning_rate": eta, "seed": s, "epoch": e, "split": split,
                      "accuracy": float(acc[s, e, i])}
                     for s in range(c["seeds"]) for e in range(c["epochs"] + 1) for i, split in enumerate(splits)]
            if best is None or acc[:, -1, 1].mean() > best[1][:, -1, 1].mean():
                best = (eta, acc)
        eta, acc = best
        summary[name] = {"learning_rate": eta, "grid": list(grid),
                         **{f"{split}_accuracy_{stat}": float(f(acc[:, -1, i])) for i, split in enumerate(splits)
                            for stat, f in (("mean", np.mean), ("std", np.std))}}
        curves[name] = acc
        print(f"  {name:15s} test {acc[:, -1, 2].mean():.3f} +- {acc[:, -1, 2].std():.3f}   validation "
              f"{acc[:, -1, 1].mean():.3f}   (rate {eta:g}, {c['seeds']} seeds, {c['epochs']} epochs; chance 0.1)")
    io.write_rows(out_dir / "digits_curves.csv", rows)

    def draw(ax):
        epochs = np.arange(c["epochs"] + 1)
        for name, acc in curves.items():
            m, s = acc[:, :, 1].mean(0), acc[:, :, 1].std(0)
            line, = ax.plot(epochs, m, label=f"{name} (validation; train dotted)")
            ax.fill_between(epochs, m - s, m + s, alpha=0.15, color=line.get_color())
            ax.plot(epochs, acc[:, :, 0].mean(0), ":", color=line.get_color())
        ax.axhline(0.1, color="k", lw=0.5)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.legend(fontsize=7)

    _plot(out_dir, "digits", draw)
    return {"rules": summary, "seeds": c["seeds"], "epochs": c["epochs"], "sizes": list(c["sizes"]),
            "n_train": data[0].size, "n_validation": data[1].size, "n_test": data[2].size, "chance": 0.1}


def _plot(out_dir: Path, name: str, draw) -> None:
    io.save_figure(out_dir / f"btsp_{name}.png", draw)
