r"""How far is a learning rule from gradient descent? Bias, variance, alignment and curvature of a
rule's updates against a reference gradient (Ghosh et al., ICLR 2023).

For `S` samples `g_s` of the rule (its noise / keys; the batch is fixed unless
`resample_batch`), reference `g` (default: `simjax.rules.Exact`), mean `m`, and the Hessian
`H` of the task loss, per parameter group and in total:

| quantity | definition |
| --- | --- |
| `relative_bias` | `sqrt(max(b2, 0)) / |g|`, `b2 = |m - g|^2 - tr Cov / S` |
| `relative_bias_squared` | `b2 / |g|^2` (signed: an unbiased estimate of the squared relative bias) |
| `relative_bias_floor` | `sqrt(tr Cov / S) / |g|`: what `|m - g| / |g|` reads for an unbiased rule |
| `relative_variance` | `tr Cov / |g|^2`, `Cov` the sample covariance of `g_s` |
| `cosine_mean` | `cos(m, g)` |
| `cosine_sample` | mean over samples of `cos(g_s, g)` |
| `sign_agreement` | fraction of coordinates with `sign(g_s) = sign(g)` |
| `snr_median` | median over parameters of `m_p^2 / Var_p` |
| `curvature_bias` | `b^T H b`, `b = m - g` (debiased by `tr(H Cov) / S`) |
| `curvature_variance` | `tr(H Cov)` |
| `max_relative_deviation` | `max_s |g_s - g| / |g|` |
| `exact` | 1 when `max_relative_deviation <= exact_rtol` (the group is computed exactly), else 0 |
| `loss_change_predicted` | `-eta g^T m + eta^2 / 2 (m^T H m + tr(H Cov))` (total only) |
| `loss_change_measured` | mean over samples of `L(theta - eta g_s) - L(theta)` (total only) |

`E|m - g|^2 = |E g_s - g|^2 + tr Cov_true / S` and `tr Cov` is unbiased, so `b2` is an unbiased
estimate of the squared bias (the U-statistic `sum_{s != t} (g_s - g).(g_t - g) / (S (S - 1))`): the
squared norm of the sample mean alone would make every unbiased stochastic rule (node and weight
perturbation) read as biased, by `relative_bias_floor`. `relative_bias` clips `b2` at zero; its
jackknife error is unreliable near zero, so a bias is "resolved" when `relative_bias_squared`
exceeds a few of its own error bars.

**Groups.** Besides `"total"` (every parameter) and one group per top-level field of the model
(`w_in`, `w_rec`, `w_out`, ...), a report has the aggregate `"learned"`: the groups the rule does
not compute exactly. Which those are is measured, not declared: a group is exact when every
sample `g_s` equals the reference to rounding (`max_s |g_s - g| <= exact_rtol |g|`, default
`exact_rtol = sqrt(eps)` of the dtype), as the readout gradient is for feedback alignment, e-prop
or a different surrogate. No rule has to announce anything, a rule that happens to be exact in a
group is found out, and a stochastic estimate is never exact. `"learned"` then holds the
parameters the rule actually approximates, so that an exactly computed readout cannot dominate its
numbers the way it dominates `"total"`; it is empty (every quantity NaN, `exact = 1`) for a rule
that is exact everywhere.

Curvature enters only through Hessian-vector products: `H g_s` for every sample and `H g`
(`S + 1` products per group), from which every quadratic form above is exact for the samples (no
dense Hessian). Error bars are delete-one jackknife standard errors over the samples (in closed form), except for
the median SNR: a delete-a-block jackknife over at most 8 blocks (every replicate sorts all parameters,
and the delete-one jackknife of a median is not consistent anyway); medians are found by selection
(`median_nonnegative`), not by sorting.
Group blocks use the diagonal block `H_gg`. For clock-driven spiking networks the "Hessian" is the
derivative of the surrogate gradient, so curvature and the predicted loss change are meaningful for
smooth (rate / event-driven) models.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._checks import check_int
from .._curvature import flat_loss, hvp
from .._memory import available_memory, compiled_memory
from .._table import Table
from ..parameters._parameters import params as trainable_params
from ..rules._exact import Exact

QUANTITIES = ("relative_bias", "relative_bias_squared", "relative_bias_floor", "relative_variance", "cosine_mean",
              "cosine_sample", "sign_agreement", "snr_median", "curvature_bias", "curvature_variance")
LEARNED = "learned"


def parameter_groups(model: Any) -> dict[str, np.ndarray]:
    """`{group: boolean mask over the flat parameter vector}`; a group is a top-level field."""
    p = trainable_params(model)
    leaves = jax.tree_util.tree_flatten_with_path(p)[0]
    masks, offset = {}, 0
    total = sum(int(np.size(leaf)) for _, leaf in leaves)
    for path, leaf in leaves:
        name = _name(path[0]) if path else "params"
        masks.setdefault(name, np.zeros(total, bool))[offset:offset + np.size(leaf)] = True
        offset += int(np.size(leaf))
    return masks


def _name(entry) -> str:
    if isinstance(entry, jax.tree_util.GetAttrKey):
        return entry.name
    if isinstance(entry, jax.tree_util.DictKey):
        return str(entry.key)
    if isinstance(entry, jax.tree_util.SequenceKey):
        return str(entry.idx)
    return str(entry)


def _quantities(n, m_dot_g, m_norm2, tr_cov, gnorm2, per_cos, agree, mHm, w_dot_c, d, tr_hcov):
    """The reported quantities (all but the median SNR) of one set of `n` samples from its
    sufficient statistics."""
    bias2 = m_norm2 - 2 * m_dot_g + gnorm2 - tr_cov / n
    return {
        "relative_bias": jnp.sqrt(jnp.maximum(bias2, 0.0) / gnorm2),
        "relative_bias_squared": bias2 / gnorm2,
        "relative_bias_floor": jnp.sqrt(tr_cov / n / gnorm2),
        "relative_variance": tr_cov / gnorm2,
        "cosine_mean": m_dot_g / jnp.maximum(jnp.sqrt(m_norm2 * gnorm2), 1e-300),
        "cosine_sample": per_cos,
        "sign_agreement": agree,
        "curvature_bias": mHm - 2 * w_dot_c + d - tr_hcov / n,
        "curvature_variance": tr_hcov,
    }


def _sample_terms(G, g, where=None):
    """Means, deviations and per-sample terms; `where` (0/1 over the columns, in which `G` and `g`
    are zero elsewhere) restricts the coordinate averages to a subset chosen at run time."""
    m = jnp.mean(G, axis=0)
    D = G - m
    gnorm2 = jnp.sum(g**2)
    per_cos = (G @ g) / jnp.maximum(jnp.linalg.norm(G, axis=1) * jnp.sqrt(gnorm2), 1e-300)
    same = (jnp.sign(G) == jnp.sign(g)).astype(G.dtype)
    agree = jnp.mean(same, axis=1) if where is None else (same @ where) / jnp.sum(where)
    return m, D, jnp.sum(D**2, axis=0), gnorm2, per_cos, agree


def _snr_median(mean, var, where=None):
    return median_nonnegative(mean**2 / jnp.maximum(var, 1e-300), where)


def median_nonnegative(x: jax.Array, where: jax.Array | None = None) -> jax.Array:
    """`jnp.median(x, axis=-1)` for `x >= 0` (NaN counts as 0), by selection instead of sorting;
    with `where` (nonzero entries selected, shaped like the last axis), the median of the selected
    entries only (NaN if none is).

    Non-negative IEEE floats order like their bit patterns read as unsigned integers, so the lower
    middle element is found exactly by bisecting on the bit pattern (one count over the last axis
    per bit); the upper one is the next larger element. It vectorises over leading axes (the
    jackknife replicates). Kept over `jnp.median` because on a CPU XLA's sort is an order of
    magnitude slower for thousands to millions of entries: `benchmarks/median.py` measures both.
    """
    x = jnp.where(x > 0, x, jnp.zeros((), x.dtype))  # also maps -0.0 and NaN to +0.0
    utype = jnp.dtype(f"uint{x.dtype.itemsize * 8}")
    u = jax.lax.bitcast_convert_type(x, utype)
    if where is None:
        sel = jnp.ones(x.shape[-1], bool)
        n = x.shape[-1]
    else:
        sel = jnp.asarray(where) != 0
        n = jnp.sum(sel)
    count = lambda below: jnp.sum(sel & below, axis=-1)  # noqa: E731
    rank = (n - 1) // 2  # the lower middle order statistic (0-based)

    def body(_, bounds):
        lo, hi = bounds  # the answer's bit pattern lies in [lo, hi]
        mid = lo + (hi - lo) // 2
        enough = count(u <= mid[..., None]) > rank
        return jnp.where(enough, lo, mid + 1), jnp.where(enough, mid, hi)

    top = jnp.max(jnp.where(sel, u, jnp.zeros((), utype)), axis=-1)
    _, lower = jax.lax.fori_loop(0, x.dtype.itemsize * 8, body, (jnp.zeros_like(top), top))
    # upper middle: the same element if it repeats past rank n // 2, else the next larger one
    repeats = count(u <= lower[..., None]) > n // 2
    above = sel & (u > lower[..., None])
    upper = jnp.where(repeats, lower, jnp.min(jnp.where(above, u, top[..., None]), axis=-1))
    lower, upper = (jax.lax.bitcast_convert_type(b, x.dtype) for b in (lower, upper))
    median = jnp.where(repeats, lower, (lower + upper) / 2)
    return median if where is None else jnp.where(n > 0, median, jnp.nan)


def full_stats(G, g, K, c, d, where=None):
    """Every quantity of one parameter group over all `S` samples `G [S, P]` against `g [P]`
    (`K = G H G^T`, `c = G H g`, `d = g^T H g`; zeros without curvature). `where`: see
    `_sample_terms`."""
    S = G.shape[0]
    m, _, q, gnorm2, per_cos, agree = _sample_terms(G, g, where)
    diag = jnp.diag(K)
    stats = _quantities(S, m @ g, m @ m, jnp.sum(q) / (S - 1), gnorm2, jnp.mean(per_cos), jnp.mean(agree),
                        jnp.mean(K), jnp.mean(c), d, (jnp.sum(diag) - S * jnp.mean(K)) / (S - 1))
    return {**stats, "snr_median": _snr_median(m, q / (S - 1), where)}


def _with_jackknife(G, g, K, c, d, where=None):
    """Every quantity on all `S` samples, and its jackknife standard error.

    The leave-one-out statistics come in closed form from the deviations `D = G - mean(G)`
    (`sum_i D_i = 0`): leaving out sample `i` moves the mean by `-D_i / (S - 1)` and the sum of
    squared deviations to `Q - S/(S-1) |D_i|^2` (per parameter likewise), so no statistic is
    recomputed from scratch `S` times.
    """
    S = G.shape[0]
    m, D, q, gnorm2, per_cos, agree = _sample_terms(G, g, where)
    D2, Q, diag = jnp.sum(D**2, axis=1), jnp.sum(q), jnp.diag(K)
    full = full_stats(G, g, K, c, d, where)
    # leave-one-out (vectors over the left-out sample i)
    shift = D / (S - 1)  # m_i = m - shift_i
    m_loo_dot_g = m @ g - shift @ g
    m_loo_norm2 = m @ m - 2 * (shift @ m) + D2 / (S - 1) ** 2
    tr_cov_loo = (Q - S / (S - 1) * D2) / (S - 2)
    mHm_loo = (jnp.sum(K) - jnp.sum(K, axis=0) - jnp.sum(K, axis=1) + diag) / (S - 1) ** 2
    w_dot_c_loo = (jnp.sum(c) - c) / (S - 1)
    tr_hcov_loo = (jnp.sum(diag) - diag - (S - 1) * mHm_loo) / (S - 2)
    others = lambda v: (jnp.sum(v) - v) / (S - 1)  # noqa: E731
    loo = _quantities(S - 1, m_loo_dot_g, m_loo_norm2, tr_cov_loo, gnorm2, others(per_cos), others(agree),
                      mHm_loo, w_dot_c_loo, d, tr_hcov_loo)
    se = jax.tree.map(lambda a: jnp.sqrt((S - 1) / S * jnp.sum((a - jnp.mean(a)) ** 2)), loo)
    se["snr_median"] = _snr_median_se(D, m, q, where)  # a block jackknife (see `snr_blocks`)
    return full, se


def snr_blocks(samples: int) -> int:
    """Blocks of the delete-a-block jackknife of the median SNR: the largest divisor of `samples`
    that is at most 8 (each replicate sorts all parameters, so 8 replicates instead of `samples`)."""
    return max(b for b in range(1, min(samples, 8) + 1) if samples % b == 0)


def _snr_median_se(D, m, q, where=None):
    """Delete-a-block jackknife error of the median per-parameter SNR (blocks of consecutive samples).

    Leaving out block `b` (`h` samples, `n = S - h` kept): the mean moves by
    `-sum_b D_i / n` and the per-parameter sum of squared deviations becomes
    `q - sum_b D_i^2 - (sum_b D_i)^2 / n`.
    """
    S = D.shape[0]
    B = snr_blocks(S)
    if B < 2:
        return jnp.full((), jnp.nan, D.dtype)
    h, n = S // B, S - S // B
    Db = D.reshape(B, h, -1)
    block_sum, block_sq = jnp.sum(Db, axis=1), jnp.sum(Db**2, axis=1)
    var = (q - block_sq - block_sum**2 / n) / (n - 1)
    reps = _snr_median(m - block_sum / n, var, where)
    return jnp.sqrt((B - 1) / B * jnp.sum((reps - jnp.mean(reps)) ** 2))


def _chunked_map(fn, xs, chunk_size):
    """`jax.vmap(fn)(xs)` computed `chunk_size` leading entries at a time (`None`: all at once)."""
    n = jax.tree.leaves(xs)[0].shape[0]
    if chunk_size is None or chunk_size >= n:
        return jax.vmap(fn)(xs)
    return jax.lax.map(fn, xs, batch_size=chunk_size)


def _one_update(model, rule, task, batch, key):
    """One flat update of `rule` (fresh rule state from `key`)."""
    k_init, k_step = jax.random.split(key)
    _, upd, _, _ = rule.step(rule.init(model, k_init), model, task, batch, k_step)
    return ravel_pytree(upd)[0]


def sample_updates(model, rule, task, batch, key, samples, chunk_size=None):
    """`[samples, P]` flat updates of `rule` for independent keys on a fixed batch, computed
    `chunk_size` samples at a time (`None`: all at once)."""
    keys = jax.random.split(key, samples)
    return _chunked_map(lambda k: _one_update(model, rule, task, batch, k), keys, chunk_size)


def sample_memory(model: Any, rule: Any, task: Any, batch: Any, key: Any) -> int:
    """Bytes of temporary memory XLA allocates for one sample of `rule`'s update (its compiled
    memory analysis; the dominant cost of a report, which holds `chunk_size` of them at a time)."""
    analysis = compiled_memory(_one_update, model, rule, task, batch, key)
    return int(analysis.temp_size_in_bytes + analysis.output_size_in_bytes) if analysis is not None else 0


#: The widest chunk `auto_chunk_size` picks on a CPU (the figures behind it are on the benchmarks page).
CPU_CHUNK = 16


def choose_chunk_size(per_sample: int, samples: int, *, available: int, fraction: float = 0.5,
                      target: int = 2 * 2**30, owner: str = "gradient_quality") -> int:
    """Samples per chunk: as many (at most `samples`) as fit in `target` bytes (2 GiB: beyond a
    few samples at a time, vmapping more buys little speed on a CPU but costs memory) or in
    `fraction` of the `available` bytes if that is less, each sample needing `per_sample`; at
    least one. Raises `MemoryError` before anything runs when one sample does not fit in `fraction`
    of `available`, with the numbers and what to change."""
    limit = int(fraction * available)
    if per_sample > limit:
        raise MemoryError(f"{owner}: one sample of the rule needs {per_sample / 2**30:.2f} GiB of temporary "
                          f"memory, more than the {limit / 2**30:.2f} GiB budget ({fraction:.0%} of the "
                          f"{available / 2**30:.2f} GiB available); use a smaller batch_size or shorter trials, "
                          "or pass a batch of fewer trials")
    return max(1, min(samples, min(limit, target) // max(per_sample, 1)))


def auto_chunk_size(model: Any, rule: Any, task: Any, batch: Any, key: Any, *, samples: int, curvature: bool = True,
                    share: float = 1.0, owner: str = "gradient_quality") -> int:
    """The chunk of samples (see `choose_chunk_size`) for `share` of the device's available memory, from
    the compiled memory of one sample (twice that with `curvature`: a Hessian-vector product
    costs about a second gradient), at most `CPU_CHUNK` samples on a CPU (where a wider vmapped
    program needs more memory per sample than one sample's and runs no faster), rounded down to a
    power of two (XLA schedules chunks of other sizes with up to twice the memory)."""
    per_sample = sample_memory(model, rule, task, batch, key) * (2 if curvature else 1)
    chunk = choose_chunk_size(per_sample, samples, available=int(share * available_memory()),
                              target=int(share * 2 * 2**30), owner=owner)
    chunk = min(chunk, CPU_CHUNK) if jax.default_backend() == "cpu" else chunk
    return 1 << (chunk.bit_length() - 1)


def report_arrays(model: Any, rule: Any, task: Any, batch: Any, key: Any, *, samples: int, reference: Any = None,
                  curvature: bool = True, learning_rate: float = 1e-3, resample_batch: bool = False,
                  batch_size: int = 32, chunk_size: int | None = None, exact_rtol: float | None = None) -> dict:
    """The jittable core of `gradient_quality`: `{group: {quantity: (value, stderr)}}` as arrays.
    Every per-sample computation (updates, Hessian-vector products, loss changes) runs
    `chunk_size` samples at a time (`None`: all at once)."""
    reference = Exact() if reference is None else reference
    k_batch, k_rule, k_ref = jax.random.split(key, 3)
    theta, loss_fn, _ = flat_loss(model, task, batch)
    if resample_batch:
        reference_update = lambda b: ravel_pytree(reference(model, task, b, k_ref)[1])[0]  # noqa: E731
        pairs = (jax.random.split(k_batch, samples), jax.random.split(k_rule, samples))

        def one(kb_k):
            b = task.sample(kb_k[0], batch_size)
            return _one_update(model, rule, task, b, kb_k[1]), reference_update(b)

        G, references = _chunked_map(one, pairs, chunk_size)
        g = jnp.mean(references, axis=0)
    else:
        G = sample_updates(model, rule, task, batch, k_rule, samples, chunk_size)
        g = ravel_pytree(reference(model, task, batch, k_ref)[1])[0]
    if G.shape[1] != theta.shape[0]:
        raise ValueError(f"gradient_quality: the rule's updates have {G.shape[1]} entries but the model has "
                         f"{theta.shape[0]} trainable parameters")
    groups = {"total": np.ones(theta.shape[0], bool), **parameter_groups(model)}
    return summary_arrays(G, g, groups, loss_fn=loss_fn if curvature else None, theta=theta,
                          learning_rate=learning_rate, chunk_size=chunk_size, exact_rtol=exact_rtol)


def gradient_quality(model: Any, rule: Any, task: Any, *, key: Any, samples: int = 64,
                     reference: Any = None, batch: Any = None, batch_size: int = 32,
                     learning_rate: float = 1e-3, curvature: bool = True,
                     resample_batch: bool = False, chunk_size: int | None = None,
                     exact_rtol: float | None = None) -> Table:
    """Bias, variance, alignment and curvature of `rule` against `reference` (see the module
    docstring for the quantities), computed in one compiled program.

    Samples are streamed: the program holds the updates `[samples, P]` and the statistics, but
    runs the memory-heavy per-sample work (the rule's update, a Hessian-vector product, a loss
    evaluation) `chunk_size` samples at a time. By default the chunk is the largest power of two
    (at most 16 on a CPU) that fits in 2 GiB (or in half the memory the device has available, if
    less), judged from XLA's compiled memory analysis of one sample before anything runs (a
    `MemoryError` names the numbers if not even one sample fits); on a large accelerator a larger
    `chunk_size` may run faster.

    **Arguments:**

    - `model, rule, task`: as for `simjax.fit`; `key`: PRNG key.
    - `samples`: number of rule draws (>= 3).
    - `reference`: the reference rule (default `Exact()`); it is evaluated once per batch.
    - `batch`: a fixed `Batch` (default `task.sample(key, batch_size)`).
    - `learning_rate`: `eta` of the one-step loss-change prediction.
    - `curvature`: compute the Hessian-vector-product quantities.
    - `resample_batch`: each sample draws its own batch; the reference is then the mean exact
      gradient over those batches and the variance includes minibatch noise.
    - `chunk_size`: samples computed at a time (default: chosen from memory, see above). The
      numbers do not depend on it.
    - `exact_rtol`: a group is exact when every sample is within `exact_rtol |g|` of the
      reference (default `sqrt(eps)` of the dtype).

    **Returns:** a `simjax.analysis.Table` with columns `group` (a parameter group, `"learned"`
    for the groups the rule does not compute exactly, or `"total"` for all parameters),
    `quantity`, `value`, `stderr`.
    """
    check_int("samples", samples, minimum=3, owner="gradient_quality")
    batch = task.sample(jax.random.split(key, 3)[0], batch_size) if batch is None else batch
    if chunk_size is None:
        chunk_size = auto_chunk_size(model, rule, task, batch, key, samples=samples, curvature=curvature)
    chunk_size = check_int("chunk_size", chunk_size, minimum=1, owner="gradient_quality")
    arrays = eqx.filter_jit(report_arrays)(model, rule, task, batch, key, samples=samples, reference=reference,
                                           curvature=curvature, learning_rate=learning_rate,
                                           resample_batch=resample_batch, batch_size=batch_size,
                                           chunk_size=min(chunk_size, samples), exact_rtol=exact_rtol)
    return to_table(arrays)


def to_table(arrays: dict) -> Table:
    """`report_arrays`' output as a tidy table."""
    rows = [{"group": group, "quantity": q, "value": float(v), "stderr": float(se)}
            for group, quantities in arrays.items() for q, (v, se) in quantities.items()]
    return Table.from_rows(rows)


