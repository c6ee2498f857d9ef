"""The implicit bias of gradient descent on teacher tasks (Seed 3): the tasks against independent
enumerations, hand-built networks with known errors and alignments, gradient descent against
closed forms (one step; the max-margin direction of a linear student), the studies' effects at quick
sizes with fixed seeds, vmapped sweeps against a loop, and bad-input errors."""

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import simjax as sj
from simjax._app import config
from simjax._app.cli import main
from simjax._app.experiments import implicit_bias as ib

A = sj.analysis


def _quick(**sections):
    return config.merge(ib.DEFAULTS, config.overlay(ib.QUICK, sections))


# ------------------------------------------------------------------------------------------- tasks
def test_linear_teacher_respects_margin_and_labels():
    task = sj.tasks.LinearTeacher(6, 0.7, seed=3)
    batch = task.sample(jax.random.key(0), 500)
    proj = np.asarray(batch.inputs @ task.teacher)
    assert np.all(np.abs(proj) >= 0.7 - 1e-12)
    np.testing.assert_array_equal(np.sign(proj), np.asarray(batch.targets))
    assert abs(float(jnp.mean(batch.targets))) < 0.15  # both labels equally likely
    # the orthogonal part is standard normal: unit variance in every direction orthogonal to w*
    ortho = np.asarray(batch.inputs) - proj[:, None] * np.asarray(task.teacher)
    assert abs(np.trace(np.cov(ortho.T)) / 5 - 1) < 0.15


def test_xor_population_and_balanced_sampling():
    task = sj.tasks.XORDetection(d=4)
    pop = task.population()
    assert pop.inputs.shape == (256, 4, 2)
    positive = {(1, 1), (-1, -1)}
    expected = [1.0 if any(tuple(int(v) for v in x) in positive for x in inp) else -1.0
                for inp in np.asarray(pop.inputs)]
    np.testing.assert_array_equal(np.asarray(pop.targets), expected)
    assert int(np.sum(np.asarray(pop.targets) > 0)) == 4**4 - 2**4
    batch = task.sample(jax.random.key(1), 200)
    np.testing.assert_array_equal(np.asarray(task.label(batch.inputs)), np.asarray(batch.targets))
    np.testing.assert_array_equal(np.asarray(batch.targets), np.where(np.arange(200) % 2 == 0, 1.0, -1.0))


def test_read_once_dnf_labels_and_distinct_samples():
    task = sj.tasks.ReadOnceDNF(dim=6, terms=[[0, 1], [2, 3, 4]])
    pop = task.population()
    expected = [1.0 if (x[0] > 0 and x[1] > 0) or (x[2] > 0 and x[3] > 0 and x[4] > 0) else -1.0
                for x in itertools.product([-1, 1], repeat=6)]
    assert sorted(zip(map(tuple, np.asarray(pop.inputs).tolist()), np.asarray(pop.targets))) == \
        sorted(zip(itertools.product([-1.0, 1.0], repeat=6), expected))
    batch = task.sample(jax.random.key(0), 64)
    assert len({tuple(x) for x in np.asarray(batch.inputs).tolist()}) == 64  # all 2^6 inputs, once each


def test_exact_balanced_error_of_hand_built_xor_detectors():
    task = sj.tasks.XORDetection(d=4)
    pop = task.population()
    net = sj.networks.MaxPoolDetector(2, 2, key=jax.random.key(0))
    # 3 x positive patterns on the positive side, negative patterns on the negative side: a
    # positive input scores >= 6 - 4 > 0, a negative one 0 - 2 < 0
    net = eqx.tree_at(lambda m: (m.w, m.u), net, (3.0 * task.patterns[:2], task.patterns[2:]))
    assert float(A.balanced_error(net(pop.inputs), pop.targets)) == 0.0
    assert float(A.balanced_error(jnp.ones(256), pop.targets)) == 0.5
    assert float(A.balanced_error(-jnp.ones(256), pop.targets)) == 0.5
    assert float(A.filter_alignment(net.w, task.patterns[:2])) == 1.0


