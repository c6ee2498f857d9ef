"""Two-compartment neuron: plateau logic on hand-computed cases, exact somatic integration, errors."""

import jax.numpy as jnp
import numpy as np
import pytest

import simjax as sj
from simjax.neurons._rate import LeakyRate
from simjax.neurons._two_compartment import TwoCompartment, TwoCompartmentDrive, TwoCompartmentState


def state(soma, dendrite):
    as64 = lambda a: jnp.asarray(a, dtype=jnp.float64)
    return TwoCompartmentState(soma=as64(soma), dendrite=as64(dendrite))


def test_plateau_nudge_and_activity_hand_computed():
    neuron = TwoCompartment(tau=3.0, theta_plus=0.1, theta_minus=-0.15)
    d = [-0.5, -0.2, -0.15, -0.1, 0.0, 0.05, 0.1, 0.2, 0.9]
    # plateau: d where d > 0.1 or d < -0.15 (strict), else 0
    np.testing.assert_array_equal(neuron.plateau(state(np.zeros(9), d)),
                                  [-0.5, -0.2, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.9])
    np.testing.assert_array_equal(neuron.nudge(state(np.zeros(9), d)),
                                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.2, 0.9])
    # activity = ReLU(soma + nudge): a positive plateau lifts a silent soma, a negative one does not act
    s = state([-0.1, 0.3, 0.3, -0.4], [0.2, -0.5, 0.05, 0.9])
    np.testing.assert_allclose(neuron.output(s), [0.1, 0.3, 0.3, 0.5], rtol=1e-15, atol=1e-15)


def test_step_integrates_soma_exactly_and_clips_dendrite():
    neuron = TwoCompartment(tau=3.0, theta_plus=0.1, theta_minus=-0.15, bias=0.2)
    s0 = state([0.5, -1.0, 0.0], [0.0, 0.0, 0.0])
    basal = jnp.array([1.0, 2.0, -0.5])
    apical = jnp.array([3.0, -2.0, 0.05])
    s = s0
    for _ in range(5):
        s, r = neuron.step(s, TwoCompartmentDrive(basal=basal, apical=apical), 0.4)
    target = 0.2 + np.asarray(basal)
    soma = target + (np.asarray(s0.soma) - target) * np.exp(-5 * 0.4 / 3.0)
    np.testing.assert_allclose(s.soma, soma, rtol=1e-13)
    np.testing.assert_array_equal(s.dendrite, [1.0, -1.0, 0.05])  # clip(apical, -1, 1)
    np.testing.assert_allclose(r, np.maximum(soma + np.array([1.0, 0.0, 0.0]), 0.0), rtol=1e-13)
    np.testing.assert_array_equal(neuron.plateau(s), [1.0, -1.0, 0.0])
    # A plain array is basal input only: the dendrite relaxes to clip(0) = 0.
    s_plain, _ = neuron.step(s, basal, 0.4)
    s_drive, _ = neuron.step(s, TwoCompartmentDrive(basal=basal, apical=0.0), 0.4)
    np.testing.assert_array_equal(s_plain.soma, s_drive.soma)
    np.testing.assert_array_equal(s_plain.dendrite, np.zeros(3))


def test_leaky_dendrite_and_vector_field():
    neuron = TwoCompartment(tau=2.0, tau_dend=5.0, theta_plus=0.1, theta_minus=-0.15)
    s0 = state([0.2], [0.5])
    drive = TwoCompartmentDrive(basal=jnp.array([1.0]), apical=jnp.array([-4.0]))
    s, _ = neuron.step(s0, drive, 1.5)
    np.testing.assert_allclose(s.dendrite, -1.0 + (0.5 + 1.0) * np.exp(-1.5 / 5.0), rtol=1e-14)
    dv = neuron.vector_field(0.0, s0, drive)
    np.testing.assert_allclose(dv.soma, (1.0 - 0.2) / 2.0, rtol=1e-14)
    np.testing.assert_allclose(dv.dendrite, (-1.0 - 0.5) / 5.0, rtol=1e-14)
    with pytest.raises(NotImplementedError, match="tau_dend"):
        TwoCompartment().vector_field(0.0, s0, drive)


def test_without_apical_input_it_is_a_leaky_relu_unit_in_a_network():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=(3, 4)), rng.normal(size=(4, 2))]
    two = sj.networks.FeedForward((3, 4, 2), TwoCompartment(tau=3.0), weights=ws)
    leaky = sj.networks.FeedForward((3, 4, 2), LeakyRate(tau=3.0, activation="relu"), weights=ws)
    x = rng.normal(size=(6, 2, 3))
    np.testing.assert_allclose(sj.simulate(two, x, dt=1.0).readout, sj.simulate(leaky, x, dt=1.0).readout,
                               rtol=1e-14)


def test_bad_parameters_give_clear_errors():
    with pytest.raises(ValueError, match="theta_minus must be < theta_plus"):
        TwoCompartment(theta_plus=0.1, theta_minus=0.2)
    with pytest.raises(ValueError, match="dend_min must be < dend_max"):
        TwoCompartment(dend_min=1.0, dend_max=1.0)
    with pytest.raises(ValueError, match="tau"):
        TwoCompartment(tau=0.0)
    with pytest.raises(ValueError, match="tau_dend"):
        TwoCompartment(tau_dend=-1.0)
    with pytest.raises(ValueError, match="'elu'"):
        TwoCompartment(activation="elu")