def summarize(G: jax.Array, g: jax.Array, groups: dict[str, np.ndarray], *, loss_fn: Any = None,
              theta: Any = None, learning_rate: float = 1e-3, exact_rtol: float | None = None) -> Table:
    """The report for flat samples `G [S, P]` against the flat reference `g [P]`, per group
    (boolean masks over `P`); curvature quantities when `loss_fn(theta)` is given."""
    report = jax.jit(lambda G, g, theta: summary_arrays(G, g, groups, loss_fn=loss_fn, theta=theta,
                                                        learning_rate=learning_rate, exact_rtol=exact_rtol))
    return to_table(report(G, g, theta))


def default_exact_rtol(dtype: Any) -> float:
    """The default tolerance of "exact": `sqrt(eps)` of `dtype` (3.5e-4 in float32, 1.5e-8 in
    float64), far above the rounding of two ways of computing the same gradient and far below any
    approximation a rule makes on purpose."""
    return float(np.sqrt(np.finfo(dtype).eps))


def _deviation(G, g, exact_rtol):
    """`(max_s |g_s - g| / |g|, exact)` of one group (`exact` as 0. / 1.)."""
    dev = jnp.max(jnp.linalg.norm(G - g, axis=1))
    gnorm = jnp.linalg.norm(g)
    exact = dev <= exact_rtol * gnorm
    relative = jnp.where(gnorm > 0, dev / jnp.where(gnorm > 0, gnorm, 1.0), jnp.where(dev > 0, jnp.inf, 0.0))
    return relative, exact.astype(G.dtype)