def test_term_alignment_of_hand_built_dnf_network():
    task = sj.tasks.ReadOnceDNF(dim=9, terms=3)
    pop = task.population()
    net = sj.networks.ConvexReLUNetwork(9, 3, key=jax.random.key(0))
    # one unit per term: w = indicator, b = 1 - |T| fires (2) only when the whole term holds
    net = eqx.tree_at(lambda m: (m.w, m.b), net, (task.term_matrix, jnp.full(3, -1.0)))
    assert float(A.classification_error(net(pop.inputs), pop.targets)) == 0.0
    assert float(A.term_alignment(net.w, task.term_matrix)) == 1.0
    # a negative weight inside the best term: not counted as aligned
    assert float(A.term_alignment(task.term_matrix.at[0, 0].set(-1.0)[:1], task.term_matrix)) == 0.0
    # a neuron spread evenly over two terms: half its mass on its best term
    spread = (task.term_matrix[0] + task.term_matrix[1])[None]
    assert float(A.term_alignment(spread, task.term_matrix)) == pytest.approx(0.5)


def test_cosine_nar_and_linear_agreement_of_a_clustered_student():
    teacher = jnp.array([1.0, -2.0, 0.5])
    net = sj.networks.LeakyReLUStudent(3, 4, key=jax.random.key(0))
    scales = jnp.array([1.0, 2.0, 0.5, 3.0])[:, None]
    net = eqx.tree_at(lambda m: (m.w, m.u), net, (scales * teacher, -scales * teacher))
    x = jax.random.normal(jax.random.key(1), (50, 3))
    y = jnp.sign(x @ teacher)
    assert float(A.mean_pairwise_cosine(net.w)) == pytest.approx(1.0)
    assert float(A.nar_fraction(net, x, y)) == 1.0
    assert float(A.linear_agreement(net, x)) == 1.0
    assert float(A.mean_pairwise_cosine(jnp.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]]))) == pytest.approx(-1 / 3)


# ------------------------------------------------------------------------ training against closed forms
def test_one_gradient_step_matches_the_closed_form_hinge_gradient():
    task = sj.tasks.ReadOnceDNF(dim=5, terms=[[0, 1], [2, 3]])
    batch = task.sample(jax.random.key(0), 12)
    net = sj.networks.ConvexReLUNetwork(5, 4, init_scale=0.5, key=jax.random.key(1))
    new, _ = sj.fit_classifier(net, batch.inputs, batch.targets, learning_rate=0.1, steps=1, loss="hinge")
    x, y = np.asarray(batch.inputs), np.asarray(batch.targets)
    w, b = np.asarray(net.w), np.asarray(net.b)
    pre = x @ w.T + b
    out = np.maximum(pre, 0).sum(1) - 1
    active = (y * out < 1) * y  # d hinge / d N = -y where the margin is below 1
    gw = -(active[:, None] * (pre > 0)).T @ x / len(y)
    gb = -(active[:, None] * (pre > 0)).sum(0) / len(y)
    np.testing.assert_allclose(np.asarray(new.w), w - 0.1 * gw, atol=1e-12)
    np.testing.assert_allclose(np.asarray(new.b), b - 0.1 * gb, atol=1e-12)
    np.testing.assert_array_equal(np.asarray(new.v), np.asarray(net.v))  # fixed output layer


def test_linear_student_converges_in_direction_to_the_max_margin_separator():
    """alpha = 1 makes the student linear; logistic gradient descent on separable data converges in
    direction to the hard-margin SVM (Soudry et al. 2018), computed here by SLSQP: the angle to it
    shrinks with training and ends far below the teacher's."""
    task = sj.tasks.LinearTeacher(2, 0.2, seed=5)
    batch = task.sample(jax.random.key(1), 6)
    x, y = np.asarray(batch.inputs), np.asarray(batch.targets)
    svm = scipy.optimize.minimize(lambda w: 0.5 * w @ w, np.ones(2), method="SLSQP",
                                  constraints=[{"type": "ineq", "fun": lambda w: y * (x @ w) - 1}]).x
    angle = lambda w: float(np.arccos(np.clip(w @ svm / np.linalg.norm(w) / np.linalg.norm(svm), -1, 1)))
    angles = []
    for steps in (100, 4000):
        net = sj.networks.LeakyReLUStudent(2, 2, alpha=1.0, init_scale=1e-3, key=jax.random.key(0))
        net, _ = sj.fit_classifier(net, batch.inputs, batch.targets, learning_rate=1.0, steps=steps, loss="logistic")
        angles.append(angle(np.asarray(net.w.sum(0) - net.u.sum(0))))
    teacher = angle(np.asarray(task.teacher))
    assert teacher > 0.1  # the teacher is not the max-margin direction of these 6 points
    assert angles[1] < angles[0] and angles[1] < 0.2 * teacher, (angles, teacher)


