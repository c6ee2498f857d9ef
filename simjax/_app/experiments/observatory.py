"""The gradient-quality observatory: every learning rule on one model and task, one row each.

For each rule in `rules` (a list of `{type = name, label = ..., **kwargs}`, built by name), draws
`samples` updates and compares them with the exact gradient (`simjax.analysis.report_arrays`):
relative bias and variance, cosines, sign agreement, SNR, and (for smooth models) curvature terms.
Every rule's report is traced first on its own (`eqx.filter_eval_shape`): a rule that cannot handle
the model is reported and skipped; the others run as ONE compiled program (each rule's samples
vmapped). Should that program fail, the rules run one program each, and the table is written after
every rule. Optionally trains every rule for `track_steps` steps while tracking its alignment.
Writes `gradient_quality.csv` (rule x group x quantity),
`observatory.md` (the table), `bias_variance_plane.png` and `alignment.png`.
"""

from __future__ import annotations

import math
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import optax

from ..._fit.fit import fit
from ...analysis import QualityTracker, report_arrays, to_table
from ...analysis._gradient_quality import auto_chunk_size
from ...networks import RSNN
from ...neurons import LIF
from ...tasks import PatternGeneration
from .. import io
from ..config import ConfigError, require
from ..registry import construct

DEFAULTS = {
    "experiment": {"name": "observatory", "seed": 0},
    "model": {"n_rec": 32, "tau_mem": 20.0, "tau_out": 20.0, "in_scale": 4.0},
    "task": {"n_in": 20, "n_out": 2, "duration": 100.0, "dt": 1.0},
    "report": {"samples": 32, "batch_size": 4, "curvature": False, "track_steps": 0, "track_every": 10,
               "learning_rate": 3e-3},
    "rules": [
        {"type": "exact", "label": "exact (slope 25)"},
        {"type": "exact", "label": "surrogate slope 5", "surrogate": {"type": "fast_sigmoid", "slope": 5.0}},
        {"type": "exact", "label": "surrogate slope 100", "surrogate": {"type": "fast_sigmoid", "slope": 100.0}},
        {"type": "exact", "label": "triangle surrogate", "surrogate": {"type": "triangle", "dampening": 0.3}},
        {"type": "truncated_bptt", "label": "truncated BPTT k=1", "k": 1},
        {"type": "truncated_bptt", "label": "truncated BPTT k=10", "k": 10},
        {"type": "feedback_alignment", "label": "feedback alignment"},
        {"type": "direct_feedback_alignment", "label": "direct feedback alignment"},
        {"type": "sign_symmetry", "label": "sign symmetry"},
        {"type": "node_perturbation", "label": "node perturbation", "sigma": 1e-2, "samples": 8},
        {"type": "weight_perturbation", "label": "weight perturbation", "sigma": 1e-2, "samples": 8},
        {"type": "eprop", "label": "e-prop symmetric", "variant": "symmetric"},
        {"type": "eprop", "label": "e-prop random", "variant": "random"},
        {"type": "rtrl", "label": "RTRL"},
    ],
}
QUICK = {"model": {"n_rec": 12}, "task": {"n_in": 8, "duration": 30.0},
         "report": {"samples": 4, "track_steps": 10, "track_every": 5}}
_UNSUPPORTED = (ConfigError, ValueError, TypeError, NotImplementedError)
_FAILED = (*_UNSUPPORTED, RuntimeError, MemoryError)
SHOWN = ("relative_bias", "relative_variance", "cosine_mean", "cosine_sample", "sign_agreement")


def validate(cfg: dict) -> None:
    r = cfg["report"]
    require(isinstance(r["samples"], int) and r["samples"] >= 3, "report.samples", r["samples"], "an integer >= 3")
    require(r["track_steps"] >= 0, "report.track_steps", r["track_steps"], "an integer >= 0")
    rules = cfg["rules"]
    require(isinstance(rules, list) and len(rules) > 0, "rules", rules, "a non-empty list of tables")
    for i, spec in enumerate(cfg["rules"]):
        _rule(spec, f"rules[{i}]")


def _rule(spec: dict, where: str):
    spec = dict(spec)
    spec.pop("label", None)
    if "surrogate" in spec:
        spec["surrogate"] = construct("surrogate", spec["surrogate"], f"{where}.surrogate")
    return construct("rule", spec, where)


def _setup(cfg):
    m, t = cfg["model"], cfg["task"]
    key = jax.random.key(cfg["experiment"]["seed"])
    task = PatternGeneration(n_in=t["n_in"], n_out=t["n_out"], duration=t["duration"], dt=t["dt"],
                             seed=cfg["experiment"]["seed"])
    net = RSNN(n_in=t["n_in"], n_rec=m["n_rec"], n_out=t["n_out"], neuron=LIF(tau_mem=m["tau_mem"]),
               key=key, tau_out=m["tau_out"], in_scale=m["in_scale"])
    return net, task


