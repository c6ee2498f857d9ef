"""Finding the neurons that spiked, chunk by chunk: the blocked spike counts of
`simjax.synapses._spike_ranks` against a prefix sum over every neuron.

Per step of a scan over random spike flags (`--rate` of the neurons spike per step, about a
22 Hz network at dt = 0.1 ms), the rows of every chunk of `16` spiking neurons, found by:

- `prefix + count`: the inclusive prefix sum of the flags (`jnp.cumsum`) and, per chunk, the
  number of prefix entries below each rank (one fused comparison of `16 x n`);
- `prefix + search`: the same prefix sum and a binary search per rank (`searchsorted`,
  unrolled);
- `blocks B`: the flags in blocks of `B` neurons (`spike_ranks`, `spike_rows`) for several `B`;
  `simjax` is the block size the library picks for that `n` (`block_size`);
- `floor`: the same scan doing nothing but reading one flag per step.

All programs of one size are timed interleaved (one pinned thread, median of `--repeats`);
printed in microseconds per step with the ratio to `simjax`. Every variant's rows are checked
against the first's before timing.

Usage: ``python benchmarks/spike_ranks.py [--quick] [--sizes 1000 4000 16000 40000]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

CHUNK = 16


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1000 and 4000 neurons, 500 steps, 3 repeats")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000, 16000, 40000])
    ap.add_argument("--rate", type=float, default=0.0022, help="fraction of neurons spiking per step")
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--blocks", type=int, nargs="+", default=[16, 32, 64, 128])
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "spike_ranks.json")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.steps, args.repeats = [1000, 4000], 500, 3
    return args


def finders(n: int, blocks: list[int]):
    """name -> function of one step's flags giving the summed rows of all its chunks (`n` for
    padding), with the loop over chunks each variant would run."""
    import jax
    import jax.numpy as jnp

    from simjax.synapses._spike_ranks import block_size, spike_ranks, spike_rows

    def loop(count, rows_of):
        def body(c, acc):
            rows = rows_of(c)
            return acc + jnp.sum(jnp.where(rows < n, rows, 0))

        return jax.lax.fori_loop(0, (count + CHUNK - 1) // CHUNK, body, jnp.int32(0))

    def ranks_of_chunk(c):
        return c * CHUNK + jnp.arange(1, CHUNK + 1, dtype=jnp.int32)

    def prefix_count(s):
        prefix = jnp.cumsum(jax.lax.optimization_barrier((s != 0).astype(jnp.int32)))

        def rows_of(c):
            r = ranks_of_chunk(c)
            rows = jnp.sum(prefix[None, :] < r[:, None], axis=1, dtype=jnp.int32)
            return jnp.where(r <= prefix[-1], rows, n)

        return loop(prefix[-1], rows_of)

    def prefix_search(s):
        prefix = jnp.cumsum(jax.lax.optimization_barrier((s != 0).astype(jnp.int32)))

        def rows_of(c):
            r = ranks_of_chunk(c)
            rows = jnp.searchsorted(prefix, r, side="left", method="scan_unrolled").astype(jnp.int32)
            return jnp.where(r <= prefix[-1], rows, n)

        return loop(prefix[-1], rows_of)

    def blocked(size=None):
        def find(s):
            ranks = spike_ranks(s, size)
            return loop(ranks.count, lambda c: spike_rows(ranks, n, n, c, CHUNK))

        return find

    out = {"prefix + count": prefix_count, "prefix + search": prefix_search}
    out.update({f"blocks {b}": blocked(b) for b in blocks})
    out[f"simjax (blocks {block_size(n)})"] = blocked()
    out["floor"] = lambda s: (s[0] != 0).astype(jnp.int32)
    return out


def main():
    args = parse()
    info = _common.single_thread()
    import jax
    import jax.numpy as jnp
    import numpy as np

    result = {"machine": _common.machine(), "threads": info, "rate": args.rate, "steps": args.steps,
              "chunk": CHUNK, "sizes": {}}
    for n in args.sizes:
        flags = (jax.random.uniform(jax.random.key(n), (args.steps, n)) < args.rate).astype(jnp.float32)
        fns, reference, outputs = {}, None, {}
        for name, find in finders(n, args.blocks).items():
            def run(fl, find=find):
                def body(carry, s):
                    # the carry feeds each step so that XLA cannot hoist or batch the steps
                    total = find(jax.lax.optimization_barrier(s + carry * 0))
                    return (total % 2).astype(s.dtype) * 0, total
                return jax.lax.scan(body, jnp.float32(0), fl)[1]

            program = jax.jit(run)
            outputs[name] = np.asarray(program(flags))
            fns[name] = (lambda program=program: program(flags).block_until_ready())
            if name.startswith("simjax"):
                reference = name
        for name, out in outputs.items():
            if name != "floor" and not np.array_equal(out, outputs["prefix + count"]):
                raise AssertionError(f"{name} found other rows than the prefix sum at n = {n}")
        timing = _common.interleaved(fns, steps=1, repeats=args.repeats, reference=reference)
        per_step = {k: timing[k]["median_ms"] * 1000 / args.steps for k in fns}
        ratios = {k: _common.paired_ratio(timing, k, reference) for k in fns}
        print(f"n = {n} ({float(flags.sum(1).mean()):.1f} spikes per step): us per step, ratio to {reference}")
        for k in fns:
            print(f"  {k:24s} {per_step[k]:8.2f}  {ratios[k]:6.2f}")
        result["sizes"][str(n)] = {"us_per_step": per_step, "ratio_to_simjax": ratios, "reference": reference}
    print("wrote", _common.write_json(args.out, result))


if __name__ == "__main__":
    main()
