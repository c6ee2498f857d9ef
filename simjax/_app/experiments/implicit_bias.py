r"""The implicit bias of gradient descent on two-layer students of known teachers (Globerson et al.).

Studies (`[study] kind`), each run as jitted programs over its grid: `linear` and, with trained
output weights, the detection studies as `vmap` over chunks of `train.chunk` runs (`lax.map` over
the chunks); the detection studies with fixed output weights as `detection_grid_program` (all runs
of a width and training-set size at once, the gradient written out, runs on the vectorised last
axis); the DNF one chunked `vmap` per training-set size:

- `linear`: `LinearTeacher` data, the two-sided Leaky-ReLU student (`LeakyReLUStudent`), logistic
  loss, over margins x seeds: clustering (mean pairwise cosine of the `w`'s and of the `u`'s),
  agreement with the linearised network on test points, Neural Agreement Regime fraction
  (Sarussi, Brutzkus & Globerson, ICML 2021).
- `xor`: `XORDetection`, conv + max-pool detector (`MaxPoolDetector`), hinge loss, over
  training-set sizes m x widths k x seeds: exact balanced population error and the fraction of
  `w` filters aligned to a positive pattern (Brutzkus & Globerson, ICML 2019).
- `patterns`: the same with orthonormal patterns in `R^p` (`PatternDetection.orthonormal`).
- `dnf`: `ReadOnceDNF`, the convex ReLU network (`ConvexReLUNetwork`), hinge loss, over
  training-set sizes x init scales x seeds: exact test error over all `2^D` inputs, term
  alignment, weight norm (Bronstein, Brutzkus & Globerson, UAI 2022).

Training sets of several sizes come from one draw per seed (the first m points; the detection
tasks' draws alternate positive and negative points, so every even prefix is balanced) and are
trained together with per-point weights. Run `s` initialises from `fold_in(key(s), 0)` and draws
its data from `fold_in(key(s), 1)` (test points: `fold_in(key(s), 2)`); the linear teacher is
drawn from `experiment.seed`. The table holds mean and standard error over seeds for each cell.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..._fit.classifier import LOSSES, fit_classifier
from ...analysis import (
    balanced_error,
    classification_error,
    filter_alignment,
    linear_agreement,
    mean_pairwise_cosine,
    nar_fraction,
    span_fraction,
    term_alignment,
    weight_norm,
)
from ...networks import ConvexReLUNetwork, LeakyReLUStudent, MaxPoolDetector
from ...tasks import LinearTeacher, PatternDetection, ReadOnceDNF, XORDetection
from ...tasks._implicit_bias import MAX_MARGIN
from .. import io
from ..config import require

KINDS = ("linear", "xor", "patterns", "dnf")
DEFAULTS = {
    "experiment": {"name": "implicit_bias", "seed": 0},
    "study": {"kind": "xor"},
    "train": {"seeds": 20, "train_output": False, "chunk": 16},
    "linear": {"d": 20, "n_train": 200, "n_test": 1000, "width": 50, "alpha": 0.1, "init_scale": 1e-4,
               "learning_rate": 0.5, "steps": 10000, "loss": "logistic", "margins": [0.1, 0.5, 1.0]},
    "xor": {"d": 4, "sizes": [6, 10, 20, 40], "widths": [2, 4, 10, 50], "init_scale": 1e-3,
            "learning_rate": 0.01, "steps": 5000, "loss": "hinge", "check_size": 20},
    "patterns": {"p": 8, "n_positive": 4, "d": 4, "sizes": [6, 10, 20, 40], "widths": [2, 4, 10, 50],
                 "init_scale": 1e-3, "learning_rate": 0.01, "steps": 5000, "loss": "hinge", "check_size": 20},
    "dnf": {"dim": 9, "terms": 3, "width": 50, "sizes": [128, 512], "init_scales": [1e-3, 0.3, 1.0],
            "learning_rate": 0.05, "steps": 3000, "loss": "hinge"},
}
QUICK = {
    "train": {"seeds": 3, "chunk": 0},
    "linear": {"d": 10, "n_train": 100, "n_test": 200, "width": 10, "steps": 1000, "margins": [0.1, 0.5]},
    "xor": {"sizes": [6, 20], "widths": [2, 10], "steps": 1000, "learning_rate": 0.03},
    "patterns": {"sizes": [6, 20], "widths": [2, 10], "steps": 1500, "learning_rate": 0.03},
    "dnf": {"width": 20, "sizes": [128], "init_scales": [1e-3, 1.0], "steps": 1500},
}


def validate(cfg: dict) -> None:
    require(cfg["study"]["kind"] in KINDS, "study.kind", cfg["study"]["kind"], " | ".join(KINDS))
    require(cfg["train"]["seeds"] > 0, "train.seeds", cfg["train"]["seeds"], "a positive integer")
    require(cfg["train"]["chunk"] >= 0, "train.chunk", cfg["train"]["chunk"],
            "runs per vmapped chunk (0: the whole grid at once)")
    for study in ("linear", "xor", "patterns", "dnf"):
        c = cfg[study]
        require(c["steps"] > 0, f"{study}.steps", c["steps"], "a positive integer")
        require(c["learning_rate"] > 0, f"{study}.learning_rate", c["learning_rate"], "> 0")
        require(c["loss"] in LOSSES, f"{study}.loss", c["loss"], " | ".join(LOSSES))
    lin = cfg["linear"]
    for key in ("d", "n_train", "n_test", "width"):
        require(lin[key] > 0, f"linear.{key}", lin[key], "a positive integer")
    require(lin["width"] >= 2, "linear.width", lin["width"], "at least 2 (pairwise cosines)")
    require(lin["init_scale"] > 0, "linear.init_scale", lin["init_scale"], "> 0")
    require(0 < lin["alpha"] < 1, "linear.alpha", lin["alpha"], "a Leaky-ReLU slope in (0, 1)")
    require(bool(lin["margins"]) and all(0 <= m < MAX_MARGIN for m in lin["margins"]), "linear.margins",
            lin["margins"], f"margins in [0, {MAX_MARGIN}) (larger margins than Gaussian data allow)")
    for study in ("xor", "patterns"):
        c = cfg[study]
        require(bool(c["sizes"]) and all(isinstance(m, int) and m >= 2 and m % 2 == 0 for m in c["sizes"]),
                f"{study}.sizes", c["sizes"], "even training-set sizes >= 2 (class-balanced)")
        require(bool(c["widths"]) and all(isinstance(k, int) and k >= 1 for k in c["widths"]), f"{study}.widths",
                c["widths"], "filter counts k >= 1")
        require(c["d"] > 0, f"{study}.d", c["d"], "a positive integer")
        require(c["init_scale"] > 0, f"{study}.init_scale", c["init_scale"], "> 0")
    pat = cfg["patterns"]
    require(pat["p"] >= 2 and 1 <= pat["n_positive"] < pat["p"], "patterns.n_positive", pat["n_positive"],
            f"an int in [1, p) with p = {pat['p']} >= 2")
    dnf = cfg["dnf"]
    require(0 < dnf["dim"] <= 20, "dnf.dim", dnf["dim"], "an int in [1, 20]")
    require(dnf["terms"] >= 1 and dnf["dim"] % dnf["terms"] == 0, "dnf.terms", dnf["terms"],
            f"a number of equal terms dividing dim = {dnf['dim']}")
    require(dnf["width"] >= 1, "dnf.width", dnf["width"], "units r >= 1")
    require(bool(dnf["sizes"]) and all(isinstance(m, int) and 0 < m <= 2 ** dnf["dim"] for m in dnf["sizes"]),
            "dnf.sizes", dnf["sizes"], f"training-set sizes in 1 ... 2^dim = {2 ** dnf['dim']}")
    require(bool(dnf["init_scales"]) and all(s > 0 for s in dnf["init_scales"]), "dnf.init_scales",
            dnf["init_scales"], "values > 0")


# ----------------------------------------------------------------------------------------------- runs
def linear_run(cfg: dict) -> Callable:
    """`run(seed, margin) -> dict of scalars`: one student of the linear teacher."""
    c, train_output = cfg["linear"], cfg["train"]["train_output"]

    def run(seed, margin):
        key = jax.random.key(seed)
        task = LinearTeacher(c["d"], margin, seed=cfg["experiment"]["seed"] + 1000)
        train = task.sample(jax.random.fold_in(key, 1), c["n_train"])
        test = task.sample(jax.random.fold_in(key, 2), c["n_test"])
        net = LeakyReLUStudent(c["d"], c["width"], alpha=c["alpha"], init_scale=c["init_scale"],
                               train_output=train_output, key=jax.random.fold_in(key, 0))
        net, history = fit_classifier(net, train.inputs, train.targets, learning_rate=c["learning_rate"],
                                      steps=c["steps"], loss=c["loss"])
        return {"train_error": classification_error(net(train.inputs), train.targets),
                "test_error": classification_error(net(test.inputs), test.targets),
                "cos_w": mean_pairwise_cosine(net.w), "cos_u": mean_pairwise_cosine(net.u),
                "linear_agreement": linear_agreement(net, test.inputs),
                "nar_fraction": nar_fraction(net, train.inputs, train.targets),
                "weight_norm": weight_norm(net), "final_loss": history["loss"][-1]}

    return run


def detection_task(cfg: dict, study: str):
    """The `XORDetection` or orthonormal `PatternDetection` task of a study."""
    c = cfg[study]
    if study == "xor":
        return XORDetection(c["d"])
    return PatternDetection.orthonormal(c["p"], c["n_positive"], d=c["d"], seed=cfg["experiment"]["seed"] + 1000)


def _detection_setup(task, c: dict, width: int, seed, size, train_output: bool = False):
    """`(inputs, targets, weights, net)` of one detection run: the seed's draw of the study's
    largest training set, per-point weights selecting its first `size` points, the initial net."""
    largest = max(c["sizes"])
    key = jax.random.key(seed)
    data = task.sample(jax.random.fold_in(key, 1), largest)
    weights = (jnp.arange(largest) < size).astype(data.targets.dtype)
    net = MaxPoolDetector(task.patterns.shape[1], width, init_scale=c["init_scale"], train_output=train_output,
                          key=jax.random.fold_in(key, 0))
    return data.inputs, data.targets, weights, net


def _detection_metrics(task, population, net, train_error, final_loss) -> dict:
    """The reported quantities of one trained detector."""
    return {"train_error": train_error,
            "balanced_error": balanced_error(net(population.inputs), population.targets),
            "aligned_w": filter_alignment(net.w, task.patterns[: task.n_positive]),
            "aligned_u": filter_alignment(net.u, task.patterns[task.n_positive:]),
            "positive_span_w": span_fraction(net.w, task.patterns[: task.n_positive]),
            "weight_norm": weight_norm(net), "final_loss": final_loss, "w": net.w, "u": net.u}


def detection_run(cfg: dict, study: str, width: int) -> Callable:
    """`run(seed, size) -> dict`: one max-pool detector of `width` filters per sign trained on the
    first `size` points of the seed's draw."""
    c, train_output = cfg[study], cfg["train"]["train_output"]
    task = detection_task(cfg, study)
    population = task.population()

    def run(seed, size):
        inputs, targets, weights, net = _detection_setup(task, c, width, seed, size, train_output)
        net, history = fit_classifier(net, inputs, targets, learning_rate=c["learning_rate"],
                                      steps=c["steps"], loss=c["loss"], weights=weights)
        return _detection_metrics(task, population, net, history["train_error"][-1], history["loss"][-1])

    return run


