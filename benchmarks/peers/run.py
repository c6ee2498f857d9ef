"""Runs the peer harness (`../shared/bench-peers/run_peers.py`) with simjax added as columns.

`simjax` (memory policy `store`) and `simjax-checkpoint` run in this interpreter; the
hand-written JAX reference (`jax-ref`) and the roofline also use it when the harness's own JAX
virtual environment is missing, so the ratios compare programs under the same JAX. Every option is
the harness's, e.g.::

    python benchmarks/peers/run.py --libs jax-ref,simjax,simjax-checkpoint --cells W1,W2,W3 \\
        --out benchmarks/results/peers.json

`PEER_HARNESS` overrides the harness folder.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
HARNESS = os.environ.get("PEER_HARNESS", str(HERE.parents[2] / "shared" / "bench-peers"))
os.environ["PEER_HARNESS"] = HARNESS
if not os.path.exists(os.environ.get("JAX_PYTHON", os.path.expanduser("~/peer-venvs/jax/bin/python"))):
    os.environ["JAX_PYTHON"] = sys.executable
sys.path.insert(0, HARNESS)
import run_peers  # noqa: E402

impl = str(HERE / "impl_simjax.py")
run_peers.LIBS["simjax"] = (sys.executable, impl, {"SIMJAX_MEMORY": "store"})
run_peers.LIBS["simjax-checkpoint"] = (sys.executable, impl, {"SIMJAX_MEMORY": "checkpoint"})
for name in ("jax-ref", "jax-ref-u4"):
    _, script, env = run_peers.LIBS[name]
    run_peers.LIBS[name] = (os.environ["JAX_PYTHON"], script, env)

if __name__ == "__main__":
    run_peers.main()
