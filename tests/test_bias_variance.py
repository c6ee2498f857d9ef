"""Seed 8 reproductions at quick sizes: curvature-aligned bias hurts more, width tolerates variance,
and the perturbation estimators' variance scales as Werfel, Xie & Seung (2005) predict."""

import pytest

from simjax._app import config
from simjax._app.experiments import bias_variance as bv


@pytest.fixture(scope="module")
def quick():
    return config.merge(bv.DEFAULTS, bv.QUICK)


def test_bias_along_top_hessian_direction_hurts_more_than_bottom(quick):
    _, summary = bv._curvature(quick)
    assert summary["penalty_top"] > 0
    assert summary["penalty_top"] >= 3 * max(summary["penalty_bottom"], 0.0), summary


def test_loss_penalty_at_fixed_sigma_shrinks_with_width(quick):
    _, summary = bv._width(quick)
    penalties = list(summary["penalty_by_width"].values())
    assert penalties[0] > 0
    assert all(a > b for a, b in zip(penalties, penalties[1:])), penalties


def test_perturbation_variance_scales_linearly(quick):
    rows, summary = bv._scaling(quick)
    assert len({r["size"] for r in rows if r["rule"] == "weight_perturbation"}) >= 4
    assert abs(summary["weight_perturbation_slope"] - 1) <= 0.15, summary
    assert abs(summary["node_perturbation_slope"] - 1) <= 0.15, summary


def test_minibatch_variance_lowers_gap_and_hessian_trace_isotropic_noise_does_not(quick):
    rows, summary = bv._generalization(quick)
    by = summary["by_estimator"]
    mini, iso = by["minibatch 4"], by["isotropic sigma=2.0"]
    # comparable variance at the start (relative to |g|^2), opposite effects on generalisation
    assert 0.3 < mini["relative_variance_at_start"] / iso["relative_variance_at_start"] < 3
    n = len({r["seed"] for r in rows})
    assert mini["seeds_with_lower_trace"] == n and mini["trace_change"] < -3 * mini["trace_change_sem"]
    assert mini["seeds_with_lower_gap"] == n
    assert iso["gap_change"] > 0
