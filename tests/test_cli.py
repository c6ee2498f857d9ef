"""The command line: the quickstart's quick mode, list, report, bench, and config errors."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def simjax(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "simjax", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Agg"})


def test_quickstart_quick_mode_writes_table_summary_and_plot(tmp_path):
    result = simjax("run", "configs/quickstart.toml", "--quick", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "final:" in result.stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    # Exact gradients train even in the seconds-long version; every compared rule reports finite losses.
    assert set(summary["final"]) == {"exact", "feedback_alignment"}
    assert summary["final"]["exact"]["loss"] < 0.2 * summary["initial"]["exact"]["loss"]
    assert all(math.isfinite(summary["final"][rule]["loss"]) for rule in summary["final"])
    header = (tmp_path / "history.csv").read_text().splitlines()[0]
    assert header == "rule,step,metric,value"
    assert (tmp_path / "quickstart.png").stat().st_size > 1000
    report = simjax("report", str(tmp_path))
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report_loss.png").exists()
    # one row per rule, each with that rule's own final loss
    loss_table = report.stdout.split("loss (final")[1].split("(final")[0]
    for rule, final in summary["final"].items():
        row = next(line for line in loss_table.splitlines() if f"rule={rule} " in line + " ")
        assert math.isclose(float(row.split()[1]), final["loss"], rel_tol=1e-3)


def test_bench_lists_the_source_tree_scripts_or_says_it_needs_one(tmp_path, monkeypatch, capsys):
    from simjax._app import cli

    assert cli.main(["bench"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in ("bptt_step", "root_finding", "coba"))
    monkeypatch.setattr(cli, "BENCHMARKS", tmp_path / "benchmarks")  # as in an installed wheel
    result_code = cli.main(["bench"])
    assert result_code == 2
    assert "need a source checkout" in capsys.readouterr().err


def test_list_names_components_and_configs():
    result = simjax("list")
    assert result.returncode == 0, result.stderr
    for word in ("lif", "rsnn", "exact", "fast_sigmoid", "pattern_generation", "quickstart", "quickstart.toml"):
        assert word in result.stdout


def test_run_config_errors_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[experiment]\nname = "quickstart"\n[model]\nn_rec = -3\n')
    result = simjax("run", str(bad), "--out", str(tmp_path / "o"))  # a new interpreter, as users run it
    assert result.returncode == 2
    assert result.stderr.strip() == "simjax: config error: model.n_rec = -3 is not allowed: expected an integer >= 1"
    from simjax._app.cli import main  # the same entry point in process (a new interpreter costs seconds)

    assert main(["run", str(tmp_path / "nope.toml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('[experiment]\nname = "quickstrat"\n')
    assert main(["run", str(unknown)]) == 2
    assert "'quickstrat' is not a known experiment" in capsys.readouterr().err


def test_optimizer_clip_norm_clips_the_update_and_rejects_bad_values():
    import jax.numpy as jnp

    from simjax._app.config import ConfigError
    from simjax._app.experiments.train import build_optimizer

    opt = build_optimizer({"type": "sgd", "learning_rate": 1.0, "clip_norm": 0.5})
    grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array(0.0)}            # global norm 5
    updates, _ = opt.update(grads, opt.init(grads))
    np_updates = jnp.concatenate([jnp.ravel(u) for u in updates.values()])
    assert math.isclose(float(jnp.linalg.norm(np_updates)), 0.5, rel_tol=1e-12)
    assert math.isclose(float(updates["a"][0] / updates["a"][1]), 0.75, rel_tol=1e-12)   # direction kept
    for bad in (-1.0, 0, True, "1"):
        with pytest.raises(ConfigError, match="optimizer.clip_norm"):
            build_optimizer({"type": "adam", "learning_rate": 1e-3, "clip_norm": bad})


def test_eprop_experiment_rejects_a_bad_eval_batch():
    from simjax._app.config import ConfigError
    from simjax._app.experiments import eprop

    assert eprop.merge_config({"train": {"eval_batch": 16}})["train"]["eval_batch"] == 16
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match=rf"train.eval_batch = {bad!r} is not allowed"):
            eprop.merge_config({"train": {"eval_batch": bad}})


def _wrong(kind):
    return {"number": "1", "int": 1.5, "bool": "yes", "string": 3, "list": 3}[kind]


def _schema_cases():
    from simjax._app.registry import _TABLES, KINDS, parameter_kinds

    for kind in KINDS:
        for name, ctor in _TABLES[kind].items():
            for key, value_kind in parameter_kinds(ctor).items():
                yield kind, name, key, value_kind


@pytest.mark.parametrize("kind, name, key, value_kind", list(_schema_cases()),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_every_component_key_rejects_a_wrong_type_in_one_line(kind, name, key, value_kind):
    from simjax._app.config import ConfigError
    from simjax._app.registry import construct

    bad = _wrong(value_kind)
    with pytest.raises(ConfigError) as err:
        construct(kind, {"type": name, key: bad}, kind)
    message = str(err.value)
    assert "\n" not in message and f"{kind}.{key} = {bad!r}" in message and "expected" in message


def _experiment_keys():
    from simjax._app.experiments import EXPERIMENTS

    def walk(table, prefix=()):
        for key, value in table.items():
            if isinstance(value, dict):
                yield from walk(value, (*prefix, key))
            elif isinstance(value, (bool, int, float, str)) and not (prefix == ("experiment",) and key == "name"):
                yield (*prefix, key), value

    for name, module in sorted(EXPERIMENTS.items()):
        for path, value in walk(getattr(module, "DEFAULTS", {})):
            yield name, path, value


def _raw_config(experiment, path, value):
    """A raw config of `experiment` that sets the dotted `path` to `value`."""
    raw = {"experiment": {"name": experiment}}
    table = raw
    for key in path[:-1]:
        table = table.setdefault(key, {})
    table[path[-1]] = value
    return raw


@pytest.mark.parametrize("experiment, path, default", list(_experiment_keys()),
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else (v if isinstance(v, str) else None))
def test_every_experiment_key_rejects_a_wrong_type_in_one_line(experiment, path, default):
    from simjax._app import config as cfgmod
    from simjax._app.experiments import EXPERIMENTS

    kind = {bool: "bool", int: "int", float: "number", str: "string"}[type(default)]
    bad = _wrong(kind)
    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.merge(EXPERIMENTS[experiment].DEFAULTS, _raw_config(experiment, path, bad))
    message = str(err.value)
    assert "\n" not in message and ".".join(path) in message and repr(bad) in message


def _outside(allowed):
    """A value just outside `allowed` (below its lower end, or above its upper end when it has one)."""
    if allowed.high is not None:
        return allowed.high if allowed.high_open else allowed.high + 0.5
    return allowed.low if allowed.low_open else allowed.low - 1


def _range_cases():
    from simjax._app.schema import range_of

    for kind, name, key, value_kind in _schema_cases():
        allowed = range_of(key, value_kind)
        if allowed is not None:
            bad = _outside(allowed)
            yield kind, name, key, int(bad) if value_kind == "int" else float(bad)


@pytest.mark.parametrize("kind, name, key, bad", list(_range_cases()),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_every_ranged_component_key_rejects_an_out_of_range_value_in_one_line(kind, name, key, bad):
    from simjax._app.config import ConfigError
    from simjax._app.registry import construct

    with pytest.raises(ConfigError) as err:
        construct(kind, {"type": name, key: bad}, kind)
    message = str(err.value)
    assert "\n" not in message and f"{kind}.{key} = {bad!r} is not allowed: expected" in message


def _experiment_range_cases():
    from simjax._app.schema import range_of, value_kind

    for experiment, path, default in _experiment_keys():
        allowed = range_of(path[-1], value_kind(default))
        if allowed is not None:
            bad = _outside(allowed)
            yield experiment, path, int(bad) if isinstance(default, int) else float(bad)


@pytest.mark.parametrize("experiment, path, bad", list(_experiment_range_cases()),
                         ids=lambda v: ".".join(v) if isinstance(v, tuple) else (v if isinstance(v, str) else None))
def test_every_ranged_experiment_key_rejects_an_out_of_range_value_in_one_line(experiment, path, bad):
    from simjax._app import config as cfgmod
    from simjax._app.experiments import EXPERIMENTS

    with pytest.raises(cfgmod.ConfigError) as err:
        cfgmod.merge(EXPERIMENTS[experiment].DEFAULTS, _raw_config(experiment, path, bad))
    message = str(err.value)
    assert "\n" not in message and f"{'.'.join(path)} = {bad!r} is not allowed: expected" in message


def test_schema_ranges_admit_every_default_and_their_own_ends():
    """The schema never rejects a shipped default; each range's closed end is admitted, its open end
    and the values beyond it are not."""
    import inspect

    from simjax._app.registry import _TABLES
    from simjax._app.schema import RANGES, range_of, value_kind

    for kind, name, key, kind_of_value in _schema_cases():
        default = inspect.signature(_TABLES[kind][name]).parameters[key].default
        allowed = range_of(key, kind_of_value)
        if allowed is not None and value_kind(default) in ("int", "number"):
            assert default in allowed, (kind, name, key, default, str(allowed))
    for experiment, path, default in _experiment_keys():
        allowed = range_of(path[-1], value_kind(default))
        if allowed is not None:
            assert default in allowed, (experiment, path, default, str(allowed))
    for allowed in set(RANGES.values()):
        assert (allowed.low in allowed) is not allowed.low_open
        assert _outside(allowed) not in allowed
        if allowed.high is not None:
            assert (allowed.high in allowed) is not allowed.high_open
    assert float("nan") not in RANGES["dt", "number"]


def test_every_shipped_config_lies_inside_the_schema():
    from simjax._app import cli
    from simjax._app import config as cfgmod

    for path in sorted(cfgmod.SHIPPED.glob("*.toml")):
        raw = cfgmod.load(path)
        module = cli._experiment(raw)
        raw = {k: v for k, v in raw.items() if k != "sweep"}
        cli._merged(module, raw, quick=False)
        cli._merged(module, raw, quick=True)


def test_list_keys_documents_experiments_and_components(capsys):
    from simjax._app import cli

    assert cli.main(["list", "--keys", "quickstart"]) == 0
    assert "model.n_rec: an integer >= 1 = 200" in capsys.readouterr().out
    assert cli.main(["list", "--keys", "adam"]) == 0
    assert "learning_rate: a number >= 0" in capsys.readouterr().out


def test_report_groups_a_per_seed_table_by_its_settings(tmp_path, capsys):
    from simjax._app.report import report

    rows = ["direction,beta,seed,final_loss"]
    for direction in ("top", "bottom"):
        for seed, loss in enumerate((1.0, 2.0, 6.0)):
            rows.append(f"{direction},0.5,{seed},{loss * (10 if direction == 'top' else 1)}")
    (tmp_path / "curvature.csv").write_text("\n".join(rows) + "\n")
    report(tmp_path)
    out = capsys.readouterr().out
    # mean 3, sample sd sqrt(7); ten times that for "top"
    top = next(line for line in out.splitlines() if "direction=top" in line)
    bottom = next(line for line in out.splitlines() if "direction=bottom" in line)
    assert "beta 0.5 +- 0" in top and "final_loss 30 +- 26" in top and "(n=3)" in top
    assert "final_loss 3 +- 2.6" in bottom