def detection_grid_program(cfg: dict, study: str, width: int) -> Callable:
    """`program(seeds, sizes) -> dict of [R]` arrays: the runs of `detection_run` (fixed output
    weights) for `R` grid points, one jitted program per training-set size (computing on that
    size's points only), each training its runs at once by `train_max_pool` with the run index on
    the vectorised last axis; the metrics are computed once, after training. Same data,
    initialisation and updates as `detection_run` (equal to rounding)."""
    c = cfg[study]
    task = detection_task(cfg, study)
    population = task.population()

    def setup(seed, size):
        return _detection_setup(task, c, width, seed, size)

    def metrics(net, train_error, final_loss):
        return _detection_metrics(task, population, net, train_error, final_loss)

    train = jax.jit(functools.partial(train_max_pool, learning_rate=c["learning_rate"], steps=c["steps"],
                                      loss=c["loss"]))
    setup_all, metrics_all = jax.jit(jax.vmap(setup)), jax.jit(jax.vmap(metrics))

    def program(seeds, sizes):
        inputs, targets, weights, nets = setup_all(jnp.asarray(seeds), jnp.asarray(sizes))
        sizes_np = np.asarray(sizes).astype(int)
        trained = [np.zeros(nets.w.shape, nets.w.dtype), np.zeros(nets.u.shape, nets.u.dtype),
                   np.zeros(len(sizes_np), targets.dtype), np.zeros(len(sizes_np), targets.dtype)]
        for points in np.unique(sizes_np):  # one program per size, on its points only
            idx = np.flatnonzero(sizes_np == points)
            res = train(inputs[idx, :points], targets[idx, :points], weights[idx, :points], nets.w[idx], nets.u[idx])
            for out, r in zip(trained, res):
                out[idx] = np.asarray(r)
        w, u, err, loss = (jnp.asarray(t) for t in trained)
        return {k: np.asarray(v) for k, v in metrics_all(eqx.tree_at(lambda n: (n.w, n.u), nets, (w, u)), err,
                                                          loss).items()}

    return program


