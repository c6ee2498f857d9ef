"""The observatory's headline: the parameters a rule approximates (groups it does not compute
exactly, measured), the finite-sample debiasing of the relative bias and its error bars, alignment
along training, and figures whose labels do not overlap."""

import itertools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import simjax as sj
from simjax._app import config
from simjax._app.experiments import observatory
from simjax.analysis import gradient_quality
from simjax.analysis._group_statistics import median_nonnegative
from simjax.rules import AbstractStatelessRule, NoisyGradient

MSE_LAST = sj.tasks.Supervised(loss="mse", readout="last", dt=1.0)


def _rate_problem():
    """A tiny smooth recurrent rate network (groups w_in, w_rec, w_out) on a fixed batch."""
    net = sj.networks.RateRNN(n_in=3, n_rec=5, n_out=2, neuron=sj.neurons.LeakyRate(tau=5.0, activation="tanh"),
                              key=jax.random.key(0), g=1.2, trainable=("w_in", "w_rec", "w_out"))
    rng = np.random.default_rng(1)
    batch = sj.tasks.Batch(inputs=jnp.asarray(rng.normal(size=(8, 4, 3))),
                           targets=jnp.asarray(2.0 * rng.normal(size=(4, 2))))
    return net, batch


class HiddenBias(AbstractStatelessRule):
    """The exact gradient plus a fixed vector on the input and recurrent weights only."""

    b_in: jax.Array
    b_rec: jax.Array

    def __call__(self, model, task, batch, key):
        loss, grads, aux = sj.rules.Exact()(model, task, batch, key)
        grads = eqx.tree_at(lambda g: (g.w_in.weight, g.w_rec.weight), grads,
                            (grads.w_in.weight + self.b_in, grads.w_rec.weight + self.b_rec))
        return loss, grads, aux


def _rows(table, rule):
    return [{"rule": rule, **row} for row in table.rows()]


def test_headline_shows_the_bias_on_hidden_weights_that_total_dilutes():
    net, batch = _rate_problem()
    grads = sj.rules.Exact()(net, MSE_LAST, batch, None)[1]
    g_in, g_rec = np.asarray(grads.w_in.weight), np.asarray(grads.w_rec.weight)
    g_all = np.asarray(ravel_pytree(grads)[0])
    hidden = math.sqrt(np.sum(g_in**2) + np.sum(g_rec**2))
    rng = np.random.default_rng(5)
    b_in, b_rec = rng.normal(size=g_in.shape), rng.normal(size=g_rec.shape)
    scale = 1.5 * hidden / math.sqrt(np.sum(b_in**2) + np.sum(b_rec**2))  # relative bias 1.5 on the hidden weights
    rule = HiddenBias(jnp.asarray(scale * b_in), jnp.asarray(scale * b_rec))
    t = gradient_quality(net, rule, MSE_LAST, key=jax.random.key(2), samples=4, batch=batch,
                         curvature=False, chunk_size=8)

    # measured exactness: the readout is exact, the hidden weights are not
    for group, exact in (("w_in", 0), ("w_rec", 0), ("w_out", 1)):
        assert t.value(group=group, quantity="exact") == exact, group
    # the headline ("learned" = w_in + w_rec) reads the bias exactly; total dilutes it by the readout
    assert t.value(group="learned", quantity="relative_bias") == pytest.approx(1.5, rel=1e-9)
    bias_norm = 1.5 * hidden
    assert t.value(group="total", quantity="relative_bias") == pytest.approx(bias_norm / np.linalg.norm(g_all),
                                                                              rel=1e-9)
    assert t.value(group="total", quantity="relative_bias") < 0.5 * t.value(group="learned", quantity="relative_bias")
    expected_cos = (np.sum(g_in * (g_in + scale * b_in)) + np.sum(g_rec * (g_rec + scale * b_rec))) / (
        hidden * math.sqrt(np.sum((g_in + scale * b_in) ** 2) + np.sum((g_rec + scale * b_rec) ** 2)))
    assert t.value(group="learned", quantity="cosine_mean") == pytest.approx(expected_cos, rel=1e-9)

    # the reports lead with it: the printed line, observatory.md, and the summary's headline
    exact_everywhere = [{"rule": "exact", "group": g, "quantity": q, "value": v, "stderr": 0.0}
                        for g in ("total", "learned", "w_in", "w_rec", "w_out")
                        for q, v in (("exact", 1.0), ("relative_bias", math.nan if g == "learned" else 0.0))]
    rows = _rows(t, "hidden bias") + exact_everywhere
    line = observatory.headline_line(rows, "hidden bias")
    assert line.startswith("learned [w_in, w_rec]: relative_bias 1.5") and "(exact: w_out)" in line
    assert observatory.headline_line(rows, "exact").startswith("exact in every group")
    md = observatory.markdown_report(rows)
    headline, rest = md.split("## Parameter group", 1)
    assert "| hidden bias | w_in, w_rec | w_out | 1.5 |" in headline
    assert "`total`: all parameters, including those computed exactly" in rest
    h = observatory.headline_values(rows, "hidden bias")
    assert h["approximated"] == ["w_in", "w_rec"] and h["relative_bias"] == pytest.approx(1.5)


