"""Seed 8 reproductions at quick sizes: curvature-aligned bias hurts more, width tolerates variance,
and the perturbation estimators' variance scales as Werfel, Xie & Seung (2005) predict."""

import pytest

from simjax import config
from simjax.experiments import bias_variance as bv


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
