"""One StereoSpike training step (forward, backward, Adam) of the scaled network: simjax vs. the
same network written by hand in plain JAX, measured in the same process.

Workload (identical in both): the scaled StereoSpike (channels 4-8-16-32-64, 5x5 kernels, two
3x3 SEW blocks at 64 channels, 4-scale I-neuron readout, arctan surrogate alpha=2, sigmoid alpha=4
in the bottleneck), a fixed batch of 8 binocular random-dot stereograms of 64x96 pixels (4
event-count maps), the multi-scale scale-invariant + 0.5 x zero-padded Sobel loss with 5 % NaN
pixels, one Adam step (lr 1e-3), float32.

- **simjax**: what a user writes: `simjax.networks.StereoSpike`, `simjax.tasks.RandomDotStereo`
  (its `loss`), `simjax.rules.Exact`, `optax.adam`, `eqx.filter_jit`.
- **baseline**: the same step with a dict of weight arrays, `lax.conv_general_dilated`, a
  `jax.custom_jvp` Heaviside and the loss written out (no simjax import in its code path).

- **spikingjelly**: the same network in PyTorch + SpikingJelly (`benchmarks/_stereospike_torch.py`,
  `neuron.IFNode` single-step with `surrogate.ATan` / `surrogate.Sigmoid`, `torch.optim.Adam`), run
  by a separate Python environment in a subprocess that stays alive and times its own steps on
  request, so its repeats interleave with the other two on the same pinned core. The environment
  is optional and never a simjax dependency: `--peer-python` or `$SIMJAX_SPIKINGJELLY_PYTHON`
  (default `~/peer-venvs/spikingjelly/bin/python`); without it the JSON records the skip and how
  to create it:

      python3 -m venv ~/peer-venvs/spikingjelly
      ~/peer-venvs/spikingjelly/bin/pip install torch  # a CPU build, e.g. a local CPU wheel
      ~/peer-venvs/spikingjelly/bin/pip install --no-deps spikingjelly
      ~/peer-venvs/spikingjelly/bin/pip install numpy scipy tqdm loguru packaging

Before timing, the losses and gradients of simjax and the plain-JAX step are compared in float64
on the same weights (also without the Sobel term, whose `|.|` passes back the sign of responses
that are zero up to rounding), and so are SpikingJelly's (the parameter counts of all three are
printed).
Single thread, pinned to the least busy core; warm-up steps, then interleaved repeats of
individually timed steps; medians reported, the ratio simjax / baseline (target <= 1.05) and
simjax / SpikingJelly (target < 1).

GPU plan (no GPU was lent when this was written): run `python benchmarks/stereospike.py --full`
on the device (drop the single-thread pinning with `--no-pin`): the full network (channels
32-512) on 260x346 inputs, batch 1 as in the paper and batch 8, reporting the step time and
`jax.devices()[0].memory_stats()["peak_bytes_in_use"]` for both implementations.

Usage: `python benchmarks/stereospike.py [--quick] [--full] [--B 8] [--H 64 --W 96]`
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402

SCALED = (4, 8, 16, 32, 64)
FULL = (32, 64, 128, 256, 512)
LR, GRAD_WEIGHT, NAN_FRACTION = 1e-3, 0.5, 0.05


def make_data(H: int, W: int, B: int):
    import jax
    import jax.numpy as jnp

    import simjax as sj

    task = sj.tasks.RandomDotStereo(H, W, size=max(B, 8), nan_fraction=NAN_FRACTION)
    batch = task.scenes(jnp.arange(B))
    return task, jax.device_get(batch.inputs), jax.device_get(batch.targets)


# ---------------------------------------------------------------------------- simjax
def simjax_step(task, x, y, channels, dtype):
    import equinox as eqx
    import optax

    import simjax as sj

    net, batch, loss_and_grads = simjax_loss_and_grads(task, x, y, channels, dtype)
    opt = optax.adam(LR)
    params, static = sj.parameters.partition(net)
    rule = sj.rules.Exact()

    @eqx.filter_jit
    def train_step(params, opt_state, batch):
        loss, grads, _ = rule(eqx.combine(params, static), task, batch, None)
        updates, opt_state = opt.update(grads, opt_state, params)
        return eqx.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt": opt.init(params)}

    def step():
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], batch)
        return loss.block_until_ready()

    step.compile = lambda: train_step.lower(state["params"], state["opt"], batch).compile()

    return step, net, loss_and_grads


def simjax_loss_and_grads(task, x, y, channels, dtype):
    """The simjax network (weights from key 0, cast to `dtype`), the batch, and a jitted function
    returning the task loss and its surrogate gradients."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    import simjax as sj

    net = sj.networks.StereoSpike(4, channels, key=jax.random.key(0))
    net = jax.tree.map(lambda a: a.astype(dtype) if eqx.is_inexact_array(a) else a, net)
    batch = sj.tasks.Batch(inputs=jnp.asarray(x, dtype), targets=jnp.asarray(y, dtype))

    @eqx.filter_jit
    def loss_and_grads(net, batch):  # arguments, not closed-over constants (XLA would fold them)
        loss, grads, _ = sj.rules.Exact()(net, task, batch, None)
        return loss, grads

    return net, batch, lambda: loss_and_grads(net, batch)