def summary_arrays(G, g, groups, *, loss_fn=None, theta=None, learning_rate=1e-3, chunk_size=None,
                   exact_rtol=None) -> dict:
    """`summarize` as a dict of arrays (jittable); per-sample Hessian-vector products and loss
    changes run `chunk_size` samples at a time. With groups besides `"total"`, adds the aggregate
    `"learned"` of the groups not computed exactly (see the module docstring)."""
    exact_rtol = default_exact_rtol(G.dtype) if exact_rtol is None else exact_rtol
    out = {}
    S = G.shape[0]
    nan = jnp.full((), jnp.nan, G.dtype)
    zero = jnp.zeros((), G.dtype)
    parts = {name: mask for name, mask in groups.items() if name not in ("total", LEARNED)}
    exact = {name: _deviation(*_select(mask, G, g), exact_rtol) for name, mask in parts.items()}
    if parts:  # the learned aggregate: a 0/1 weight over the coordinates, known at run time
        learned = sum(jnp.asarray(mask, G.dtype) * (1 - exact[name][1]) for name, mask in parts.items())
        groups = {**groups, LEARNED: learned}
        groups = {name: groups[name] for name in ("total", LEARNED, *groups) if name in groups}
    for name, mask in groups.items():
        dynamic = name == LEARNED
        mk = mask if dynamic else jnp.asarray(mask, G.dtype)
        if loss_fn is not None:
            Gm, gm = G * mk, g * mk
            HG = _chunked_map(lambda v: hvp(loss_fn, theta, v), Gm, chunk_size) * mk
            Hg = hvp(loss_fn, theta, gm) * mk
            K, c, d = Gm @ HG.T, HG @ gm, gm @ Hg
        else:
            K, c, d = jnp.zeros((S, S), G.dtype), jnp.zeros(S, G.dtype), jnp.zeros((), G.dtype)
        if dynamic:
            Gs, gs = G * mk, g * mk
            full, se = _with_jackknife(Gs, gs, K, c, d, where=mk)
            deviation, _ = _deviation(Gs, gs, exact_rtol)
            empty = jnp.sum(mk) == 0  # exact everywhere: nothing is learned by the rule
            full, se = (jax.tree.map(lambda v: jnp.where(empty, nan, v), t) for t in (full, se))
            deviation, exact_flag = jnp.where(empty, nan, deviation), empty.astype(G.dtype)
        else:
            Gs, gs = _select(mask, G, g)
            full, se = _with_jackknife(Gs, gs, K, c, d)
            deviation, exact_flag = exact[name] if name in exact else _deviation(Gs, gs, exact_rtol)
        out[name] = {q: (full[q], se[q]) for q in QUANTITIES if loss_fn is not None or not q.startswith("curvature")}
        out[name]["max_relative_deviation"] = (deviation, nan)
        out[name]["exact"] = (exact_flag, zero)
        if name == "total" and loss_fn is not None:
            predicted, measured, measured_se = _loss_change(loss_fn, theta, G, g, K, learning_rate, chunk_size)
            out[name]["loss_change_predicted"] = (predicted, nan)
            out[name]["loss_change_measured"] = (measured, measured_se)
    return out


def _select(mask: np.ndarray, G, g):
    """The columns of `G` and entries of `g` in `mask`: a static slice when they are contiguous
    (a parameter group always is), a gather otherwise."""
    idx = np.flatnonzero(mask)
    if idx.size and idx[-1] - idx[0] + 1 == idx.size:
        return G[:, idx[0]:idx[-1] + 1], g[idx[0]:idx[-1] + 1]
    return G[:, idx], g[idx]


def _loss_change(loss_fn, theta, G, g, K, eta, chunk_size=None):
    S = G.shape[0]
    m = jnp.mean(G, axis=0)
    mHm = jnp.mean(K)
    tr_hcov = (jnp.trace(K) - S * mHm) / (S - 1)
    predicted = -eta * jnp.vdot(g, m) + eta**2 / 2 * (mHm + tr_hcov)
    base = loss_fn(theta)
    changes = _chunked_map(lambda u: loss_fn(theta - eta * u) - base, G, chunk_size)
    return predicted, jnp.mean(changes), jnp.std(changes) / np.sqrt(S)
