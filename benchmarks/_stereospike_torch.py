"""The scaled StereoSpike training step in PyTorch + SpikingJelly, the third column of
`benchmarks/stereospike.py` (which runs this file with the peer environment's Python in a
subprocess; it imports only torch, spikingjelly and numpy, never simjax or jax).

The network is the one of `simjax.networks.StereoSpike` and of the benchmark's plain-JAX step,
written as a SpikingJelly user writes it (`layer.Conv2d`, `neuron.IFNode` in single-step mode,
hard reset to 0 with `detach_reset=True`, reset with `functional.reset_net` before every sample,
so each layer runs one step from rest: `S = H(I - 1)`):

    bottom:     IF(conv5x5(x)),  encoders: IF(conv5x5 stride 2 padding 2)        arctan surrogate, alpha 2
    bottleneck: two SEW blocks  IF(conv3x3(IF(conv3x3(x)))) + x                  sigmoid surrogate, alpha 4
    decoders:   IF(conv5x5 valid(nearest resize to skip size + 4)) + skip
    readout:    D_s = sum of conv3x3 valid(nearest resize to (H+2, W+2)) + bias over the stages so far
    loss:       sum_s [ var of the masked residual + 0.5 x zero-padded Sobel L1 / n ]     (NaN = masked)

`torch.optim.Adam(lr=1e-3)`, one thread. Weights, inputs and targets come from an `.npz` written
by the benchmark (so all three columns train the same weights on the same batch).

Modes:

- `--check GRADS.npz`: float64, one loss and gradient evaluation on the given weights; writes the
  gradients (same keys as the weights) and prints `RESULT {json}`.
- default: float32; builds, warms up, prints `READY {json}` (parameter count, versions, warm-up
  times), then serves commands on stdin: `run N` times N training steps and prints
  `TIMES {"wall": [...], "cpu": [...]}` (seconds, this process's own clock), `quit` exits.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib.metadata import version

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate

LR, GRAD_WEIGHT = 1e-3, 0.5


def if_node(surrogate_function):
    return neuron.IFNode(v_threshold=1.0, v_reset=0.0, surrogate_function=surrogate_function, detach_reset=True,
                         step_mode="s")


def resize(x, h, w):
    return F.interpolate(x, size=(h, w), mode="nearest")


class SEWBlock(nn.Module):
    """`IF(conv2(IF(conv1(x)))) + x` (SEW "ADD")."""

    def __init__(self, c, k=3):
        super().__init__()
        self.conv1 = layer.Conv2d(c, c, k, padding=k // 2, bias=False)
        self.sn1 = if_node(surrogate.Sigmoid(alpha=4.0))
        self.conv2 = layer.Conv2d(c, c, k, padding=k // 2, bias=False)
        self.sn2 = if_node(surrogate.Sigmoid(alpha=4.0))

    def forward(self, x):
        return self.sn2(self.conv2(self.sn1(self.conv1(x)))) + x


class StereoSpike(nn.Module):
    def __init__(self, in_channels, channels, k=5, n_blocks=2):
        super().__init__()
        self.k = k
        atan = lambda: surrogate.ATan(alpha=2.0)
        self.bottom = layer.Conv2d(in_channels, channels[0], k, padding=k // 2, bias=False)
        self.bottom_sn = if_node(atan())
        self.enc = nn.ModuleList(layer.Conv2d(a, b, k, stride=2, padding=k // 2, bias=False)
                                 for a, b in zip(channels[:-1], channels[1:]))
        self.enc_sn = nn.ModuleList(if_node(atan()) for _ in self.enc)
        self.sew = nn.ModuleList(SEWBlock(channels[-1]) for _ in range(n_blocks))
        L = len(channels) - 1
        self.dec = nn.ModuleList(layer.Conv2d(channels[l], channels[l - 1], k, bias=False) for l in range(L, 0, -1))
        self.dec_sn = nn.ModuleList(if_node(atan()) for _ in self.dec)
        self.pred = nn.ModuleList(layer.Conv2d(channels[l - 1], 1, 3, bias=True) for l in range(L, 0, -1))

    def named_weights(self):
        """The trainable tensors under the keys the benchmark writes (its plain-JAX weight order)."""
        out = {"bottom": self.bottom.weight}
        out.update({f"enc{i}": c.weight for i, c in enumerate(self.enc)})
        for i, b in enumerate(self.sew):
            out[f"sew{i}_1"], out[f"sew{i}_2"] = b.conv1.weight, b.conv2.weight
        out.update({f"dec{i}": c.weight for i, c in enumerate(self.dec)})
        for i, p in enumerate(self.pred):
            out[f"pred{i}_w"], out[f"pred{i}_b"] = p.weight, p.bias
        return out

    def forward(self, x):
        functional.reset_net(self)
        H, W = x.shape[-2:]
        skips = [self.bottom_sn(self.bottom(x))]
        for conv, sn in zip(self.enc, self.enc_sn):
            skips.append(sn(conv(skips[-1])))
        out = skips.pop()
        for block in self.sew:
            out = block(out)
        depth, depths, k = 0.0, [], self.k
        for conv, sn, pred in zip(self.dec, self.dec_sn, self.pred):
            skip = skips.pop()
            h, w = skip.shape[-2:]
            out = sn(conv(resize(out, h + k - 1, w + k - 1))) + skip
            depth = depth + pred(resize(out, H + 2, W + 2))[:, 0]
            depths.append(depth)
        return depths


def depth_loss(depths, y):
    valid = torch.isfinite(y)
    n = valid.sum(dim=(-2, -1)).to(y.dtype)
    y0 = torch.where(valid, y, torch.zeros_like(y))
    sx = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=y.dtype)
    sobel = torch.stack([sx, sx.T])[:, None]
    total = 0.0
    for d in depths:
        r = torch.where(valid, d - y0, torch.zeros_like(d))
        reg = (r**2).sum(dim=(-2, -1)) / n - (r.sum(dim=(-2, -1)) / n) ** 2
        g = F.conv2d(r[:, None], sobel, padding=1)
        grad = g.abs().sum(dim=(-3, -2, -1)) / n
        total = total + reg.mean() + GRAD_WEIGHT * grad.mean()
    return total


def build(data, dtype):
    x = torch.from_numpy(np.asarray(data["x"])).to(dtype)
    y = torch.from_numpy(np.asarray(data["y"])).to(dtype)
    channels = [int(c) for c in data["channels"]]
    net = StereoSpike(x.shape[1], channels).to(dtype)
    n_params = sum(p.numel() for p in net.parameters())
    weights = net.named_weights()
    if set(weights) != {k for k in data.files if k not in ("x", "y", "channels")}:
        raise SystemExit(f"weight names differ: torch {sorted(weights)}, file {sorted(data.files)}")
    with torch.no_grad():
        for name, p in weights.items():
            w = torch.from_numpy(np.asarray(data[name])).to(dtype).reshape(p.shape)
            if w.numel() != p.numel():
                raise SystemExit(f"{name}: torch shape {tuple(p.shape)}, file {data[name].shape}")
            p.copy_(w)
    return net, x, y, n_params


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data", help=".npz with x, y, channels and the weights")
    ap.add_argument("--check", metavar="GRADS", help="float64 loss and gradients, written to this .npz")
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    data = np.load(args.data)
    meta = {"torch": torch.__version__, "spikingjelly": version("spikingjelly"), "threads": torch.get_num_threads()}
    if args.check:
        net, x, y, n_params = build(data, torch.float64)
        loss = depth_loss(net(x), y)
        loss.backward()
        np.savez(args.check, **{k: p.grad.numpy() for k, p in net.named_weights().items()})
        print("RESULT " + json.dumps({"loss": loss.item(), "params": n_params, **meta}), flush=True)
        return
    net, x, y, n_params = build(data, torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=LR)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = depth_loss(net(x), y)
        loss.backward()
        opt.step()
        return loss

    warm = []
    for _ in range(1 + args.warmup):
        t0 = time.perf_counter()
        loss = step()
        warm.append(time.perf_counter() - t0)
    print("READY " + json.dumps({"params": n_params, "warmup_s": [round(t, 4) for t in warm],
                                 "loss": loss.item(), **meta}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        wall, cpu = [], []
        for _ in range(int(cmd[1])):
            c0, t0 = time.process_time(), time.perf_counter()
            step()
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        print("TIMES " + json.dumps({"wall": wall, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
