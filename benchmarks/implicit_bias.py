"""The implicit-bias tables as vmapped programs against a loop of the jitted single run and a per-run
NumPy implementation, in the same process.

Workloads (the configs' full sizes):

- XOR detection: m = 6, 10, 20, 40 x k = 2, 4, 10, 50 x 20 seeds, 5000 full-batch steps, one
  vmapped program per width (`simjax._app.experiments.implicit_bias.detection_run`);
- read-once DNF: m = 128, 512 x init scale 1e-3, 0.3, 1 x 10 seeds, r = 50, 3000 steps, one program
  (`dnf_run`).

For each table it times, after compilation: `vmapped` (the whole table in one `vmap`), `chunked`
(`lax.map` over vmapped chunks of `--chunk` runs, what the experiment runs by default), `loop` (the same
single-run program jitted once, called run after run; timed on `--loop-runs` runs per program and
scaled to the table) and `numpy` (gradient descent written out in NumPy, the same data and
initialisation; timed on `--numpy-runs` runs per program and scaled). The NumPy runs double as an
independent check: their final weights must match the JAX runs'. Single thread, pinned (see
`_common.py`). Writes `benchmarks/results/implicit_bias.json`.

Usage: `python benchmarks/implicit_bias.py [--quick] [--loop-runs 8] [--numpy-runs 2]`
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402


def numpy_maxpool(x, y, weights, w, u, lr, steps):
    """Hinge-loss gradient descent of the max-pool detector, NumPy (x [n, d, p])."""
    w, u = w.copy(), u.copy()
    scale = weights / weights.sum()
    rows = np.arange(x.shape[0])[:, None]

    def side(f):
        z = np.einsum("ndp,kp->nkd", x, f)
        j = np.argmax(z, axis=2)
        m = np.take_along_axis(z, j[..., None], axis=2)[..., 0]
        return m, j

    for _ in range(steps):
        mw, jw = side(w)
        mu, ju = side(u)
        out = np.maximum(mw, 0).sum(1) - np.maximum(mu, 0).sum(1)
        g = -y * (y * out < 1) * scale
        gw = np.einsum("nk,nkp->kp", g[:, None] * (mw > 0), x[rows, jw])
        gu = -np.einsum("nk,nkp->kp", g[:, None] * (mu > 0), x[rows, ju])
        w -= lr * gw
        u -= lr * gu
    return w, u


def numpy_convex(x, y, weights, w, b, lr, steps):
    """Hinge-loss gradient descent of the convex ReLU network (offset -1), NumPy."""
    w, b = w.copy(), b.copy()
    scale = weights / weights.sum()
    for _ in range(steps):
        pre = x @ w.T + b
        out = np.maximum(pre, 0).sum(1) - 1.0
        g = (-y * (y * out < 1) * scale)[:, None] * (pre > 0)
        w -= lr * g.T @ x
        b -= lr * g.sum(0)
    return w, b


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small tables, 200 steps")
    ap.add_argument("--loop-runs", type=int, default=8)
    ap.add_argument("--numpy-runs", type=int, default=2)
    ap.add_argument("--chunk", type=int, default=16, help="runs per vmapped chunk of the chunked program")
    args = ap.parse_args(argv)
    threads = _common.single_thread()
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    import simjax as sj
    from simjax._app import config
    from simjax._app.experiments import implicit_bias as ib

    over = {"train": {"seeds": 20}}
    if args.quick:
        over = {"train": {"seeds": 2}, "xor": {"steps": 200, "widths": [2, 50]}, "dnf": {"steps": 200}}
    cfg = config.merge(ib.DEFAULTS, config.overlay(over, {}))
    dnf_cfg = config.merge(cfg, {"train": {"seeds": 2 if args.quick else 10}})
    block = jax.block_until_ready
    dtype = jnp.result_type(float)

    def programs():
        xc = cfg["xor"]
        task = ib.detection_task(cfg, "xor")
        for k in xc["widths"]:
            grid = ib._mesh(seed=np.arange(cfg["train"]["seeds"]), size=np.asarray(xc["sizes"]))
            yield "xor", f"k={k}", ib.detection_run(cfg, "xor", k), grid, (task, k, xc)
        dc = dnf_cfg["dnf"]
        grid = ib._mesh(seed=np.arange(dnf_cfg["train"]["seeds"]), size=np.asarray(dc["sizes"]),
                        init_scale=np.asarray(dc["init_scales"], float))
        yield "dnf", "all", ib.dnf_run(dnf_cfg), grid, (None, None, dc)

    def numpy_run(table, extra, point):
        task, k, c = extra
        key = jax.random.key(int(point["seed"]))
        largest = max(c["sizes"])
        weights = (np.arange(largest) < point["size"]).astype(float)
        t = sj.tasks.ReadOnceDNF(c["dim"], c["terms"]) if table == "dnf" else task
        data = t.sample(jax.random.fold_in(key, 1), largest)
        x, y = np.asarray(data.inputs), np.asarray(data.targets)
        if table == "xor":
            net = sj.networks.MaxPoolDetector(2, k, init_scale=c["init_scale"], key=jax.random.fold_in(key, 0))
            args_ = (np.asarray(net.w), np.asarray(net.u))
            t0 = time.perf_counter()
            res = numpy_maxpool(x, y, weights, *args_, c["learning_rate"], c["steps"])
        else:
            net = sj.networks.ConvexReLUNetwork(c["dim"], c["width"], init_scale=point["init_scale"],
                                       key=jax.random.fold_in(key, 0))
            args_ = (np.asarray(net.w), np.asarray(net.b))
            t0 = time.perf_counter()
            res = numpy_convex(x, y, weights, *args_, c["learning_rate"], c["steps"])
        return time.perf_counter() - t0, res

    results = {}
    for table, label, run, grid, extra in programs():
        n = len(grid["seed"])
        cols = [jnp.asarray(v, jnp.uint32 if k == "seed" else dtype) for k, v in grid.items()]
        batched = jax.jit(jax.vmap(run))
        single = jax.jit(run)
        t0 = time.perf_counter()
        block(batched(*cols))
        compile_vmapped = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = block(batched(*cols))
        t_vmapped = time.perf_counter() - t0
        chunked = jax.jit(lambda *c, run=run: jax.lax.map(lambda a: run(*a), c, batch_size=args.chunk))
        block(chunked(*cols))
        t0 = time.perf_counter()
        block(chunked(*cols))
        t_chunked = time.perf_counter() - t0
        block(single(*(c[0] for c in cols)))
        picks = np.linspace(0, n - 1, min(args.loop_runs, n)).astype(int)
        t0 = time.perf_counter()
        for i in picks:
            block(single(*(c[i] for c in cols)))
        t_loop = (time.perf_counter() - t0) / len(picks) * n
        np_picks = np.linspace(0, n - 1, min(args.numpy_runs, n)).astype(int)
        t_np, max_dev = 0.0, 0.0
        for i in np_picks:
            dt, res = numpy_run(table, extra, {k: v[i] for k, v in grid.items()})
            t_np += dt
            ref = (out["w"][i], out["u"][i] if table == "xor" else out["b"][i])
            max_dev = max(max_dev, *(float(np.max(np.abs(a - b))) for a, b in zip(res, ref)))
        t_np = t_np / len(np_picks) * n
        row = {"runs": n, "vmapped_s": t_vmapped, "chunked_s": t_chunked, "loop_s_scaled": t_loop,
               "numpy_s_scaled": t_np, "compile_and_first_run_vmapped_s": compile_vmapped,
               "vmap_over_loop": t_loop / t_vmapped, "chunked_over_loop": t_loop / t_chunked,
               "chunked_over_numpy": t_np / t_chunked, "numpy_max_weight_difference": max_dev}
        results.setdefault(table, {})[label] = row
        print(f"{table} {label:>5}: {n:>3} runs  vmapped {t_vmapped:7.2f} s  chunked {t_chunked:7.2f} s  "
              f"loop {t_loop:7.2f} s  numpy {t_np:8.2f} s  -> vmapped {row['vmap_over_loop']:4.2f}x / chunked "
              f"{row['chunked_over_loop']:4.2f}x the loop, chunked {row['chunked_over_numpy']:5.1f}x numpy "
              f"(numpy weights within {max_dev:.1e})", flush=True)
    for table, rows in results.items():
        keys = ("vmapped_s", "chunked_s", "loop_s_scaled", "numpy_s_scaled")
        tot = {k: sum(r[k] for r in rows.values()) for k in keys}
        rows["total"] = {**tot, "vmap_over_loop": tot["loop_s_scaled"] / tot["vmapped_s"],
                         "chunked_over_loop": tot["loop_s_scaled"] / tot["chunked_s"],
                         "chunked_over_numpy": tot["numpy_s_scaled"] / tot["chunked_s"]}
        print(f"{table} table: vmapped {tot['vmapped_s']:.1f} s ({rows['total']['vmap_over_loop']:.2f}x the jitted "
              f"loop), chunked {tot['chunked_s']:.1f} s ({rows['total']['chunked_over_loop']:.2f}x the loop, "
              f"{rows['total']['chunked_over_numpy']:.1f}x NumPy)")
    out = {"benchmark": "implicit_bias", "quick": args.quick, "threads": threads, "machine": _common.machine(),
           "devices": [str(d) for d in jax.devices()], "results": results}
    path = _common.write_json(_common.RESULTS / "implicit_bias.json", out)
    print(f"written {path}")
    return out


if __name__ == "__main__":
    main()
