"""Tests run in float64. (Strict dtype promotion would be stricter still, but optax's own Adam
raises under it: its bias correction raises a Python float to an int32 step count.)"""

import jax

jax.config.update("jax_enable_x64", True)
