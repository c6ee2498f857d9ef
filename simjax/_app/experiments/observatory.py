"""The gradient-quality observatory: every learning rule on one model and task, one row each.

For each rule in `rules` (a list of `{type = name, label = ..., **kwargs}`, built by name), draws
`samples` updates and compares them with the exact gradient (`simjax.analysis.report_arrays`):
relative bias and variance, cosines, sign agreement, SNR, and (for smooth models) curvature terms.
Every rule's report is traced first on its own (`eqx.filter_eval_shape`): a rule that cannot handle
the model is reported and skipped; the others run as ONE compiled program (each rule's samples
vmapped). Should that program fail, the rules run one program each, and the table is written after
every rule. Then (`[track]`, unless `task = "none"`) trains every rule that is not exact in every
group for `steps` steps from `seeds` network initialisations (vmapped) while tracking its alignment
with the exact gradient per parameter group. By default it trains on its own regression task (see
`track_task`, `track_network`), on which the known dynamics appear (feedback alignment's
hidden-layer cosine rising as the forward weights align with the feedback, Lillicrap et al. 2016)
and which the report's pattern-generation task (leaky readout, a smooth target that the readout
almost fits by itself) does not show (see the docs page); `task = "report"` tracks on the report's
model and task.

The headline is the `"learned"` aggregate of `simjax.analysis.gradient_quality`: the parameter
groups a rule does not compute exactly (measured: every sample equal to the exact gradient to
rounding makes a group exact). Most rules get the readout gradient exactly, and the readout
dominates the `"total"` group, so `total` makes every rule look nearly exact; it stays in the
tables, labelled as all parameters. Writes `gradient_quality.csv` (rule x group x quantity),
`observatory.md` (headline, per-group and total tables), `bias_variance_plane.png` (one panel per
group, jackknife error bars, exact zeros on the axis break), and with tracking `alignment.csv` and
`alignment.png` (cosine with the exact gradient along training per group and the headline's
change since the first probe, mean and min-max band over seeds) and the headline cosine at the
first probe and over the last quarter of training in the printed summary, `observatory.md` and
`summary.json` (`alignment`).
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
from ...analysis._gradient_quality import LEARNED, auto_chunk_size
from ...networks import RSNN
from ...neurons import LIF
from ...tasks import Dataset, PatternGeneration, Supervised
from .. import io
from ..config import ConfigError, require
from ..registry import construct

DEFAULTS = {
    "experiment": {"name": "observatory", "seed": 0},
    "model": {"n_rec": 32, "tau_mem": 20.0, "tau_out": 20.0, "in_scale": 4.0},
    "task": {"n_in": 20, "n_out": 2, "duration": 100.0, "dt": 1.0},
    "report": {"samples": 32, "batch_size": 4, "curvature": False},
    "track": {"task": "regression", "steps": 400, "every": 25, "seeds": 5, "samples": 4, "learning_rate": 5e-3,
              "n_in": 10, "n_rec": 32, "n_out": 8, "duration": 20.0, "trials": 4, "input_std": 0.3,
              "out_scale": 0.1},
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
QUICK = {"model": {"n_rec": 12}, "task": {"n_in": 8, "duration": 30.0}, "report": {"samples": 8},
         "track": {"steps": 200, "every": 20, "seeds": 3}}
TRACK_TASKS = ("regression", "report", "none")
_UNSUPPORTED = (ConfigError, ValueError, TypeError, NotImplementedError)
_FAILED = (*_UNSUPPORTED, RuntimeError, MemoryError)
SHOWN = ("relative_bias", "relative_bias_floor", "relative_variance", "cosine_mean", "cosine_sample",
         "sign_agreement")
HEADLINE = LEARNED


def validate(cfg: dict) -> None:
    r = cfg["report"]
    require(isinstance(r["samples"], int) and r["samples"] >= 3, "report.samples", r["samples"], "an integer >= 3")
    t = cfg["track"]
    require(t["task"] in TRACK_TASKS, "track.task", t["task"], " or ".join(map(repr, TRACK_TASKS)))
    for key in ("steps", "every", "seeds", "n_in", "n_rec", "n_out", "trials"):
        require(isinstance(t[key], int) and t[key] >= 1, f"track.{key}", t[key], "an integer >= 1")
    require(isinstance(t["samples"], int) and t["samples"] >= 3, "track.samples", t["samples"], "an integer >= 3")
    require(t["duration"] >= cfg["task"]["dt"], "track.duration", t["duration"],
            f"at least one time step (task.dt = {cfg['task']['dt']})")
    for key in ("input_std", "out_scale"):
        require(t[key] > 0, f"track.{key}", t[key], "a positive number")
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


def _task(cfg):
    t = cfg["task"]
    return PatternGeneration(n_in=t["n_in"], n_out=t["n_out"], duration=t["duration"], dt=t["dt"],
                             seed=cfg["experiment"]["seed"])


def _network(cfg, key):
    m, t = cfg["model"], cfg["task"]
    return RSNN(n_in=t["n_in"], n_rec=m["n_rec"], n_out=t["n_out"], neuron=LIF(tau_mem=m["tau_mem"]),
                key=key, tau_out=m["tau_out"], in_scale=m["in_scale"])


def run(cfg: dict, out_dir: Path) -> dict:
    net, task = _network(cfg, jax.random.key(cfg["experiment"]["seed"])), _task(cfg)
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
    print(f"  (headline: the parameter groups each rule approximates, {HEADLINE!r}; "
          "'total' includes the groups it computes exactly)")

    def add(label, arrays):
        table = to_table(arrays)
        rows.extend({"rule": label, **row} for row in table.rows())
        print(f"  {label:<28} {headline_line(rows, label)}")
        io.write_rows(out_dir / "gradient_quality.csv", rows)

    try:
        everything = eqx.filter_jit(lambda rules: {label: report(label, rule) for label, rule in rules.items()})(rules)
    except _FAILED as err:
        print(f"  (one program for all rules failed: {str(err).splitlines()[0]}; one program per rule)")
        everything = None
    for label, rule in rules.items():
        add(label, everything[label] if everything is not None else eqx.filter_jit(report)(label, rule))
    curves = []
    if cfg["track"]["task"] != "none":
        print(f"  (alignment along training, {cfg['track']['task']!r} task: the {HEADLINE!r} cosine with the exact "
              "gradient at the first probe -> over the last quarter of training, mean (range) over seeds)")
        for label, rule in rules.items():
            if not headline_values(rows, label)["approximated"]:
                print(f"  {label:<28} not tracked: exact in every group (cosine 1 throughout)")
                continue
            try:
                seeds, _, _, _, history = track(rule, cfg)
            except _FAILED as err:
                print(f"  {label:<28} not tracked: {str(err).splitlines()[0]}")
                continue
            curves += alignment_rows(label, seeds, history, cfg["track"]["every"])
            print(f"  {label:<28} {alignment_line(curves, label)}")
        if curves:
            io.write_rows(out_dir / "alignment.csv", curves)
    summary = {"rules": list(rules), "skipped": skipped, "headline_group": HEADLINE,
               "headline": {label: headline_values(rows, label) for label in rules},
               "alignment": {label: alignment_trend(curves, label)
                             for label in dict.fromkeys(r["rule"] for r in curves)}}
    io.write_json(out_dir / "summary.json", summary)
    (out_dir / "observatory.md").write_text(markdown_report(rows, curves))
    plot_plane(out_dir / "bias_variance_plane.png", rows)
    if curves:
        plot_alignment(out_dir / "alignment.png", curves)
    return summary


def track_task(cfg: dict):
    """The task that `track` trains on: with `track.task = "report"` the report's own; with
    `"regression"` (the default) one fixed batch (`simjax.tasks.Dataset`, full batch, mean squared
    error at every step) of `track.trials` trials of `track.duration` ms of Gaussian input currents
    (standard deviation `input_std`) and Gaussian targets, both drawn from `experiment.seed` with
    NumPy. The readout alone cannot fit such targets, so the error that drives the hidden weights
    does not vanish: the condition under which feedback alignment's hidden update comes to agree with
    the gradient (Lillicrap et al. 2016; see the observatory's docs page)."""
    t = cfg["track"]
    if t["task"] == "report":
        return _task(cfg)
    dt = cfg["task"]["dt"]
    rng = np.random.default_rng(cfg["experiment"]["seed"])
    steps = int(round(t["duration"] / dt))
    inputs = t["input_std"] * rng.normal(size=(steps, t["trials"], t["n_in"]))
    targets = rng.normal(size=(steps, t["trials"], t["n_out"]))
    return Dataset(inputs, targets, Supervised(loss="mse", readout="all", dt=dt), full_batch=True)


def track_network(cfg: dict, key):
    """The network that `track` trains from the key `key`: with `track.task = "report"` the
    report's own; with `"regression"` an RSNN of `track.n_rec` LIF neurons (the report's `tau_mem`),
    input scale 1 and a memoryless readout (`tau_out=None`) of scale `track.out_scale`, so that
    trained with Adam the hidden weights learn at a pace comparable to the readout's."""
    t = cfg["track"]
    if t["task"] == "report":
        return _network(cfg, key)
    return RSNN(n_in=t["n_in"], n_rec=t["n_rec"], n_out=t["n_out"], neuron=LIF(tau_mem=cfg["model"]["tau_mem"]),
                key=key, tau_out=None, in_scale=1.0, out_scale=t["out_scale"])


def track(rule, cfg: dict) -> tuple:
    """Trains `rule` with Adam (`track.learning_rate`) for `track.steps` steps from `track.seeds`
    network initialisations at once (one vmapped program; network seed `s = experiment.seed + i`
    draws the weights from `jax.random.key(s)` and the batches and the rule's randomness from
    `jax.random.key(s + 10)`), probing the rule's quality against the exact gradient every
    `track.every` steps (`simjax.analysis.QualityTracker`, `track.samples` updates per probe).

    **Returns:** `(seeds, task, initial, trained, history)`: the network seeds, the task, the
    initial and trained networks (stacked over seeds) and `fit`'s history (`[seed, step]` arrays,
    probes at steps `0, every, ..., steps`)."""
    t = cfg["track"]
    tracker = QualityTracker(every=t["every"], samples=t["samples"])
    seeds = cfg["experiment"]["seed"] + np.arange(t["seeds"])
    batch_size = t["trials"] if t["task"] == "regression" else cfg["report"]["batch_size"]
    task = track_task(cfg)

    def train(seed):
        net = track_network(cfg, jax.random.key(seed))
        trained, history = fit(net, rule, task, optax.adam(t["learning_rate"]), steps=t["steps"] + 1,
                               key=jax.random.key(seed + 10), batch_size=batch_size, track=tracker)
        return net, trained, history

    initial, trained, history = eqx.filter_jit(jax.vmap(train))(seeds)
    return seeds, task, initial, trained, history


def alignment_rows(label: str, seeds, history: dict, every: int) -> list[dict]:
    """The rows of `alignment.csv` from `track`'s history: `rule, seed, group, step, value` with the
    cosine of the rule's mean update with the exact gradient at every probe, per group."""
    rows = []
    for name, values in history.items():
        if not (name.startswith("quality/") and name.endswith("/cosine_mean")):
            continue
        group = name.split("/")[1]
        values = np.asarray(values)
        for i, seed in enumerate(seeds):
            for step in range(0, values.shape[1], every):
                rows.append({"rule": label, "seed": int(seed), "group": group, "step": step,
                             "value": float(values[i, step])})
    return rows


def alignment_trend(rows: list[dict], rule: str, group: str = LEARNED) -> dict:
    """The tracked cosine of `rule` in `group` per seed: at the first probe (`"start"`) and averaged
    over the probes of the last quarter of training (`"end"`; single probes jump with the spike
    pattern). Returns `{"seeds": [...], "start": [...], "end": [...]}` (empty lists if not tracked)."""
    by_seed = {}
    for r in rows:
        if r["rule"] == rule and r["group"] == group:
            by_seed.setdefault(int(r["seed"]), {})[int(r["step"])] = float(r["value"])
    out = {"seeds": list(by_seed), "start": [], "end": []}
    for curve in by_seed.values():
        steps = sorted(curve)
        out["start"].append(curve[steps[0]])
        out["end"].append(float(np.mean([curve[s] for s in steps if s >= 0.75 * steps[-1]])))
    return out


def alignment_line(rows: list[dict], rule: str) -> str:
    """One printed line: the headline cosine along training, at the first probe and over the last
    three, mean and range over seeds."""
    t = alignment_trend(rows, rule)
    start, end = np.asarray(t["start"]), np.asarray(t["end"])
    if not start.size or not np.all(np.isfinite(start)):
        return "tracked (exact in every group)"

    def stat(x):
        return f"{np.mean(x):+.2f} ({np.min(x):+.2f} … {np.max(x):+.2f})"

    rising = int(np.sum(end > start))
    return f"{LEARNED} cosine {stat(start)} -> {stat(end)}, higher at the end in {rising} of {start.size} seeds"


# -- tables -------------------------------------------------------------------------------------------


def _lookup(rows: list[dict], rule: str, group: str, quantity: str, column: str = "value") -> float:
    for r in rows:
        if r["rule"] == rule and r["group"] == group and r["quantity"] == quantity:
            return float(r[column])
    return math.nan


def groups_of(rows: list[dict]) -> list[str]:
    """The parameter groups of a report (neither the aggregate nor the total), in order."""
    return [g for g in dict.fromkeys(r["group"] for r in rows) if g not in ("total", LEARNED)]


def exact_groups(rows: list[dict], rule: str) -> list[str]:
    """The groups `rule` computes exactly (measured, see `simjax.analysis.gradient_quality`)."""
    return [g for g in groups_of(rows) if _lookup(rows, rule, g, "exact") == 1.0]


def headline_values(rows: list[dict], rule: str) -> dict:
    """The headline of one rule: its `"learned"` quantities with their error bars and which groups
    it approximates and computes exactly."""
    exact = exact_groups(rows, rule)
    out = {"approximated": [g for g in groups_of(rows) if g not in exact], "exact": exact}
    for q in SHOWN:
        out[q] = _lookup(rows, rule, HEADLINE, q)
        out[f"{q}_stderr"] = _lookup(rows, rule, HEADLINE, q, "stderr")
    return out


def _cell(value: float, stderr: float) -> str:
    """`value ± stderr`; an error bar at the level of float32 rounding (below 1e-5 of the value, or
    of 1) is left out: a deterministic rule's samples differ only by rounding."""
    if not math.isfinite(value):
        return "–"
    shown = math.isfinite(stderr) and stderr > 1e-5 * max(abs(value), 1.0)
    return f"{value:.3g} ± {stderr:.2g}" if shown else f"{value:.3g}"


def headline_line(rows: list[dict], rule: str) -> str:
    """One printed line: the rule's headline quantities and its exact groups."""
    h = headline_values(rows, rule)
    if not h["approximated"]:
        return "exact in every group (" + ", ".join(h["exact"]) + ")"
    shown = ("relative_bias", "relative_variance", "cosine_mean")
    text = f"{HEADLINE} [{', '.join(h['approximated'])}]: " + "  ".join(
        f"{q} {_cell(h[q], h[q + '_stderr'])}" for q in shown)
    return text + (f"  (exact: {', '.join(h['exact'])})" if h["exact"] else "")


def markdown_table(rows: list[dict], group: str = HEADLINE) -> str:
    """One group's table (rules x quantities, `value ± stderr`) as Markdown; for the headline
    group, with the groups each rule approximates and those it computes exactly."""
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    extra = ["approximated", "exact"] if group == HEADLINE else []
    lines = ["| rule | " + " | ".join(extra + list(SHOWN)) + " |", "|" + " --- |" * (len(SHOWN) + len(extra) + 1)]
    for rule in rules:
        cells = []
        if extra:
            h = headline_values(rows, rule)
            cells += [", ".join(h["approximated"]) or "none (exact everywhere)", ", ".join(h["exact"]) or "none"]
        cells += [_cell(_lookup(rows, rule, group, q), _lookup(rows, rule, group, q, "stderr"))
                  if any(r["rule"] == rule and r["group"] == group for r in rows) else "" for q in SHOWN]
        lines.append(f"| {rule} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def alignment_table(curves: list[dict]) -> str:
    """The tracked `"learned"` cosine of every rule as Markdown: at the first probe, over the last
    quarter of training (mean and range over seeds), and in how many seeds it ended higher."""
    lines = ["| rule | cosine at the first probe | cosine over the last quarter | higher at the end |",
             "| --- | --- | --- | --- |"]
    for rule in dict.fromkeys(r["rule"] for r in curves):
        t = alignment_trend(curves, rule)
        start, end = np.asarray(t["start"]), np.asarray(t["end"])
        if not start.size or not (np.all(np.isfinite(start)) and np.all(np.isfinite(end))):
            lines.append(f"| {rule} | – | – | – |")
            continue
        cell = lambda x: f"{np.mean(x):.2f} ({np.min(x):.2f} … {np.max(x):.2f})"  # noqa: E731
        lines.append(f"| {rule} | {cell(start)} | {cell(end)} | {int(np.sum(end > start))} of {start.size} seeds |")
    return "\n".join(lines) + "\n"


def markdown_report(rows: list[dict], curves: list[dict] = ()) -> str:
    """`observatory.md`: the headline table, then one table per parameter group, then `total`, then
    (given the rows of `alignment.csv`) the alignment along training."""
    parts = [
        "# Gradient-quality observatory\n",
        f"## Headline: what each rule learns (`{HEADLINE}`)\n",
        "The parameter groups a rule does not compute exactly, together (a group is exact when every "
        "sample equals the exact gradient to rounding). `relative_bias` is debiased for the finite number "
        "of samples; `relative_bias_floor` is what an unbiased rule's sample mean would read without "
        "that correction. Errors are jackknife standard errors over the samples (left out at the level of "
        "float rounding); `–`: nothing to report (the rule is exact everywhere).\n",
        markdown_table(rows, HEADLINE),
    ]
    for group in groups_of(rows):
        parts += [f"## Parameter group `{group}`\n", markdown_table(rows, group)]
    parts += ["## `total`: all parameters, including those computed exactly\n",
              "Dominated by whichever group has the largest gradient (usually the readout, which most "
              "rules compute exactly): not a measure of how well a rule approximates.\n",
              markdown_table(rows, "total")]
    if curves:
        parts += [f"## Alignment along training (`{HEADLINE}`)\n",
                  "The cosine of the rule's mean update with the exact gradient on the parameters it approximates, "
                  "tracked while the rule trains (`alignment.csv`, `alignment.png`): at the first probe and averaged "
                  "over the probes of the last quarter of training, mean (min … max) over network seeds. Rules exact "
                  "in every group are not tracked.\n",
                  alignment_table(curves)]
    return "\n".join(parts)


# -- figures --------------------------------------------------------------------------------------------


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _styles(labels: list[str]) -> dict:
    """A distinct (colour, marker) per label."""
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"]
    colours = [tab20(i) for i in (*range(0, 20, 2), *range(1, 20, 2))]
    markers = "osD^v<>pPX*h"
    return {label: (colours[i % 20], markers[i % len(markers)]) for i, label in enumerate(labels)}


def _legend(fig, style: dict, extra: dict) -> None:
    """One legend entry per rule (in order, whether or not a panel shows it) and the `extra`
    handles that are not rules, right of the panels."""
    from matplotlib.lines import Line2D

    handles = {rule: Line2D([], [], color=c, marker=m, ls="none") for rule, (c, m) in style.items()}
    handles.update({k: v for k, v in extra.items() if k not in style})
    fig.legend(list(handles.values()), list(handles), loc="center right", fontsize=7, frameon=False)


def _zero_axis(values: list[float]) -> tuple[float, float, list[float]]:
    """Limits and ticks of a log axis whose leftmost tick stands for 0: `(zero, top, ticks)`, the
    position of exact zeros one decade below the smallest positive value."""
    positive = [v for v in values if math.isfinite(v) and v > 0]
    lo = math.floor(math.log10(min(positive))) if positive else -3
    hi = math.ceil(math.log10(max(positive))) if positive else 0
    lo, hi = lo - 1, max(hi, lo + 1)
    step = max(1, math.ceil((hi - lo) / 5))
    ticks = [10.0**k for k in range(lo, hi + 1, step)]
    return 10.0**lo, 10.0 ** (hi + 0.3), ticks


def _log_with_zero(axis, zero: float, ticks: list[float]) -> None:
    import matplotlib.ticker as mticker

    def label(v, _):
        if abs(math.log10(v) - math.log10(zero)) < 1e-9:
            return "0"
        k = round(math.log10(v))
        return f"$10^{{{k}}}$"

    axis.set_major_locator(mticker.FixedLocator(ticks))
    axis.set_major_formatter(mticker.FuncFormatter(label))
    axis.set_minor_locator(mticker.NullLocator())


def _axis_break(ax, which: str) -> None:
    """Two short slanted strokes on the `which` (`"x"` or `"y"`) axis half a decade past its zero
    tick: the log scale starts there, the tick before it is zero."""
    kw = dict(transform=ax.transAxes, color="k", lw=0.8, clip_on=False)
    for d in (0.0, 0.012):
        if which == "x":
            ax.plot([0.055 + d - 0.008, 0.055 + d + 0.008], [-0.02, 0.02], **kw)
        else:
            ax.plot([-0.02, 0.02], [0.055 + d - 0.008, 0.055 + d + 0.008], **kw)


def plot_plane(path: Path, rows: list[dict]) -> Path | None:
    """Writes `plane_figure(rows)` to `path` (nothing without matplotlib); returns the path written."""
    return _save(plane_figure(rows), path)


def plot_alignment(path: Path, rows: list[dict]) -> Path | None:
    """Writes `alignment_figure(rows)` to `path` (nothing without matplotlib); returns the path written."""
    return _save(alignment_figure(rows), path)


def _save(fig, path: Path) -> Path | None:
    if fig is None:
        return None
    fig.savefig(path, dpi=100)
    _pyplot().close(fig)
    return path


def plane_figure(rows: list[dict]):
    """The bias-variance plane, one panel per group (the headline aggregate first, `total` last):
    relative bias against relative variance on log axes whose first tick is an exact zero (past an
    axis break), jackknife error bars, the sample-mean noise floor `sqrt(var / S)` (a debiased bias
    to its left is indistinguishable from zero without the debiasing), and a legend of rules."""
    plt = _pyplot()
    if plt is None:
        return None
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    panels = [HEADLINE, *groups_of(rows), "total"]
    style = _styles(rules)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols + 2.4, 3.6 * nrows), squeeze=False)
    handles = {}
    for ax, group in zip(axes.flat, panels):
        get = lambda rule, q, column="value", g=group: _lookup(rows, rule, g, q, column)  # noqa: E731
        biases = [get(rule, "relative_bias") for rule in rules]
        variances = [get(rule, "relative_variance") for rule in rules]
        x0, x1, xt = _zero_axis(biases)
        y0, y1, yt = _zero_axis(variances)
        for rule, bias, var in zip(rules, biases, variances):
            if not (math.isfinite(bias) and math.isfinite(var)):
                continue
            colour, marker = style[rule]
            x, y = max(bias, x0), max(var, y0)
            xe, ye = get(rule, "relative_bias", "stderr"), get(rule, "relative_variance", "stderr")
            xerr = [[min(xe, x - x0) if xe > 0 else 0.0], [xe if xe > 0 else 0.0]]
            yerr = [[min(ye, y - y0) if ye > 0 else 0.0], [ye if ye > 0 else 0.0]]
            hollow = bias <= 0 or var <= 0  # an exact zero, drawn on the zero tick
            handles[rule] = ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt=marker, color=colour, ms=6, capsize=2,
                                        mfc="white" if hollow else colour, clip_on=False, zorder=3)
        finite = [(b, v) for b, v in zip(biases, variances) if math.isfinite(b) and math.isfinite(v) and v > 0]
        floors = [get(rule, "relative_bias_floor") for rule in rules]
        samples = [v / f**2 for v, f in zip(variances, floors) if math.isfinite(f) and f > 0 and math.isfinite(v)]
        if finite and samples:
            ys = np.geomspace(max(y0, 1e-300), y1, 50)
            handles["noise of the sample mean, sqrt(var / S)"] = ax.plot(
                np.sqrt(ys / samples[0]), ys, ":", color="0.5", lw=1)[0]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        _log_with_zero(ax.xaxis, x0, xt)
        _log_with_zero(ax.yaxis, y0, yt)
        _axis_break(ax, "x")
        _axis_break(ax, "y")
        title = {HEADLINE: "learned by the rule (headline)", "total": "total (all parameters)"}.get(group, group)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("relative bias", fontsize=9)
        ax.set_ylabel("relative variance", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _legend(fig, style, handles)
    fig.suptitle("bias |E g - g*| / |g*| and variance E|g - E g|^2 / |g*|^2 against the exact gradient g*; "
                 "hollow: an exact 0", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / (4.0 * ncols + 2.4), 0.95))
    return fig