def run(cfg: dict, out_dir: Path) -> dict:
    net, task = _setup(cfg)
    r = cfg["report"]
    key = jax.random.key(cfg["experiment"]["seed"] + 1)
    batch = task.sample(key, r["batch_size"])
    chunks = {}  # per rule label: samples at a time, so that all rules' chunks fit in memory together

    def report(label, rule):
        return report_arrays(net, rule, task, batch, key, samples=r["samples"], curvature=r["curvature"],
                             chunk_size=chunks.get(label))

    rules, skipped = {}, {}
    for i, spec in enumerate(cfg["rules"]):
        label = spec.get("label", spec["type"])
        try:
            rule = _rule(spec, f"rules[{i}]")
            eqx.filter_eval_shape(report, label, rule)  # trace only: can this rule handle the model?
            rules[label] = rule
        except _UNSUPPORTED as err:
            skipped[label] = str(err).splitlines()[0]
            print(f"  {label:<28} skipped: {skipped[label]}")
    for label, rule in rules.items():  # before the long run: MemoryError if not even one sample fits
        chunks[label] = auto_chunk_size(net, rule, task, batch, key, samples=r["samples"], curvature=r["curvature"],
                                        share=1 / len(rules), owner="observatory")
    rows = []

    def add(label, arrays):
        table = to_table(arrays)
        rows.extend({"rule": label, **row} for row in table.rows())
        total = {q: table.value(group="total", quantity=q) for q in SHOWN}
        print(f"  {label:<28} " + "  ".join(f"{q} {v:.3g}" for q, v in total.items()))
        io.write_rows(out_dir / "gradient_quality.csv", rows)

    try:
        everything = eqx.filter_jit(lambda rules: {label: report(label, rule) for label, rule in rules.items()})(rules)
    except _FAILED as err:
        print(f"  (one program for all rules failed: {str(err).splitlines()[0]}; one program per rule)")
        everything = None
    for label, rule in rules.items():
        add(label, everything[label] if everything is not None else eqx.filter_jit(report)(label, rule))
    curves = {}
    if r["track_steps"]:
        for label, rule in rules.items():
            try:
                curves[label] = _track(net, rule, task, cfg)
            except _FAILED as err:
                print(f"  {label:<28} not tracked: {str(err).splitlines()[0]}")
    summary = {"rules": list(rules), "skipped": skipped}
    io.write_json(out_dir / "summary.json", summary)
    (out_dir / "observatory.md").write_text(markdown_table(rows))
    _plot_plane(out_dir, rows)
    if curves:
        _plot_alignment(out_dir, curves, r["track_every"])
    return summary


def _track(net, rule, task, cfg):
    r = cfg["report"]
    tracker = QualityTracker(every=r["track_every"], samples=4)
    _, hist = fit(net, rule, task, optax.adam(r["learning_rate"]), steps=r["track_steps"],
                  key=jax.random.key(cfg["experiment"]["seed"] + 2), batch_size=r["batch_size"], track=tracker)
    return np.asarray(hist["quality/total/cosine_mean"])


def markdown_table(rows: list[dict], group: str = "total") -> str:
    """The observatory table (rules x quantities, `value +- stderr`) as Markdown."""
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    lines = ["| rule | " + " | ".join(SHOWN) + " |", "|" + " --- |" * (len(SHOWN) + 1)]
    for rule in rules:
        cells = []
        for q in SHOWN:
            match = [r for r in rows if r["rule"] == rule and r["group"] == group and r["quantity"] == q]
            cells.append(f"{match[0]['value']:.3g} ± {match[0]['stderr']:.2g}" if match else "")
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plot_plane(out_dir: Path, rows: list[dict]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for rule in dict.fromkeys(r["rule"] for r in rows):
        get = lambda q: next(r["value"] for r in rows
                             if r["rule"] == rule and r["group"] == "total" and r["quantity"] == q)
        bias, var = max(get("relative_bias"), 1e-6), max(get("relative_variance"), 1e-6)
        if math.isfinite(bias) and math.isfinite(var):
            ax.loglog(bias, var, "o")
            ax.annotate(rule, (bias, var), fontsize=7)
    ax.set(xlabel="relative bias |E g - g*| / |g*|", ylabel="relative variance E|g - E g|^2 / |g*|^2",
           title="learning rules in the bias-variance plane")
    fig.tight_layout()
    fig.savefig(out_dir / "bias_variance_plane.png", dpi=100)
    plt.close(fig)


def _plot_alignment(out_dir: Path, curves: dict, every: int) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, c in curves.items():
        steps = np.arange(len(c))[::every]
        ax.plot(steps, c[::every], "o-", label=label)
    ax.set(xlabel="training step", ylabel="cos(E update, exact gradient)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "alignment.png", dpi=100)
    plt.close(fig)
