r"""The reduced model of sequential learning: learning confined to the plane of two patterns.

With `Delta J = P M P^T / N` (`P = [a b]`, `|a| = |b| = sqrt(N)`, `a . b = 0`), no random
connectivity (`g = 0`), input along the patterns (`u = P s`) and a start at rest, the state of
the network stays in the plane, `x(t) = P kappa(t)`, and the `N`-dimensional network is exactly
the `K`-dimensional system (`K = 2`)

    tau dkappa/dt = -kappa + s(t) + M Phi(kappa),      Phi(kappa) = P^T phi(P kappa) / N,

read out as `z_p = r . Phi(kappa)` for a pattern `p = P r`. The clock-driven step is the network's
exponential Euler step projected on the plane,

    kappa_t = alpha kappa_{t-1} + (1 - alpha) (s_t + M Phi(kappa_{t-1})),   alpha = exp(-dt / tau).

`ReducedModel.gradient` is the gradient of a task's loss with respect to `M` by the discrete
adjoint (backward) recursion written out by hand,

    lambda_t = dl_t/dkappa_t + (alpha I + (1 - alpha) M DPhi(kappa_t))^T lambda_{t+1},
    dL/dM    = sum_t (1 - alpha) lambda_t Phi(kappa_{t-1})^T,
    DPhi(kappa) = P^T diag(phi'(P kappa)) P / N,

and `gradient_flow` integrates `dM/ds = -dL/dM` with diffrax. `learning_modes` splits a change of
`M` learned on the second task into the *rotation* of the existing fixed point (the antisymmetric
off-diagonal part) and the *formation* of a new one (the diagonal growth on `b`).
"""

from __future__ import annotations

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from .._checks import as_float_array, check_positive, check_shape
from ..neurons._rate import get_activation


class ReducedTask(eqx.Module):
    """A pattern task in plane coordinates: input `s [time, batch, K]`, readout weights `r [K]`,
    `target` and `mask` (`[time, batch]`), and the step `dt`."""

    s: Float[Array, "time batch k"]
    readout: Float[Array, " k"]
    target: Float[Array, "time batch"]
    mask: Float[Array, "time batch"]
    dt: float = eqx.field(static=True)

    @classmethod
    def from_task(cls, task, basis: Float[Array, "n k"], *, key=None, batch_size: int = 1,
                  tol: float = 1e-8, check: bool = True) -> ReducedTask:
        """The plane form of a `simjax.tasks._memory` task whose pattern lies in `span(basis)`.

        **Raises:** `ValueError` if the pattern has a component outside the plane larger than
        `tol` (relative): the reduction is then not exact. `check=False` skips the test (needed
        under `jit`).
        """
        basis = as_float_array(basis)
        n = basis.shape[0]
        r = basis.T @ task.pattern / n
        outside = jnp.linalg.norm(task.pattern - basis @ r) / jnp.linalg.norm(task.pattern)
        if check and float(outside) > tol:
            raise ValueError(f"ReducedTask: the task's pattern is not in the span of the basis "
                             f"(relative residual {float(outside):.3g} > {tol})")
        key = jax.random.key(0) if key is None else key
        s, target, mask = task.signals(key, batch_size)
        return cls(s=s[..., None] * r, readout=r, target=target, mask=mask.astype(s.dtype), dt=task.dt)


