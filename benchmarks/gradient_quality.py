"""Cost of the gradient-quality report relative to the updates it summarises.

Workload: a recurrent LIF network (20 inputs, 64 neurons, 2 readouts) on a 100 ms pattern-generation
batch of 8 trials. For every learning rule available (exact, truncated BPTT, feedback alignment,
sign symmetry, direct feedback alignment, node and weight perturbation, e-prop when present) it
times, after compilation and interleaved:

- `exact`: one exact gradient (the unit of cost);
- `samples`: the rule's `samples` updates alone (one vmapped program);
- `report`: the whole report for that rule (`simjax.analysis.report_arrays`, one program);

and reports `report / samples` (the report's overhead; target <= 1.5) and `report / exact`.
Finally all rules' reports are compiled into ONE program and timed against the sum of the per-rule
reports. Writes `benchmarks/results/gradient_quality.json`. Single thread, pinned.

Streaming (`--streaming`): the README's report (FeedbackAlignment, 64 samples, RSNN 100-256-3,
1000 steps, batch 32, curvature) streamed in the chunk `gradient_quality` picks from memory: its
peak temporary memory (XLA's analysis) against the all-at-once program's, and its time; and on
the 64-neuron model above, where both fit, the time of a report streamed 8 samples at a time
against the all-at-once report (target within 1.2x).

Usage: `python benchmarks/gradient_quality.py [--quick] [--samples 64]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

RULES = [("exact", {}), ("truncated_bptt", {"k": 10}), ("feedback_alignment", {}), ("sign_symmetry", {}),
         ("direct_feedback_alignment", {}), ("node_perturbation", {"sigma": 1e-2, "samples": 1}),
         ("weight_perturbation", {"sigma": 1e-2, "samples": 1}), ("eprop", {"variant": "symmetric"}),
         ("eprop", {"variant": "random"})]


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--streaming", action="store_true", help="only the streaming (memory) cases")
    args = ap.parse_args(argv)
    threads = _common.single_thread()
    import equinox as eqx
    import jax

    import simjax as sj
    from simjax._app.registry import available, construct
    from simjax.analysis import report_arrays
    from simjax.analysis._gradient_quality import sample_updates

    samples = 8 if args.quick else args.samples
    repeats = 1 if args.quick else args.repeats
    task = sj.tasks.PatternGeneration(n_in=20, n_out=2, duration=100.0, seed=0)
    net = sj.networks.RSNN(n_in=20, n_rec=64, n_out=2, key=jax.random.key(0), in_scale=4.0)
    batch = task.sample(jax.random.key(1), 8)
    key = jax.random.key(2)
    rules = {f"{name}{'-' + str(kw.get('variant', kw.get('k', ''))) if kw and ('variant' in kw or 'k' in kw) else ''}":
             construct("rule", {"type": name, **kw}, name) for name, kw in RULES if name in available("rule")}
    exact = eqx.filter_jit(lambda: sj.rules.Exact()(net, task, batch, key)[1])
    block = jax.block_until_ready
    if args.streaming:
        return streaming(args, net, task, batch, key, samples, repeats, threads)
    rows = []
    for label, rule in rules.items():
        sampler = eqx.filter_jit(lambda r=rule: sample_updates(net, r, task, batch, key, samples))
        report = eqx.filter_jit(lambda r=rule: report_arrays(net, r, task, batch, key, samples=samples,
                                                             curvature=False))
        t0 = time.perf_counter()
        block(report())
        compile_s = time.perf_counter() - t0
        block(sampler()), block(exact())
        t = _common.interleaved({"exact": lambda: block(exact()), "samples": lambda: block(sampler()),
                                 "report": lambda: block(report())}, steps=3, repeats=repeats, reference="samples")
        row = {"rule": label, "exact_ms": t["exact"]["median_ms"], "samples_ms": t["samples"]["median_ms"],
               "report_ms": t["report"]["median_ms"], "overhead": t["report"]["ratio_paired"],
               "report_over_exact": t["report"]["median_ms"] / t["exact"]["median_ms"], "compile_s": compile_s}
        rows.append(row)
        print(f"{label:<28} exact {row['exact_ms']:8.1f} ms  {samples} samples {row['samples_ms']:9.1f} ms  "
              f"report {row['report_ms']:9.1f} ms  overhead {row['overhead']:.2f}x  "
              f"report/exact {row['report_over_exact']:6.1f}x", flush=True)
    everything = eqx.filter_jit(lambda: {label: report_arrays(net, r, task, batch, key, samples=samples,
                                                              curvature=False) for label, r in rules.items()})
    t0 = time.perf_counter()
    block(everything())
    compile_all = time.perf_counter() - t0
    t_all = _common.interleaved({"all": lambda: block(everything())}, steps=2, repeats=repeats)["all"]["median_ms"]
    total = sum(r["report_ms"] for r in rows)
    print(f"all {len(rules)} rules x {samples} samples in one program: {t_all:.0f} ms "
          f"(sum of separate reports {total:.0f} ms; compile {compile_all:.0f} s)")
    out = {"benchmark": "gradient_quality", "samples": samples, "threads": threads, "machine": _common.machine(),
           "rules": rows, "all_in_one_ms": t_all, "sum_separate_ms": total, "compile_all_s": compile_all}
    path = _common.write_json(_common.RESULTS / "gradient_quality.json", out)
    print(f"written {path}")
    return out


def streaming(args, net, task, batch, key, samples, repeats, threads) -> dict:
    import equinox as eqx
    import jax

    import simjax as sj
    from simjax.analysis import report_arrays
    from simjax.analysis._gradient_quality import auto_chunk_size, available_memory, compiled_memory

    block = jax.block_until_ready
    rule = sj.rules.FeedbackAlignment()
    out = {"benchmark": "gradient_quality_streaming", "threads": threads, "machine": _common.machine()}
    # both fit: streamed in chunks of 8 against all at once
    program = {c: eqx.filter_jit(lambda c=c: report_arrays(net, rule, task, batch, key, samples=samples, chunk_size=c))
               for c in (8, None)}
    for p in program.values():
        block(p())
    t = _common.interleaved({"streamed": lambda: block(program[8]()), "whole": lambda: block(program[None]())},
                            steps=3, repeats=repeats, reference="whole")
    out["small"] = {"samples": samples, "chunk_size": 8, "streamed_ms": t["streamed"]["median_ms"],
                    "whole_ms": t["whole"]["median_ms"], "time_ratio": t["streamed"]["ratio_paired"]}
    print(f"64 neurons, {samples} samples: streamed (chunks of 8) / all at once = {t['streamed']['ratio_paired']:.2f}x "
          f"time")
    # the README's report
    steps = 100 if args.quick else 1000
    big_task = sj.tasks.PatternGeneration(n_in=100, n_out=3, duration=float(steps), dt=1.0)
    big = sj.networks.RSNN(n_in=100, n_rec=256, n_out=3, key=jax.random.key(0))
    big_batch = big_task.sample(jax.random.key(1), 32)
    chunk = auto_chunk_size(big, rule, big_task, big_batch, key, samples=64)
    peak = {c: compiled_memory(lambda n, r, b, k, c=c: report_arrays(n, r, big_task, b, k, samples=64, chunk_size=c),
                               big, rule, big_batch, key).temp_size_in_bytes for c in (1, 4, chunk, None)}
    out["peak_GiB_by_chunk"] = {str(c): v / 2**30 for c, v in peak.items()}
    print("peak temporary memory by chunk: " + ", ".join(f"{c}: {v / 2**30:.2f} GiB" for c, v in peak.items()))
    report = eqx.filter_jit(lambda: report_arrays(big, rule, big_task, big_batch, key, samples=64, chunk_size=chunk))
    t0 = time.perf_counter()
    block(report())
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    block(report())
    out["readme"] = {"chunk_size": chunk, "available_GiB": available_memory() / 2**30,
                     "peak_streamed_GiB": peak[chunk] / 2**30, "peak_whole_GiB": peak[None] / 2**30,
                     "first_call_s": first, "time_s": time.perf_counter() - t0}
    r = out["readme"]
    print(f"README report (64 samples, {steps} steps): chunk {chunk}, peak {r['peak_streamed_GiB']:.2f} GiB "
          f"streamed vs {r['peak_whole_GiB']:.2f} GiB all at once; {r['time_s']:.0f} s "
          f"(first call with compilation {first:.0f} s)")
    path = _common.write_json(_common.RESULTS / "gradient_quality_streaming.json", out)
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
