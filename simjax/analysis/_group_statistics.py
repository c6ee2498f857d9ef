r"""The statistics of a gradient-quality report for many parameter groups at once, from sums.

Every reported quantity but the median SNR is a function of sums over a group's coordinates: of
per-coordinate terms (`m.g`, `|m|^2`, the summed variance `Q`, `|g|^2`) and of per-sample terms
(`g_s.g`, `|g_s|^2`, sign agreements, and for the jackknife `|D_s|^2`, `D_s.g`, `D_s.m` with
`D = G - m`). Sums over a group with 0/1 weights `w` are products with `w`, so all groups come
from one matrix product with the stacked weights `W [groups, P]`, the quantities are then computed
on `[groups, S]` arrays, and the program's size does not grow with the number of groups. The
per-coordinate SNR `m_p^2 / Var_p` does not depend on the group either; only its median is taken
per group (one selection per group, over the coordinates the group weights).

Leave-one-out (delete-one jackknife) statistics come in closed form (`sum_s D_s = 0`): leaving out
sample `s` moves the mean by `-D_s / (S - 1)`, so `m_(s).g = m.g - D_s.g / (S - 1)`,
`|m_(s)|^2 = |m|^2 - 2 D_s.m / (S - 1) + |D_s|^2 / (S - 1)^2` and the summed variance becomes
`(Q - S / (S - 1) |D_s|^2) / (S - 2)`. The median SNR gets a delete-a-block jackknife (see
`snr_blocks`): leaving out block `b` (`h` samples, `n = S - h` kept) moves the mean by
`-sum_b D_s / n` and the per-coordinate sum of squares to `q - sum_b D_s^2 - (sum_b D_s)^2 / n`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

#: Sums over a group's coordinates of per-coordinate terms, and of per-sample terms.
COORDINATE_SUMS = ("m_dot_g", "m_norm2", "Q", "gnorm2", "count")
SAMPLE_SUMS = ("g_dot", "norm2", "same", "D_norm2", "D_dot_g", "D_dot_m", "deviation2")


def group_rows(groups: dict[str, np.ndarray], size: int, dtype) -> jax.Array:
    """The boolean masks as 0/1 weights `[groups, size]`; a contiguous mask (a parameter group
    always is) is built from an index range, so the program holds no `size`-long constant."""
    iota = jnp.arange(size)
    rows = []
    for mask in groups.values():
        idx = np.flatnonzero(mask)
        if idx.size and idx[-1] - idx[0] + 1 == idx.size:
            rows.append(((iota >= idx[0]) & (iota <= idx[-1])).astype(dtype))
        else:
            rows.append(jnp.asarray(mask, dtype))
    return jnp.stack(rows)


def _centred(G: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`(m, D, q)`: the mean over samples, the deviations `G - m` and their per-coordinate sum of
    squares."""
    m = jnp.mean(G, axis=0)
    D = G - m
    return m, D, jnp.sum(D**2, axis=0)


def group_sums(G: jax.Array, g: jax.Array, W: jax.Array) -> dict[str, jax.Array]:
    """`{name: sums}` over each group (rows of the weights `W [groups, P]`) of the samples `G
    [S, P]` against `g [P]`: `COORDINATE_SUMS` shaped `[groups]`, `SAMPLE_SUMS` `[groups, S]`."""
    m, D, q = _centred(G)

    def over(x):  # sums over each group's coordinates: [..., P] -> [groups, ...]
        return jnp.moveaxis(jnp.matmul(x, W.T, precision=jax.lax.Precision.HIGHEST), -1, 0)

    coordinate = over(jnp.stack([m * g, m * m, q, g * g, jnp.ones_like(g)]))
    sums = dict(zip(COORDINATE_SUMS, coordinate.T, strict=True))
    same = (jnp.sign(G) == jnp.sign(g)).astype(G.dtype)
    terms = (G * g, G * G, same, D * D, D * g, D * m, (G - g) ** 2)
    return sums | {name: over(t) for name, t in zip(SAMPLE_SUMS, terms, strict=True)}


def quantities(n, m_dot_g, m_norm2, tr_cov, gnorm2, per_cos, agree, mHm, w_dot_c, d, tr_hcov) -> dict:
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


