"""`simjax sweep` over a study experiment: one run per grid point, resumable, tabulated."""

from __future__ import annotations

import csv
import json
import math

import pytest

import simjax as sj
from simjax._app.config import ConfigError

SWEEP = '''[experiment]
name = "plasticity"
[protocol]
kind = "window"
[sweep]
seeds = 2
"window.a_plus" = [0.01, 0.02]
'''


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sweep")
    config = folder / "sweep.toml"
    config.write_text(SWEEP)
    table = sj.sweep(config, out=folder / "out", quick=True, progress=False)
    return config, folder / "out", table


def test_every_point_runs_with_its_own_values(swept):
    _, out, table = swept
    rows = _rows(out / "results.csv")
    assert len(table) == 4 and [(float(r["window.a_plus"]), int(r["seed"])) for r in rows] == [
        (0.01, 0), (0.01, 1), (0.02, 0), (0.02, 1)]
    for r in rows:
        # pair STDP closed form at a post-after-pre delay of 1 ms: a_plus exp(-1 / tau_plus)
        window = {float(w["delta_ms"]): float(w["pair_all"]) for w in _rows(out / "points" / f"p{int(r['run']):04d}"
                                                                              / "window.csv")}
        assert window[1.0] == pytest.approx(float(r["window.a_plus"]) * math.exp(-1 / 16.8), rel=1e-9)
        point = json.loads((out / "points" / f"p{int(r['run']):04d}" / "config.json").read_text())["config"]
        assert point["experiment"]["seed"] == int(r["seed"]) and point["window"]["dt"] == 1.0  # quick mode


def test_a_rerun_resumes_after_the_finished_points_and_refuses_another_config(swept, tmp_path):
    config, out, _ = swept
    before = _rows(out / "results.csv")
    kept = (out / "points" / "p0000" / "summary.json").stat().st_mtime_ns
    (out / "points" / "p0003" / "done.json").unlink()  # as if interrupted during the last point
    sj.sweep(config, out=out, quick=True, progress=False)
    assert (out / "points" / "p0000" / "summary.json").stat().st_mtime_ns == kept  # not rerun
    after = _rows(out / "results.csv")
    drop = ("seconds",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in after] == [
        {k: v for k, v in r.items() if k not in drop} for r in before]
    other = tmp_path / "other.toml"
    other.write_text(SWEEP.replace("[0.01, 0.02]", "[0.01, 0.03]"))
    with pytest.raises(ConfigError, match="holds a sweep of a different config"):
        sj.sweep(other, out=out, quick=True, progress=False)


def test_report_groups_a_point_sweep_by_its_swept_values(swept, capsys):
    from simjax._app.report import report

    report(swept[1])
    lines = capsys.readouterr().out.splitlines()
    assert any(line.strip().startswith("window.a_plus=0.01,") and "(n=2)" in line for line in lines)
    assert any(line.strip().startswith("window.a_plus=0.02,") and "(n=2)" in line for line in lines)


@pytest.mark.parametrize("edit, message", [
    (('"window.a_plus"', '"window.a_pluss"'), "sweep axis 'window.a_pluss' is not a key of experiment 'plasticity'"),
    (("[0.01, 0.02]", "[0.01, -0.02]"), "window.a_plus"),
    (("seeds = 2", "seeds = 0"), "sweep.seeds = 0 is not allowed"),
])
def test_bad_sweeps_fail_in_one_line_before_anything_runs(tmp_path, edit, message):
    config = tmp_path / "bad.toml"
    config.write_text(SWEEP.replace(*edit))
    with pytest.raises(ConfigError, match=message) as err:
        sj.sweep(config, out=tmp_path / "out", quick=True, progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_an_experiment_with_its_own_sweep_table_is_sent_to_run(tmp_path):
    config = tmp_path / "interference.toml"
    config.write_text('[experiment]\nname = "interference"\n')
    with pytest.raises(ConfigError, match="use `simjax run`"):
        sj.sweep(config, out=tmp_path / "out", progress=False)
