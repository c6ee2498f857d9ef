"""Probabilistic analogical mapping (PAM / visiPAM; Lu, Ichien & Holyoak 2022; Webb et al. 2023) on
two synthetic benchmarks, every problem of a seed solved in one batched program:

- `task.kind = "parts"`: part correspondence (`PartCorrespondence`), plain and cross-mapping
  (features of two target parts swapped), by the full model (alpha = 1), node-only (no relation
  term) and edge-only (alpha = 0); accuracy = fraction of parts mapped to their true counterpart
  after the best-permutation read-out.
- `task.kind = "learn"`: the node weight alpha and a linear map of the node features fitted by
  Adam through the mapping (`fit_similarity`) on training part problems (cross-mapping by
  default), test accuracy before and after on fresh problems.
- `task.kind = "digits"`: digit matrices (`DigitMatrices`) per rule and alpha: choice among the
  candidates by summed mapping score, and direct generation of the missing cell from row and
  column schemas (`generate_digits`), both scored against the rule.

Writes `runs.csv` (a row per seed x condition x model), `summary.json` (mean, standard deviation
and seeds per cell) and figures: the accuracy table, the soft mapping over the annealing schedule
and a cross-mapping example drawn as two graphs (parts).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ...analogy import (
    RULES,
    Annealing,
    DigitMatrices,
    LearnedSimilarity,
    PartCorrespondence,
    fit_similarity,
    generate_digits,
    graduated_assignment,
    hard_assignment,
    mapping_accuracy,
    mapping_loss,
    solve_digit_matrices,
)
from .. import io
from ..config import require

KINDS = ("parts", "digits", "learn")
MODELS = {"full": (1.0, 1.0), "node_only": (1.0, 0.0), "edge_only": (0.0, 1.0)}  # (alpha, relation weight)
CONDITIONS = ("plain", "cross")

DEFAULTS = {
    "experiment": {"name": "pam", "seed": 0},
    "task": {"kind": "parts", "problems": 50, "seeds": 5},
    "schedule": {"beta0": 0.1, "rate": 1.075, "final": 100.0, "inner": 5, "sinkhorn": 30},
    "parts": {"n": 6, "dim": 8, "feature_noise": 0.3, "position_noise": 0.1, "scale_low": 0.5, "scale_high": 2.0,
              "conditions": ["plain", "cross"], "models": ["full", "node_only", "edge_only"]},
    "digits": {"rules": list(RULES), "alphas": [0.0, 1.0], "sigma": 0.15, "choices": 8, "generate": True,
               "resolution": 181},
    "learn": {"condition": "cross", "train_problems": 32, "alpha": 5.0, "steps": 40, "learning_rate": 0.1,
              "train_final": 5.0},
    "output": {"figures": True},
}
QUICK = {"task": {"problems": 8, "seeds": 2}, "schedule": {"rate": 1.3, "inner": 3, "sinkhorn": 20},
         "digits": {"resolution": 91}, "learn": {"steps": 5, "train_problems": 8}}


def validate(cfg: dict) -> None:
    t, s, p, d = cfg["task"], cfg["schedule"], cfg["parts"], cfg["digits"]
    require(t["kind"] in KINDS, "task.kind", t["kind"], " | ".join(KINDS))
    for key in ("problems", "seeds"):
        require(isinstance(t[key], int) and t[key] > 0, f"task.{key}", t[key], "a positive integer")
    require(s["beta0"] > 0, "schedule.beta0", s["beta0"], "a positive number")
    require(s["rate"] > 1, "schedule.rate", s["rate"], "a number > 1")
    require(s["final"] > s["beta0"], "schedule.final", s["final"], f"a number > schedule.beta0 = {s['beta0']}")
    for key in ("inner", "sinkhorn"):
        require(isinstance(s[key], int) and s[key] > 0, f"schedule.{key}", s[key], "a positive integer")
    require(isinstance(p["n"], int) and 2 <= p["n"] <= 60, "parts.n", p["n"], "an integer in [2, 60]")
    require(isinstance(p["dim"], int) and p["dim"] > 0, "parts.dim", p["dim"], "a positive integer")
    for key in ("feature_noise", "position_noise"):
        require(p[key] >= 0, f"parts.{key}", p[key], "a number >= 0")
    require(0 < p["scale_low"] <= p["scale_high"], "parts.scale_low/scale_high", (p["scale_low"], p["scale_high"]),
            "0 < scale_low <= scale_high")
    require(len(p["conditions"]) > 0 and all(c in CONDITIONS for c in p["conditions"]), "parts.conditions",
            p["conditions"], "a non-empty list of " + " | ".join(CONDITIONS))
    require(len(p["models"]) > 0 and all(m in MODELS for m in p["models"]), "parts.models", p["models"],
            "a non-empty list of " + " | ".join(MODELS))
    require(len(d["rules"]) > 0 and all(r in RULES for r in d["rules"]), "digits.rules", d["rules"],
            "a non-empty list of " + " | ".join(RULES))
    require(len(d["alphas"]) > 0 and all(isinstance(a, (int, float)) and a >= 0 for a in d["alphas"]),
            "digits.alphas", d["alphas"], "a non-empty list of numbers >= 0")
    require(d["sigma"] > 0, "digits.sigma", d["sigma"], "a positive number")
    require(isinstance(d["choices"], int) and 2 <= d["choices"] <= 10, "digits.choices", d["choices"],
            "an integer in [2, 10]")
    require(isinstance(d["resolution"], int) and d["resolution"] >= 10, "digits.resolution", d["resolution"],
            "an integer >= 10")
    lr = cfg["learn"]
    require(lr["condition"] in CONDITIONS, "learn.condition", lr["condition"], " | ".join(CONDITIONS))
    for key in ("train_problems", "steps"):
        require(isinstance(lr[key], int) and lr[key] > 0, f"learn.{key}", lr[key], "a positive integer")
    for key in ("alpha", "learning_rate"):
        require(lr[key] > 0, f"learn.{key}", lr[key], "a positive number")
    require(lr["train_final"] > s["beta0"], "learn.train_final", lr["train_final"],
            f"a number > schedule.beta0 = {s['beta0']}")


def _schedule(cfg: dict) -> Annealing:
    s = cfg["schedule"]
    return Annealing(s["beta0"], s["rate"], s["final"], inner=s["inner"], sinkhorn=s["sinkhorn"])


def _cell(values: list[float]) -> dict:
    a = np.asarray(values, float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "seeds": int(a.size)}


def run(cfg: dict, out_dir: Path) -> dict:
    start = time.perf_counter()
    runner = {"parts": _run_parts, "digits": _run_digits, "learn": _run_learn}[cfg["task"]["kind"]]
    summary = runner(cfg, out_dir)
    summary["seconds"] = time.perf_counter() - start
    io.write_json(out_dir / "summary.json", summary)
    print(f"pam: {summary['seconds']:.0f} s")
    return summary


def _part_task(cfg: dict, condition: str) -> PartCorrespondence:
    p = cfg["parts"]
    return PartCorrespondence(p["n"], p["dim"], cross=condition == "cross", feature_noise=p["feature_noise"],
                              position_noise=p["position_noise"], scale_low=p["scale_low"],
                              scale_high=p["scale_high"])


def _run_parts(cfg: dict, out_dir: Path) -> dict:
    t, p = cfg["task"], cfg["parts"]
    schedule = _schedule(cfg)
    weights = jnp.array([MODELS[m] for m in p["models"]])

    @jax.jit
    def accuracy(problems, weights):
        def model(w):
            def one(s, tg):
                m = graduated_assignment(s, tg, alpha=w[0], edge_weight=w[1], schedule=schedule).matrix
                return hard_assignment(m)

            return jnp.mean(jax.vmap(one)(problems.source, problems.target) == problems.answer)

        return jax.vmap(model)(weights)

    rows = []
    print(f"pam parts: {t['problems']} problems of {p['n']} parts x {t['seeds']} seeds, {schedule.steps} "
          f"annealing steps; models {', '.join(p['models'])}")
    for seed in range(t["seeds"]):
        key = jax.random.key(cfg["experiment"]["seed"] * 1000 + seed)
        for condition in p["conditions"]:
            problems = _part_task(cfg, condition).sample(key, t["problems"])
            acc = np.asarray(accuracy(problems, weights))
            rows += [{"seed": seed, "condition": condition, "model": m, "accuracy": float(a)}
                     for m, a in zip(p["models"], acc)]
    io.write_rows(out_dir / "runs.csv", rows)
    table = {c: {m: _cell([r["accuracy"] for r in rows if r["condition"] == c and r["model"] == m])
                 for m in p["models"]} for c in p["conditions"]}
    for c, cells in table.items():
        print(f"  {c:6s} " + "  ".join(f"{m} {v['mean']:.3f} +- {v['std']:.3f}" for m, v in cells.items()))
    summary = {"kind": "parts", "accuracy": table}
    if "cross" in table and "full" in table["cross"] and "node_only" in table["cross"]:
        summary["cross_mapping_advantage"] = table["cross"]["full"]["mean"] - table["cross"]["node_only"]["mean"]
    if cfg["output"]["figures"]:
        _plot_parts(cfg, out_dir, table, schedule)
    return summary


def _run_digits(cfg: dict, out_dir: Path) -> dict:
    t, d = cfg["task"], cfg["digits"]
    schedule = _schedule(cfg)
    alphas = jnp.asarray(d["alphas"], float)

    @jax.jit
    def correct(problems, alphas):
        def one(a):
            chosen = jnp.mean(solve_digit_matrices(problems, alpha=a, sigma=d["sigma"], schedule=schedule)
                              == problems.answer)
            if not d["generate"]:
                return chosen, jnp.nan
            made = generate_digits(problems, alpha=a, sigma=d["sigma"], schedule=schedule,
                                   resolution=d["resolution"])
            return chosen, jnp.mean(jnp.round(made) == problems.grid[:, 2, 2])

        return jax.vmap(one)(alphas)

    print(f"pam digits: {t['problems']} problems per rule x {t['seeds']} seeds, alphas {d['alphas']}, "
          f"{schedule.steps} annealing steps")
    rows = []
    for seed in range(t["seeds"]):
        key = jax.random.key(cfg["experiment"]["seed"] * 1000 + seed)
        for rule in d["rules"]:
            problems = DigitMatrices(rule, d["choices"]).sample(key, t["problems"])
            chosen, made = (np.asarray(x) for x in correct(problems, alphas))
            rows += [{"seed": seed, "rule": rule, "alpha": float(a), "choice": float(c), "generation": float(g)}
                     for a, c, g in zip(d["alphas"], chosen, made)]
    io.write_rows(out_dir / "runs.csv", rows)
    table = {metric: {rule: {str(float(a)): _cell([r[metric] for r in rows if r["rule"] == rule and r["alpha"] == a])
                             for a in d["alphas"]} for rule in d["rules"]}
             for metric in ("choice", "generation") if metric == "choice" or d["generate"]}
    for metric, by_rule in table.items():
        for rule, cells in by_rule.items():
            print(f"  {metric:10s} {rule:16s} " + "  ".join(f"alpha {a}: {v['mean']:.3f} +- {v['std']:.3f}"
                                                            for a, v in cells.items()))
    if cfg["output"]["figures"]:
        _plot_digits(out_dir, table)
    return {"kind": "digits", "accuracy": table}


def _run_learn(cfg: dict, out_dir: Path) -> dict:
    t, p, lr, sc = cfg["task"], cfg["parts"], cfg["learn"], cfg["schedule"]
    schedule = _schedule(cfg)
    train_schedule = Annealing(sc["beta0"], sc["rate"], lr["train_final"], inner=sc["inner"], sinkhorn=sc["sinkhorn"])
    task = _part_task(cfg, lr["condition"])
    accuracy = jax.jit(lambda model, problems: mapping_accuracy(model, problems, schedule=schedule))
    fit = jax.jit(lambda model, problems: fit_similarity(model, problems, steps=lr["steps"],
                                                         learning_rate=lr["learning_rate"], schedule=train_schedule))
    print(f"pam learn: alpha and W fitted on {lr['train_problems']} {lr['condition']} problems ({lr['steps']} Adam "
          f"steps), tested on {t['problems']} fresh ones, {t['seeds']} seeds")
    rows = []
    for seed in range(t["seeds"]):
        k_train, k_test = jax.random.split(jax.random.key(cfg["experiment"]["seed"] * 1000 + seed))
        train, test = task.sample(k_train, lr["train_problems"]), task.sample(k_test, t["problems"])
        model = LearnedSimilarity(lr["alpha"], p["dim"])
        trained, losses = fit(model, train)
        rows.append({"seed": seed, "accuracy_before": float(accuracy(model, test)),
                     "accuracy_after": float(accuracy(trained, test)), "alpha_after": float(trained.alpha),
                     "loss_before": float(losses[0]), "loss_after": float(mapping_loss(trained, train,
                                                                                         schedule=train_schedule))})
        print("  " + "  ".join(f"{k} {v:.4g}" for k, v in rows[-1].items()))
    io.write_rows(out_dir / "runs.csv", rows)
    return {"kind": "learn", **{k: _cell([r[k] for r in rows]) for k in rows[0] if k != "seed"}}


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no figures; pip install 'simjax[plot]')")
        return None
    return plt


def _plot_parts(cfg: dict, out_dir: Path, table: dict, schedule: Annealing) -> None:
    plt = _pyplot()
    if plt is None:
        return
    conditions, models = list(table), list(next(iter(table.values())))
    fig, ax = plt.subplots(figsize=(5, 3.5))
    width = 0.8 / len(models)
    for k, m in enumerate(models):
        x = np.arange(len(conditions)) + k * width
        ax.bar(x, [table[c][m]["mean"] for c in conditions], width, yerr=[table[c][m]["std"] for c in conditions],
               label=m)
    ax.set_xticks(np.arange(len(conditions)) + width * (len(models) - 1) / 2, conditions)
    ax.set(ylabel="parts mapped correctly", ylim=(0, 1.05), title="part correspondence (mean +- sd over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy.png", dpi=100)
    plt.close(fig)

    # One cross-mapping problem: the soft mapping over the schedule, and the chosen correspondences.
    problems = _part_task(cfg, "cross").sample(jax.random.key(cfg["experiment"]["seed"]), 1)
    source, target = jax.tree.map(lambda x: x[0], (problems.source, problems.target))
    answer = np.asarray(problems.answer[0])
    fig, axes = plt.subplots(2, 4, figsize=(14, 6))
    results = {}
    for row, (name, (alpha, w)) in enumerate((("full", MODELS["full"]), ("node_only", MODELS["node_only"]))):
        mapping = graduated_assignment(source, target, alpha=alpha, edge_weight=w, schedule=schedule, history=True)
        results[name] = np.asarray(hard_assignment(mapping.matrix))
        hist = np.asarray(mapping.history)
        betas = np.asarray(schedule.betas())
        for col, k in enumerate((0, len(hist) // 3, len(hist) - 1)):
            axes[row, col].imshow(hist[k], vmin=0, vmax=1, cmap="viridis")
            axes[row, col].plot(answer, np.arange(len(answer)), "r+", ms=10)
            axes[row, col].set(title=f"{name}: beta = {betas[k]:.2g}", xlabel="target part", ylabel="source part")
        ax = axes[row, 3]
        sp, tp = np.asarray(source.edges[0]), np.asarray(target.edges[0])  # positions, up to a translation
        sp = sp - sp.mean(0)
        tp = tp - tp.mean(0) + np.array([4.0, 0.0])
        ax.scatter(*sp.T, c="C0")
        ax.scatter(*tp.T, c="C1")
        for i, a in enumerate(results[name]):
            if a >= 0:
                ok = a == answer[i]
                ax.plot([sp[i, 0], tp[a, 0]], [sp[i, 1], tp[a, 1]], "-" if ok else ":", color="g" if ok else "r")
        ax.set(title=f"{name}: {int(np.sum(results[name] == answer))}/{len(answer)} right (dotted: wrong)")
        ax.set_aspect("equal")
    fig.tight_layout()
    fig.savefig(out_dir / "cross_mapping_example.png", dpi=100)
    plt.close(fig)


def _plot_digits(out_dir: Path, table: dict) -> None:
    plt = _pyplot()
    if plt is None:
        return
    fig, axes = plt.subplots(1, len(table), figsize=(5 * len(table), 3.5), squeeze=False)
    for ax, (metric, by_rule) in zip(axes[0], table.items()):
        rules = list(by_rule)
        alphas = list(next(iter(by_rule.values())))
        width = 0.8 / len(alphas)
        for k, a in enumerate(alphas):
            ax.bar(np.arange(len(rules)) + k * width, [by_rule[r][a]["mean"] for r in rules], width,
                   yerr=[by_rule[r][a]["std"] for r in rules], label=f"alpha = {a}")
        ax.set_xticks(np.arange(len(rules)) + width * (len(alphas) - 1) / 2, rules, fontsize=8)
        ax.set(ylabel="accuracy", ylim=(0, 1.05), title=f"digit matrices: {metric}")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "digits.png", dpi=100)
    plt.close(fig)
