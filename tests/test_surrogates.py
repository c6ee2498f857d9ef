"""Surrogates: the forward pass is the exact step; the backward pass is the documented formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj

POINTS = jnp.array([-2.0, -0.7, -0.1, 1e-3, 0.3, 1.5])


def formula(name, x, **p):
    x = np.asarray(x)
    if name == "fast_sigmoid":
        return 1.0 / (1.0 + p["slope"] * np.abs(x)) ** 2
    if name == "triangle":
        return p["dampening"] / p["width"] * np.maximum(0.0, 1.0 - np.abs(x) / p["width"])
    if name == "arctan":
        return p["alpha"] / 2 / (1.0 + (np.pi / 2 * p["alpha"] * x) ** 2)
    if name == "sigmoid":
        s = 1.0 / (1.0 + np.exp(-p["slope"] * x))
        return p["slope"] * s * (1 - s)
    if name == "exponential":
        return p["scale"] * np.exp(-p["slope"] * np.abs(x))
    raise AssertionError(name)


CASES = [
    ("fast_sigmoid", dict(slope=25.0)),
    ("fast_sigmoid", dict(slope=3.0)),
    ("triangle", dict(dampening=0.3, width=0.6)),
    ("arctan", dict(alpha=2.0)),
    ("sigmoid", dict(slope=4.0)),
    ("exponential", dict(slope=5.0, scale=1.5)),
]


@pytest.mark.parametrize("name,params", CASES)
def test_forward_is_exact_step(name, params):
    s = sj.surrogates.get(name, **params)
    x = jnp.concatenate([POINTS, jnp.array([0.0])])
    np.testing.assert_array_equal(s(x), (np.asarray(x) > 0).astype(float))


@pytest.mark.parametrize("name,params", CASES)
def test_pseudo_derivative_matches_formula(name, params):
    s = sj.surrogates.get(name, **params)
    grads = jax.vmap(jax.grad(s))(POINTS)
    np.testing.assert_allclose(grads, formula(name, POINTS, **params), rtol=1e-12)


def test_exponential_default_scale_has_unit_area():
    s = sj.surrogates.Exponential(slope=4.0)
    x = jnp.linspace(-20, 20, 400001)
    area = jnp.trapezoid(s.derivative(x), x)
    assert abs(float(area) - 1.0) < 1e-6


def test_slope_can_be_vmapped():
    slopes = jnp.array([1.0, 10.0, 100.0])
    g = jax.vmap(lambda k: jax.grad(sj.surrogates.FastSigmoid(slope=k))(0.2))(slopes)
    np.testing.assert_allclose(g, 1.0 / (1.0 + slopes * 0.2) ** 2, rtol=1e-12)


def test_unknown_name_and_bad_parameter_are_named():
    with pytest.raises(ValueError, match="unknown surrogate 'fast_sigmod'"):
        sj.surrogates.get("fast_sigmod")
    with pytest.raises(ValueError, match="slope must be finite and > 0, got"):
        sj.surrogates.FastSigmoid(slope=-1.0)
