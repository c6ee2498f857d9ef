"""Shared benchmark utilities: single-thread pinning, interleaved timing with medians, the matmul
FLOP floor, machine description and JSON output.

`single_thread` must run before `jax` is imported (XLA reads its flags once).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


# ------------------------------------------------------------------ threads and cores
def _cpu_busy() -> dict[int, int]:
    """Busy jiffies (all but idle and iowait) per CPU, from `/proc/stat`."""
    busy = {}
    try:
        with open("/proc/stat") as f:
            for line in f:
                name, *vals = line.split()
                if name.startswith("cpu") and name != "cpu":
                    v = [int(x) for x in vals]
                    busy[int(name[3:])] = sum(v) - v[3] - (v[4] if len(v) > 4 else 0)
    except OSError:
        pass
    return busy


def least_busy_core(window: float = 0.3) -> int | None:
    """The allowed CPU that was least busy over `window` seconds (`None` if unknown)."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:
        return None
    a = _cpu_busy()
    time.sleep(window)
    b = _cpu_busy()
    loads = {c: b.get(c, 0) - a.get(c, 0) for c in allowed}
    return min(loads, key=loads.get) if loads else None


def single_thread(pin: bool = True) -> dict:
    """Restricts XLA/BLAS/OpenMP to one thread and pins the process to the least busy core.

    Call before importing `jax`. **Returns:** a description of what was set.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    extra = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    os.environ["XLA_FLAGS"] = f"{flags} {extra}".strip()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    core = least_busy_core() if pin else None
    if core is not None:
        os.sched_setaffinity(0, {core})
    return {"xla_flags": os.environ["XLA_FLAGS"], "pinned_core": core}


class ForeignLoad:
    """Average number of cores (among those this process may use) busy with *other* processes
    between `start` and `stop`: a contention indicator stored with each timing."""

    def start(self):
        self._a = self._snap()
        return self

    def stop(self) -> float:
        b = self._snap()
        wall = b[0] - self._a[0]
        hz = os.sysconf("SC_CLK_TCK")
        return max(0.0, ((b[1] - self._a[1]) - (b[2] - self._a[2])) / hz / wall) if wall > 0 else 0.0

    @staticmethod
    def _snap():
        busy = _cpu_busy()
        allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set(busy)
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        own = int(fields[11]) + int(fields[12])
        return time.perf_counter(), sum(busy.get(c, 0) for c in allowed), own


# ------------------------------------------------------------------ timing
def timed(fn: Callable[[], object]) -> float:
    """Wall time of one call of `fn` (which must block until its result is ready)."""
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _timed_both(fn: Callable[[], object]) -> tuple[float, float]:
    """`(wall, cpu)` seconds of one call; `cpu` is this process's CPU time (all threads),
    which other processes on a shared machine inflate much less than wall time."""
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def interleaved(fns: dict[str, Callable[[], object]], *, steps: int, repeats: int,
                reference: str | None = None) -> dict[str, dict]:
    """Times every function `steps` times per repeat, cycling through the functions `repeats`
    times (a, b, a, b, ...), so that slow phases of a shared machine hit all of them alike.

    **Returns:** per name: `median_ms` (wall) and `cpu_median_ms` over all timed calls,
    `min_ms`, per-repeat wall medians, the foreign load during its calls and, if `reference`
    names one of the functions, `ratio_paired`: the median over repeats of (this repeat's median
    CPU time / the reference's in the same repeat), the estimate least disturbed by other load.
    """
    wall = {name: [] for name in fns}
    cpu = {name: [] for name in fns}
    reps = {name: [] for name in fns}
    cpu_reps = {name: [] for name in fns}
    foreign = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            load = ForeignLoad().start()
            ts = [_timed_both(fn) for _ in range(steps)]
            foreign[name].append(load.stop())
            wall[name].extend(t[0] for t in ts)
            cpu[name].extend(t[1] for t in ts)
            reps[name].append(statistics.median(t[0] for t in ts))
            cpu_reps[name].append(statistics.median(t[1] for t in ts))
    out = {}
    for name in fns:
        out[name] = {"median_ms": 1e3 * statistics.median(wall[name]), "min_ms": 1e3 * min(wall[name]),
                     "cpu_median_ms": 1e3 * statistics.median(cpu[name]),
                     "repeat_median_ms": [round(1e3 * t, 3) for t in reps[name]],
                     "cpu_repeat_median_ms": [round(1e3 * t, 3) for t in cpu_reps[name]],
                     "foreign_cores": round(statistics.mean(foreign[name]), 3), "n": len(wall[name])}
        if reference is not None:
            out[name]["ratio_paired"] = _median_ratio(cpu_reps[name], cpu_reps[reference])
    return out


def _median_ratio(times, reference_times, scale=1.0) -> float:
    return round(statistics.median(x / (scale * y) for x, y in zip(times, reference_times)), 4)


def paired_ratio(timing: dict, name: str, reference: str, scale: float = 1.0) -> float:
    """Median over repeats of `name`'s CPU time / (`scale` x `reference`'s) in the same repeat
    (both timed by `interleaved`)."""
    return _median_ratio(timing[name]["cpu_repeat_median_ms"], timing[reference]["cpu_repeat_median_ms"], scale)


def best_of(fn: Callable[[], object], *, min_time: float, max_reps: int) -> float:
    """Best wall time of repeated calls (the achievable rate, for the floor)."""
    fn()
    best, reps, t0 = float("inf"), 0, time.perf_counter()
    while reps < max_reps and time.perf_counter() - t0 < min_time:
        best = min(best, timed(fn))
        reps += 1
    return best


# ------------------------------------------------------------------ FLOP floor
def rnn_matmul_flops(*, B: int, T: int, n_in: int, N: int, n_out: int) -> dict[str, int]:
    """Matmul FLOPs of one forward pass of an input -> recurrent -> readout network; a training
    step is counted as 3x the forward pass (the backward pass is ~2 matmuls per forward matmul)."""
    f_in, f_rec, f_out = 2 * B * T * n_in * N, 2 * B * T * N * N, 2 * B * T * N * n_out
    fwd = f_in + f_rec + f_out
    return {"input": f_in, "recurrent": f_rec, "readout": f_out, "forward": fwd, "train": 3 * fwd}


def matmul_rates(*, B: int, T: int, n_in: int, N: int, n_out: int, dtype: str = "float32",
                 min_time: float = 0.5) -> dict[str, float]:
    """Best measured GFLOP/s on this machine (same threading as the benchmark) for the network's
    matmul shapes, in NumPy and in jitted JAX:

    - `*_step`: one recurrent step `(B, N) x (N, N)`;
    - `jax_chain`: a `lax.scan` of `T` dependent `(B, N) x (N, N)` matmuls (what the
      recurrence forces);
    - `*_all`: all steps as one `(T B, N) x (N, N)` matmul (no dependency);
    - `*_input` / `*_readout`: `(T B, n_in) x (n_in, N)` and `(T B, N) x (N, n_out)`.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    M = min(T * B, 16000)
    rates = {}

    def np_rate(m, k, n):
        a = rng.standard_normal((m, k)).astype(dtype)
        b = rng.standard_normal((k, n)).astype(dtype)
        return 2 * m * k * n / best_of(lambda: a @ b, min_time=min_time, max_reps=2000) / 1e9

    rates["numpy_step"] = np_rate(B, N, N)
    rates["numpy_all"] = np_rate(M, N, N)
    rates["numpy_input"] = np_rate(M, n_in, N)
    rates["numpy_readout"] = np_rate(M, N, n_out)

    w = jnp.asarray(rng.standard_normal((N, N)) / np.sqrt(N), dtype)
    s0 = jnp.asarray(rng.standard_normal((B, N)), dtype)
    one = jax.jit(lambda a, b: a @ b)

    @jax.jit
    def chain(s, w):
        return jax.lax.scan(lambda s, _: (jnp.tanh(s @ w), None), s, None, length=T)[0]

    def jax_rate(m, k, n):
        a = jnp.asarray(rng.standard_normal((m, k)), dtype)
        b = jnp.asarray(rng.standard_normal((k, n)), dtype)
        t = best_of(lambda: one(a, b).block_until_ready(), min_time=min_time, max_reps=2000)
        return 2 * m * k * n / t / 1e9

    rates["jax_step"] = jax_rate(B, N, N)
    rates["jax_all"] = jax_rate(M, N, N)
    rates["jax_input"] = jax_rate(M, n_in, N)
    rates["jax_readout"] = jax_rate(M, N, n_out)
    t_chain = best_of(lambda: chain(s0, w).block_until_ready(), min_time=2 * min_time, max_reps=50)
    rates["jax_chain"] = 2 * B * N * N * T / t_chain / 1e9
    return {k: round(v, 2) for k, v in rates.items()}