CHANGE = "change"  # the alignment figure's panel of the headline cosine minus its first probe


def alignment_figure(rows: list[dict]):
    """Cosine of the rule's mean update with the exact gradient along training, one panel per
    group (the headline aggregate first, then its change since the first probe, per seed, which
    separates the rules whose alignment grows from those that start where they stay): the mean
    over seeds and its min-max band."""
    plt = _pyplot()
    if plt is None:
        return None
    rules = list(dict.fromkeys(r["rule"] for r in rows))
    groups = list(dict.fromkeys(r["group"] for r in rows))
    panels = [g for g in (HEADLINE, *groups) if g in groups and g != "total"]
    panels = list(dict.fromkeys(panels)) + (["total"] if "total" in groups else [])
    if HEADLINE in groups:
        panels.insert(1, CHANGE)
    style = _styles(rules)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols + 2.4, 3.2 * nrows), squeeze=False)
    handles = {}
    n_seeds = 1
    for ax, panel in zip(axes.flat, panels):
        group = HEADLINE if panel == CHANGE else panel
        for rule in rules:
            by_seed = {}
            for r in rows:
                if r["rule"] == rule and r["group"] == group:
                    by_seed.setdefault(r["seed"], {})[int(r["step"])] = float(r["value"])
            if not by_seed:
                continue
            steps = sorted(next(iter(by_seed.values())))
            curves = np.asarray([[c.get(s, np.nan) for s in steps] for c in by_seed.values()])
            if np.all(np.isnan(curves)):
                continue
            if panel == CHANGE:
                curves = curves - curves[:, :1]
            n_seeds = max(n_seeds, len(curves))
            colour, marker = style[rule]
            with np.errstate(all="ignore"):
                mean = np.nanmean(curves, axis=0)
                handles[rule] = ax.plot(steps, mean, marker=marker, ms=3, color=colour, lw=1)[0]
                if len(curves) > 1:
                    ax.fill_between(steps, np.nanmin(curves, 0), np.nanmax(curves, 0), color=colour, alpha=0.15)
        ax.axhline(0.0, color="0.6", lw=0.5)
        title = {HEADLINE: "learned by the rule (headline)", "total": "total (all parameters)",
                 CHANGE: "learned: change since step 0"}.get(panel, panel)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step", fontsize=9)
        ax.set_ylabel("cosine - cosine at step 0" if panel == CHANGE else "cos(E update, exact gradient)",
                      fontsize=9)
        ax.set_ylim(*((-2.05, 2.05) if panel == CHANGE else (-1.05, 1.05)))
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    _legend(fig, style, handles)
    fig.suptitle(f"alignment with the exact gradient along training (mean and min-max over {n_seeds} seeds)",
                 fontsize=9)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / (4.0 * ncols + 2.4), 0.95))
    return fig
