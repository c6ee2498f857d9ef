"""Tests run in float64, with every jaxtyping annotation of simjax checked at run time by beartype
(`--jaxtyping-packages` in pyproject's pytest options). Tests of the errors users see on bad input
take the `unchecked` fixture: users run without the type checker, so those tests must reach
simjax's own validation (which names the value and what is expected) rather than the checker.

Tests run in float64. (Strict dtype promotion would be stricter still, but optax's own Adam
raises under it: its bias correction raises a Python float to an int32 step count.)

Most of the suite's time is XLA compilation of small programs, so the CPU backend's LLVM
optimisation is turned down (about 1.5x less CPU in total; results are unaffected beyond float
rounding). Set XLA_FLAGS yourself to override. Adding `--xla_cpu_use_fusion_emitters=false` would
take another 40 % off, but not safely: with both flags (jaxlib 0.10) the compiled value-and-grad
of an event-driven network with delays returns a spike time off by 6e-5 ms that the forward program
alone gets right (`tests/test_event_delay.py`'s finite difference then reads 105 instead of 1.57).
"""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


import gc  # noqa: E402

import jaxtyping  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop every compiled program after each test module. XLA's CPU backend maps about six
    memory regions per live program (its code and data), and JAX keeps a program as long as its
    function lives: a test worker that runs hundreds of modules would pass the kernel's limit of
    65530 mappings per process (`vm.max_map_count`), and XLA's compiler then crashes mid-run."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def unchecked():
    """Run a test without the run-time type checker (as users run simjax)."""
    jaxtyping.config.update("jaxtyping_disable", True)
    yield
    jaxtyping.config.update("jaxtyping_disable", False)
