"""Validation helpers shared by every module: clear errors that name the bad value."""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x: Any) -> bool:
    """True when `x` holds a value now (not a tracer inside `jit`/`vmap`/`grad`)."""
    return not isinstance(x, jax.core.Tracer)


def as_float_array(x: Any) -> jax.Array:
    """Converts a Python or NumPy scalar/array into a *strongly typed* floating JAX array.

    Weakly typed Python floats stored in modules cause recompilation when they change; every
    numeric parameter of a simjax module is passed through this converter.
    """
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.inexact) and not x.weak_type:
        return x
    if isinstance(x, jax.core.Tracer):
        return jnp.asarray(x, dtype=jnp.result_type(float) if not jnp.issubdtype(x.dtype, jnp.inexact) else x.dtype)
    return jnp.asarray(x, dtype=jnp.result_type(float))


def check_positive(name: str, value: Any, *, allow_zero: bool = False, owner: str = "") -> None:
    """Raises `ValueError` naming `name` when a concrete `value` is not positive (or finite)."""
    if value is None or not is_concrete(value):
        return
    arr = np.asarray(value)
    bad = ~np.isfinite(arr) | ((arr < 0) if allow_zero else (arr <= 0))
    if np.any(bad):
        where = f"{owner}: " if owner else ""
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{where}{name} must be finite and {bound}, got {value!r}")


def check_int(name: str, value: Any, *, minimum: int | None = 1, maximum: int | None = None, what: str = "",
              owner: str = "") -> int:
    """Returns `value` as a Python `int` or raises `ValueError` naming `name`: it must be an
    integer (Python or NumPy, not `bool`) in `[minimum, maximum]` (a bound `None` is open).
    `what` says what the number means, for the message."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok and ((minimum is not None and value < minimum) or (maximum is not None and value > maximum)):
        ok = False
    if not ok:
        where = f"{owner}: " if owner else ""
        if minimum is not None and maximum is not None:
            want = f"an int in [{minimum}, {maximum}]"
        elif minimum == 1:
            want = "a positive int"
        elif minimum == 0:
            want = "a non-negative int"
        elif minimum is not None:
            want = f"an int >= {minimum}"
        elif maximum is not None:
            want = f"an int <= {maximum}"
        else:
            want = "an int"
        meaning = f" ({what})" if what else ""
        raise ValueError(f"{where}{name} must be {want}{meaning}, got {value!r}")
    return int(value)


def grid_count(t1: Any, dt: Any, *, names: tuple[str, str] = ("t1", "dt"), owner: str = "") -> int:
    """`t1 / dt` as a positive int, or `ValueError` when `t1` is not a positive multiple of `dt`
    (relative tolerance 1e-9). Both must be concrete numbers."""
    where = f"{owner}: " if owner else ""
    if not (is_concrete(t1) and is_concrete(dt)):
        raise ValueError(f"{where}{names[0]} and {names[1]} must be concrete numbers here (the number of steps "
                         "is static)")
    ratio = float(t1) / float(dt)
    n = int(round(ratio))
    if n < 1 or abs(n - ratio) > 1e-9 * max(1.0, ratio):
        raise ValueError(f"{where}{names[0]}={float(t1)!r} must be a positive multiple of "
                         f"{names[1]}={float(dt)!r}")
    return n


def steps_of(name: str, value: Any, dt: Any, *, minimum: int = 1, owner: str = "") -> int:
    """`round(value / dt)`, the number of clock steps a duration `value` (ms) covers; `ValueError`
    naming `name` when `value` is negative (zero only with `minimum=0`) or shorter than
    `minimum` steps."""
    check_positive(name, value, allow_zero=minimum == 0, owner=owner)
    n = int(round(value / dt))
    if n < minimum:
        where = f"{owner}: " if owner else ""
        raise ValueError(f"{where}{name}={value!r} ms is shorter than one step of dt={dt!r} ms")
    return n


def check_choice(name: str, value: Any, allowed: tuple, *, owner: str = "") -> None:
    """Raises `ValueError` when `value` is not one of `allowed`."""
    if value not in allowed:
        where = f"{owner}: " if owner else ""
        raise ValueError(f"{where}unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")


def trainable_fields(trainable: Any, allowed: tuple[str, ...], *, owner: str) -> tuple[str, ...]:
    """`trainable` as a tuple, after checking that it names only fields in `allowed` (raises
    `ValueError` naming the unknown ones and the allowed names)."""
    trainable = (trainable,) if isinstance(trainable, str) else tuple(trainable)
    unknown = sorted(set(trainable) - set(allowed))
    if unknown:
        raise ValueError(f"{owner}: unknown trainable field(s) {unknown}; expected names among "
                         f"{', '.join(map(repr, allowed))}")
    return trainable


def check_shape(name: str, array: Any, expected: tuple, *, owner: str = "") -> None:
    """Raises `ValueError` when `array.shape` does not match `expected` (`None` = any size)."""
    shape = tuple(np.shape(array))
    ok = len(shape) == len(expected) and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        where = f"{owner}: " if owner else ""
        want = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
        raise ValueError(f"{where}{name} has shape {shape}, expected {want}")


def finite_flag(name: str, array: Any) -> jax.Array | None:
    """A scalar zero that errors at run time (`eqx.error_if`) if `array` holds NaN or inf; add it
    (`with_flag`) to something the computation needs so that the check runs. Threading the error
    through a scalar, not through `array` itself, keeps XLA from holding copies of the array (one per
    branch of the check) or making a pass over it. Concrete arrays are checked now (`ValueError`)
    and give `None`."""
    if is_concrete(array):
        if not np.all(np.isfinite(np.asarray(array))):
            raise ValueError(f"{name} contains NaN or inf values")
        return None
    array = jnp.asarray(array)
    # sum(x * 0) is NaN exactly when some x is NaN or inf: one fused reduction (half the time of
    # all(isfinite(x)), which XLA's CPU backend runs as two passes).
    bad = ~jnp.isfinite(jnp.sum(array * 0))
    return eqx.error_if(jnp.zeros((), array.dtype), bad, f"{name} contains NaN or inf values")


def with_flag(tree: Any, flag: jax.Array | None) -> tuple[Any, bool]:
    """`tree` with `flag` (from `finite_flag`) added to its floating leaves, and whether it had any
    (`True` when `flag` is `None`: nothing to add)."""
    if flag is None:
        return tree, True
    inexact = lambda x: jnp.issubdtype(jnp.result_type(x), jnp.inexact)  # noqa: E731
    tree = jax.tree.map(lambda x: x + flag.astype(x.dtype) if inexact(x) else x, tree)
    return tree, any(inexact(x) for x in jax.tree.leaves(tree))


def as_optional_float(x: Any) -> jax.Array | None:
    """`as_float_array`, passing `None` through (for optional parameters such as `tau_syn`)."""
    return None if x is None else as_float_array(x)