def train_max_pool(inputs, targets, weights, w, u, *, learning_rate, steps: int, loss: str):
    r"""Full-batch gradient descent of `R` `MaxPoolDetector`s with fixed output weights
    (`v = a = 1`) on the weighted margin loss, as `fit_classifier` does it, with the gradient
    written out (Brutzkus & Globerson 2019): for `N(x) = sum_i relu(max_j w_i.x_j) - sum_i
    relu(max_j u_i.x_j)` and `L = sum_n c_n l(y_n N(x_n)) / max(sum_n c_n, 1)`,
    `dL/dw_i = sum_n c_n l'(y_n N_n) y_n 1[max_j w_i.x_nj > 0] x_{n j*}` with `j*` the maximising
    position (and the same with a minus sign for `u`). All arrays carry the run index on their
    last axis, so that every elementwise step runs across runs in vector lanes.

    **Arguments:**

    - `inputs`: `[R, n, d, p]`; `targets`, `weights`: `[R, n]`; `w`, `u`: `[R, k, p]`.
    - `learning_rate`, `steps`, `loss`: as `fit_classifier`.

    **Returns:**

    `(w, u, train_error, loss)`: the trained filters and, as `fit_classifier`'s history reports
    last, the training error and loss before the final update (`[R]` each).
    """
    x, y, c, w, u = (jnp.moveaxis(a, 0, -1) for a in (inputs, targets, weights, w, u))
    scale = c / jnp.maximum(jnp.sum(c, axis=0), 1.0)
    _, d, p, _ = x.shape

    def side(f):
        z = [sum(x[:, j, q][:, None] * f[None, :, q] for q in range(p)) for j in range(d)]
        top, chosen = z[0], [x[:, 0, q][:, None] for q in range(p)]
        for j in range(1, d):
            better = z[j] > top
            top = jnp.where(better, z[j], top)
            chosen = [jnp.where(better, x[:, j, q][:, None], s) for q, s in enumerate(chosen)]
        return top, chosen

    def step(params):
        w, u = params
        (mw, xw), (mu, xu) = side(w), side(u)
        out = jnp.sum(jax.nn.relu(mw), axis=1) - jnp.sum(jax.nn.relu(mu), axis=1)
        margin = y * out
        slope = -(margin < 1.0).astype(margin.dtype) if loss == "hinge" else -jax.nn.sigmoid(-margin)
        g = scale * slope * y
        gw, gu = g[:, None] * (mw > 0), g[:, None] * (mu > 0)
        grad_w = jnp.stack([jnp.sum(gw * s, axis=0) for s in xw], axis=1)
        grad_u = jnp.stack([-jnp.sum(gu * s, axis=0) for s in xu], axis=1)
        return (w - learning_rate * grad_w, u - learning_rate * grad_u), out

    params, _ = jax.lax.scan(lambda params, _: (step(params)[0], None), (w, u), None, length=steps - 1)
    (w, u), out = step(params)
    per = jax.nn.relu(1.0 - y * out) if loss == "hinge" else jax.nn.softplus(-y * out)
    loss_value = jnp.sum(c * per, axis=0) / jnp.maximum(jnp.sum(c, axis=0), 1.0)
    error = jnp.sum(c * (jnp.sign(out) != y), axis=0) / jnp.maximum(jnp.sum(c, axis=0), 1.0)
    return jnp.moveaxis(w, -1, 0), jnp.moveaxis(u, -1, 0), error, loss_value


