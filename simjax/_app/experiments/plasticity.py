"""Online plasticity studies, one per ``protocol.kind``:

- ``"window"``: the pair-STDP window (one spike pair per ``Delta t``, both pairing schemes) and the
  triplet rule's, against the closed form; writes ``window.csv``.
- ``"frequency"``: the pairing-frequency protocol of Sjöström et al. (2001) with the triplet rule
  (``n_pairs`` pairs at each frequency, ``Delta t = +-delta`` ms); writes ``frequency.csv`` and the
  frequency at which ``Delta t = -delta`` turns from depression to potentiation.
- ``"inhibitory"``: a small conductance-based E/I network whose inhibitory-to-excitatory synapses
  follow Vogels et al. (2011); the excitatory rate before and after learning, over seeds (`jax.vmap`);
  writes ``rates.csv``.
- ``"reward"``: reward-modulated STDP (Izhikevich 2007): one LIF neuron receives ``n_patterns``
  groups of Poisson inputs, one group at a time; after each presentation a reward of +1 (the
  target group, if the neuron fired) or -1 (another group, if it fired) arrives as the modulator
  pulse; the neuron learns to fire for the target only. Over seeds; writes ``reward.csv``.
- ``"meta"``: meta-learning: the four parameters of a pair-STDP rule fitted by gradient descent
  (Adam on their logarithms) to weight changes that other parameters produced; over seeds.

Every kind runs in float64 and writes ``summary.json`` and a figure ``plasticity_<kind>.png`` (with
matplotlib).
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ... import plasticity as P
from ...networks import EINetwork
from ...neurons import LIF, SynapticLIF
from ...synapses import Dense, ExponentialConductance
from .. import io
from ..config import require

DEFAULTS = {
    "experiment": {"name": "plasticity", "seed": 0},
    "protocol": {"kind": "window"},
    "window": {"max_delta": 100.0, "dt": 0.1, "a_plus": 0.01, "a_minus": 0.012, "tau_plus": 16.8,
               "tau_minus": 33.7},
    "frequency": {"frequencies": [1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0], "delta": 10.0, "n_pairs": 60,
                  "dt": 0.1},
    "inhibitory": {"n_exc": 160, "n_inh": 40, "seconds": 10.0, "dt": 0.5, "eta": 0.005, "rho0": 5.0, "tau": 20.0,
                   "w_ie": 0.05, "w_ei": 0.05, "p_ei": 0.5, "bias": 15.0, "background_rate": 2000.0,
                   "background_weight": 0.05, "seeds": 5, "window": 2.0},
    "reward": {"n_per_pattern": 10, "n_patterns": 3, "present": 50.0, "gap": 50.0, "presentations": 600,
               "rate": 40.0, "dt": 1.0, "w0": 0.15, "eta": 0.05, "tau_e": 100.0, "a_plus": 1.0, "a_minus": 1.0,
               "seeds": 5, "window": 100},
    "meta": {"steps": 500, "n_pre": 8, "n_post": 4, "batch": 8, "rate": 0.05, "truth": [0.01, 0.012, 17.0, 34.0],
             "start": [0.005, 0.02, 10.0, 20.0], "learning_rate": 0.1, "iterations": 400, "seeds": 5},
}
QUICK = {"window": {"dt": 1.0}, "frequency": {"frequencies": [1.0, 20.0, 50.0], "dt": 1.0},
         "inhibitory": {"n_exc": 40, "n_inh": 10, "seconds": 1.0, "seeds": 2, "window": 0.5},
         "reward": {"presentations": 300, "seeds": 2, "window": 100}, "meta": {"iterations": 20, "seeds": 2}}
KINDS = ("window", "frequency", "inhibitory", "reward", "meta")


def validate(cfg: dict) -> None:
    kind = cfg["protocol"]["kind"]
    require(kind in KINDS, "protocol.kind", kind, ", ".join(map(repr, KINDS)))
    w, f, i, m = cfg["window"], cfg["frequency"], cfg["inhibitory"], cfg["meta"]
    for key in ("max_delta", "dt", "tau_plus", "tau_minus"):
        require(w[key] > 0, f"window.{key}", w[key], "a positive number")
    require(w["a_plus"] >= 0 and w["a_minus"] >= 0, "window.a_plus/a_minus", (w["a_plus"], w["a_minus"]),
            "amplitudes >= 0")
    require(len(f["frequencies"]) > 0 and all(x > 0 for x in f["frequencies"]), "frequency.frequencies",
            f["frequencies"], "a non-empty list of positive frequencies (Hz)")
    require(f["n_pairs"] >= 1 and f["dt"] > 0 and f["delta"] > 0, "frequency.n_pairs/dt/delta",
            (f["n_pairs"], f["dt"], f["delta"]), "n_pairs >= 1, dt > 0, delta > 0")
    require(f["delta"] < 1000.0 / max(f["frequencies"]), "frequency.delta", f["delta"],
            "shorter than the period of the highest frequency")
    require(i["n_exc"] >= 1 and i["n_inh"] >= 1, "inhibitory.n_exc/n_inh", (i["n_exc"], i["n_inh"]),
            "positive integers")
    for key in ("seconds", "dt", "tau", "bias"):
        require(i[key] > 0, f"inhibitory.{key}", i[key], "a positive number")
    for key in ("eta", "rho0", "w_ie", "w_ei", "background_rate", "background_weight"):
        require(i[key] >= 0, f"inhibitory.{key}", i[key], "a number >= 0")
    require(0 <= i["p_ei"] <= 1, "inhibitory.p_ei", i["p_ei"], "a probability in [0, 1]")
    require(i["seeds"] >= 1, "inhibitory.seeds", i["seeds"], "a positive integer")
    require(0 < i["window"] <= i["seconds"], "inhibitory.window", i["window"], "in (0, seconds]")
    rw = cfg["reward"]
    for key in ("n_per_pattern", "presentations", "seeds", "window"):
        require(rw[key] >= 1, f"reward.{key}", rw[key], "a positive integer")
    require(rw["n_patterns"] >= 2, "reward.n_patterns", rw["n_patterns"], "an integer >= 2")
    for key in ("present", "gap", "rate", "dt", "tau_e"):
        require(rw[key] > 0, f"reward.{key}", rw[key], "a positive number")
    for key in ("w0", "eta", "a_plus", "a_minus"):
        require(rw[key] >= 0, f"reward.{key}", rw[key], "a number >= 0")
    require(rw["window"] <= rw["presentations"], "reward.window", rw["window"], "at most presentations")
    for key in ("steps", "n_pre", "n_post", "batch", "iterations", "seeds"):
        require(m[key] >= 1, f"meta.{key}", m[key], "a positive integer")
    require(0 < m["rate"] < 1, "meta.rate", m["rate"], "a spike probability per step in (0, 1)")
    for key in ("truth", "start"):
        require(len(m[key]) == 4 and all(x > 0 for x in m[key]), f"meta.{key}", m[key],
                "four positive numbers [a_plus, a_minus, tau_plus, tau_minus]")
    require(m["learning_rate"] > 0, "meta.learning_rate", m["learning_rate"], "a positive number")


def run(cfg: dict, out_dir: Path) -> dict:
    # The window is compared with its closed form to 1e-9: double precision throughout.
    jax.config.update("jax_enable_x64", True)
    kind = cfg["protocol"]["kind"]
    start = time.perf_counter()
    studies = {"window": _window, "frequency": _frequency, "inhibitory": _inhibitory, "reward": _reward, "meta": _meta}
    summary = studies[kind](cfg, out_dir)
    summary = {"kind": kind, **summary, "seconds": time.perf_counter() - start}
    io.write_json(out_dir / "summary.json", summary)
    return summary


# ---------------------------------------------------------------- the STDP window


def _window(cfg, out_dir):
    c = cfg["window"]
    dt = c["dt"]
    k = int(round(c["max_delta"] / dt))
    deltas = np.arange(-k, k + 1) * dt
    steps = 2 * k + 3
    pre = np.zeros((steps, deltas.size, 1))
    post = np.zeros((steps, deltas.size, 1))
    pre[k + 1, :, 0] = 1.0
    post[k + 1 + np.arange(-k, k + 1), np.arange(deltas.size), 0] = 1.0
    pre, post = jnp.asarray(pre), jnp.asarray(post)
    w0 = jnp.full((deltas.size, 1, 1), 0.5)
    closed = np.where(deltas > 0, c["a_plus"] * np.exp(-deltas / c["tau_plus"]),
                      np.where(deltas < 0, -c["a_minus"] * np.exp(deltas / c["tau_minus"]), 0.0))
    rows, errors = {"delta_ms": deltas, "closed_form": closed}, {}
    for pairing in ("all", "nearest"):
        rule = P.PairSTDP(c["a_plus"], c["a_minus"], c["tau_plus"], c["tau_minus"], pairing=pairing)
        dw = np.asarray(P.run(rule, pre, post, w0, dt=dt)[0] - w0)[:, 0, 0]
        rows[f"pair_{pairing}"] = dw
        errors[pairing] = float(np.max(np.abs(dw - closed)))
    dw = np.asarray(P.run(P.TripletSTDP(), pre, post, w0, dt=dt)[0] - w0)[:, 0, 0]
    rows["triplet"] = dw
    io.write_rows(out_dir / "window.csv", [dict(zip(rows, map(float, v))) for v in zip(*rows.values())])
    print(f"plasticity window: {deltas.size} spike pairs, |dt| <= {c['max_delta']} ms at dt = {dt} ms; "
          f"max |error| vs closed form: all-to-all {errors['all']:.2e}, nearest {errors['nearest']:.2e}")
    _plot(out_dir, "window", lambda ax: ([ax.plot(deltas, rows[name], label=name)
                                          for name in ("pair_all", "triplet")],
                                         ax.set(xlabel="t_post - t_pre (ms)", ylabel="weight change"), ax.legend()))
    return {"pairs": int(deltas.size), "dt": dt, "max_abs_error_all": errors["all"],
            "max_abs_error_nearest": errors["nearest"]}


# ---------------------------------------------------------------- pairing frequency


def _frequency(cfg, out_dir):
    c = cfg["frequency"]
    freqs, dt, n_pairs = [float(x) for x in c["frequencies"]], c["dt"], c["n_pairs"]
    rule = P.TripletSTDP()
    changes = {}
    for delta in (-c["delta"], c["delta"]):
        periods = [1000.0 / f for f in freqs]
        steps = int(round((max(periods) * n_pairs + 2 * c["delta"] + 20.0) / dt))
        pre = np.zeros((steps, len(freqs), 1))
        post = np.zeros((steps, len(freqs), 1))
        for b, period in enumerate(periods):
            t_pre = c["delta"] + 10.0 + np.arange(n_pairs) * period
            pre[np.round(t_pre / dt).astype(int), b, 0] = 1.0
            post[np.round((t_pre + delta) / dt).astype(int), b, 0] = 1.0
        w0 = jnp.ones((len(freqs), 1, 1))
        changes[delta] = np.asarray(P.run(rule, jnp.asarray(pre), jnp.asarray(post), w0, dt=dt)[0] - w0)[:, 0, 0]
    neg, pos = changes[-c["delta"]], changes[c["delta"]]
    crossover = None
    for j in range(len(freqs) - 1):
        if neg[j] < 0 <= neg[j + 1]:
            crossover = freqs[j] + (freqs[j + 1] - freqs[j]) * (-neg[j]) / (neg[j + 1] - neg[j])
            break
    io.write_rows(out_dir / "frequency.csv", [{"frequency_hz": f, "dw_minus": float(a), "dw_plus": float(b)}
                                              for f, a, b in zip(freqs, neg, pos)])
    print(f"plasticity frequency: {n_pairs} pairs, dt = +-{c['delta']} ms; crossover of -{c['delta']} ms at "
          f"{'none' if crossover is None else f'{crossover:.1f} Hz'}")
    _plot(out_dir, "frequency", lambda ax: (ax.plot(freqs, neg, "o-", label=f"dt = -{c['delta']} ms"),
                                            ax.plot(freqs, pos, "o-", label=f"dt = +{c['delta']} ms"),
                                            ax.axhline(0, color="k", lw=0.5),
                                            ax.set(xlabel="pairing frequency (Hz)", ylabel="weight change"),
                                            ax.legend()))
    return {"frequencies": freqs, "dw_minus": neg.tolist(), "dw_plus": pos.tolist(), "crossover_hz": crossover}


# ---------------------------------------------------------------- inhibitory plasticity


def build_ei(c: dict, seed: int) -> tuple[EINetwork, jax.Array]:
    """The E/I network of the inhibitory study and the mask of its I -> E synapses."""
    neuron = SynapticLIF((ExponentialConductance(5.0, 0.0), ExponentialConductance(10.0, -80.0)),
                         tau_mem=20.0, v_rest=-60.0, v_th=-50.0, v_reset=-60.0, t_ref=5.0, bias=c["bias"])
    ne, ni = c["n_exc"], c["n_inh"]
    n = ne + ni
    rng = np.random.default_rng(seed)
    w = np.zeros((n, n))
    w[:ne, ne:] = c["w_ei"] * (rng.random((ne, ni)) < c["p_ei"]) * 40.0 / ne
    w[ne:, :ne] = -c["w_ie"] * 10.0 / ni
    net = EINetwork(neuron, Dense(jnp.asarray(w)), ne, background_rate=c["background_rate"],
                    background_weight=c["background_weight"], v_init=(-60.0, -50.0))
    return net, jnp.zeros((n, n), bool).at[ne:, :ne].set(True)


def _inhibitory(cfg, out_dir):
    c, seed = cfg["inhibitory"], cfg["experiment"]["seed"]
    net, mask = build_ei(c, seed)
    dt = c["dt"]
    steps = int(round(c["seconds"] * 1000.0 / dt))
    last = int(round(c["window"] * 1000.0 / dt))
    keys = jax.random.split(jax.random.key(seed), c["seeds"])

    @jax.jit
    def rates(eta):
        rule = P.InhibitorySTDP(eta=eta, rho0=c["rho0"], tau=c["tau"])
        _, out = jax.vmap(lambda k: P.simulate(net, rule, jnp.zeros((steps, 1)), dt=dt, key=k, mask=mask))(keys)
        return out.readout  # [seeds, time, 2]

    learned = np.asarray(rates(jnp.asarray(c["eta"])))
    static = np.asarray(rates(jnp.zeros(())))
    final = learned[:, -last:, 0].mean(1)
    before = static[:, -last:, 0].mean(1)
    per_bin = int(round(100.0 / dt))
    nb = steps // per_bin
    binned = learned[:, :nb * per_bin, 0].reshape(c["seeds"], nb, per_bin).mean(2)
    io.write_rows(out_dir / "rates.csv", [{"t_s": (j + 1) * 0.1, "rate_exc_mean_hz": float(binned[:, j].mean()),
                                           "rate_exc_std_hz": float(binned[:, j].std())} for j in range(nb)])
    print(f"plasticity inhibitory: target {c['rho0']} Hz; excitatory rate without plasticity "
          f"{before.mean():.2f} +- {before.std():.2f} Hz, with {final.mean():.2f} +- {final.std():.2f} Hz "
          f"({c['seeds']} seeds, last {c['window']} s of {c['seconds']} s)")
    t = (np.arange(nb) + 1) * 0.1
    _plot(out_dir, "inhibitory", lambda ax: (ax.plot(t, binned.T, color="C0", lw=0.8),
                                             ax.axhline(c["rho0"], color="k", ls="--", label="rho0"),
                                             ax.set(xlabel="time (s)", ylabel="excitatory rate (Hz)"), ax.legend()))
    return {"rho0_hz": c["rho0"], "rate_exc_hz_mean": float(final.mean()), "rate_exc_hz_std": float(final.std()),
            "rate_exc_static_hz_mean": float(before.mean()), "rate_exc_static_hz_std": float(before.std()),
            "relative_error_mean": float(np.mean(np.abs(final - c["rho0"]) / c["rho0"])), "seeds": c["seeds"]}


# ---------------------------------------------------------------- reward-modulated STDP


def reward_task(c: dict, key: jax.Array, eta: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One run of the reward study: ``(final weights [n_in], fired [presentations], pattern ids)``."""
    dt = c["dt"]
    n_in = c["n_per_pattern"] * c["n_patterns"]
    present, gap = int(round(c["present"] / dt)), int(round(c["gap"] / dt))
    per = present + gap
    k1, k2 = jax.random.split(key)
    order = jax.random.randint(k1, (c["presentations"],), 0, c["n_patterns"])
    t = jnp.arange(c["presentations"] * per)
    pattern = order[t // per]
    on = (t % per) < present
    group = jnp.arange(n_in) // c["n_per_pattern"]
    prob = jnp.where(on[:, None] & (group[None, :] == pattern[:, None]), c["rate"] * dt / 1000.0, 0.0)
    pre = jax.random.bernoulli(k2, prob).astype(jnp.result_type(float))
    reward_step = (t % per) == present  # the first step after a presentation
    neuron = LIF(tau_mem=20.0, v_th=1.0, reset="zero", t_ref=2.0)
    rule = P.RewardModulatedSTDP(a_plus=c["a_plus"], a_minus=c["a_minus"], tau_plus=20.0, tau_minus=20.0,
                                 tau_e=c["tau_e"], eta=eta, w_max=1.0)
    w = jnp.full((n_in, 1), c["w0"])

    def body(carry, x):
        state, w, traces, fired = carry
        s_pre, p, rewarded, is_on = x
        state, s_post = neuron.step(state, s_pre @ w, dt)
        fired = jnp.where(is_on, fired + s_post[0], fired)
        sign = jnp.where(p == 0, 1.0, -1.0)  # pattern 0 is the target
        reward = jnp.where(rewarded & (fired > 0), sign, 0.0) / dt
        w, traces = rule(s_pre, s_post, traces, w, reward, dt)
        return (state, w, traces, jnp.where(rewarded, 0.0, fired)), s_post[0]

    carry = (neuron.init(None, (1,)), w, rule.init(w), jnp.zeros(()))
    (_, w, _, _), spikes = jax.lax.scan(body, carry, (pre, pattern, reward_step, on))
    fired = spikes.reshape(c["presentations"], per)[:, :present].sum(1) > 0
    return w[:, 0], fired, order


def _reward(cfg, out_dir):
    c, seed = cfg["reward"], cfg["experiment"]["seed"]
    keys = jax.random.split(jax.random.key(seed), c["seeds"])
    run_all = jax.jit(jax.vmap(lambda k, eta: reward_task(c, k, eta), in_axes=(0, None)))
    w, fired, order = (np.asarray(a) for a in run_all(keys, jnp.asarray(c["eta"])))
    _, fired0, _ = (np.asarray(a) for a in run_all(keys, jnp.zeros(())))
    last = slice(-c["window"], None)

    def probabilities(f):  # [seeds, patterns]: firing probability per pattern over the last window
        return np.array([[f[s, last][order[s, last] == k].mean() for k in range(c["n_patterns"])]
                         for s in range(c["seeds"])])

    learned, before = probabilities(fired), probabilities(fired0)
    target, others = learned[:, 0], learned[:, 1:].mean(1)
    w_groups = w.reshape(c["seeds"], c["n_patterns"], c["n_per_pattern"]).mean(2)
    io.write_rows(out_dir / "reward.csv", [{"seed": s, "pattern": k, "p_fire": float(learned[s, k]),
                                            "p_fire_without_learning": float(before[s, k]),
                                            "mean_weight": float(w_groups[s, k])}
                                           for s in range(c["seeds"]) for k in range(c["n_patterns"])])
    print(f"plasticity reward: firing probability over the last {c['window']} presentations ({c['seeds']} seeds): "
          f"target {target.mean():.2f} +- {target.std():.2f}, others {others.mean():.2f} +- {others.std():.2f} "
          f"(without learning: {before[:, 0].mean():.2f}, {before[:, 1:].mean():.2f})")
    _plot(out_dir, "reward", lambda ax: (ax.bar(np.arange(c["n_patterns"]), learned.mean(0), yerr=learned.std(0)),
                                         ax.set(xlabel="pattern (0: rewarded)", ylabel="firing probability")))
    return {"p_fire_target_mean": float(target.mean()), "p_fire_target_std": float(target.std()),
            "p_fire_others_mean": float(others.mean()), "p_fire_others_std": float(others.std()),
            "p_fire_target_without_learning": float(before[:, 0].mean()),
            "p_fire_others_without_learning": float(before[:, 1:].mean()),
            "weight_target_mean": float(w_groups[:, 0].mean()), "weight_others_mean": float(w_groups[:, 1:].mean()),
            "seeds": c["seeds"]}


# ---------------------------------------------------------------- meta-learning


def _meta(cfg, out_dir):
    c, seed = cfg["meta"], cfg["experiment"]["seed"]
    truth = np.asarray(c["truth"], float)
    opt = optax.adam(c["learning_rate"])

    def make(log_theta):
        return P.PairSTDP(*jnp.exp(log_theta))

    @jax.jit
    def one(key):
        k1, k2 = jax.random.split(key)
        pre = jax.random.bernoulli(k1, c["rate"], (c["steps"], c["batch"], c["n_pre"])).astype(float)
        post = jax.random.bernoulli(k2, c["rate"], (c["steps"], c["batch"], c["n_post"])).astype(float)
        w0 = jnp.full((c["batch"], c["n_pre"], c["n_post"]), 0.5)
        target = P.run(make(jnp.log(jnp.asarray(truth))), pre, post, w0, dt=1.0)[0]

        def loss(log_theta):
            return jnp.mean((P.run(make(log_theta), pre, post, w0, dt=1.0)[0] - target) ** 2) / 1e-6

        def step(carry, _):
            log_theta, state = carry
            value, grad = jax.value_and_grad(loss)(log_theta)
            updates, state = opt.update(grad, state)
            return (optax.apply_updates(log_theta, updates), state), value

        log_theta = jnp.log(jnp.asarray(c["start"], float))
        (log_theta, _), values = jax.lax.scan(step, (log_theta, opt.init(log_theta)), None, length=c["iterations"])
        return jnp.exp(log_theta), values

    keys = jax.random.split(jax.random.key(seed), c["seeds"])
    fitted, curves = (np.asarray(a) for a in jax.vmap(one)(keys))
    rel = np.abs(fitted - truth) / truth
    names = ("a_plus", "a_minus", "tau_plus", "tau_minus")
    print("plasticity meta: relative error of the fitted parameters (mean over "
          f"{c['seeds']} seeds): " + ", ".join(f"{n} {e:.2e}" for n, e in zip(names, rel.mean(0))))
    _plot(out_dir, "meta", lambda ax: (ax.semilogy(curves.T, color="C0", lw=0.8),
                                       ax.set(xlabel="iteration", ylabel="loss")))
    return {"truth": truth.tolist(), "fitted_mean": fitted.mean(0).tolist(), "fitted_std": fitted.std(0).tolist(),
            "relative_error_max": float(rel.max()), "relative_error_mean": rel.mean(0).tolist(),
            "final_loss_mean": float(curves[:, -1].mean()), "seeds": c["seeds"]}


def _plot(out_dir: Path, name: str, draw) -> None:
    io.save_figure(out_dir / f"plasticity_{name}.png", draw)
