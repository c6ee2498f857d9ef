r"""Interference in sequential learning of recurrent rate networks (Schuessler, Mastrogiuseppe,
Ostojic & Barak; seeds-5-8 Seed 5).

A rate network `tau dx/dt = -x + J phi(x) + B u`, `J = g chi / sqrt(N) + Delta J`, `B = I` at
the start, learns task A along pattern `a`, then task B along the orthogonal pattern `b` (no
replay; `simjax.train_sequence` with exact gradients). The grid
`g x seeds x mode` (mode: which parameters learn — `recurrent` = `Delta J`, `input` = `B`,
`both`) is one `jax.vmap`-ed program: the mode enters as two numbers gating the updates of
`Delta J` and `B`, so that every run shares the same compiled code.

Per run: relative interference `(L_A(after B) - L_A(after A)) / L_A(init)`, the cosine between
the weight changes of the two phases, the plane part `M = P^T Delta J P / N` (`P = [a b]`) after
each phase and its split into rotation vs new formation (`simjax.analysis.learning_modes`), and for
the fixed-point task the fixed points reached from A's cue after A and after B (Newton), their
stability and the angle between them; whether B's cue, after A, ends on A's attractor (it is then
B's gradient that turns A's memory). Writes `results.csv` (loss curves, tidy), `runs.csv` (one
row per run), `summary.json` and figures.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import scipy.stats

from ..._fit.sequential import train_sequence
from ...analysis._fixed_points import find_fixed_points
from ...analysis._interference import angle, relative_interference, update_overlap
from ...analysis._reduced_model import ReducedModel, learning_modes, plane_matrix
from ...networks._learned_connectivity import FullUpdate, LowRankUpdate, SubspaceUpdate, random_coupling
from ...networks._rate_rnn import RateRNN
from ...neurons._rate import LeakyRate
from ...rules._base import AbstractRule, AbstractStatelessRule
from ...rules._exact import Exact
from ...synapses._dense import Dense
from ...tasks._memory import FixedPointMemory, InputTracking, SineGeneration, orthonormal_patterns
from .. import io
from ..config import merge, require

KINDS = ("fixed_point", "input_tracking", "sine")
MODES = {"recurrent": (1.0, 0.0), "input": (0.0, 1.0), "both": (1.0, 1.0)}  # (gate on Delta J, gate on B)
STRUCTURES = ("full", "low_rank", "plane")
OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}

DEFAULTS = {
    "experiment": {"name": "interference", "seed": 0},
    "model": {"n": 256, "tau": 1.0, "structure": "full", "rank": 1, "init_scale": 0.5},
    "task": {"kind": "fixed_point", "dt": 0.1, "duration": 20.0, "target": 0.5, "period": 5.0, "segments": 4},
    "train": {"steps": 300, "optimizer": "adam", "learning_rate": 1e-3, "batch_size": 1, "eval_batch_size": 1,
              "eval_every": 10},
    "sweep": {"g": [0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2], "seeds": 8, "modes": ["recurrent", "input", "both"]},
    "analysis": {"fixed_points": True, "newton_iterations": 30, "drift_time": 100.0},
}
QUICK = {
    "model": {"n": 48},
    "task": {"dt": 0.2},
    "train": {"quick_steps": 60, "eval_every": 10},
    "sweep": {"g": [0.0, 1.0], "seeds": 4},
    "analysis": {"newton_iterations": 20, "drift_time": 40.0},
}


def merge_config(raw: dict) -> dict:
    """`DEFAULTS` updated by `raw`. `train.quick_steps` (set by `--quick`) shortens training to
    that many steps per task. Adam moves every weight by about `learning_rate` per step whatever
    the gradient's size, so its learning rate grows by `steps / quick_steps` and the weights travel
    as far as in the full run: interference depends on it (with the quick network at g = 0, 0.06
    with the full run's rate against 0.5 with the scaled one). Plain gradient descent keeps its rate,
    which a fivefold increase would push out of its stable range."""
    raw = copy.deepcopy(raw)
    quick_steps = raw.get("train", {}).pop("quick_steps", None)
    cfg = merge(DEFAULTS, raw)
    if quick_steps is not None:
        require(isinstance(quick_steps, int) and quick_steps > 0, "train.quick_steps", quick_steps,
                "a positive integer")
        if cfg["train"]["optimizer"] == "adam":
            cfg["train"]["learning_rate"] *= cfg["train"]["steps"] / quick_steps
        cfg["train"]["steps"] = quick_steps
    return cfg


def validate(cfg: dict) -> None:
    m, t, tr, sw, an = cfg["model"], cfg["task"], cfg["train"], cfg["sweep"], cfg["analysis"]
    require(isinstance(m["n"], int) and m["n"] >= 2, "model.n", m["n"], "an integer >= 2")
    require(m["tau"] > 0, "model.tau", m["tau"], "a positive number")
    require(m["structure"] in STRUCTURES, "model.structure", m["structure"], " | ".join(STRUCTURES))
    require(isinstance(m["rank"], int) and m["rank"] > 0, "model.rank", m["rank"], "a positive integer")
    require(m["init_scale"] > 0, "model.init_scale", m["init_scale"], "a positive number")
    require(t["kind"] in KINDS, "task.kind", t["kind"], " | ".join(KINDS))
    require(t["dt"] > 0 and t["duration"] > 5.0, "task.dt/duration", (t["dt"], t["duration"]),
            "dt > 0 and duration > 5 (the loss window starts at 5)")
    require(t["period"] > 0, "task.period", t["period"], "a positive number")
    require(isinstance(t["segments"], int) and t["segments"] > 0, "task.segments", t["segments"], "a positive integer")
    require(isinstance(tr["steps"], int) and tr["steps"] > 0, "train.steps", tr["steps"], "a positive integer")
    require(tr["optimizer"] in OPTIMIZERS, "train.optimizer", tr["optimizer"], " | ".join(OPTIMIZERS))
    require(tr["learning_rate"] > 0, "train.learning_rate", tr["learning_rate"], "a positive number")
    for key in ("batch_size", "eval_batch_size", "eval_every"):
        require(isinstance(tr[key], int) and tr[key] > 0, f"train.{key}", tr[key], "a positive integer")
    require(tr["steps"] % tr["eval_every"] == 0, "train.eval_every", tr["eval_every"],
            f"a divisor of train.steps = {tr['steps']}")
    require(len(sw["g"]) > 0 and all(isinstance(g, (int, float)) and g >= 0 for g in sw["g"]), "sweep.g", sw["g"],
            "a non-empty list of numbers >= 0")
    require(isinstance(sw["seeds"], int) and sw["seeds"] > 0, "sweep.seeds", sw["seeds"], "a positive integer")
    require(len(sw["modes"]) > 0 and all(x in MODES for x in sw["modes"]), "sweep.modes", sw["modes"],
            "a non-empty list of " + " | ".join(MODES))
    require(isinstance(an["newton_iterations"], int) and an["newton_iterations"] > 0, "analysis.newton_iterations",
            an["newton_iterations"], "a positive integer")
    require(an["drift_time"] == 0 or an["drift_time"] > t["duration"], "analysis.drift_time", an["drift_time"],
            "0 (off) or longer than task.duration")


class _Gated(AbstractStatelessRule):
    """`rule`'s updates with those of `w_rec` scaled by `gate_rec` and of `w_in` by `gate_in`."""

    rule: AbstractRule
    gate_rec: jax.Array
    gate_in: jax.Array

    def __call__(self, model, task, batch, key):
        loss, updates, aux = self.rule(model, task, batch, key)
        scale = lambda gate: (lambda sub: jax.tree.map(lambda u: gate * u, sub))
        updates = eqx.tree_at(lambda u: u.w_rec, updates, replace_fn=scale(self.gate_rec))
        updates = eqx.tree_at(lambda u: u.w_in, updates, replace_fn=scale(self.gate_in))
        return loss, updates, aux


def make_tasks(cfg: dict, patterns):
    """Task A along `patterns[0]` and task B along `patterns[1]`."""
    t = cfg["task"]
    window = (5.0, t["duration"])
    if t["kind"] == "fixed_point":
        make = lambda p: FixedPointMemory(p, t["target"], window=window, duration=t["duration"], dt=t["dt"])
    elif t["kind"] == "sine":
        make = lambda p: SineGeneration(p, t["period"], t["target"], window=window, duration=t["duration"], dt=t["dt"])
    else:
        make = lambda p: InputTracking(p, t["segments"], t["target"], duration=t["duration"], dt=t["dt"])
    return make(patterns[0]), make(patterns[1])


def make_network(cfg: dict, g, key):
    """`(network, basis)`: the rate network of one run and its pattern plane `P = [a b]`."""
    m = cfg["model"]
    n = m["n"]
    k_pat, k_chi, k_low = jax.random.split(key, 3)
    basis = orthonormal_patterns(n, 2, key=k_pat).T
    base = random_coupling(n, g, key=k_chi).T  # W = J^T (post = pre @ W)
    if m["structure"] == "full":
        w_rec = FullUpdate(base)
    elif m["structure"] == "low_rank":
        w_rec = LowRankUpdate.init(base, m["rank"], key=k_low, scale=m["init_scale"])
    else:
        w_rec = SubspaceUpdate(base, basis)
    dtype = base.dtype
    net = RateRNN(n, n, 1, LeakyRate(tau=m["tau"]), w_in=Dense(jnp.eye(n, dtype=dtype)), w_rec=w_rec,
                  w_out=jnp.zeros((n, 1), dtype), trainable=("w_in", "w_rec"))
    return net, basis


def _plane(net, basis):
    return plane_matrix(net.w_rec.learned().T, basis)


def _projected(net, task, basis):
    """`kappa(t) = P^T x(t) / N` along one trial of `task`."""
    batch = task.sample(jax.random.key(0), 1)
    out = task.forward(net, batch)
    return out.v[:, 0] @ basis / basis.shape[0]


def run_one(cfg: dict, g, seed, gate_rec, gate_in) -> dict:
    """Trains one sequence A -> B and analyses it; pure (`vmap` over every argument but `cfg`)."""
    tr, an = cfg["train"], cfg["analysis"]
    key = jax.random.key(seed)
    net, basis = make_network(cfg, g, jax.random.fold_in(key, 0))
    task_a, task_b = make_tasks(cfg, basis.T)
    rule = _Gated(Exact(), gate_rec, gate_in)
    optimizer = OPTIMIZERS[tr["optimizer"]](tr["learning_rate"])
    (after_a, after_b), hist = train_sequence(net, rule, (task_a, task_b), optimizer, steps=tr["steps"],
                                              key=jax.random.fold_in(key, 1), batch_size=tr["batch_size"],
                                              eval_batch_size=tr["eval_batch_size"], eval_every=tr["eval_every"])
    m_a, m_b = _plane(after_a, basis), _plane(after_b, basis)
    out = {"losses": hist["losses"], "eval": hist["eval"][:: tr["eval_every"]],
           "interference": relative_interference(hist["losses"]),
           "overlap": update_overlap(net, after_a, after_b), "m_a": m_a, "m_b": m_b,
           **{f"mode_{k}": v for k, v in learning_modes(m_a, m_b).items()},
           "kappa": jnp.stack([jnp.stack([_projected(mod, t, basis) for t in (task_a, task_b)])
                               for mod in (after_a, after_b)])}
    if cfg["task"]["kind"] == "fixed_point" and an["fixed_points"]:
        out.update(_fixed_point_analysis(cfg, after_a, after_b, task_a, task_b, basis))
    return out


def _trial_end(net, task):
    batch = task.sample(jax.random.key(0), 1)
    return task.forward(net, batch).final_state.neuron[0]


def _fixed_point_analysis(cfg, after_a, after_b, task_a, task_b, basis):
    an, n = cfg["analysis"], basis.shape[0]
    fp_a = find_fixed_points(after_a, _trial_end(after_a, task_a)[None], iterations=an["newton_iterations"])
    starts_b = jnp.stack([_trial_end(after_b, task_a), _trial_end(after_b, task_b)])
    fp_b = find_fixed_points(after_b, starts_b, iterations=an["newton_iterations"])
    z = lambda x: jnp.tanh(x) @ basis / n  # (z_a, z_b) at a state
    out = {"fp_residual": jnp.concatenate([fp_a.residual, fp_b.residual]),
           "fp_max_real": jnp.concatenate([fp_a.max_real, fp_b.max_real]),
           "fp_z": jnp.stack([z(fp_a.x[0]), z(fp_b.x[0]), z(fp_b.x[1])]),
           "fp_angle_a": angle(fp_a.x[0], fp_b.x[0]), "fp_angle_ab": angle(fp_b.x[0], fp_b.x[1])}
    if an["drift_time"] > 0:
        long = FixedPointMemory(task_a.pattern, task_a.target, window=(5.0, an["drift_time"]),
                                duration=an["drift_time"], dt=task_a.dt)
        batch = long.sample(jax.random.key(0), 1)
        za = long.readout(long.forward(after_a, batch))[:, 0]
        out["drift"] = jnp.abs(za[-1] - za[task_a.steps - 1])
    return out


def grid(cfg: dict) -> list[dict]:
    """The runs: every `(mode, g, seed)`, in that order."""
    sw, base = cfg["sweep"], cfg["experiment"]["seed"]
    return [{"mode": mode, "g": float(g), "seed": base + s} for mode in sw["modes"] for g in sw["g"]
            for s in range(sw["seeds"])]


def run_grid(cfg: dict, runs: list[dict] | None = None) -> tuple[list[dict], dict]:
    """All runs (default: `grid`; else any list of `{"mode", "g", "seed"}`) as one
    `jit(vmap(run_one))`; **returns** `(runs, results)` with a leading run axis."""
    runs = grid(cfg) if runs is None else list(runs)
    for r in runs:
        if r.get("mode") not in MODES:
            raise ValueError(f"run_grid: run {r!r} has mode {r.get('mode')!r}; expected one of {', '.join(MODES)}")
    dtype = jnp.result_type(float)
    g = jnp.asarray([r["g"] for r in runs], dtype)
    seeds = jnp.asarray([r["seed"] for r in runs], jnp.uint32)
    gates = jnp.asarray([MODES[r["mode"]] for r in runs], dtype)
    f = jax.jit(jax.vmap(lambda gg, s, gr, gi: run_one(cfg, gg, s, gr, gi)))
    results = f(g, seeds, gates[:, 0], gates[:, 1])
    return runs, jax.tree.map(np.asarray, results)


def _mean_sem(values):
    values = np.asarray(values, float)
    sem = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
    return float(values.mean()), float(sem)


def summarize(cfg: dict, runs: list[dict], res: dict) -> dict:
    """Per mode and `g`: interference (mean, sem), learning success, update overlap, plane modes,
    fixed-point statistics; Spearman's rho of interference against `g` per mode; spec targets."""
    modes, gs = cfg["sweep"]["modes"], [float(g) for g in cfg["sweep"]["g"]]
    mode_of = np.asarray([r["mode"] for r in runs])
    g_of = np.asarray([r["g"] for r in runs])
    losses = res["losses"]
    learned = losses[:, 1, 0] < 0.5 * losses[:, 0, 0]
    table = {}
    for mode in modes:
        rows = []
        for g in gs:
            sel = (mode_of == mode) & (g_of == g)
            entry = {"g": g}
            for name in ("interference", "overlap", "mode_rotation", "mode_growth", "mode_rotation_dominates"):
                entry[name], entry[name + "_sem"] = _mean_sem(res[name][sel])
            entry["learned_a"] = float(learned[sel].mean())
            # After A, does B's cue end on A's attractor (held away from rest, along a rather than b)?
            end = np.abs(res["kappa"][sel, 0, 1, -1])
            entry["b_cue_ends_along_a"] = float(((end[:, 0] > end[:, 1]) & (end[:, 0] > 0.1)).mean())
            entry["loss_a_init"] = float(losses[sel, 0, 0].mean())
            entry["loss_a_after_a"] = float(losses[sel, 1, 0].mean())
            entry["loss_a_after_b"] = float(losses[sel, 2, 0].mean())
            entry["loss_b_after_b"] = float(losses[sel, 2, 1].mean())
            if "fp_residual" in res:
                entry["fp_max_residual"] = float(res["fp_residual"][sel].max())
                entry["fp_stable_after_a"] = float((res["fp_max_real"][sel, 0] < 0).mean())
                entry["fp_angle_a"], entry["fp_angle_a_sem"] = _mean_sem(res["fp_angle_a"][sel])
                entry["fp_angle_ab"] = float(res["fp_angle_ab"][sel].mean())
                # After B, A's and B's cues end on one attractor pair (angle near 0 or 180 degrees: the
                # old fixed point was turned) or on distinct ones (a new fixed point was formed).
                shared = np.abs(np.cos(np.radians(res["fp_angle_ab"][sel]))) > np.cos(np.radians(30.0))
                entry["fp_shared_attractor"] = float(shared.mean())
            if "drift" in res:
                entry["drift"] = float(res["drift"][sel].mean())
            rows.append(entry)
        values = [r["interference"] for r in rows]
        rho = float(scipy.stats.spearmanr(gs, values).statistic) if len(gs) > 1 else float("nan")
        table[mode] = {"by_g": rows, "spearman_rho": rho}
    summary = {"per_mode": table, "runs": len(runs)}
    summary["targets"] = _targets(table, gs, cfg)
    return summary


def _targets(table: dict, gs: list[float], cfg: dict) -> dict:
    out = {}
    g0 = int(np.argmin(gs))
    if "recurrent" in table:
        rec = table["recurrent"]
        out["recurrent_interference_at_g_min"] = rec["by_g"][g0]["interference"]
        out["recurrent_interference_gt_0.2"] = rec["by_g"][g0]["interference"] > 0.2
        out["spearman_rho_recurrent"] = rec["spearman_rho"]
        out["spearman_rho_le_-0.8"] = bool(rec["spearman_rho"] <= -0.8)
        if "input" in table:
            inp = table["input"]["by_g"][g0]["interference"]
            out["input_interference_at_g_min"] = inp
            out["input_learned_a_at_g_min"] = table["input"]["by_g"][g0]["learned_a"]
            out["input_at_least_2x_less"] = bool(rec["by_g"][g0]["interference"] >= 2 * max(inp, 0.0))
        rot = [r["mode_rotation_dominates"] for r in rec["by_g"]]
        out["rotation_dominated_fraction_by_g"] = rot
    return out


def rows_of(cfg: dict, runs: list[dict], res: dict) -> tuple[list[dict], list[dict]]:
    """`(curves, per_run)`: tidy rows of the loss curves and one row of scalars per run."""
    every, steps = cfg["train"]["eval_every"], cfg["train"]["steps"]
    curves, per_run = [], []
    for i, r in enumerate(runs):
        ev = res["eval"][i]
        for j in range(ev.shape[0]):
            step = j * every
            phase = "A" if step < steps else "B"
            for t, name in enumerate(("loss_A", "loss_B")):
                curves.append({**r, "step": step, "phase": phase, "metric": name, "value": float(ev[j, t])})
        row = {**r, "interference": float(res["interference"][i]), "overlap": float(res["overlap"][i]),
               "loss_A_init": float(res["losses"][i, 0, 0]), "loss_A_after_A": float(res["losses"][i, 1, 0]),
               "loss_A_after_B": float(res["losses"][i, 2, 0]), "loss_B_after_A": float(res["losses"][i, 1, 1]),
               "loss_B_after_B": float(res["losses"][i, 2, 1]),
               "kappa_a_end_B_cue_after_A": float(res["kappa"][i, 0, 1, -1, 0]),
               "kappa_b_end_B_cue_after_A": float(res["kappa"][i, 0, 1, -1, 1])}
        for name in ("m_a", "m_b"):
            for (p, q), label in np.ndenumerate(np.array([["aa", "ab"], ["ba", "bb"]])):
                row[f"{name}_{label}"] = float(res[name][i, p, q])
        for name in ("mode_rotation", "mode_growth"):
            row[name] = float(res[name][i])
        if "fp_residual" in res:
            row.update({"fp_residual_max": float(res["fp_residual"][i].max()),
                        "fp_max_real_after_A": float(res["fp_max_real"][i, 0]),
                        "fp_angle_A": float(res["fp_angle_a"][i]), "fp_angle_AB": float(res["fp_angle_ab"][i]),
                        "fp_za_after_A": float(res["fp_z"][i, 0, 0]), "fp_za_after_B": float(res["fp_z"][i, 1, 0])})
        if "drift" in res:
            row["drift"] = float(res["drift"][i])
        per_run.append(row)
    return curves, per_run


def run(cfg: dict, out_dir: Path) -> dict:
    sw, tr, m = cfg["sweep"], cfg["train"], cfg["model"]
    runs = grid(cfg)
    print(f"interference: {len(runs)} runs (modes {sw['modes']} x g {sw['g']} x {sw['seeds']} seeds) as one vmapped "
          f"program; N={m['n']}, {m['structure']} Delta J, task {cfg['task']['kind']}, "
          f"{tr['steps']} {tr['optimizer']} steps per task")
    start = time.perf_counter()
    runs, res = run_grid(cfg)
    seconds = time.perf_counter() - start
    summary = summarize(cfg, runs, res)
    summary["seconds"] = seconds
    curves, per_run = rows_of(cfg, runs, res)
    io.write_rows(out_dir / "results.csv", curves)
    io.write_rows(out_dir / "runs.csv", per_run)
    io.write_json(out_dir / "summary.json", summary)
    _plot(cfg, out_dir, runs, res, summary)
    for mode, entry in summary["per_mode"].items():
        shown = "  ".join(f"g={r['g']:.2g}: {r['interference']:.3f}" for r in entry["by_g"])
        print(f"  {mode:>9}: interference {shown}   (Spearman rho {entry['spearman_rho']:.2f})")
    print(f"({seconds:.0f} s)")
    return summary


def _plot(cfg, out_dir, runs, res, summary) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(matplotlib not installed: no plots; pip install 'simjax[plot]')")
        return
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for mode, entry in summary["per_mode"].items():
        gs = [r["g"] for r in entry["by_g"]]
        ax.errorbar(gs, [r["interference"] for r in entry["by_g"]], [r["interference_sem"] for r in entry["by_g"]],
                    marker="o", capsize=3, label=f"{mode} (rho {entry['spearman_rho']:.2f})")
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set(xlabel="g (random connectivity)", ylabel="relative interference",
           title=f"{cfg['task']['kind']}: (L_A(B) - L_A(A)) / L_A(0)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "interference_vs_g.png", dpi=110)
    plt.close(fig)
    _plot_curves(plt, cfg, out_dir, runs, res)
    _plot_plane(plt, cfg, out_dir, runs, res, summary)


def _plot_curves(plt, cfg, out_dir, runs, res):
    every, steps = cfg["train"]["eval_every"], cfg["train"]["steps"]
    modes = cfg["sweep"]["modes"]
    gs = sorted({r["g"] for r in runs})
    fig, axes = plt.subplots(1, len(modes), figsize=(4 * len(modes), 3.2), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for g in (gs[0], gs[-1]):
            sel = np.asarray([r["mode"] == mode and r["g"] == g for r in runs])
            curve = res["eval"][sel].mean(0)
            x = np.arange(curve.shape[0]) * every
            line, = ax.plot(x, curve[:, 0], label=f"L_A, g={g:.2g}")
            ax.plot(x, curve[:, 1], "--", color=line.get_color(), label=f"L_B, g={g:.2g}")
        ax.axvline(steps, color="0.6", lw=0.8)
        ax.set(xlabel="training step (A, then B)", ylabel="loss", title=mode, yscale="log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "loss_curves.png", dpi=110)
    plt.close(fig)


def _plot_plane(plt, cfg, out_dir, runs, res, summary):
    """Flow of the plane dynamics `dkappa/dt = -kappa + M Phi(kappa)` with the learned plane part
    `M` after A and after B (exact for `g = 0`), the network's trials projected on the plane,
    and the split of B's change of `M` into rotation vs growth."""
    modes = cfg["sweep"]["modes"]
    mode = "recurrent" if "recurrent" in modes else modes[0]
    gs = sorted({r["g"] for r in runs})
    picks = [next(i for i, r in enumerate(runs) if r["mode"] == mode and r["g"] == g) for g in (gs[0], gs[-1])]
    # The plane flow is the network's own dynamics only when Delta J lives in the plane (and g = 0).
    exact_plane = cfg["model"]["structure"] == "plane"
    fig, axes = plt.subplots(2, 3, figsize=(12, 7.5))
    lim = max(1.6, 1.1 * float(np.abs(res["kappa"][picks]).max()))
    grid_1d = np.linspace(-lim, lim, 21)
    k1, k2 = np.meshgrid(grid_1d, grid_1d)
    for row, i in enumerate(picks):
        seed = runs[i]["seed"]
        _, basis = make_network(cfg, 0.0, jax.random.fold_in(jax.random.key(seed), 0))
        reduced = ReducedModel(basis, cfg["model"]["tau"])
        kappa = jnp.stack([jnp.asarray(k1.ravel()), jnp.asarray(k2.ravel())], -1)
        for col, (name, m) in enumerate((("after A", res["m_a"][i]), ("after B", res["m_b"][i]))):
            ax = axes[row, col]
            if exact_plane:
                flow = np.asarray(reduced.vector_field(kappa, jnp.asarray(m)))
                ax.streamplot(k1, k2, flow[:, 0].reshape(k1.shape), flow[:, 1].reshape(k1.shape), color="0.7",
                              density=0.9, linewidth=0.7)
            for t, (label, color) in enumerate((("A trial", "C0"), ("B trial", "C3"))):
                traj = res["kappa"][i, col, t]
                ax.plot(traj[:, 0], traj[:, 1], color=color, lw=1.5, label=label)
                ax.plot(traj[-1, 0], traj[-1, 1], "o", color=color)
            flow_note = " (flow: 2x2 model)" if exact_plane else ""
            ax.set(xlabel="kappa_a = a.x/N", ylabel="kappa_b = b.x/N", title=f"g={runs[i]['g']:.2g}, {name}{flow_note}",
                   xlim=(-lim, lim), ylim=(-lim, lim))
            ax.set_aspect("equal")
            ax.legend(fontsize=7, loc="lower right")
        ax = axes[row, 2]
        m_a, m_b = res["m_a"][i], res["m_b"][i]
        ax.bar(["M_aa", "M_ab", "M_ba", "M_bb"], m_a.ravel(), alpha=0.6, label="after A")
        ax.bar(["M_aa", "M_ab", "M_ba", "M_bb"], m_b.ravel(), alpha=0.6, label="after B")
        ax.set(title=f"plane part of Delta J (g={runs[i]['g']:.2g}, seed {seed})")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "plane_flow.png", dpi=110)
    plt.close(fig)
    entry = summary["per_mode"][mode]["by_g"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    gs_ = [r["g"] for r in entry]
    ax.errorbar(gs_, [r["mode_rotation"] for r in entry], [r["mode_rotation_sem"] for r in entry], marker="o",
                capsize=3, label="rotation |dM_ab - dM_ba| / 2")
    ax.errorbar(gs_, [r["mode_growth"] for r in entry], [r["mode_growth_sem"] for r in entry], marker="s",
                capsize=3, label="new formation dM_bb")
    ax.set(xlabel="g", ylabel="change of M during B", title=f"learning modes ({mode})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "learning_modes.png", dpi=110)
    plt.close(fig)