def dnf_run(cfg: dict, points: int | None = None) -> Callable:
    """`run(seed, size, init_scale) -> dict`: one convex ReLU network on the first `size` of the
    seed's distinct points. The program computes on the first `points` of them (default: the
    largest size; runs of one size grouped with `points = size` skip the padding)."""
    c, train_output = cfg["dnf"], cfg["train"]["train_output"]
    task = ReadOnceDNF(c["dim"], c["terms"])
    population = task.population()
    largest = max(c["sizes"])
    points = largest if points is None else points

    def run(seed, size, init_scale):
        key = jax.random.key(seed)
        data = task.sample(jax.random.fold_in(key, 1), largest)
        data = jax.tree.map(lambda a: a[:points], data)
        weights = (jnp.arange(points) < size).astype(data.targets.dtype)
        net = ConvexReLUNetwork(c["dim"], c["width"], init_scale=init_scale, train_output=train_output,
                                key=jax.random.fold_in(key, 0))
        net, history = fit_classifier(net, data.inputs, data.targets, learning_rate=c["learning_rate"],
                                      steps=c["steps"], loss=c["loss"], weights=weights)
        return {"train_error": history["train_error"][-1],
                "test_error": classification_error(net(population.inputs), population.targets),
                "term_alignment": term_alignment(net.w, task.term_matrix),
                "weight_norm": weight_norm(net), "final_loss": history["loss"][-1], "w": net.w, "b": net.b}

    return run


