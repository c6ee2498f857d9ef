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
dense Hessian). Group blocks use the diagonal block `H_gg`. For clock-driven spiking networks the
"Hessian" is the derivative of the surrogate gradient, so curvature and the predicted loss change
are meaningful for smooth (rate / event-driven) models.

Error bars are delete-one jackknife standard errors over the samples (in closed form), except for
the median SNR: a delete-a-block jackknife over at most 8 blocks (every replicate takes a median
over all parameters, and the delete-one jackknife of a median is not consistent anyway); medians
are found by selection, not by sorting. Every group's numbers come from one set of sums over 0/1
group weights (`simjax.analysis._group_statistics`), so a report compiles to one program whose
size does not grow with the number of groups.
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
from ._group_statistics import group_rows, group_statistics, group_sums

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


def summary_arrays(G, g, groups, *, loss_fn=None, theta=None, learning_rate=1e-3, chunk_size=None,
                   exact_rtol=None) -> dict:
    """`summarize` as a dict of arrays (jittable); per-sample Hessian-vector products and loss
    changes run `chunk_size` samples at a time. With groups besides `"total"`, adds the aggregate
    `"learned"` of the groups not computed exactly (see the module docstring)."""
    exact_rtol = default_exact_rtol(G.dtype) if exact_rtol is None else exact_rtol
    curvature = None if loss_fn is None else (lambda v: hvp(loss_fn, theta, v))
    reports, K_total = group_reports(G, g, groups, exact_rtol=exact_rtol, curvature=curvature,
                                     chunk_size=chunk_size)
    nan, zero = jnp.full((), jnp.nan, G.dtype), jnp.zeros((), G.dtype)
    out = {}
    for name, (full, se, deviation, exact) in reports.items():
        out[name] = {q: (full[q], se[q]) for q in QUANTITIES if curvature is not None or not q.startswith("curvature")}
        out[name]["max_relative_deviation"] = (deviation, nan)
        out[name]["exact"] = (exact, zero)
        if name == "total" and curvature is not None:
            predicted, measured, measured_se = _loss_change(loss_fn, theta, G, g, K_total, learning_rate, chunk_size)
            out[name]["loss_change_predicted"] = (predicted, nan)
            out[name]["loss_change_measured"] = (measured, measured_se)
    return out


def group_reports(G, g, groups: dict[str, np.ndarray], *, exact_rtol: float, curvature=None, chunk_size=None,
                  errors: bool = True) -> tuple[dict, jax.Array | None]:
    """`({group: (stats, stderr, max_relative_deviation, exact)}, K_total)` for the samples `G
    [S, P]` against `g [P]` and the boolean masks `groups`, with the aggregate `"learned"` (after
    `"total"`) when there are groups besides `"total"`. `curvature(v) = H v` adds the curvature
    quantities (each group's diagonal Hessian block, `chunk_size` samples at a time); without
    `errors` the jackknife is skipped (`stderr` is None).

    All groups come out of one set of sums (`simjax.analysis._group_statistics`), so the
    program's size does not grow with the number of groups. `"learned"` weighs the groups whose
    samples are not all within `exact_rtol |g|` of `g`; its sums are those groups' sums added.
    """
    S = G.shape[0]
    names = [name for name in groups if name != LEARNED]
    W = group_rows({name: groups[name] for name in names}, G.shape[1], G.dtype)
    sums = group_sums(G, g, W)
    parts = [i for i, name in enumerate(names) if name != "total"]
    if parts:  # the learned aggregate: weights over the groups, known at run time
        exact = _relative_deviation(sums, exact_rtol)[1]
        inexact = jnp.zeros(len(names), G.dtype).at[jnp.asarray(parts)].set(1 - exact[jnp.asarray(parts)])
        at = names.index("total") + 1 if "total" in names else 0
        insert = lambda rows, new: jnp.concatenate([rows[:at], new[None], rows[at:]])  # noqa: E731
        sums = jax.tree.map(lambda v: insert(v, jnp.tensordot(inexact, v, 1)), sums)
        W = insert(W, inexact @ W)
        names.insert(at, LEARNED)
    deviation, exact = _relative_deviation(sums, exact_rtol)
    if LEARNED in names:  # exact only when empty: each of its groups was found inexact
        exact = exact.at[names.index(LEARNED)].set(sums["count"][names.index(LEARNED)] == 0)
    if curvature is None:
        K, c, d = jnp.zeros((len(names), S, S), G.dtype), jnp.zeros((len(names), S), G.dtype), jnp.zeros(len(names))
    else:
        def block(w):  # the products with the group's diagonal Hessian block
            Gw, gw = G * w, g * w
            HG = _chunked_map(curvature, Gw, chunk_size) * w
            return Gw @ HG.T, HG @ gw, gw @ (curvature(gw) * w)

        K, c, d = jax.lax.map(block, W)
    full, se = group_statistics(G, g, W, K, c, d.astype(G.dtype), errors=errors, sums=sums)
    empty = sums["count"] == 0
    deviation, exact = jnp.where(empty, jnp.nan, deviation), jnp.where(empty, True, exact).astype(G.dtype)
    pick = lambda t, i: None if t is None else jax.tree.map(lambda v: v[i], t)  # noqa: E731
    reports = {name: (pick(full, i), pick(se, i), deviation[i], exact[i]) for i, name in enumerate(names)}
    return reports, (K[names.index("total")] if "total" in names else None)


def _relative_deviation(sums, exact_rtol):
    """`(max_s |g_s - g| / |g|, exact)` per group."""
    deviation, gnorm = jnp.sqrt(jnp.max(sums["deviation2"], axis=1)), jnp.sqrt(sums["gnorm2"])
    relative = jnp.where(gnorm > 0, deviation / jnp.where(gnorm > 0, gnorm, 1.0),
                         jnp.where(deviation > 0, jnp.inf, 0.0))
    return relative, deviation <= exact_rtol * gnorm


def _loss_change(loss_fn, theta, G, g, K, eta, chunk_size=None):
    S = G.shape[0]
    m = jnp.mean(G, axis=0)
    mHm = jnp.mean(K)
    tr_hcov = (jnp.trace(K) - S * mHm) / (S - 1)
    predicted = -eta * jnp.vdot(g, m) + eta**2 / 2 * (mHm + tr_hcov)
    base = loss_fn(theta)
    changes = _chunked_map(lambda u: loss_fn(theta - eta * u) - base, G, chunk_size)
    return predicted, jnp.mean(changes), jnp.std(changes) / np.sqrt(S)
