r"""Bias and variance of approximate gradient descent (Ghosh et al., ICLR 2023; seeds-5-8 Seed 8).

A student MLP `n_in -> width -> n_out` (tanh) learns a fixed MLP teacher by full-batch gradient
descent with the controlled estimator `simjax.rules.NoisyGradient`
`g_hat = g + beta |g| u + sigma xi`. Studies (`[study] kind`):

- `penalty`: final training loss over a (sigma x beta) grid, seeds vmapped: one program.
- `curvature`: bias along the Hessian's top vs bottom eigenvector at equal beta.
- `width`: loss penalty at fixed sigma for widths 16 ... 1024.
- `generalization`: test-train gap and final Hessian trace (Hutchinson) of an over-parameterised
  student after `[generalization] steps`, for two kinds of estimator variance against exact
  full-batch descent from the same seed: the isotropic noise `sigma xi` of `NoisyGradient`
  (`sigmas`) and the exact gradient of random minibatches (`batch_sizes`; its relative variance at
  the start is measured with `gradient_quality`). Train loss = full training set, final weights;
  differences are paired by seed.
- `scaling`: relative variance of weight perturbation vs the number of parameters and of node
  perturbation vs the number of units of a single-layer linear student (`gradient_quality`);
  log-log slopes (Werfel, Xie & Seung 2005).

Penalty = final loss(sigma, beta) - final loss(0, 0) for the same seed ("final" = mean over the
last 10 % of steps).
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ..._curvature import flat_loss, hvp
from ..._fit.fit import fit
from ..._simulate.simulate import simulate
from ...analysis import gradient_quality
from ...networks import FeedForward
from ...rules import NodePerturbation, WeightPerturbation
from ...rules._exact import Exact
from ...rules._noisy_gradient import NoisyGradient
from ...tasks import Dataset, TeacherStudent
from .. import io
from ..config import require

KINDS = ("penalty", "curvature", "width", "generalization", "scaling")
DEFAULTS = {
    "experiment": {"name": "bias_variance", "seed": 0},
    "study": {"kind": "penalty"},
    "data": {"n_in": 20, "n_out": 2, "teacher_hidden": 16, "n_train": 256, "n_test": 1024, "noise": 0.0},
    "model": {"width": 64, "widths": [16, 64, 256, 1024], "activation": "tanh"},
    "train": {"steps": 600, "learning_rate": 0.05, "seeds": 5},
    "estimator": {"sigmas": [0.0, 0.5, 1.0, 2.0], "betas": [0.0, 0.5, 1.0], "sigma": 2.0, "beta": 0.5,
                  "direction_seed": 0, "power_iterations": 30},
    "scaling": {"sizes": [2, 4, 8, 16, 32], "samples": 128, "perturbation": 1e-4},
    "generalization": {"steps": 3000, "seeds": 10, "sigmas": [0.5, 2.0], "batch_sizes": [16, 4]},
}
QUICK = {
    "data": {"n_train": 64, "n_test": 256},
    "model": {"width": 32, "widths": [16, 64, 256]},
    "train": {"steps": 150, "seeds": 3},
    "estimator": {"sigmas": [0.0, 2.0], "betas": [0.0, 1.0], "power_iterations": 15},
    "scaling": {"sizes": [4, 8, 16, 32], "samples": 256},
    "generalization": {"steps": 300, "seeds": 3, "sigmas": [2.0], "batch_sizes": [4]},
}


def validate(cfg: dict) -> None:
    require(cfg["study"]["kind"] in KINDS, "study.kind", cfg["study"]["kind"], " | ".join(KINDS))
    for key in ("n_in", "n_out", "teacher_hidden", "n_train", "n_test"):
        require(cfg["data"][key] > 0, f"data.{key}", cfg["data"][key], "a positive integer")
    require(cfg["train"]["steps"] > 0 and cfg["train"]["seeds"] > 0, "train.steps/seeds",
            (cfg["train"]["steps"], cfg["train"]["seeds"]), "positive integers")
    require(cfg["train"]["learning_rate"] > 0, "train.learning_rate", cfg["train"]["learning_rate"], "> 0")
    for key in ("sigmas", "betas"):
        require(all(v >= 0 for v in cfg["estimator"][key]), f"estimator.{key}", cfg["estimator"][key], "values >= 0")
    require(all(w > 0 for w in cfg["model"]["widths"]), "model.widths", cfg["model"]["widths"], "positive integers")
    require(len(cfg["scaling"]["sizes"]) >= 2, "scaling.sizes", cfg["scaling"]["sizes"], "at least two sizes")
    gen = cfg["generalization"]
    require(gen["steps"] > 0 and gen["seeds"] > 1, "generalization.steps/seeds", (gen["steps"], gen["seeds"]),
            "steps > 0 and seeds > 1")
    require(all(v > 0 for v in gen["sigmas"]), "generalization.sigmas", gen["sigmas"], "values > 0")
    require(all(isinstance(b, int) and 0 < b < cfg["data"]["n_train"] for b in gen["batch_sizes"]),
            "generalization.batch_sizes", gen["batch_sizes"], f"integers in 1 ... {cfg['data']['n_train'] - 1}")


def _data(cfg):
    d = cfg["data"]
    seed = cfg["experiment"]["seed"]
    teacher = TeacherStudent(n_in=d["n_in"], n_out=d["n_out"], teacher="mlp", hidden=d["teacher_hidden"],
                             noise=d["noise"], seed=seed + 1000)  # independent of the students
    train = teacher.sample(jax.random.key(seed + 1), d["n_train"])
    test = teacher.sample(jax.random.key(seed + 2), d["n_test"])
    as_task = lambda b: Dataset(b.inputs, b.targets[0], full_batch=True)
    return as_task(train), as_task(test)


def _student(cfg, width, key):
    d = cfg["data"]
    return FeedForward((d["n_in"], width, d["n_out"]), neuron=cfg["model"]["activation"], key=key)


def _train_grid(cfg, width, direction, biases, sigmas, seeds, *, steps=None, batch_size=None, probes=16):
    """Trains one student per (bias, sigma, seed) triple in one vmapped program (full batch, or
    minibatches of `batch_size` drawn without replacement).

    **Returns:** `(final_train_loss, test_loss, hessian_trace, train_loss)` arrays, one entry per
    triple: the training loss averaged over the last 10 % of steps (as the rule saw it), the test
    loss, the Hutchinson trace of the training-loss Hessian and the full training loss, all at the
    final weights.
    """
    train, test = _data(cfg)
    tr, est = cfg["train"], cfg["estimator"]
    steps = tr["steps"] if steps is None else steps
    tail = max(1, steps // 10)
    data = train if batch_size is None else Dataset(train.inputs, train.targets, full_batch=False)

    def one(bias, sigma, seed):
        key = jax.random.key(seed)
        model = _student(cfg, width, jax.random.fold_in(key, 0))
        rule = NoisyGradient(bias=bias, sigma=sigma, direction=direction, seed=est["direction_seed"],
                             iterations=est["power_iterations"])
        model, hist = fit(model, rule, data, optax.sgd(tr["learning_rate"]), steps=steps,
                          key=jax.random.fold_in(key, 1), batch_size=batch_size or train.size)
        test_loss = test.loss(simulate(model, test.inputs, dt=test.dt), test.all())
        theta, loss_fn, _ = flat_loss(model, train, train.all())
        z = jax.random.rademacher(jax.random.fold_in(key, 2), (probes, theta.size), theta.dtype)
        trace = jnp.mean(jax.vmap(lambda v: jnp.vdot(v, hvp(loss_fn, theta, v)))(z))
        return jnp.mean(hist["loss"][-tail:]), test_loss, trace, loss_fn(theta)

    f = jax.jit(jax.vmap(one))
    dtype = jnp.result_type(float)
    return [np.asarray(a) for a in f(jnp.asarray(biases, dtype), jnp.asarray(sigmas, dtype),
                                     jnp.asarray(seeds, jnp.uint32))]


def _grid(values_a, values_b, seeds):
    a, b, s = np.meshgrid(values_a, values_b, seeds, indexing="ij")
    return a.ravel(), b.ravel(), s.ravel()


def _penalty(cfg):
    est, seeds = cfg["estimator"], list(range(cfg["train"]["seeds"]))
    sig, bet, sd = _grid(est["sigmas"], est["betas"], seeds)
    loss, *_ = _train_grid(cfg, cfg["model"]["width"], "random", bet, sig, sd)
    base = {s: loss[(sig == 0) & (bet == 0) & (sd == s)].item() for s in seeds} if 0.0 in est["sigmas"] and \
        0.0 in est["betas"] else {s: 0.0 for s in seeds}
    rows = [dict(sigma=float(a), beta=float(b), seed=int(s), final_loss=float(l), penalty=float(l - base[s]))
            for a, b, s, l in zip(sig, bet, sd, loss)]
    mean = lambda **w: float(np.mean([r["penalty"] for r in rows if all(r[k] == v for k, v in w.items())]))
    grows_sigma = all(mean(sigma=a, beta=0.0) < mean(sigma=b, beta=0.0)
                      for a, b in zip(est["sigmas"], est["sigmas"][1:]))
    grows_beta = all(mean(sigma=0.0, beta=a) < mean(sigma=0.0, beta=b) for a, b in zip(est["betas"], est["betas"][1:]))
    return rows, {"loss_grows_with_sigma": grows_sigma, "loss_grows_with_beta": grows_beta}


def _curvature(cfg):
    est, seeds = cfg["estimator"], list(range(cfg["train"]["seeds"]))
    width = cfg["model"]["width"]
    zeros = np.zeros(len(seeds))
    base, *_ = _train_grid(cfg, width, "random", zeros, zeros, seeds)
    rows, pen = [], {}
    for direction in ("top_hessian", "bottom_hessian"):
        loss, *_ = _train_grid(cfg, width, direction, np.full(len(seeds), est["beta"]), zeros, seeds)
        pen[direction] = float(np.mean(loss - base))
        rows += [dict(direction=direction, beta=est["beta"], seed=s, final_loss=float(l), penalty=float(l - b))
                 for s, l, b in zip(seeds, loss, base)]
    top, bottom = pen["top_hessian"], pen["bottom_hessian"]
    return rows, {"penalty_top": top, "penalty_bottom": bottom,
                  "top_over_bottom": top / bottom if bottom > 0 else float("inf"),
                  "top_hurts_3x_more": bool(top > 0 and top >= 3 * max(bottom, 0.0))}


def _width(cfg):
    est, seeds = cfg["estimator"], list(range(cfg["train"]["seeds"]))
    rows, penalties = [], []
    for width in cfg["model"]["widths"]:
        n = len(seeds)
        loss, *_ = _train_grid(cfg, width, "random", np.zeros(2 * n), np.repeat([0.0, est["sigma"]], n), seeds * 2)
        pen = loss[n:] - loss[:n]
        penalties.append(float(np.mean(pen)))
        rows += [dict(width=width, sigma=est["sigma"], seed=s, penalty=float(p)) for s, p in zip(seeds, pen)]
    shrinks = all(a > b for a, b in zip(penalties, penalties[1:]))
    return rows, {"penalty_by_width": dict(zip(map(str, cfg["model"]["widths"]), penalties)),
                  "penalty_shrinks_with_width": shrinks}


def _generalization(cfg):
    gen = cfg["generalization"]
    seeds, width, steps = list(range(gen["seeds"])), cfg["model"]["width"], gen["steps"]
    n = len(seeds)
    zeros = np.zeros(n)
    train, _ = _data(cfg)
    start = _student(cfg, width, jax.random.fold_in(jax.random.key(seeds[0]), 0))  # the first seed's student
    g_norm = float(jnp.linalg.norm(ravel_pytree(Exact()(start, train, train.all(), None)[1])[0]))
    arms = [("exact", {}, 0.0)]
    arms += [(f"isotropic sigma={s}", {"sigma": float(s)}, (s / g_norm) ** 2) for s in gen["sigmas"]]
    minibatches = Dataset(train.inputs, train.targets, full_batch=False)
    for b in gen["batch_sizes"]:
        # (a small network: all samples at once, without compiling a memory probe to choose a chunk)
        table = gradient_quality(start, Exact(), minibatches, key=jax.random.key(1), samples=64, batch=train.all(),
                                 resample_batch=True, batch_size=b, curvature=False, chunk_size=64)
        rel_var = table.value(group="total", quantity="relative_variance")
        arms.append((f"minibatch {b}", {"batch_size": int(b)}, rel_var))
    rows, results = [], {}
    for label, kw, rel_var in arms:
        _, test, trace, train_loss = _train_grid(cfg, width, "random", zeros, np.full(n, kw.get("sigma", 0.0)), seeds,
                                                 steps=steps, batch_size=kw.get("batch_size"), probes=32)
        results[label] = (test - train_loss, trace, float(rel_var))
        rows += [dict(estimator=label, relative_variance_at_start=float(rel_var), seed=s, train_loss=float(l),
                      test_loss=float(t), gap=float(t - l), hessian_trace=float(h))
                 for s, l, t, h in zip(seeds, train_loss, test, trace)]
    gap0, trace0, _ = results["exact"]
    summary = {}
    for label, (gap, trace, rel_var) in results.items():
        d_gap, d_trace = gap - gap0, trace - trace0
        summary[label] = {"gap": float(gap.mean()), "hessian_trace": float(trace.mean()),
                          "gap_change": float(d_gap.mean()), "gap_change_sem": float(d_gap.std(ddof=1) / np.sqrt(n)),
                          "trace_change": float(d_trace.mean()),
                          "trace_change_sem": float(d_trace.std(ddof=1) / np.sqrt(n)),
                          "seeds_with_lower_gap": int(np.sum(d_gap < 0)),
                          "seeds_with_lower_trace": int(np.sum(d_trace < 0)), "relative_variance_at_start": rel_var}
    lowers = lambda label, key: summary[label][f"{key}_change"] < 0  # noqa: E731
    iso = [a for a, _, _ in arms if a.startswith("isotropic")]
    mini = [a for a, _, _ in arms if a.startswith("minibatch")]
    return rows, {"by_estimator": summary,
                  "isotropic_noise_lowers_gap": bool(iso and all(lowers(a, "gap") for a in iso)),
                  "isotropic_noise_lowers_hessian_trace": bool(iso and all(lowers(a, "trace") for a in iso)),
                  "minibatch_noise_lowers_gap": bool(mini and all(lowers(a, "gap") for a in mini)),
                  "minibatch_noise_lowers_hessian_trace": bool(mini and all(lowers(a, "trace") for a in mini))}


def _scaling(cfg):
    """Werfel, Xie & Seung (2005): a single-layer linear student `n_in -> n` on a linear teacher;
    `n` (the number of units) grows, so does the number of weights `P = (n_in + 1) n`."""
    sc, d = cfg["scaling"], cfg["data"]
    seed = cfg["experiment"]["seed"]
    rows = []
    for n in sc["sizes"]:
        teacher = TeacherStudent(n_in=d["n_in"], n_out=n, teacher="linear", seed=seed + 1000)
        data = teacher.sample(jax.random.key(seed + 1), d["n_train"])
        task = Dataset(data.inputs, data.targets[0], full_batch=True)
        model = FeedForward((d["n_in"], n), neuron="linear", key=jax.random.key(seed))
        for name, rule, size in (
                ("weight_perturbation", WeightPerturbation(sigma=sc["perturbation"], samples=1), (d["n_in"] + 1) * n),
                ("node_perturbation", NodePerturbation(sigma=sc["perturbation"], samples=1), n)):
            t = gradient_quality(model, rule, task, key=jax.random.key(seed + n), samples=sc["samples"],
                                 batch=task.all(), curvature=False, chunk_size=sc["samples"])  # (small: at once)
            rows.append(dict(rule=name, units=n, size=size,
                             relative_variance=t.value(group="total", quantity="relative_variance"),
                             stderr=t.value("stderr", group="total", quantity="relative_variance")))
    summary = {}
    for name in ("weight_perturbation", "node_perturbation"):
        pts = [(r["size"], r["relative_variance"]) for r in rows if r["rule"] == name]
        slope = float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0])
        summary[f"{name}_slope"] = slope
        summary[f"{name}_slope_within_15pct"] = bool(abs(slope - 1.0) <= 0.15)
    return rows, summary


STUDIES = {"penalty": _penalty, "curvature": _curvature, "width": _width, "generalization": _generalization,
           "scaling": _scaling}


def run(cfg: dict, out_dir: Path) -> dict:
    # Zeroth-order estimates and small penalties need double precision.
    jax.config.update("jax_enable_x64", True)
    kind = cfg["study"]["kind"]
    print(f"bias_variance: study {kind!r}")
    rows, summary = STUDIES[kind](cfg)
    io.write_rows(out_dir / f"{kind}.csv", rows)
    io.write_json(out_dir / "summary.json", {"study": kind, **summary})
    _plot(out_dir, kind, rows)
    for k, v in summary.items():
        if isinstance(v, dict):
            for name, value in v.items():
                print(f"  {k} / {name}: {value}")
        else:
            print(f"  {k}: {v}")
    return summary


def _plot(out_dir: Path, kind: str, rows: list[dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(5, 3.6))
    if kind == "penalty":
        for beta in sorted({r["beta"] for r in rows}):
            sig = sorted({r["sigma"] for r in rows})
            ax.plot(sig, [np.mean([r["penalty"] for r in rows if r["beta"] == beta and r["sigma"] == s]) for s in sig],
                    "o-", label=f"beta={beta}")
        ax.set(xlabel="sigma", ylabel="loss penalty")
        ax.legend()
    elif kind == "curvature":
        dirs = ["top_hessian", "bottom_hessian"]
        ax.bar(dirs, [np.mean([r["penalty"] for r in rows if r["direction"] == d]) for d in dirs])
        ax.set(ylabel="loss penalty")
    elif kind == "width":
        widths = sorted({r["width"] for r in rows})
        ax.semilogx(widths, [np.mean([r["penalty"] for r in rows if r["width"] == w]) for w in widths], "o-")
        ax.set(xlabel="width", ylabel="loss penalty at fixed sigma")
    elif kind == "generalization":
        ax2 = ax.twinx()
        for arm in dict.fromkeys(r["estimator"] for r in rows):
            mine = [r for r in rows if r["estimator"] == arm]
            x = max(mine[0]["relative_variance_at_start"], 1e-4)
            ax.semilogx(x, np.mean([r["gap"] for r in mine]), "o", color="C0")
            ax2.semilogx(x, np.mean([r["hessian_trace"] for r in mine]), "s", color="C1")
            ax.annotate(arm, (x, np.mean([r["gap"] for r in mine])), fontsize=7)
        ax.set(xlabel="relative variance of the estimator at the start (exact: left edge)",
               ylabel="test - train gap (o)")
        ax2.set_ylabel("Hessian trace (s)")
    else:
        for name in ("weight_perturbation", "node_perturbation"):
            size, var = np.array([(r["size"], r["relative_variance"]) for r in rows if r["rule"] == name]).T
            slope, intercept = np.polyfit(np.log(size), np.log(var), 1)
            (line,) = ax.loglog(size, var, "o", label=f"{name}: slope {slope:.2f}")
            ax.loglog(size, np.exp(intercept) * size**slope, "--", color=line.get_color())
        ax.set(xlabel="weights (WP) / units (NP)", ylabel="relative variance", title="log-log fits (dashed)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / f"{kind}.png", dpi=100)
    plt.close(fig)