def run_grid(run: Callable, grid: dict[str, np.ndarray], *, vectorised: bool = True,
             chunk: int = 0) -> dict[str, np.ndarray]:
    """`run` over the points of `grid` (equal-length columns; `seed` first) as one jitted program:
    `vmap` over all points (`chunk = 0`), or `lax.map` over vmapped chunks of `chunk` points (same
    results; on CPU small chunks stay in cache and run faster). `vectorised=False`: a Python loop
    over the jitted single run (the reference the tests compare with)."""
    dtype = jnp.result_type(float)
    cols = [jnp.asarray(v, jnp.uint32 if k == "seed" else dtype) for k, v in grid.items()]
    if vectorised:
        if chunk:
            program = jax.jit(lambda *c: jax.lax.map(lambda a: run(*a), c, batch_size=chunk))
        else:
            program = jax.jit(jax.vmap(run))
        return {k: np.asarray(v) for k, v in program(*cols).items()}
    one = jax.jit(run)
    outs = [one(*(c[i] for c in cols)) for i in range(len(cols[0]))]
    return {k: np.stack([np.asarray(o[k]) for o in outs]) for k in outs[0]}


def _mesh(**axes) -> dict[str, np.ndarray]:
    grids = np.meshgrid(*axes.values(), indexing="ij")
    return {k: g.ravel() for k, g in zip(axes, grids)}


# --------------------------------------------------------------------------------------------- tables
def _rows(grid: dict, out: dict) -> list[dict]:
    scalars = [k for k, v in out.items() if v.ndim == 1]
    return [{**{k: v[i].item() for k, v in grid.items()}, **{k: float(out[k][i]) for k in scalars}}
            for i in range(len(next(iter(grid.values()))))]


def table(rows: list[dict], by: list[str]) -> list[dict]:
    """Mean and standard error over seeds of every metric, one row per cell of the `by` columns."""
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault(tuple(r[b] for b in by), []).append(r)
    metrics = [k for k in rows[0] if k not in by and k != "seed"]
    out = []
    for cell, mine in cells.items():
        entry = {**dict(zip(by, cell)), "seeds": len(mine)}
        for m in metrics:
            v = np.array([r[m] for r in mine])
            entry[f"{m}_mean"] = float(v.mean())
            entry[f"{m}_sem"] = float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0
        out.append(entry)
    return out


def _cell(tab: list[dict], **where) -> dict:
    return next(r for r in tab if all(r[k] == v for k, v in where.items()))


def _seeds(cfg):
    return np.arange(cfg["train"]["seeds"])