def test_output_weights_train_only_when_asked():
    task = sj.tasks.XORDetection(d=3)
    batch = task.sample(jax.random.key(0), 8)
    for train_output in (False, True):
        net = sj.networks.MaxPoolDetector(2, 3, init_scale=0.3, train_output=train_output, key=jax.random.key(1))
        new, _ = sj.fit_classifier(net, batch.inputs, batch.targets, learning_rate=0.1, steps=20)
        assert bool(jnp.any(new.v != net.v)) == train_output
        assert bool(jnp.any(new.w != net.w))


# ------------------------------------------------------------------------------ the studies' effects
def test_linear_teacher_clusters_at_large_margin_not_at_small():
    rows, tab, summary, _ = ib.linear_study(_quick())
    big = next(r for r in tab if r["margin"] == 0.5)
    small = next(r for r in tab if r["margin"] == 0.1)
    assert min(big["cos_w_mean"], big["cos_u_mean"]) >= 0.95, big
    assert big["linear_agreement_mean"] >= 0.99 and big["nar_fraction_mean"] >= 0.85, big
    assert big["train_error_mean"] == 0.0 and big["test_error_mean"] <= 0.01
    assert small["nar_fraction_mean"] < big["nar_fraction_mean"] - 0.2, small
    assert small["cos_w_mean"] + small["cos_u_mean"] < big["cos_w_mean"] + big["cos_u_mean"] - 0.1
    assert summary["clustered_at_margin_ge_0.5"] and summary["clustering_weaker_at_smallest_margin"]


def test_xor_detection_overparameterisation_generalises_and_filters_cluster():
    cfg = _quick(train={"seeds": 6}, xor={"sizes": [20], "widths": [2, 50]})
    rows, tab, summary, _ = ib.detection_study(cfg, "xor")
    large = next(r for r in tab if r["width"] == 50)
    assert large["train_error_mean"] == 0.0
    assert summary["error_gap"] >= 0.03, summary
    assert summary["aligned_w_largest_width"] >= 0.9, summary


def test_dnf_small_init_aligns_with_terms_large_init_memorises():
    rows, tab, summary, _ = ib.dnf_study(_quick())
    small, large = summary["small_init"], summary["large_init"]
    assert small["term_alignment"] >= 0.85 and small["test_error"] <= 0.01, small
    assert large["term_alignment"] <= 0.5 and large["test_error"] > small["test_error"], large
    assert small["weight_norm"] < large["weight_norm"]
    assert all(r["train_error"] == 0.0 for r in rows)  # both reach zero training error


def test_trainable_output_weights_change_the_bias_at_large_init():
    """Pitfall of the theory: with trained output weights the large-init DNF network's units stop
    being term detectors (alignment 0.40 -> 0.09 at quick sizes)."""
    aligned = {}
    for train_output in (False, True):
        _, tab, _, _ = ib.dnf_study(_quick(train={"train_output": train_output}, dnf={"init_scales": [1.0]}))
        aligned[train_output] = tab[0]["term_alignment_mean"]
    assert aligned[True] < aligned[False] - 0.15, aligned