def _linear_problem():
    """One linear layer on a linear teacher: the loss is quadratic in the parameters."""
    task = sj.tasks.TeacherStudent(30, 4, seed=3)
    net = sj.networks.FeedForward((30, 4), key=jax.random.key(4))  # 124 parameters
    batch = eqx.filter_jit(task.sample)(jax.random.key(5), 8)
    return net, task, batch


def test_debiased_bias_of_weight_perturbation_is_zero_on_a_quadratic_loss():
    net, task, batch = _linear_problem()
    # central differences are exactly unbiased on a quadratic loss, whatever sigma
    rule = sj.rules.WeightPerturbation(sigma=0.1, samples=2)
    t = gradient_quality(net, rule, task, key=jax.random.key(6), samples=200, batch=batch,
                         curvature=False, chunk_size=8)
    for group in ("learned", "total"):
        b2, se = (t.value(c, group=group, quantity="relative_bias_squared") for c in ("value", "stderr"))
        assert abs(b2) < 3 * se, (group, b2, se)
        # without the debiasing, the squared norm of the sample mean reads the noise floor: many error bars off
        floor = t.value(group=group, quantity="relative_bias_floor")
        assert floor**2 > 4 * se
        variance = t.value(group=group, quantity="relative_variance")
        assert floor == pytest.approx(math.sqrt(variance / 200), rel=1e-9)
    assert t.value(group="learned", quantity="exact") == 0.0  # a stochastic estimate is never exact
    # the clipped bias is within its error bar of zero too
    bias, bias_se = (t.value(c, group="learned", quantity="relative_bias") for c in ("value", "stderr"))
    assert bias <= 3 * bias_se + 1e-12


def test_noisy_gradient_bias_is_recovered_within_its_error_bar():
    net, task, batch = _linear_problem()
    g = ravel_pytree(sj.rules.Exact()(net, task, batch, None)[1])[0]
    beta, sigma = 0.3, float(jnp.linalg.norm(g))  # noise as large as the gradient
    rule = NoisyGradient(bias=beta, sigma=sigma, direction="random", seed=7)
    t = gradient_quality(net, rule, task, key=jax.random.key(8), samples=100, batch=batch,
                         curvature=False, chunk_size=8)
    assert t.value(group="learned", quantity="exact") == 0.0
    for quantity, truth in (("relative_bias", beta), ("relative_bias_squared", beta**2)):
        value, se = (t.value(c, group="total", quantity=quantity) for c in ("value", "stderr"))
        assert abs(value - truth) < 3 * se, (quantity, value, truth, se)
        assert se < 0.5 * truth  # an informative error bar
    # every group is approximated, so the headline aggregate is the total
    for quantity in ("relative_bias", "relative_variance", "cosine_mean", "sign_agreement", "snr_median"):
        assert t.value(group="learned", quantity=quantity) == pytest.approx(
            t.value(group="total", quantity=quantity), rel=1e-9)


