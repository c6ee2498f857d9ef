"""TeacherStudent and the delayed XOR / parity tasks: data against independent constructions,
losses and metrics against numpy, vmapping over tasks, and bad input."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import simjax as sj
from simjax.tasks import DelayedXOR, Parity, TeacherStudent


def _sample(task, key, n):
    return eqx.filter_jit(task.sample)(key, n)


def _metrics(task, readout, batch):
    return eqx.filter_jit(task.metrics)(_output(readout), batch)


def _output(readout):
    return sj.Output(spikes=None, v=None, readout=jnp.asarray(readout), final_state=None, info={})


def test_teacher_student_targets_are_the_teachers_function():
    for teacher in ("linear", "mlp"):
        task = TeacherStudent(4, 3, teacher=teacher, hidden=7, activation="relu", seed=2)
        batch = _sample(task, jax.random.key(0), 5)
        assert batch.inputs.shape == (1, 5, 4) and batch.targets.shape == (1, 5, 3)
        x = np.asarray(batch.inputs[0])
        w1 = np.asarray(task.w1)
        want = x @ w1 if teacher == "linear" else np.maximum(x @ w1, 0.0) @ np.asarray(task.w2)
        np.testing.assert_allclose(batch.targets[0], want, rtol=1e-12, atol=1e-12)


def test_teacher_student_noise_and_input_covariance():
    cov = np.array([[2.0, 0.6, 0.0], [0.6, 1.0, -0.3], [0.0, -0.3, 0.5]])
    task = TeacherStudent(3, 2, noise=0.3, input_cov=cov, seed=1)
    batch = _sample(task, jax.random.key(3), 20000)
    x = np.asarray(batch.inputs[0])
    # Sample covariance within a few standard errors (sd of a covariance entry ~ sqrt(2/n) * scale).
    np.testing.assert_allclose(np.cov(x.T), cov, atol=6 * np.sqrt(2 / 20000) * 2.0)
    residual = np.asarray(batch.targets[0]) - x @ np.asarray(task.w1)
    assert abs(residual.std() / 0.3 - 1) < 0.03
    assert abs(residual.mean()) < 4 * 0.3 / np.sqrt(residual.size)


def test_teacher_student_loss_metrics_and_vmap_over_teachers():
    task = TeacherStudent(3, 2, seed=0)
    batch = _sample(task, jax.random.key(1), 4)
    readout = jnp.asarray(np.random.default_rng(0).normal(size=(1, 4, 2)))
    mse = np.mean((np.asarray(readout) - np.asarray(batch.targets)) ** 2)
    metrics = _metrics(task, readout, batch)
    np.testing.assert_allclose(metrics["loss"], mse, rtol=1e-12)
    np.testing.assert_allclose(metrics["nmse"], mse / np.var(np.asarray(batch.targets)), rtol=1e-12)
    # A stack of teachers (one per seed) is one vmappable task.
    tasks = [TeacherStudent(3, 2, teacher="mlp", hidden=5, seed=s) for s in range(3)]
    stacked = jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *tasks)
    batches = eqx.filter_jit(eqx.filter_vmap(lambda t: t.sample(jax.random.key(1), 4)))(stacked)
    for s, t in enumerate(tasks):
        np.testing.assert_allclose(batches.targets[s], _sample(t, jax.random.key(1), 4).targets, rtol=1e-12)
    assert not np.allclose(batches.targets[0], batches.targets[1])


def _decode_bits(task, inputs):
    """Reads the bits back from a rate-coded input: which symbol group is on in each bit window."""
    shown, cue = task.windows()
    c = task.channels
    bits = []
    for k in range(task.n_bits):
        window = np.asarray(inputs)[shown[:, k] > 0]
        zero, one = window[..., :c].mean(axis=(0, 2)), window[..., c:2 * c].mean(axis=(0, 2))
        assert np.all((zero > 0) != (one > 0))
        bits.append((one > 0).astype(int))
    return np.stack(bits, axis=-1)


@pytest.mark.parametrize("task", [DelayedXOR(channels=2, bit_duration=4.0, gap=2.0, delay=6.0, decision=3.0),
                                  Parity(n_bits=4, amplitude=0.5, delay=0.0, dt=0.5)])
def test_bit_tasks_label_the_parity_of_the_bits_shown(task):
    batch = _sample(task, jax.random.key(0), 64)
    bit, gap, delay, decision = task.schedule
    steps = task.n_bits * bit + (task.n_bits - 1) * gap + delay + decision
    assert batch.inputs.shape == (steps, 64, 3 * task.channels) and task.n_in == 3 * task.channels
    bits = _decode_bits(task, batch.inputs)
    np.testing.assert_array_equal(batch.targets, bits.sum(axis=1) % 2)
    assert batch.targets.dtype == jnp.int32 and 0.2 < np.mean(batch.targets) < 0.8
    # The cue channels are on exactly in the decision window, which is the mask.
    mask = np.zeros(steps)
    mask[-decision:] = 1
    np.testing.assert_array_equal(batch.mask, mask)
    cue = np.asarray(batch.inputs[..., 2 * task.channels:])
    np.testing.assert_array_equal(cue, np.broadcast_to(mask[:, None, None], cue.shape) * float(task.amplitude))
    # Nothing but the cue during the delay.
    inputs = np.asarray(batch.inputs)
    assert np.sum(inputs[steps - decision - delay:steps - decision, :, :2 * task.channels]) == 0.0


def test_spike_coding_fires_at_the_given_rates():
    task = DelayedXOR(coding="spike", channels=5, rate=300.0, background=20.0, bit_duration=10.0, gap=0.0,
                      delay=10.0, decision=10.0, dt=1.0)
    batch = _sample(task, jax.random.key(1), 400)
    x = np.asarray(batch.inputs)
    assert set(np.unique(x)) <= {0.0, 1.0}
    shown, _ = task.windows()
    first = x[shown[:, 0] > 0]                       # [steps of bit 1, batch, channels]
    labels_first = _decode_first_bit_from_rates(first, task.channels)
    active = np.where(labels_first[None, :, None] == 1, first[..., 5:10], first[..., 0:5])
    silent = np.where(labels_first[None, :, None] == 1, first[..., 0:5], first[..., 5:10])
    for values, p in ((active, 0.3), (silent, 0.02)):
        assert abs(values.mean() - p) < 5 * np.sqrt(p * (1 - p) / values.size)


def _decode_first_bit_from_rates(window, c):
    return (window[..., c:2 * c].mean(axis=(0, 2)) > window[..., :c].mean(axis=(0, 2))).astype(int)


def test_bit_task_loss_and_accuracy_against_numpy():
    task = Parity(n_bits=3, bit_duration=2.0, gap=1.0, delay=2.0, decision=3.0)
    batch = _sample(task, jax.random.key(2), 8)
    steps = task.steps
    readout = np.random.default_rng(1).normal(size=(steps, 8, 2))
    logits = readout[-3:].mean(axis=0)  # the decision window
    logp = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    labels = np.asarray(batch.targets)
    metrics = _metrics(task, readout, batch)
    np.testing.assert_allclose(metrics["loss"], -np.mean(logp[np.arange(8), labels]), rtol=1e-12)
    np.testing.assert_allclose(metrics["accuracy"], np.mean(logits.argmax(-1) == labels), rtol=1e-12)
    perfect = np.zeros((steps, 8, 2))
    perfect[-3:, np.arange(8), labels] = 10.0
    assert float(_metrics(task, perfect, batch)["accuracy"]) == 1.0


def test_a_rate_rnn_learns_delayed_xor():
    task = DelayedXOR(bit_duration=3.0, gap=1.0, delay=3.0, decision=2.0)
    net = sj.networks.RateRNN(task.n_in, 24, 2, neuron=sj.neurons.LeakyRate(tau=2.0), key=jax.random.key(0),
                              g=1.0, in_scale=2.0)

    @eqx.filter_jit
    def train_and_test(net, key):
        trained, history = sj.fit(net, sj.rules.Exact(), task, optax.adam(0.02), steps=100, key=key, batch_size=32)
        test = task.sample(jax.random.key(9), 256)
        return history, task.metrics(sj.simulate(trained, test.inputs, dt=task.dt), test)["accuracy"]

    history, accuracy = train_and_test(net, jax.random.key(1))
    assert float(accuracy) > 0.95
    assert float(history["loss"][-10:].mean()) < 0.5 * float(history["loss"][:10].mean())


def test_bad_input_gives_clear_errors(unchecked):
    with pytest.raises(ValueError, match="unknown teacher 'deep'"):
        TeacherStudent(3, 1, teacher="deep")
    with pytest.raises(ValueError, match="n_in must be a positive int"):
        TeacherStudent(0, 1)
    with pytest.raises(ValueError, match="input_cov has shape"):
        TeacherStudent(3, 1, input_cov=np.eye(2))
    with pytest.raises(ValueError, match="symmetric positive definite"):
        TeacherStudent(2, 1, input_cov=np.array([[1.0, 2.0], [2.0, 1.0]]))
    task = TeacherStudent(3, 2)
    batch = _sample(task, jax.random.key(0), 4)
    with pytest.raises(ValueError, match=r"readout has shape \(1, 4, 3\) but targets have shape \(1, 4, 2\)"):
        task.loss(_output(jnp.zeros((1, 4, 3))), batch)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        task.sample(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="unknown coding 'phase'"):
        DelayedXOR(coding="phase")
    with pytest.raises(ValueError, match="decision=0.2 ms is shorter than one step"):
        Parity(decision=0.2, dt=1.0)
    with pytest.raises(ValueError, match="delay must be finite and >= 0"):
        Parity(delay=-1.0)
    xor = DelayedXOR()
    xb = _sample(xor, jax.random.key(0), 4)
    with pytest.raises(ValueError, match=r"readout has shape \(\d+, 4, 3\), expected \[time, batch, 2\]"):
        xor.loss(_output(jnp.zeros((xor.steps, 4, 3))), xb)
    with pytest.raises(ValueError, match=r"readout has shape \(\d+, 5, 2\)"):
        xor.loss(_output(jnp.zeros((xor.steps, 5, 2))), xb)


def _groups(inputs, channels):
    """`[time, batch, groups * channels]` analog inputs -> `[time, batch, groups]` 0/1 activity."""
    x = np.asarray(inputs)
    return x.reshape(x.shape[0], x.shape[1], -1, channels)[..., 0]


def test_store_recall_labels_the_bit_shown_at_the_store_cue():
    task = sj.tasks.StoreRecall(n_periods=5, period=4.0, channels=2, coding="rate")
    for min_delay in (1, 3):
        t = task.with_min_delay(min_delay)
        batch = t.sample(jax.random.key(min_delay), 400)
        g = _groups(batch.inputs, 2)[::4]                            # one row per period: [periods, batch, 4]
        store, recall, value = g[..., 0], g[..., 1], g[..., 2:]
        assert np.all(store.sum(0) == 1) and np.all(recall[-1] == 1) and np.all(recall[:-1] == 0)
        s = np.argmax(store, axis=0)
        assert set(s) == set(range(5 - min_delay))                   # delays of at least min_delay periods
        shown = value[s, np.arange(400)]                               # [batch, 2] one-hot bit at the store
        np.testing.assert_array_equal(np.argmax(shown, -1), np.asarray(batch.targets))
        np.testing.assert_array_equal(np.asarray(batch.mask), np.repeat([0, 0, 0, 0, 1], 4))
    with pytest.raises(ValueError, match="min_delay=5 periods does not fit"):
        task.with_min_delay(5)


@pytest.mark.parametrize("bias", [0.5, 0.7, 1.0])
def test_evidence_accumulation_labels_the_majority_and_biases_cues(bias):
    """Right-cue count k of n cues: a fair mixture of Binomial(n, p) and Binomial(n, 1 - p), so
    E (k - n/2)^2 = n p (1 - p) + n^2 (p - 1/2)^2."""
    n, trials = 7, 4000
    task = sj.tasks.EvidenceAccumulation(n_cues=n, cue_duration=2.0, cue_gap=1.0, delay=3.0, decision=2.0,
                                         channels=1, coding="rate", cue_bias=bias)
    batch = task.sample(jax.random.key(0), trials)
    g = _groups(batch.inputs, 1)
    cues = g[: 3 * n: 3]                                             # first step of each cue: [cues, batch, 3]
    assert np.all(cues[..., :2].sum(-1) == 1) and not g[3 * n:, :, :2].any()
    k = cues[..., 1].sum(0)
    np.testing.assert_array_equal((2 * k > n).astype(int), np.asarray(batch.targets))
    second_moment = np.mean((k - n / 2) ** 2)
    assert abs(second_moment - (n * bias * (1 - bias) + n**2 * (bias - 0.5) ** 2)) < 0.15
    np.testing.assert_array_equal(np.asarray(batch.mask)[-2:], 1)
    np.testing.assert_array_equal(g[-2:, :, 2], 1)
    with pytest.raises(ValueError, match="cue_bias must be a probability in \\[0.5, 1\\], got 0.3"):
        sj.tasks.EvidenceAccumulation(cue_bias=0.3)