# ---------------------------------------------------------------------------- plain JAX
def baseline_weights(net) -> dict:
    """The simjax network's weights as the plain dict the baseline uses."""
    return {"bottom": net.bottom.conv.weight, "enc": [e.conv.weight for e in net.encoders],
            "sew": [(b.conv1.weight, b.conv2.weight) for b in net.bottleneck],
            "dec": [d.upconv.conv.weight for d in net.decoders],
            "pred": [(p.conv.weight, p.conv.bias) for p in net.readout.predictions]}


def baseline_step(params, x, y, dtype, grad_weight=GRAD_WEIGHT):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    def make_spike(alpha, kind):
        @jax.custom_jvp
        def spike(u):  # u = I - v_th; spikes at u >= 0
            return (u >= 0).astype(u.dtype)

        @spike.defjvp
        def _(primals, tangents):
            (u,), (du,) = primals, tangents
            if kind == "atan":
                g = (alpha / 2) / (1 + (jnp.pi / 2 * alpha * u) ** 2)
            else:
                s = jax.nn.sigmoid(alpha * u)
                g = alpha * s * (1 - s)
            return spike(u), g * du

        return spike

    atan, sig = make_spike(2.0, "atan"), make_spike(4.0, "sigmoid")

    def conv(x, w, stride=1, pad=0):
        return jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad, pad), (pad, pad)),
                                           dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def resize(x, h2, w2):
        h, w = x.shape[-2:]
        return x[:, :, (np.arange(h2) * h) // h2][:, :, :, (np.arange(w2) * w) // w2]

    def upconv(x, w, h, wd):
        k = w.shape[-1]
        return conv(resize(x, h + k - 1, wd + k - 1), w)

    sobel_x = np.array([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    sobel_k = np.stack([sobel_x, sobel_x.T])[:, None]

    def forward(p, x):
        H, W = x.shape[-2:]
        skips = [atan(conv(x, p["bottom"], 1, 2) - 1.0)]
        for w in p["enc"]:
            skips.append(atan(conv(skips[-1], w, 2, 2) - 1.0))
        out = skips.pop()
        for w1, w2 in p["sew"]:
            out = sig(conv(sig(conv(out, w1, 1, 1) - 1.0), w2, 1, 1) - 1.0) + out
        depth, depths = 0.0, []
        for w, (wp, bp) in zip(p["dec"], p["pred"]):
            skip = skips.pop()
            out = atan(upconv(out, w, *skip.shape[-2:]) - 1.0) + skip
            depth = depth + upconv(out, wp, H, W)[:, 0] + bp[0]
            depths.append(depth)
        return depths

    def loss_fn(p, x, y):
        valid = jnp.isfinite(y)
        n = jnp.sum(valid, axis=(-2, -1))
        total = 0.0
        for d in forward(p, x):
            r = jnp.where(valid, d - jnp.where(valid, y, 0), 0)
            reg = jnp.sum(r**2, axis=(-2, -1)) / n - (jnp.sum(r, axis=(-2, -1)) / n) ** 2
            g = conv(r[:, None], jnp.asarray(sobel_k, r.dtype), 1, 1)
            grad = jnp.sum(jnp.abs(g), axis=(-3, -2, -1)) / n
            total = total + jnp.mean(reg) + grad_weight * jnp.mean(grad)
        return total

    opt = optax.adam(LR)
    params = jax.tree.map(lambda a: jnp.asarray(a, dtype), params)
    xj, yj = jnp.asarray(x, dtype), jnp.asarray(y, dtype)

    @jax.jit
    def train_step(p, opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        updates, opt_state = opt.update(grads, opt_state, p)
        return optax.apply_updates(p, updates), opt_state, loss

    state = {"params": params, "opt": opt.init(params)}

    def step():
        state["params"], state["opt"], loss = train_step(state["params"], state["opt"], xj, yj)
        return loss.block_until_ready()

    step.compile = lambda: train_step.lower(state["params"], state["opt"], xj, yj).compile()
    return step, lambda: jax.jit(jax.value_and_grad(loss_fn))(params, xj, yj)


def named_arrays(weights: dict) -> dict:
    """`baseline_weights`-shaped weights (or gradients) as flat NumPy arrays under the names the
    SpikingJelly script uses."""
    import numpy as np

    out = {"bottom": weights["bottom"]}
    out.update({f"enc{i}": w for i, w in enumerate(weights["enc"])})
    for i, (w1, w2) in enumerate(weights["sew"]):
        out[f"sew{i}_1"], out[f"sew{i}_2"] = w1, w2
    out.update({f"dec{i}": w for i, w in enumerate(weights["dec"])})
    for i, (w, b) in enumerate(weights["pred"]):
        out[f"pred{i}_w"], out[f"pred{i}_b"] = w, b
    return {k: np.asarray(v) for k, v in out.items()}


def n_parameters(net) -> int:
    """Trainable scalars of the simjax network (what `simjax.parameters.partition` hands to Adam)."""
    import equinox as eqx
    import jax

    import simjax as sj

    params, _ = sj.parameters.partition(net)
    return sum(a.size for a in jax.tree.leaves(params) if eqx.is_inexact_array(a))


def check_agreement(task, x, y, channels, peer_python: str | None = None, workdir: Path | None = None,
                    without_sobel: bool = False) -> dict:
    """Loss and gradients of the two in float64 on the same weights (relative errors); with
    `without_sobel`, also their weight gradients with the Sobel term's weight set to 0; with
    `peer_python`, also SpikingJelly's (its script run once in float64 on the same weights)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import numpy as np

    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        net, _, sj_lg = simjax_loss_and_grads(task, x, y, channels, jnp.float64)
        loss_sj, grads_sj = sj_lg()
        _, ref_lg = baseline_step(baseline_weights(net), x, y, jnp.float64)
        loss_ref, grads_ref = ref_lg()
        g_sj = [np.asarray(a) for a in jax.tree.leaves(baseline_weights(grads_sj))]
        g_ref = [np.asarray(a) for a in jax.tree.leaves(grads_ref)]
        rel = max(float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)) for a, b in zip(g_sj, g_ref))
        out = {"loss_simjax": float(loss_sj), "loss_baseline": float(loss_ref),
               "loss_rel_err": abs(float(loss_sj) - float(loss_ref)) / abs(float(loss_ref)),
               "grad_max_rel_err": rel}
        if without_sobel:
            # the same without the Sobel term, whose |.| passes back sign(S * R): where S * R is zero
            # exactly (flat residuals), a convolution's rounding makes it +-1e-15 and the sign +-1
            no_sobel = eqx.tree_at(lambda t: t.grad_weight, task, jnp.zeros_like(task.grad_weight))
            _, _, sj_lg0 = simjax_loss_and_grads(no_sobel, x, y, channels, jnp.float64)
            _, ref_lg0 = baseline_step(baseline_weights(net), x, y, jnp.float64, grad_weight=0.0)
            g_sj0, g_ref0 = named_arrays(baseline_weights(sj_lg0()[1])), named_arrays(ref_lg0()[1])
            out["grad_max_rel_err_without_sobel"] = max(  # weights only: the biases' gradients are 0 up to rounding
                float(np.linalg.norm(g_sj0[k] - v) / max(np.linalg.norm(v), 1e-300))
                for k, v in g_ref0.items() if not k.endswith("_b"))
        if peer_python is not None:
            data, grads = workdir / "check64.npz", workdir / "grads64.npz"
            np.savez(data, x=x, y=y, channels=np.asarray(channels), **named_arrays(baseline_weights(net)))
            peer = TorchPeer.check(peer_python, data, grads)
            g_pt = np.load(grads)
            g_named = named_arrays(baseline_weights(grads_sj))
            out.update({"loss_spikingjelly": peer["loss"],
                        "loss_rel_err_spikingjelly": abs(peer["loss"] - float(loss_sj)) / abs(float(loss_sj)),
                        "grad_max_rel_err_spikingjelly": max(
                            float(np.linalg.norm(g_pt[k].reshape(v.shape) - v) / max(np.linalg.norm(v), 1e-300))
                            for k, v in g_named.items())})
        return out
    finally:
        jax.config.update("jax_enable_x64", x64)


# ---------------------------------------------------------------------------- PyTorch + SpikingJelly
TORCH_SCRIPT = Path(__file__).resolve().parent / "_stereospike_torch.py"
PEER_ENV = "SIMJAX_SPIKINGJELLY_PYTHON"
PEER_DEFAULT = "~/peer-venvs/spikingjelly/bin/python"
PEER_HOWTO = ("create it with: python3 -m venv ~/peer-venvs/spikingjelly; then with its pip: install a CPU torch "
              "build, `install --no-deps spikingjelly`, `install numpy scipy tqdm loguru packaging` (or point "
              f"--peer-python / ${PEER_ENV} at such an environment's python)")


def _jiffies(pid: int) -> int:
    """CPU time (user + system, in clock ticks) of process `pid` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class TorchPeer:
    """`_stereospike_torch.py` running in the peer environment: built and warmed up once, then it
    times `steps` training steps on request with its own clocks (wall and its process CPU time)."""

    def __init__(self, python: str, data: Path, warmup: int):
        import json
        import subprocess

        self._json = json
        self.proc = subprocess.Popen([python, str(TORCH_SCRIPT), str(data), "--warmup", str(warmup)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.meta = self._reply("READY")

    def _reply(self, tag: str) -> dict:
        for line in self.proc.stdout:
            if line.startswith(tag + " "):
                return self._json.loads(line[len(tag) + 1:])
        raise RuntimeError(f"the SpikingJelly step exited (code {self.proc.wait()}) before answering {tag}")

    def run(self, steps: int) -> tuple[list[float], list[float], float]:
        """Wall and CPU seconds of `steps` steps, and the load of other processes meanwhile (cores)."""
        me, allowed = os.getpid(), os.sched_getaffinity(0)

        def snap():
            busy = _common._cpu_busy()
            return time.perf_counter(), sum(busy.get(c, 0) for c in allowed), _jiffies(me) + _jiffies(self.proc.pid)

        a = snap()
        self.proc.stdin.write(f"run {steps}\n")
        self.proc.stdin.flush()
        times = self._reply("TIMES")
        b = snap()
        foreign = ((b[1] - a[1]) - (b[2] - a[2])) / os.sysconf("SC_CLK_TCK") / (b[0] - a[0])
        return times["wall"], times["cpu"], max(0.0, foreign)

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)

    @staticmethod
    def check(python: str, data: Path, grads: Path) -> dict:
        """Float64 loss and gradients (written to `grads`) on the weights in `data`."""
        import json
        import subprocess

        out = subprocess.run([python, str(TORCH_SCRIPT), str(data), "--check", str(grads)], check=True,
                             stdout=subprocess.PIPE, text=True).stdout
        return json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])


def find_peer(arg: str | None) -> tuple[str | None, str]:
    """The peer environment's python (or `None`) and a sentence saying which, or why not."""
    path = Path(os.path.expanduser(arg or os.environ.get(PEER_ENV) or PEER_DEFAULT))
    if not os.access(path, os.X_OK):
        return None, f"skipped: no peer environment at {path}; {PEER_HOWTO}"
    return str(path), f"{path}"


def interleaved_with_peer(fns: dict, peer: TorchPeer | None, *, steps: int, repeats: int, reference: str) -> dict:
    """`_common.interleaved` with the SpikingJelly subprocess as one more column (`"spikingjelly"`):
    every repeat times `steps` steps of each in-process function, then `steps` of the peer, which
    reports its own wall and CPU times; the same statistics per column."""
    if peer is None:
        return _common.interleaved(fns, steps=steps, repeats=repeats, reference=reference)
    names = [*fns, "spikingjelly"]
    wall, cpu, foreign = ({n: [] for n in names} for _ in range(3))
    for _ in range(repeats):
        for name in names:
            if name == "spikingjelly":
                w, c, f = peer.run(steps)
            else:
                load = _common.ForeignLoad().start()
                ts = [_common._timed_both(fns[name]) for _ in range(steps)]
                w, c, f = [t[0] for t in ts], [t[1] for t in ts], load.stop()
            wall[name].append(w)
            cpu[name].append(c)
            foreign[name].append(f)
    out = {}
    for n in names:
        flat_w, flat_c = [t for r in wall[n] for t in r], [t for r in cpu[n] for t in r]
        out[n] = {"median_ms": 1e3 * statistics.median(flat_w), "min_ms": 1e3 * min(flat_w),
                  "cpu_median_ms": 1e3 * statistics.median(flat_c),
                  "repeat_median_ms": [round(1e3 * statistics.median(r), 3) for r in wall[n]],
                  "cpu_repeat_median_ms": [round(1e3 * statistics.median(r), 3) for r in cpu[n]],
                  "foreign_cores": round(statistics.mean(foreign[n]), 3), "n": len(flat_w)}
    for n in names:
        out[n]["ratio_paired"] = _common.paired_ratio(out, n, reference)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="32x48, few steps (smoke test)")
    ap.add_argument("--full", action="store_true", help="the full network (channels 32-512) on 260x346 (GPU)")
    ap.add_argument("--B", type=int, default=8)
    ap.add_argument("--H", type=int, default=None)
    ap.add_argument("--W", type=int, default=None)
    ap.add_argument("--steps", type=int, default=None, help="timed steps per repeat")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved repeats")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--no-check", action="store_true", help="skip the float64 agreement check")
    ap.add_argument("--no-pin", action="store_true", help="all threads, no pinning (GPU runs)")
    ap.add_argument("--peer-python", default=None,
                    help=f"python of the PyTorch + SpikingJelly environment (default ${PEER_ENV} or {PEER_DEFAULT})")
    ap.add_argument("--no-peer", action="store_true", help="skip the PyTorch + SpikingJelly column")
    ap.add_argument("--out", type=Path, default=_common.RESULTS / "stereospike.json")
    args = ap.parse_args(argv)
    H = args.H or (32 if args.quick else 260 if args.full else 64)
    W = args.W or (48 if args.quick else 346 if args.full else 96)
    channels = FULL if args.full else SCALED
    steps = args.steps or (3 if args.quick else 5)
    repeats = args.repeats or (2 if args.quick else 5)
    threads = {} if args.no_pin else _common.single_thread()
    import jax
    import jax.numpy as jnp
    import numpy as np

    started = time.strftime("%Y-%m-%d %H:%M:%S")
    task, x, y = make_data(H, W, args.B)
    result = {"H": H, "W": W, "B": args.B, "channels": list(channels), "dtype": "float32"}
    peer_python, peer_note = (None, "skipped: --no-peer") if args.no_peer else find_peer(args.peer_python)
    if peer_python is not None and jax.devices()[0].platform != "cpu":
        peer_python, peer_note = None, "skipped: the peer environment runs PyTorch on the CPU, JAX is on a GPU here"
    workdir = tempfile.TemporaryDirectory(prefix="stereospike-")
    tmp = Path(workdir.name)
    if not args.no_check:
        a = check_agreement(task, x, y, channels, peer_python, tmp, without_sobel=True)
        result["agreement_float64"] = a
        print(f"check (float64, same weights): loss simjax {a['loss_simjax']:.12g} baseline {a['loss_baseline']:.12g} "
              f"(rel {a['loss_rel_err']:.1e}); grad max rel err {a['grad_max_rel_err']:.1e} (without the Sobel term "
              f"{a['grad_max_rel_err_without_sobel']:.1e})", flush=True)
        if peer_python is not None:
            print(f"check (float64, same weights): loss spikingjelly {a['loss_spikingjelly']:.12g} (rel "
                  f"{a['loss_rel_err_spikingjelly']:.1e}); grad max rel err {a['grad_max_rel_err_spikingjelly']:.1e}",
                  flush=True)
    sj_step, net, _ = simjax_step(task, x, y, channels, jnp.float32)
    weights = baseline_weights(net)
    ref_step, _ = baseline_step(weights, x, y, jnp.float32)
    fns = {"simjax": sj_step, "baseline": ref_step}
    # simjax's weights and biases; its parameter tree also holds each spiking layer's surrogate
    # parameter (a scalar whose gradient is zero), counted separately
    result["parameters"] = {"simjax": sum(int(a.size) for a in named_arrays(weights).values()),
                            "simjax_with_surrogate_scalars": n_parameters(net),
                            "baseline": sum(int(a.size) for a in jax.tree.leaves(weights))}
    compile_s = {}
    for name, fn in fns.items():
        compile_s[name] = _common.timed(fn.compile)
        for _ in range(1 + args.warmup):
            fn()
    peer = None
    if peer_python is not None:
        np.savez(tmp / "data32.npz", x=x, y=y, channels=np.asarray(channels), **named_arrays(weights))
        peer = TorchPeer(peer_python, tmp / "data32.npz", args.warmup)
        result["parameters"]["spikingjelly"] = peer.meta["params"]
        result["spikingjelly_versions"] = {k: peer.meta[k] for k in ("torch", "spikingjelly", "threads")}
        compile_s["spikingjelly"] = peer.meta["warmup_s"][0]  # first step, no compilation
    print("parameters: " + ", ".join(f"{k} {v}" for k, v in result["parameters"].items()), flush=True)
    try:
        timing = interleaved_with_peer(fns, peer, steps=steps, repeats=repeats, reference="baseline")
    finally:
        if peer is not None:
            peer.close()
        workdir.cleanup()
    for name in timing:
        timing[name]["compile_s" if name in fns else "first_step_s"] = round(compile_s[name], 3)
    result["timing"] = timing
    result["ratios"] = {"simjax/baseline": round(timing["simjax"]["median_ms"] / timing["baseline"]["median_ms"], 3),
                        "simjax/baseline_cpu_paired": timing["simjax"]["ratio_paired"]}
    if peer is not None:
        result["spikingjelly"] = f"run: {peer_note}"
        result["ratios"].update({
            "simjax/spikingjelly": round(timing["simjax"]["median_ms"] / timing["spikingjelly"]["median_ms"], 3),
            "simjax/spikingjelly_cpu_paired": _common.paired_ratio(timing, "simjax", "spikingjelly"),
            "baseline/spikingjelly": round(timing["baseline"]["median_ms"] / timing["spikingjelly"]["median_ms"], 3)})
    else:
        result["spikingjelly"] = peer_note
        print(f"PyTorch + SpikingJelly: {peer_note}")
    if jax.devices()[0].platform != "cpu":
        result["peak_bytes_in_use"] = jax.devices()[0].memory_stats().get("peak_bytes_in_use")
    print(f"{H}x{W} batch {args.B} channels {channels}: simjax {timing['simjax']['median_ms']:.1f} ms, "
          f"baseline {timing['baseline']['median_ms']:.1f} ms, ratio {result['ratios']['simjax/baseline']:.3f} "
          f"(cpu, paired: {result['ratios']['simjax/baseline_cpu_paired']:.3f}); compile "
          f"{compile_s['simjax']:.1f}/{compile_s['baseline']:.1f} s; foreign load "
          f"{max(v['foreign_cores'] for v in timing.values()):.2f} cores")
    if peer is not None:
        r = result["ratios"]
        print(f"PyTorch + SpikingJelly {timing['spikingjelly']['median_ms']:.1f} ms (cpu "
              f"{timing['spikingjelly']['cpu_median_ms']:.1f} ms): simjax / spikingjelly "
              f"{r['simjax/spikingjelly']:.3f} "
              f"(cpu, paired: {r['simjax/spikingjelly_cpu_paired']:.3f}); cpu medians simjax "
              f"{timing['simjax']['cpu_median_ms']:.1f} ms, baseline {timing['baseline']['cpu_median_ms']:.1f} ms")
    report = {"benchmark": "stereospike", "started": started, "argv": sys.argv[1:], "threads": threads,
              "machine": _common.machine(), "protocol": {"warmup": args.warmup, "steps": steps, "repeats": repeats,
                                                         "interleaved": True}, "results": [result]}
    path = _common.write_json(args.out, report)
    print(f"wrote {path}")
    return report


if __name__ == "__main__":
    main()