def test_median_of_a_selection_equals_numpy():
    rng = np.random.default_rng(0)
    x = rng.exponential(size=(3, 11))
    median = jax.jit(median_nonnegative)
    for where in (np.arange(11) % 2, np.arange(11) < 4, np.eye(11)[3]):
        got = np.asarray(median(jnp.asarray(x), jnp.asarray(where, float)))
        np.testing.assert_array_equal(got, np.median(x[:, where.astype(bool)], axis=-1))
    assert np.all(np.isnan(median(jnp.asarray(x), jnp.zeros(11))))


def test_feedback_alignment_hidden_cosine_rises_along_training_in_an_rsnn():
    """Lillicrap et al. 2016: with fixed random feedback the hidden weights' update starts about
    orthogonal to the gradient and comes to agree with it as the readout aligns with the feedback
    (the hidden activity moves along `-B e`, and the readout's own update `-h e^T` then accumulates
    `B e e^T`). Through the observatory's tracking (`observatory.track` on its default regression
    task: 32 LIF neurons at about 25 Hz, small memoryless readout, one fixed batch of random targets
    that the readout alone cannot fit, Adam), 8 network seeds vmapped, measured by the quality
    tracker inside `fit`; the rows of `alignment.csv` and the reports show the rise. Under one plain
    SGD step size the hidden weights barely change and nothing aligns (see
    docs/experiments/observatory.md)."""
    cfg = config.merge(observatory.DEFAULTS, {"track": {"steps": 400, "every": 50, "seeds": 8, "samples": 3}})
    observatory.validate(cfg)
    rule = sj.rules.FeedbackAlignment(7)
    seeds, task, initial, trained, hist = observatory.track(rule, cfg)
    assert list(seeds) == list(range(8))
    assert np.all(np.asarray(hist["quality/w_out/exact"])[:, ::50] == 1)  # the readout is exact
    assert np.all(np.asarray(hist["quality/learned/exact"])[:, ::50] == 0)

    rows = observatory.alignment_rows("feedback alignment", seeds, hist, 50)
    trend = observatory.alignment_trend(rows, "feedback alignment")
    start, late = np.asarray(trend["start"]), np.asarray(trend["end"])  # step 0; steps 300-400 averaged
    assert np.all(start < 0.5) and abs(np.mean(start)) < 0.3  # about orthogonal at initialisation
    assert np.all(late > start + 0.1)  # rising in every seed
    assert np.mean(late) > 0.5 and np.mean(late) > np.mean(start) + 0.4
    # the printed line and the table of observatory.md / `simjax report` say so
    assert observatory.alignment_line(rows, "feedback alignment").endswith("higher at the end in 8 of 8 seeds")
    assert "| feedback alignment |" in observatory.alignment_table(rows) and "8 of 8 seeds" in \
        observatory.alignment_table(rows)

    # the set-up: spiking at moderate rates at initialisation, none silent
    rate = eqx.filter_jit(eqx.filter_vmap(lambda net: jnp.mean(task.forward(net, task.all()).spikes)))(initial)
    rate = 1000.0 * np.asarray(rate)  # Hz at dt = 1 ms
    assert np.all((rate > 5) & (rate < 60))
    # the mechanism: W_out aligns with B_out (Frobenius cosine)
    b = np.asarray(rule.feedback_for(jax.tree.map(lambda x: x[0], initial))["w_out"])
    cosine = lambda w: np.sum(w * b, axis=(1, 2)) / (np.linalg.norm(w, axis=(1, 2)) * np.linalg.norm(b))  # noqa: E731
    before, after = cosine(np.asarray(initial.w_out.weight)), cosine(np.asarray(trained.w_out.weight))
    assert np.all(np.abs(before) < 0.2) and np.all(after > 0.4)


# -- figures ---------------------------------------------------------------------------------------------


