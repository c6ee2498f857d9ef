"""The `simjax` command line: `run CONFIG`, `sweep CONFIG`, `list`, `report DIR`, `bench [NAME]`."""

from __future__ import annotations

import argparse
import inspect
import os
import signal
import subprocess
import sys
from pathlib import Path

from . import config as cfgmod
from . import io
from .configured import experiment_named as _experiment
from .configured import merged as _merged
from .experiments import EXPERIMENTS
from .registry import KINDS, available, lookup
from .report import report
from .schema import describe, parameter_kinds, value_kind
from .sweep import sweep


def cmd_run(args) -> int:
    raw = cfgmod.load(args.config)
    module = _experiment(raw)
    cfg = _merged(module, raw, args.quick)
    out_dir = Path(args.out) if args.out else io.new_run_dir("runs", cfg["experiment"]["name"])
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(out_dir / "config.json", {"config": cfg, "hash": cfgmod.digest(cfg)})
    if args.quick:
        print("--quick: a smoke test of the whole pipeline at toy sizes (seconds to minutes); "
              "its figures are not results")
    module.run(cfg, out_dir)
    print(f"results written to {out_dir}" + (" (quick smoke test)" if args.quick else ""))
    return 0


def cmd_sweep(args) -> int:
    table = sweep(args.config, out=args.out, quick=args.quick)
    print(f"{len(table)} rows; results in {args.out or 'runs/'}")
    return 0


def cmd_report(args) -> int:
    report(Path(args.dir))
    return 0


# Benchmarks ship with the source tree, not the wheel: `simjax bench` finds them next to the package
# in a source checkout (an editable install) and says so otherwise.
BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _first_line(script: Path) -> str:
    """The first line of a script's module docstring."""
    text = script.read_text()
    start = text.find('"""')
    return text[start + 3:].split("\n", 1)[0].strip() if start >= 0 else ""


def _interrupt(signum, frame):
    """Ctrl-C (SIGINT) and SIGTERM end a command at once with status 130. Every result file is
    written atomically as it finishes, so nothing finished is lost; exiting straight from the handler
    (rather than unwinding an exception through XLA's callbacks and finalizers, and tearing the
    interpreter down while XLA's threads run) is what keeps an interrupt from ever crashing."""
    os.write(2, b"simjax: interrupted; finished results are saved (a sweep, or a run that saves each training, "
             b"resumes when rerun with --out naming the same folder)\n")
    os._exit(130)


def cmd_bench(args) -> int:
    bench_dir = BENCHMARKS
    names = sorted(p.stem for p in bench_dir.glob("*.py") if not p.stem.startswith("_")) if bench_dir.is_dir() else []
    if not names:
        print(f"simjax: benchmarks need a source checkout (pip install -e .): no benchmark scripts in {bench_dir}",
              file=sys.stderr)
        return 2
    if args.name is None:
        print("benchmarks (simjax bench NAME [--quick] runs one; --quick is a seconds-to-minutes smoke test):")
        for name in names:
            print(f"  {name:<20} {_first_line(bench_dir / f'{name}.py')}")
        return 0
    if args.name not in names:
        raise cfgmod.ConfigError(f"unknown benchmark {args.name!r}; expected one of {', '.join(names)}")
    return subprocess.call([sys.executable, str(bench_dir / f"{args.name}.py"), *args.rest])


def _keys(name: str) -> list[str]:
    """`key: type = default` lines for an experiment's config keys or a component's keywords."""
    if name in EXPERIMENTS:
        defaults = getattr(EXPERIMENTS[name], "DEFAULTS", {})

        def walk(table, prefix=""):
            for key, value in table.items():
                if isinstance(value, dict):
                    yield from walk(value, f"{prefix}{key}.")
                else:
                    yield f"{prefix}{key}: {describe(key, value_kind(value))} = {value!r}"

        return list(walk(defaults)) or [f"(experiment {name!r} takes the keys of the components it names)"]
    for kind in KINDS:
        if name in available(kind):
            ctor = lookup(kind, name, name)
            kinds = parameter_kinds(ctor)
            params = inspect.signature(ctor).parameters
            return [f"{k}: {describe(k, kinds.get(k))}" + ("" if p.default is p.empty else f" = {p.default!r}")
                    for k, p in params.items() if k not in ("self", "key")]
    raise cfgmod.ConfigError(f"{name!r} is neither an experiment ({', '.join(sorted(EXPERIMENTS))}) nor a component "
                             "named by `simjax list`")


def cmd_list(args) -> int:
    if args.keys:
        print("\n".join(_keys(args.keys)))
        return 0
    for kind, label in zip(KINDS, ("neurons", "networks", "surrogates", "rules", "tasks", "optimizers")):
        print(f"{label + ':':<13}" + ", ".join(available(kind)))
    print("experiments: " + ", ".join(sorted(EXPERIMENTS)))
    configs = sorted(p.name for p in cfgmod.SHIPPED.glob("*.toml"))
    print("configs:     " + ", ".join(configs) + "  (run one by name from any folder: simjax run quickstart)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one experiment from a TOML config")
    p.add_argument("config")
    p.add_argument("--out", help="run folder (default runs/<name>-<time>)")
    p.add_argument("--quick", action="store_true", help="a smoke test at toy sizes (seconds to minutes)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("sweep", help="run the cartesian product of a config's [sweep] axes (resumes in --out)")
    p.add_argument("config")
    p.add_argument("--out", help="sweep folder (default runs/<name>-sweep-<time>); an existing one resumes")
    p.add_argument("--quick", action="store_true", help="a smoke test at toy sizes (seconds to minutes)")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("report", help="plots and tables for a run or sweep folder")
    p.add_argument("dir")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser("bench", help="list benchmarks, or run one (extra arguments are passed on)")
    p.add_argument("name", nargs="?")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    p = sub.add_parser("list", help="list neurons, networks, rules, tasks, experiments, configs")
    p.add_argument("--keys", metavar="NAME", help="the config keys (type = default) of an experiment or component")
    p.set_defaults(func=cmd_list)
    args = parser.parse_args(argv)
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return args.func(args)
    except cfgmod.ConfigError as err:
        print(f"simjax: config error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`
        sys.stderr.close()
        return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run() -> None:
    """The `simjax` command: `main` on the process's arguments, then the process ends at once with
    its status. Everything is written by then; skipping the interpreter's teardown means a late
    Ctrl-C or SIGTERM (after Python has restored its default handlers) cannot kill it with a
    signal, and XLA's threads are never torn down under a running program."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (output piped into e.g. `head`)
            pass
    os._exit(code)


if __name__ == "__main__":
    run()