def _one_group(sums: dict, K, c, d, errors: bool):
    """`(stats, stderr or None)` of one group from its sums and curvature terms (`K = G H G^T`,
    `c = G H g`, `d = g^T H g`)."""
    S = K.shape[0]
    per_cos = sums["g_dot"] / jnp.maximum(jnp.sqrt(sums["norm2"] * sums["gnorm2"]), 1e-300)
    agree = sums["same"] / sums["count"]
    diag, mHm = jnp.diag(K), jnp.mean(K)
    full = quantities(S, sums["m_dot_g"], sums["m_norm2"], sums["Q"] / (S - 1), sums["gnorm2"], jnp.mean(per_cos),
                      jnp.mean(agree), mHm, jnp.mean(c), d, (jnp.sum(diag) - S * mHm) / (S - 1))
    if not errors:
        return full, None
    D2 = sums["D_norm2"]
    m_loo_dot_g = sums["m_dot_g"] - sums["D_dot_g"] / (S - 1)
    m_loo_norm2 = sums["m_norm2"] - 2 * sums["D_dot_m"] / (S - 1) + D2 / (S - 1) ** 2
    tr_cov_loo = (sums["Q"] - S / (S - 1) * D2) / (S - 2)
    mHm_loo = (jnp.sum(K) - jnp.sum(K, axis=0) - jnp.sum(K, axis=1) + diag) / (S - 1) ** 2
    w_dot_c_loo = (jnp.sum(c) - c) / (S - 1)
    tr_hcov_loo = (jnp.sum(diag) - diag - (S - 1) * mHm_loo) / (S - 2)
    others = lambda v: (jnp.sum(v) - v) / (S - 1)  # noqa: E731
    loo = quantities(S - 1, m_loo_dot_g, m_loo_norm2, tr_cov_loo, sums["gnorm2"], others(per_cos), others(agree),
                     mHm_loo, w_dot_c_loo, d, tr_hcov_loo)
    return full, jax.tree.map(lambda a: jnp.sqrt((S - 1) / S * jnp.sum((a - jnp.mean(a)) ** 2)), loo)


def snr_blocks(samples: int) -> int:
    """Blocks of the delete-a-block jackknife of the median SNR: the largest divisor of `samples`
    that is at most 8 (each replicate takes a median over all parameters, so 8 replicates instead of
    `samples`)."""
    return max(b for b in range(1, min(samples, 8) + 1) if samples % b == 0)


def snr_replicates(G: jax.Array, errors: bool) -> jax.Array:
    """The per-coordinate SNR `m_p^2 / Var_p` on all samples (row 0) and, with `errors` and at
    least 2 blocks, with each block of `snr_blocks` left out (the other rows)."""
    S = G.shape[0]
    m, D, q = _centred(G)
    snr = lambda mean, var: mean**2 / jnp.maximum(var, 1e-300)  # noqa: E731
    rows = [snr(m, q / (S - 1))[None]]
    B = snr_blocks(S)
    if errors and B >= 2:
        n = S - S // B
        Db = D.reshape(B, S // B, -1)
        block_sum, block_sq = jnp.sum(Db, axis=1), jnp.sum(Db**2, axis=1)
        rows.append(snr(m - block_sum / n, (q - block_sq - block_sum**2 / n) / (n - 1)))
    return jnp.concatenate(rows)


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


def group_statistics(G: jax.Array, g: jax.Array, W: jax.Array, K: jax.Array, c: jax.Array, d: jax.Array, *,
                     errors: bool = True, sums: dict | None = None) -> tuple[dict, dict | None]:
    """`(stats, stderr)`: every quantity of every group (rows of the 0/1 weights `W [groups, P]`,
    each `[groups]`) for the samples `G [S, P]` against `g [P]`, with the curvature terms `K
    [groups, S, S]`, `c [groups, S]`, `d [groups]`; `stderr` is None without `errors`. `sums`:
    `group_sums(G, g, W)` if already computed. A group without coordinates reads NaN."""
    sums = group_sums(G, g, W) if sums is None else sums
    full, se = jax.vmap(lambda s, K_, c_, d_: _one_group(s, K_, c_, d_, errors))(sums, K, c, d)
    snr = snr_replicates(G, errors)
    medians = jax.lax.map(lambda w: median_nonnegative(snr, w), W)  # [groups, 1 + B]
    full["snr_median"] = medians[:, 0]
    if errors:
        B = medians.shape[1] - 1
        reps = medians[:, 1:]
        se["snr_median"] = (jnp.sqrt((B - 1) / B * jnp.sum((reps - jnp.mean(reps, 1, keepdims=True)) ** 2, 1))
                            if B >= 2 else jnp.full(W.shape[0], jnp.nan, G.dtype))
    empty = sums["count"] == 0
    blank = lambda t: jax.tree.map(lambda v: jnp.where(empty, jnp.nan, v), t)  # noqa: E731
    return blank(full), blank(se)


def single_group(G: jax.Array, g: jax.Array, K: jax.Array, c: jax.Array, d: jax.Array, *,
                 errors: bool = True) -> tuple[dict, dict | None]:
    """`group_statistics` of one group holding every coordinate: `(stats, stderr)` with scalar
    entries (`K [S, S]`, `c [S]`, `d` scalar)."""
    full, se = group_statistics(G, g, jnp.ones_like(g)[None], K[None], c[None], d[None], errors=errors)
    first = lambda t: None if t is None else jax.tree.map(lambda v: v[0], t)  # noqa: E731
    return first(full), first(se)