def _text_boxes(fig):
    """Every drawn, non-empty text of `fig` with its box on the canvas (tick labels only where
    their tick is inside the view: the others are kept by matplotlib but not drawn)."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                if not (lo - 1e-12 * abs(lo) <= tick.get_loc() <= hi + 1e-12 * abs(hi)):
                    hidden |= {id(tick.label1), id(tick.label2)}
    boxes = []
    for text in fig.findobj(Text):
        if id(text) in hidden or not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        boxes.append((text.get_text(), text.get_window_extent(renderer)))
    return boxes


def _assert_no_overlap(fig):
    boxes = _text_boxes(fig)
    assert len(boxes) > 20
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), (a, b)


def _synthetic_rows(rules=14, groups=("w_in", "w_rec", "w_out", "b_out")):
    """Report rows as the observatory writes them: exact rules (all zeros), deterministic rules
    (zero variance, readout exact) and stochastic ones (everything nonzero), with close values."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(rules):
        rule = f"rule number {i}"
        kind = ("exact", "deterministic", "stochastic")[i % 3]
        for group in ("total", "learned", *groups):
            exact = kind == "exact" or (kind == "deterministic" and group in ("w_out", "b_out"))
            empty = kind == "exact" and group == "learned"
            bias = 0.0 if exact else float(rng.uniform(0.5, 0.6))
            var = 0.0 if exact or kind == "deterministic" else float(rng.uniform(40, 50))
            values = {"relative_bias": (bias, 0.1 * bias), "relative_variance": (var, 0.1 * var),
                      "relative_bias_floor": (math.sqrt(var / 32), 0.0), "cosine_mean": (0.5, 0.01),
                      "exact": (float(exact), 0.0)}
            for q, (v, se) in values.items():
                rows.append({"rule": rule, "group": group, "quantity": q, "value": math.nan if empty else v,
                             "stderr": math.nan if empty else se})
    return rows


def test_plane_figure_labels_do_not_overlap_and_zeros_sit_on_the_zero_tick(tmp_path):
    pytest.importorskip("matplotlib")
    rows = _synthetic_rows()
    fig = observatory.plane_figure(rows)
    _assert_no_overlap(fig)
    ax = fig.axes[0]
    assert ax.get_title().startswith("learned by the rule")
    assert ax.get_xticklabels()[0].get_text() == "0" and ax.get_yticklabels()[0].get_text() == "0"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:14] == [f"rule number {i}" for i in range(14)]
    assert observatory.plot_plane(tmp_path / "plane.png", rows) == tmp_path / "plane.png"
    assert (tmp_path / "plane.png").stat().st_size > 10_000


def test_alignment_figure_labels_do_not_overlap(tmp_path):
    pytest.importorskip("matplotlib")
    rng = np.random.default_rng(1)
    rows = [{"rule": f"rule number {i}", "seed": seed, "group": group, "step": step, "value": float(rng.uniform(-1, 1))}
            for i in range(14) for seed in range(3) for group in ("total", "learned", "w_in", "w_rec", "w_out")
            for step in range(0, 100, 10)]
    fig = observatory.alignment_figure(rows)
    _assert_no_overlap(fig)
    assert [ax.get_title() for ax in fig.axes[:6]] == ["learned by the rule (headline)", "learned: change since step 0",
                                                      "w_in", "w_rec", "w_out", "total (all parameters)"]
    # the change panel: each seed's curve minus its first probe (mean over seeds drawn)
    first = {seed: next(r["value"] for r in rows if (r["rule"], r["seed"], r["group"], r["step"])
                        == ("rule number 0", seed, "learned", 0)) for seed in range(3)}
    change = [np.mean([r["value"] - first[r["seed"]] for r in rows if (r["rule"], r["group"], r["step"])
                       == ("rule number 0", "learned", step)]) for step in range(0, 100, 10)]
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), change, rtol=1e-12)
    assert observatory.plot_alignment(tmp_path / "alignment.png", rows) == tmp_path / "alignment.png"
