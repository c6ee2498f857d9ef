"""The observatory: several rules' reports in one compiled program, rendered by `simjax report`."""

import csv
import math

import pytest

from simjax._app import config
from simjax._app.experiments import observatory
from simjax._app.report import report


def test_observatory_rules_in_one_program_and_report(tmp_path, capsys):
    cfg = config.merge(observatory.DEFAULTS, observatory.QUICK)
    cfg["rules"] = [{"type": "exact", "label": "exact"},
                    {"type": "exact", "label": "slope 5", "surrogate": {"type": "fast_sigmoid", "slope": 5.0}},
                    {"type": "node_perturbation", "label": "NP", "sigma": 1e-2, "samples": 1}]
    cfg["track"]["task"] = "none"  # (tracking: test_observatory_headline.py)
    summary = observatory.run(cfg, tmp_path)
    assert summary["rules"] == ["exact", "slope 5", "NP"] and summary["skipped"] == {}
    assert "one program per rule" not in capsys.readouterr().out

    with open(tmp_path / "gradient_quality.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    value = lambda rule, q: float(next(r["value"] for r in rows  # noqa: E731
                                       if r["rule"] == rule and r["group"] == "total" and r["quantity"] == q))
    # the reference itself: no bias, no variance; another surrogate: a deterministic bias; NP: variance
    assert value("exact", "relative_bias") < 1e-6 and value("exact", "relative_variance") == 0
    assert math.isclose(value("exact", "cosine_mean"), 1.0, rel_tol=1e-6)
    assert value("slope 5", "relative_bias") > 0.01 and value("slope 5", "relative_variance") == 0
    assert value("NP", "relative_variance") > 1.0
    assert (tmp_path / "observatory.md").read_text().count("|") > 20

    written = report(tmp_path)
    assert tmp_path / "bias_variance_plane.png" in written
    assert "slope 5" in capsys.readouterr().out


def test_track_settings_are_validated():
    for key, bad in (("task", "regresion"), ("trials", 0), ("samples", 2), ("duration", 0.5), ("out_scale", -1.0)):
        cfg = config.merge(observatory.DEFAULTS, {})
        cfg["track"][key] = bad
        with pytest.raises(config.ConfigError, match=f"track.{key}"):
            observatory.validate(cfg)