def linear_study(cfg: dict) -> tuple[list[dict], list[dict], dict, dict]:
    """The `linear` study: `(runs, table, summary, extras)`."""
    grid = _mesh(seed=_seeds(cfg), margin=np.asarray(cfg["linear"]["margins"], float))
    rows = _rows(grid, run_grid(linear_run(cfg), grid, chunk=cfg["train"]["chunk"]))
    tab = table(rows, ["margin"])
    big = [r for r in tab if r["margin"] >= 0.5]
    small = min(tab, key=lambda r: r["margin"])
    summary = {
        "clustered_at_margin_ge_0.5": bool(big) and all(
            min(r["cos_w_mean"], r["cos_u_mean"]) >= 0.95 and r["linear_agreement_mean"] >= 0.99
            and r["nar_fraction_mean"] >= 0.85 for r in big),
        "clustering_weaker_at_smallest_margin": bool(big) and small["margin"] < 0.5 and all(
            small["nar_fraction_mean"] < r["nar_fraction_mean"]
            and small["cos_w_mean"] + small["cos_u_mean"] < r["cos_w_mean"] + r["cos_u_mean"] for r in big)}
    return rows, tab, summary, {}


def detection_study(cfg: dict, study: str) -> tuple[list[dict], list[dict], dict, dict]:
    """The `xor` or `patterns` study: one vmapped program per width."""
    c = cfg[study]
    rows, filters = [], {}
    for width in c["widths"]:
        grid = _mesh(seed=_seeds(cfg), size=np.asarray(c["sizes"]))
        if cfg["train"]["train_output"]:
            out = run_grid(detection_run(cfg, study, width), grid, chunk=cfg["train"]["chunk"])
        else:  # the written-out gradient, all runs of the width in vector lanes
            program = detection_grid_program(cfg, study, width)
            out = {k: np.asarray(v) for k, v in program(jnp.asarray(grid["seed"], jnp.uint32),
                                                          jnp.asarray(grid["size"], jnp.result_type(float))).items()}
        rows += [{**r, "width": width} for r in _rows(grid, out)]
        filters[width] = {"w": out["w"], "u": out["u"], "seed": grid["seed"], "size": grid["size"]}
    tab = table(rows, ["width", "size"])
    check = c["check_size"] if c["check_size"] in c["sizes"] else max(c["sizes"])
    kmin, kmax = min(c["widths"]), max(c["widths"])
    small, large = _cell(tab, width=kmin, size=check), _cell(tab, width=kmax, size=check)
    gap = small["balanced_error_mean"] - large["balanced_error_mean"]
    summary = {"check_size": check, "error_smallest_width": small["balanced_error_mean"],
               "error_largest_width": large["balanced_error_mean"], "error_gap": gap,
               "aligned_w_largest_width": large["aligned_w_mean"],
               "overparameterisation_helps": bool(kmax > kmin and gap >= 0.03),
               "positive_span_w_largest_width": large["positive_span_w_mean"],
               "filters_cluster_on_positive_patterns": bool(large["aligned_w_mean"] >= 0.9),
               "filters_in_positive_span": bool(large["positive_span_w_mean"] >= 0.9)}
    return rows, tab, summary, {"filters": filters, "patterns": np.asarray(detection_task(cfg, study).patterns)}


def dnf_study(cfg: dict) -> tuple[list[dict], list[dict], dict, dict]:
    """The `dnf` study: init scales x seeds as one vmapped program per training-set size."""
    c = cfg["dnf"]
    rows = []
    for size in c["sizes"]:  # one program per training-set size, on its points only
        grid = _mesh(seed=_seeds(cfg), size=np.asarray([size]), init_scale=np.asarray(c["init_scales"], float))
        rows += _rows(grid, run_grid(dnf_run(cfg, size), grid, chunk=cfg["train"]["chunk"]))
    tab = table(rows, ["size", "init_scale"])
    size = min(c["sizes"])
    small = _cell(tab, size=size, init_scale=min(c["init_scales"]))
    large = _cell(tab, size=size, init_scale=max(c["init_scales"]))
    summary = {"check_size": size, "small_init": {k: small[f"{k}_mean"] for k in
                                                  ("test_error", "term_alignment", "weight_norm")},
               "large_init": {k: large[f"{k}_mean"] for k in ("test_error", "term_alignment", "weight_norm")},
               "small_init_term_aligned": bool(small["term_alignment_mean"] >= 0.85
                                               and small["test_error_mean"] <= 0.01),
               "large_init_not_aligned": bool(large["term_alignment_mean"] <= 0.5
                                              and large["test_error_mean"] > small["test_error_mean"]),
               "small_init_lower_norm": bool(small["weight_norm_mean"] < large["weight_norm_mean"])}
    return rows, tab, summary, {}