def test_vmapped_sweep_equals_a_loop_of_single_runs():
    cfg = _quick(dnf={"width": 4, "sizes": [16, 32], "steps": 50}, train={"seeds": 2})
    grid = ib._mesh(seed=np.arange(2), size=np.array([16, 32]), init_scale=np.array([0.5]))
    vec = ib.run_grid(ib.dnf_run(cfg), grid)
    chunked = ib.run_grid(ib.dnf_run(cfg), grid, chunk=3)  # 4 runs: a chunk and a remainder
    loop = ib.run_grid(ib.dnf_run(cfg), grid, vectorised=False)
    for key in vec:
        np.testing.assert_allclose(vec[key], loop[key], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(chunked[key], loop[key], rtol=1e-10, atol=1e-12)


def test_grouped_programs_equal_the_padded_single_runs():
    """What the studies run against `fit_classifier`'s autodiff runs padded to the largest size:
    the max-pool detectors' written-out gradient with the runs on the last axis, one program per
    training-set size (hinge and logistic losses); the DNF runs of one size on its own points."""
    for study, loss in (("xor", "hinge"), ("patterns", "logistic")):
        cfg = _quick(**{study: {"steps": 200, "loss": loss}}, train={"seeds": 2})
        grid = ib._mesh(seed=np.arange(2), size=np.array(cfg[study]["sizes"]))
        for width in (1, 3):
            loop = ib.run_grid(ib.detection_run(cfg, study, width), grid, vectorised=False)
            grouped = ib.detection_grid_program(cfg, study, width)(grid["seed"].astype(np.uint32),
                                                                   grid["size"].astype(float))
            assert set(grouped) == set(loop)
            for key in loop:
                np.testing.assert_allclose(grouped[key], loop[key], rtol=1e-10, atol=1e-12, err_msg=key)
    cfg = _quick(dnf={"width": 4, "sizes": [16, 32], "steps": 50}, train={"seeds": 2})
    grid = ib._mesh(seed=np.arange(2), size=np.array([16]), init_scale=np.array([0.5]))
    own = ib.run_grid(ib.dnf_run(cfg, 16), grid)
    padded = ib.run_grid(ib.dnf_run(cfg), grid)
    for key in padded:
        np.testing.assert_allclose(own[key], padded[key], rtol=1e-10, atol=1e-12, err_msg=key)


def test_cli_run_writes_table_and_summary(tmp_path):
    cfg = tmp_path / "xor.toml"
    cfg.write_text('[experiment]\nname = "implicit_bias"\n[study]\nkind = "xor"\n[train]\nseeds = 2\n'
                   '[xor]\nsizes = [4]\nwidths = [2]\nsteps = 20\ncheck_size = 4\n')
    assert main(["run", str(cfg), "--out", str(tmp_path / "out")]) == 0
    assert {"runs.csv", "table.csv", "summary.json"} <= {p.name for p in (tmp_path / "out").iterdir()}


# ------------------------------------------------------------------------------------------ bad input
def test_margin_larger_than_the_data_allow(unchecked):
    with pytest.raises(ValueError, match="margin = 7.0 is larger than Gaussian data allow"):
        sj.tasks.LinearTeacher(5, 7.0)


def test_dimension_not_divisible_into_terms(unchecked):
    with pytest.raises(ValueError, match="dim = 10 is not divisible into terms = 3"):
        sj.tasks.ReadOnceDNF(10, 3)
    with pytest.raises(ValueError, match="disjoint"):
        sj.tasks.ReadOnceDNF(4, [[0, 1], [1, 2]])


def test_width_below_one(unchecked):
    for make in (lambda: sj.networks.MaxPoolDetector(2, 0, key=jax.random.key(0)),
                 lambda: sj.networks.LeakyReLUStudent(3, 0, key=jax.random.key(0)),
                 lambda: sj.networks.ConvexReLUNetwork(3, 0, key=jax.random.key(0))):
        with pytest.raises(ValueError, match="width must be a positive int"):
            make()


def test_bad_config_values(unchecked):
    with pytest.raises(config.ConfigError, match="xor.widths"):
        ib.validate(_quick(xor={"widths": [0, 2]}))
    with pytest.raises(config.ConfigError, match="linear.margins"):
        ib.validate(_quick(linear={"margins": [9.0]}))
    with pytest.raises(config.ConfigError, match="dnf.terms"):
        ib.validate(_quick(dnf={"dim": 10, "terms": 3}))
    with pytest.raises(ValueError, match="loss"):
        sj.fit_classifier(sj.networks.ConvexReLUNetwork(2, 1, key=jax.random.key(0)), jnp.ones((2, 2)),
                          jnp.ones(2), learning_rate=0.1, steps=1, loss="mse")