def matmul_floor_program(*, B: int, T: int, n_in: int, N: int, n_out: int, dtype: str = "float32"):
    """`(program, scale)`: a jitted `(T B, N) x (N, N)` product (the largest of the network's
    matmuls, the one this machine runs fastest) and the factor that turns its time into a training
    step's matmul FLOPs (`rnn_matmul_flops`) at that rate. Timed interleaved with the programs it
    bounds, it gives a floor measured under the same machine load (`floor_ms` charges the FLOPs at
    a best-of rate measured before or after them)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(1)
    a = jnp.asarray(rng.standard_normal((T * B, N)), dtype)
    w = jnp.asarray(rng.standard_normal((N, N)), dtype)
    product = jax.jit(lambda a, w: a @ w)
    scale = rnn_matmul_flops(B=B, T=T, n_in=n_in, N=N, n_out=n_out)["train"] / (2 * T * B * N * N)
    return (lambda: product(a, w).block_until_ready()), scale


def floor_ms(flops: dict[str, int], rates: dict[str, float]) -> dict[str, float]:
    """Lower bounds on a training step, in ms.

    - `peak`: all training FLOPs at the best measured rate (any shape);
    - `sequential`: recurrent FLOPs at the best *dependent-step* rate (one `(B, N) x (N, N)`
      matmul per step, as the recurrence forces), the rest at the best rate.
    """
    peak = max(rates.values())
    seq = max(rates["jax_chain"], rates["jax_step"], rates["numpy_step"])
    mult = flops["train"] // flops["forward"]
    return {"peak": 1e3 * flops["train"] / (peak * 1e9),
            "sequential": 1e3 * mult * (flops["recurrent"] / (seq * 1e9)
                                        + (flops["input"] + flops["readout"]) / (peak * 1e9)),
            "peak_gflops": peak, "sequential_gflops": seq}


# ------------------------------------------------------------------ machine and output
def machine() -> dict:
    """CPU model, core counts and library versions."""
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "Flags"):
                value = value.strip()
                if key.strip() == "Flags":
                    value = " ".join(f for f in value.split() if f.startswith(("avx", "amx", "fma")))
                info[key.strip()] = value
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import equinox
        import jax
        import jaxlib
        import numpy
        import optax

        info.update(jax=jax.__version__, jaxlib=jaxlib.__version__, equinox=equinox.__version__,
                    optax=optax.__version__, numpy=numpy.__version__, backend=jax.default_backend())
    except ImportError:
        pass
    return info


def write_json(path: Path, obj: dict) -> Path:
    """Writes `obj` as indented JSON, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    return path
