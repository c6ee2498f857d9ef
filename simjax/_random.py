"""PRNG helpers shared by the rules: seeds as keys, and keys derived from names."""

from __future__ import annotations

import zlib
from typing import Any

import jax
import jax.numpy as jnp
from jaxtyping import PRNGKeyArray


def as_key(key: Any) -> PRNGKeyArray:
    """An int seed or a PRNG key, as a PRNG key."""
    if isinstance(key, bool):
        raise TypeError(f"expected an int seed or a jax.random key, got {key!r}")
    if isinstance(key, int):
        return jax.random.key(key)
    if isinstance(key, jax.Array) and (jnp.issubdtype(key.dtype, jax.dtypes.prng_key) or key.dtype == jnp.uint32):
        return key
    raise TypeError(f"expected an int seed or a jax.random key, got {key!r}")


def fold_in_name(key: PRNGKeyArray, name: str) -> PRNGKeyArray:
    """`key` folded with a stable 31-bit hash of `name` (CRC-32): the same key for the same name
    in every run and on every platform, independent keys for different names."""
    return jax.random.fold_in(key, zlib.crc32(name.encode()) & 0x7FFFFFFF)