class ReducedModel(eqx.Module):
    """The network restricted to `span(basis)` (module docstring).

    **Arguments:** `basis [N, K]` (orthogonal columns of norm `sqrt(N)`), `tau` (1), and
    `activation` (`"tanh"`; any `simjax.neurons.LeakyRate` activation).
    """

    basis: Float[Array, "n k"]
    tau: Float[Array, ""]
    activation: str = eqx.field(static=True)

    def __init__(self, basis, tau=1.0, activation="tanh"):
        get_activation(activation, owner="ReducedModel")
        self.basis, self.tau, self.activation = as_float_array(basis), as_float_array(tau), activation

    def __check_init__(self):
        check_shape("basis", self.basis, (None, None), owner="ReducedModel")
        check_positive("tau", self.tau, owner="ReducedModel")

    @property
    def n(self) -> int:
        return self.basis.shape[0]

    def _phi(self, x):
        return get_activation(self.activation)(x)

    def _dphi(self, x):
        phi = get_activation(self.activation)
        return jax.vmap(jax.grad(phi))(x.ravel()).reshape(x.shape)

    def rates(self, kappa: Float[Array, "... k"]) -> Float[Array, "... k"]:
        """`Phi(kappa) = P^T phi(P kappa) / N`."""
        return self._phi(kappa @ self.basis.T) @ self.basis / self.n

    def rates_jacobian(self, kappa: Float[Array, "... k"]) -> Float[Array, "... k k"]:
        """`DPhi(kappa) = P^T diag(phi'(P kappa)) P / N`."""
        d = self._dphi(kappa @ self.basis.T)
        return jnp.einsum("ni,...n,nj->...ij", self.basis, d, self.basis) / self.n

    def vector_field(self, kappa: Float[Array, "... k"], m: Float[Array, "k k"], s=0.0) -> Float[Array, "... k"]:
        """`dkappa/dt = (-kappa + s + M Phi(kappa)) / tau`."""
        return (-kappa + s + self.rates(kappa) @ m.T) / self.tau

    def run(self, m: Float[Array, "k k"], task: ReducedTask) -> Float[Array, "time batch k"]:
        """`kappa_1 ... kappa_T` from rest (the clock-driven step of the module docstring)."""
        alpha = jnp.exp(-task.dt / self.tau)

        def step(kappa, s_t):
            kappa = alpha * kappa + (1.0 - alpha) * (s_t + self.rates(kappa) @ m.T)
            return kappa, kappa

        _, kappas = jax.lax.scan(step, jnp.zeros(task.s.shape[1:], task.s.dtype), task.s)
        return kappas

    def readout(self, kappas, task: ReducedTask) -> Float[Array, "time batch"]:
        """`z_p = r . Phi(kappa)`."""
        return self.rates(kappas) @ task.readout

    def loss(self, m: Float[Array, "k k"], task: ReducedTask) -> Float[Array, ""]:
        """The task's masked mean squared error of `z_p`."""
        err = self.readout(self.run(m, task), task) - task.target
        return jnp.sum(task.mask * err**2) / jnp.maximum(jnp.sum(task.mask), 1.0)

    def gradient(self, m: Float[Array, "k k"], task: ReducedTask) -> tuple[Float[Array, ""], Float[Array, "k k"]]:
        """`(loss, dloss/dM)` by the hand-written adjoint recursion (module docstring)."""
        alpha = jnp.exp(-task.dt / self.tau)
        beta = 1.0 - alpha
        kappas = self.run(m, task)
        rates = self.rates(kappas)
        jac = self.rates_jacobian(kappas)
        err = rates @ task.readout - task.target
        weight = jnp.maximum(jnp.sum(task.mask), 1.0)
        loss = jnp.sum(task.mask * err**2) / weight
        # dl_t/dkappa_t = 2 w_t e_t / W * DPhi(kappa_t)^T r
        direct = (2.0 * task.mask * err / weight)[..., None] * jnp.einsum("...ij,i->...j", jac, task.readout)
        rest = jnp.zeros_like(kappas[:1])
        previous = jnp.concatenate([self.rates(rest), rates[:-1]])  # Phi(kappa_{t-1})
        jac_previous = jnp.concatenate([self.rates_jacobian(rest), jac[:-1]])  # DPhi(kappa_{t-1})

        def back(carry, xs):
            direct_t, jac_prev, previous_t = xs
            lam = direct_t + carry  # lambda_t
            grad_t = beta * jnp.einsum("bi,bj->ij", lam, previous_t)
            # (dkappa_t / dkappa_{t-1})^T lambda_t = (alpha I + beta M DPhi(kappa_{t-1}))^T lambda_t
            carry = alpha * lam + beta * jnp.einsum("bji,bj->bi", jac_prev, lam @ m)
            return carry, grad_t

        _, grads = jax.lax.scan(back, jnp.zeros_like(rates[0]), (direct, jac_previous, previous), reverse=True)
        return loss, jnp.sum(grads, axis=0)

    def gradient_flow(self, m0: Float[Array, "k k"], task: ReducedTask, ts: Float[Array, " n_save"], *,
                      rtol: float = 1e-10, atol: float = 1e-12, max_steps: int = 100_000) -> Float[Array, "n_save k k"]:
        """`M(s)` at the learning times `ts` of the flow `dM/ds = -dL/dM` from `M(0) = m0`
        (diffrax `Tsit5` with an adaptive step)."""
        return integrate_gradient_flow(lambda m: self.gradient(m, task)[1], m0, ts, rtol=rtol, atol=atol,
                                       max_steps=max_steps)


def integrate_gradient_flow(gradient, y0, ts, *, rtol=1e-10, atol=1e-12, max_steps=100_000):
    """`y(s)` at `ts` for `dy/ds = -gradient(y)`, `y(0) = y0` (diffrax `Tsit5`, PID steps)."""
    ts = as_float_array(ts)
    term = diffrax.ODETerm(lambda s, y, args: jax.tree.map(jnp.negative, gradient(y)))
    sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), t0=0.0, t1=ts[-1], dt0=None, y0=y0,
                              saveat=diffrax.SaveAt(ts=ts),
                              stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
                              max_steps=max_steps)
    return sol.ys


def plane_matrix(coupling: Float[Array, "n n"], basis: Float[Array, "n k"]) -> Float[Array, "k k"]:
    """`M = P^T Delta J P / N`: the plane part of a `post x pre` coupling `Delta J` (for
    `Delta J = P M P^T / N` this recovers `M`; for a gradient `dL/dDelta J` it is `dL/dM`)."""
    return basis.T @ coupling @ basis / basis.shape[0]


def learning_modes(m_before: Float[Array, "2 2"], m_after: Float[Array, "2 2"]) -> dict[str, Float[Array, ""]]:
    """How the second task changed `M` (basis `[a b]`: index 0 = first task, 1 = second task).

    **Returns:** `rotation = |dM_ab - dM_ba| / 2` (antisymmetric off-diagonal part: the fixed point
    of the first task turns towards `b`), `growth = dM_bb` (diagonal growth on `b`: a new
    fixed point forms along `b`), `coupling = |dM_ba|` (feed from `a` into `b`), and
    `rotation_dominates` (1.0 where `rotation > growth`).

    The split reads `M` only: a symmetric merge of A's attractor with B's (`M -> m d d^T` with
    `d = (a + b) / sqrt(2)`, one attractor serving both readouts) has no antisymmetric part and
    counts as growth although A's fixed point turned. Where it matters, check the fixed points
    (`simjax.analysis.find_fixed_points` from both tasks' trial ends).
    """
    dm = m_after - m_before
    rotation = jnp.abs(dm[..., 0, 1] - dm[..., 1, 0]) / 2
    growth = dm[..., 1, 1]
    return {"rotation": rotation, "growth": growth, "coupling": jnp.abs(dm[..., 1, 0]),
            "rotation_dominates": (rotation > growth).astype(dm.dtype)}
