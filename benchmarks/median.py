"""Medians of non-negative arrays: `simjax.analysis._group_statistics.median_nonnegative` (selection
by bisection on the float bit pattern) against `jnp.median` (XLA's sort), on the shapes the
gradient-quality report uses (jackknife replicates x parameters).

Reported: milliseconds per call (interleaved rounds, medians of CPU time, one pinned thread), the
ratio `jnp.median` / `median_nonnegative`, and the largest difference of the two (they must agree
exactly).

Usage: `python benchmarks/median.py [--quick]`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "median.json")
    args = ap.parse_args()
    threads = _common.single_thread(pin=True)

    import jax
    import jax.numpy as jnp

    from simjax.analysis._group_statistics import median_nonnegative

    shapes = [(9, 1_000), (9, 10_000)] if args.quick else [(9, 1_000), (9, 10_000), (9, 100_000), (9, 1_000_000)]
    rows = []
    for shape in shapes:
        x = jax.random.exponential(jax.random.key(0), shape, jnp.float32)
        select = jax.jit(median_nonnegative)
        sort = jax.jit(lambda a: jnp.median(a, axis=-1))
        difference = float(jnp.max(jnp.abs(select(x) - sort(x))))
        timing = _common.interleaved({"selection": lambda: jax.block_until_ready(select(x)),
                                      "sort": lambda: jax.block_until_ready(sort(x))},
                                     steps=3 if args.quick else 10, repeats=3 if args.quick else 7)
        ratio = _common.paired_ratio(timing, "sort", "selection")
        rows.append({"shape": list(shape), "timing": timing, "ratio_sort_over_selection": ratio,
                     "max_difference": difference})
        print(f"{str(shape):16s} selection {timing['selection']['cpu_median_ms']:9.3f} ms   sort "
              f"{timing['sort']['cpu_median_ms']:9.3f} ms   sort/selection {ratio:5.2f}x   max diff {difference:.1g}")
    path = _common.write_json(args.out, {"benchmark": "median", "threads": threads, "machine": _common.machine(),
                                         "rows": rows})
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
