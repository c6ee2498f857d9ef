"""Peak temporary memory of one BPTT training step vs sequence length (workload W3): simjax's memory
policies against the hand-written `lax.scan` and the one-trace floor, from XLA's own memory analysis.

The step is the one of `bptt_step.py` (recurrent LIF, 100 inputs, 10 readouts, cross-entropy of the
time-mean readout, Adam) at `N = 256`, `B = 8`. For each program the compiled executable's
`memory_analysis().temp_size_in_bytes` (buffers XLA allocates besides arguments and outputs) is
read at every `T`; nothing is run, so the figures are exact and independent of machine load.
Reported: the growth from the shortest to the longest `T` in units of one float32 trace of the
hidden state (`T B N x 4` bytes), the least that storing anything per step costs.

Usage: `python benchmarks/memory_vs_T.py [--quick] [--T 500 2000 8000]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402
import bptt_step  # noqa: E402

POLICIES = {"baseline": None, "simjax store": "store", "simjax checkpoint": "checkpoint",
            "simjax recompute": "recompute"}


def temp_mib(policy: str | None, N: int, T: int, B: int) -> float:
    import jax.numpy as jnp

    data = bptt_step.make_data(N, T, B)
    if policy is None:
        step = bptt_step.baseline_step(data, jnp.float32)[0]
    else:
        step = bptt_step.simjax_step(data, jnp.float32, memory=policy)[0]
    compiled = step.compile()
    compiled = getattr(compiled, "compiled", compiled)  # equinox wraps jax's Compiled
    return compiled.memory_analysis().temp_size_in_bytes / 2**20


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="T = 250, 1000")
    ap.add_argument("--T", type=int, nargs="+", default=None, help="sequence lengths (default 500 2000 8000)")
    ap.add_argument("--N", type=int, default=256)
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "memory_vs_T.json")
    args = ap.parse_args(argv)
    lengths = args.T or ([250, 1000] if args.quick else [500, 2000, 8000])
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    trace = lambda T: T * args.B * args.N * 4 / 2**20  # noqa: E731
    rows = []
    head = f"{'program':<18} | " + " ".join(f"{f'T={T}':>10}" for T in lengths) + " | growth MiB | traces"
    print(f"peak temporary memory (MiB) of one training step, N={args.N} B={args.B}\n{head}\n{'-' * len(head)}")
    for name, policy in POLICIES.items():
        mib = [temp_mib(policy, args.N, T, args.B) for T in lengths]
        growth = mib[-1] - mib[0]
        traces = growth / (trace(lengths[-1]) - trace(lengths[0]))
        rows.append({"program": name, "memory": policy, "temp_mib": dict(zip(map(str, lengths), mib)),
                     "growth_mib": growth, "growth_traces": traces})
        print(f"{name:<18} | " + " ".join(f"{m:>10.1f}" for m in mib) + f" | {growth:>10.1f} | {traces:>6.2f}",
              flush=True)
    print(f"one float32 trace grows by {trace(lengths[-1]) - trace(lengths[0]):.1f} MiB over this range")
    report = {"benchmark": "memory_vs_T", "started": started, "argv": sys.argv[1:], "machine": _common.machine(),
              "N": args.N, "B": args.B, "T": lengths, "results": rows}
    path = _common.write_json(args.out, report)
    print(f"\nwrote {path}")
    return report


if __name__ == "__main__":
    main()
