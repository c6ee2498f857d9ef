"""The SHD-layout loader feeding a training step: batches per second from `simjax.data.SpikingHDF5`
against the training step they feed, and against a hand-written h5py + NumPy loader, in one run.

Workload: a synthetic file in the Spiking Heidelberg Digits layout, written here (SHD's size: 8156
samples, 700 channels; spike times in seconds as float32, units as uint16, Poisson counts of mean
6000 spikes per sample over 1 s, uniform times and channels). Each batch is 32 random samples binned
to T steps of dt = 1000 / T ms (`[T, 32, 700]` float32).

- **loader**: `SpikingHDF5(path, dt=..., duration=1000.0).batch(indices)` (opens the file, reads the
  32 samples, bins them).
- **baseline**: the same with h5py and `numpy.histogram2d` written by hand (file kept open).
- **step**: one BPTT training step of the W1 network at SHD's input size: 700 inputs -> N LIF
  (`tau_mem = 20 ms`) -> 20 leaky readouts, T steps, batch 32, cross-entropy of the time-mean
  readout, `simjax.rules.Exact` + Adam, `eqx.filter_jit` (the input batch is copied to the device
  inside the timed call).

Reported: median milliseconds per batch of each, `loader / step` (the target: at most 0.10, i.e.
loading costs no more than 10 % of a training step; a loader in a background thread would hide
it entirely), and `loader / baseline`. Single thread, pinned; interleaved rounds.

Usage: `python benchmarks/data_pipeline.py [--quick] [--samples 8156] [--N 256] [--T 500]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

CHANNELS, BATCH, N_OUT, MEAN_SPIKES = 700, 32, 20, 6000


def write_file(path: Path, samples: int, seed: int = 0) -> float:
    """Writes the synthetic SHD-layout file; returns its size in MB."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (samples,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (samples,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(samples):
            k = rng.poisson(MEAN_SPIKES)
            times[i] = np.sort(rng.uniform(0.0, 1.0, k)).astype(np.float32)
            units[i] = rng.integers(0, CHANNELS, k).astype(np.uint16)
        f["labels"] = rng.integers(0, N_OUT, samples).astype(np.uint8)
    return path.stat().st_size / 1e6


def baseline_loader(path: Path, steps: int):
    """A hand-written loader: h5py (file kept open) and `numpy.histogram2d`."""
    import h5py
    import numpy as np

    f = h5py.File(path, "r")
    times, units, labels = f["spikes/times"], f["spikes/units"], f["labels"][()]
    edges_t = np.linspace(0.0, 1.0, steps + 1)
    edges_c = np.arange(CHANNELS + 1) - 0.5

    def load(indices):
        out = np.empty((steps, len(indices), CHANNELS), np.float32)
        for row, i in enumerate(indices):
            out[:, row], _, _ = np.histogram2d(times[i], units[i], bins=(edges_t, edges_c))
        return out, labels[indices]

    return load, f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--samples", type=int, default=8156)
    parser.add_argument("--N", type=int, default=256)
    parser.add_argument("--T", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    if args.quick:
        args.samples, args.N, args.T, args.repeats, args.steps = 256, 64, 100, 2, 3
    pinned = _common.single_thread()

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import simjax as sj

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "shd_synthetic.h5"
        start = time.perf_counter()
        size_mb = write_file(path, args.samples)
        print(f"wrote {args.samples} samples, {size_mb:.0f} MB, in {time.perf_counter() - start:.1f} s")
        dt = 1000.0 / args.T
        data = sj.data.SpikingHDF5(path, dt=dt, duration=1000.0)
        rng = np.random.default_rng(1)
        draw = lambda: np.sort(rng.choice(len(data), BATCH, replace=False))
        base, handle = baseline_loader(path, args.T)

        # the two loaders agree (away from bin edges the conventions coincide)
        idx = draw()
        ours, theirs = np.asarray(data.batch(idx).inputs), base(idx)[0]
        assert ours.shape == theirs.shape and abs(ours.sum() - theirs.sum()) <= 1e-3 * theirs.sum()

        net = sj.networks.RSNN(n_in=CHANNELS, n_rec=args.N, n_out=N_OUT, neuron=sj.neurons.LIF(tau_mem=20.0),
                               key=jax.random.key(0), tau_out=20.0)
        task = sj.tasks.Supervised(loss="cross_entropy", readout="mean", dt=dt)
        rule, optimizer = sj.rules.Exact(), optax.adam(1e-3)
        state = {"net": net, "opt": optimizer.init(sj.parameters.params(net))}

        @eqx.filter_jit
        def train_step(net, opt_state, x, y):
            loss, updates, _ = rule(net, task, sj.tasks.Batch(inputs=x, targets=y), jax.random.key(0))
            updates, opt_state = optimizer.update(updates, opt_state, sj.parameters.params(net))
            return eqx.apply_updates(net, updates), opt_state, loss

        batch = data.batch(idx)
        x0, y0 = batch.inputs, batch.targets.astype(np.int32)

        def step():
            state["net"], state["opt"], loss = train_step(state["net"], state["opt"], jnp.asarray(x0),
                                                          jnp.asarray(y0))
            jax.block_until_ready(loss)

        step()
        step()
        fns = {"loader": lambda: data.batch(draw()), "baseline": lambda: base(draw()), "step": step}
        timing = _common.interleaved(fns, steps=args.steps, repeats=args.repeats, reference="step")
        handle.close()

    loader, baseline, train = (timing[k]["median_ms"] for k in ("loader", "baseline", "step"))
    result = {
        "workload": {"samples": args.samples, "channels": CHANNELS, "mean_spikes": MEAN_SPIKES, "batch": BATCH,
                     "T": args.T, "N": args.N, "file_mb": round(size_mb, 1)},
        "median_ms": {"loader": loader, "baseline": baseline, "step": train},
        "loader_over_step": loader / train, "loader_over_baseline": loader / baseline,
        "samples_per_second": BATCH / (loader / 1e3), "target_loader_over_step": 0.10,
        "timing": timing, "threads": pinned, "machine": _common.machine(), "quick": args.quick,
    }
    print(f"loader {loader:.2f} ms/batch ({result['samples_per_second']:.0f} samples/s), hand-written h5py "
          f"{baseline:.2f} ms, training step {train:.1f} ms (N={args.N}, T={args.T})")
    print(f"loader / step = {result['loader_over_step']:.3f} (target <= 0.10); "
          f"loader / hand-written = {result['loader_over_baseline']:.2f}")
    name = "data_pipeline_quick.json" if args.quick else "data_pipeline.json"
    print("wrote", _common.write_json(_common.RESULTS / name, result))


if __name__ == "__main__":
    main()
