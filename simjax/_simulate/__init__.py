"""Simulation methods (clock-driven, event-driven, ODE) and their output types; `simjax.simulate`
dispatches to them. Empty on purpose: importing `simjax._simulate.output` imports nothing else."""
