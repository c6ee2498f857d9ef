"""The ``simjax`` command line: ``run CONFIG``, ``list``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import config as cfgmod
from . import io


def _experiment(cfg: dict):
    from .experiments import EXPERIMENTS

    name = cfg.get("experiment", {}).get("name")
    if name not in EXPERIMENTS:
        raise cfgmod.ConfigError(f"experiment.name = {name!r} is not a known experiment; expected one of "
                                 f"{', '.join(sorted(EXPERIMENTS))}")
    return EXPERIMENTS[name]


def cmd_run(args) -> int:
    raw = cfgmod.load(args.config)
    module = _experiment(raw)
    cfg = cfgmod.merge(module.DEFAULTS, raw)
    if args.quick:
        cfg = cfgmod.merge(cfg, module.QUICK)
    module.validate(cfg)
    out_dir = Path(args.out) if args.out else io.new_run_dir("runs", cfg["experiment"]["name"])
    out_dir.mkdir(parents=True, exist_ok=True)
    io.write_json(out_dir / "config.json", {"config": cfg, "hash": cfgmod.digest(cfg)})
    module.run(cfg, out_dir)
    print(f"results written to {out_dir}")
    return 0


def cmd_list(args) -> int:
    from . import networks, neurons, rules, surrogates, tasks
    from .experiments import EXPERIMENTS

    def names(mod):
        return ", ".join(n for n in mod.__all__ if not n.startswith("Abstract") and n[0].isupper())

    print("neurons:     " + names(neurons))
    print("networks:    " + names(networks))
    print("surrogates:  " + names(surrogates))
    print("rules:       " + names(rules))
    print("tasks:       " + names(tasks))
    print("experiments: " + ", ".join(sorted(EXPERIMENTS)))
    configs = sorted(p.name for p in Path("configs").glob("*.toml")) if Path("configs").is_dir() else []
    print("configs:     " + (", ".join(configs) if configs else "(none in ./configs)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="simjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run one experiment from a TOML config")
    p.add_argument("config")
    p.add_argument("--out", help="run folder (default runs/<name>-<time>)")
    p.add_argument("--quick", action="store_true", help="a seconds-long version (for tests)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("list", help="list neurons, networks, rules, tasks, experiments, configs")
    p.set_defaults(func=cmd_list)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except cfgmod.ConfigError as err:
        print(f"simjax: config error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simjax: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
