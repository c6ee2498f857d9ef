"""Memory of compiled programs and of the device, to size work before it runs."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax


def compiled_memory(fn: Any, *args: Any) -> Any:
    """XLA's memory analysis of `fn(*args)` compiled for the default device (array leaves traced,
    everything else static, as `equinox.filter_jit`); `None` where the backend gives none."""
    dynamic, static = eqx.partition(args, eqx.is_array)
    lowered = jax.jit(lambda d: fn(*eqx.combine(d, static))).lower(dynamic)
    return lowered.compile().memory_analysis()


def available_memory() -> int:
    """Bytes the default device can still allocate: the accelerator's free memory, or on a CPU the
    host's available memory (`MemAvailable` of `/proc/meminfo`; 8 GiB when unknown)."""
    device = jax.devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0))
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30