STUDIES = {"linear": linear_study, "xor": lambda cfg: detection_study(cfg, "xor"),
           "patterns": lambda cfg: detection_study(cfg, "patterns"), "dnf": dnf_study}


def run(cfg: dict, out_dir: Path) -> dict:
    jax.config.update("jax_enable_x64", True)
    kind = cfg["study"]["kind"]
    print(f"implicit_bias: study {kind!r}, {cfg['train']['seeds']} seeds")
    rows, tab, summary, extras = STUDIES[kind](cfg)
    io.write_rows(out_dir / "runs.csv", rows)
    io.write_rows(out_dir / "table.csv", tab)
    io.write_json(out_dir / "summary.json", {"study": kind, **summary, "table": tab})
    _plot(out_dir, kind, tab, extras)
    for r in tab:
        cells = ", ".join(f"{k[:-5]} {r[k]:.3g} +- {r[k[:-5] + '_sem']:.2g}" for k in r if k.endswith("_mean"))
        keys = ", ".join(f"{k} {r[k]}" for k in r if not k.endswith(("_mean", "_sem")))
        print(f"  {keys}: {cells}")
    for k, v in summary.items():
        print(f"  {k}: {v}")
    return summary


# -------------------------------------------------------------------------------------------- figures
def _plot(out_dir: Path, kind: str, tab: list[dict], extras: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return

    def series(ax, x, rows, metric, label, **kw):
        ax.errorbar([r[x] for r in rows], [r[f"{metric}_mean"] for r in rows], [r[f"{metric}_sem"] for r in rows],
                    marker="o", capsize=3, label=label, **kw)

    if kind == "linear":
        fig, ax = plt.subplots(figsize=(5, 3.6))
        rows = sorted(tab, key=lambda r: r["margin"])
        for metric, label in (("cos_w", "mean cos (w)"), ("cos_u", "mean cos (u)"),
                              ("nar_fraction", "NAR fraction"), ("linear_agreement", "agreement with linear")):
            series(ax, "margin", rows, metric, label)
        ax.set(xlabel="margin", ylabel="mean +- sem over seeds")
        ax.legend(fontsize=8)
    elif kind in ("xor", "patterns"):
        fig, axes = plt.subplots(1, 2 if kind == "xor" else 1, figsize=(9 if kind == "xor" else 5, 3.6), squeeze=False)
        ax = axes[0, 0]
        for width in sorted({r["width"] for r in tab}):
            series(ax, "size", sorted((r for r in tab if r["width"] == width), key=lambda r: r["size"]),
                   "balanced_error", f"k = {width}")
        ax.set(xlabel="training-set size m", ylabel="balanced population error")
        ax.legend(fontsize=8)
        if kind == "xor":
            ax = axes[0, 1]
            width = max(extras["filters"])
            f = extras["filters"][width]
            i = int(np.flatnonzero(f["size"] == max(f["size"]))[0])
            ax.scatter(*f["w"][i].T, s=12, label="w (positive side)")
            ax.scatter(*f["u"][i].T, s=12, marker="x", label="u (negative side)")
            for pat, c in zip(extras["patterns"], ("C0", "C0", "C1", "C1")):
                ax.plot([0, pat[0]], [0, pat[1]], color=c, alpha=0.3)
            ax.set(aspect="equal", title=f"filters, k = {width}, m = {int(f['size'][i])}, seed {int(f['seed'][i])}")
            ax.legend(fontsize=8)
    else:
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
        for size in sorted({r["size"] for r in tab}):
            rows = sorted((r for r in tab if r["size"] == size), key=lambda r: r["init_scale"])
            series(axes[0], "init_scale", rows, "term_alignment", f"m = {size}")
            series(axes[1], "init_scale", rows, "test_error", f"m = {size}")
        for ax, label in zip(axes, ("term alignment", "test error (all inputs)")):
            ax.set(xscale="log", xlabel="init scale", ylabel=label)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / f"{kind}.png", dpi=100)
    plt.close(fig)
