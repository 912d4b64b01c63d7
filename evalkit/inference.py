"""Cluster-robust inference for linear models: CR1, HC1, CR2 with Satterthwaite df, and the
wild cluster restricted bootstrap.

:func:`fit_linear` fits (weighted) least squares once; the returned :class:`LinearFit` then
gives every kind of standard error the estimators report:

* **CR1** (Stata's small-sample form, R ``sandwich::vcovCL(type = "HC1")``):
  ``G/(G−1) · (N−1)/(N−K) · B⁻¹ M B⁻¹`` with t on G−1 degrees of freedom. With one cluster
  per row this is **HC1** (``N/(N−K)``), used with t on N−K degrees of freedom.
* **CR2** (Bell–McCaffrey, exactly as R ``clubSandwich::vcovCR(type = "CR2")``): each
  cluster's residuals are multiplied by ``A_g = G_g^{-1/2}`` where, for weights ``W`` and the
  working model Φ = I that clubSandwich uses for ``lm``,
  ``G_g = I − H_gg − H_gg' + X_g Ω X_g'``, ``H_gg = X_g M X_g' W_g``, ``M = (X'WX)⁻¹`` and
  ``Ω = M X'W²X M`` (for OLS this is ``I − X_g M X_g'``); the inverse square root drops
  eigenvalues below 1e-12 as clubSandwich does. Its Satterthwaite degrees of freedom for a
  coefficient are ``(tr P)² / ‖P‖²_F`` with P clubSandwich's J×J matrix; both are computed
  from k×k sums over clusters, never from an N×N or J×J matrix.
* **WCR-bootstrap**: the wild cluster bootstrap with the null imposed (restricted residuals),
  Rademacher weights, or Webb's six-point weights with 12 clusters or fewer; the p-value is
  the share of bootstrap |t| at least the observed |t| (symmetric), and the 95% interval is
  the set of null values the test does not reject (test inversion). All replications are one
  matrix product and, because the bootstrap t is a ratio of functions that are linear and
  quadratic in the null value, inverting the test costs O(B) per trial value.

Cluster fixed effects nested in the clusters (the centre effects of the difference-in-differences)
are absorbed by demeaning; CR1 then counts them in K and CR2 adds ``11'/n_g`` to ``H_gg``, so all
numbers equal those of R ``lm`` with the dummies (see ``tests/reference/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse, stats

__all__ = [
    "Inference",
    "LinearFit",
    "WildBootstrapResult",
    "bootstrap_weights",
    "fit_linear",
    "full_rank_columns",
]

Inference = Literal["CR1", "CR2", "HC1", "WCR-bootstrap"]

#: clubSandwich's ``matrix_power`` treats eigenvalues at or below 10^-12 as zero.
_EIGEN_TOL = 1e-12
#: Webb (2014) six-point distribution: ±√(1/2), ±1, ±√(3/2) with equal probability.
_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
#: Up to this many clusters the Satterthwaite matrix P (J × J) is formed explicitly.
_EXPLICIT_P_MAX_CLUSTERS = 1000
#: CR2's A_g comes from a power series where ‖Q_g‖·tr(D_g'D_g) is at most this (else eigenvectors).
_SERIES_MAX_BOUND = 0.25
#: Bootstrap replications are processed in blocks of at most this many clusters x replications.
_BLOCK_CELLS = 2_000_000


def full_rank_columns(X: np.ndarray, tol: float = 1e-7) -> list[int]:
    """Indices of the columns kept in order, dropping any that is a combination of earlier
    ones, as R's ``lm`` aliases them: a column is aliased when what is left of it after
    projecting out the kept columns is below ``tol`` times its norm (LINPACK ``dqrdc2``'s rule
    with ``lm``'s default tolerance)."""
    if X.shape[1] == 0:
        return []
    # Gram-Schmidt on the columns in order: a column whose residual norm on the kept ones is
    # negligible relative to its own norm is aliased.
    keep: list[int] = []
    scale = np.sqrt((X**2).sum(axis=0))
    q = np.empty((X.shape[0], X.shape[1]))
    for j in range(X.shape[1]):
        if scale[j] == 0:
            continue
        basis = q[:, :len(keep)]
        resid = X[:, j] - basis @ (basis.T @ X[:, j])
        resid = resid - basis @ (basis.T @ resid)  # re-orthogonalise once for accuracy
        norm = np.sqrt(resid @ resid)
        if norm > tol * scale[j]:
            q[:, len(keep)] = resid / norm
            keep.append(j)
    return keep


def bootstrap_weights(n_clusters: int, reps: int, rng: np.random.Generator,
                      kind: Literal["rademacher", "webb", "auto"] = "auto",
                      webb_max_clusters: int = 12) -> tuple[np.ndarray, str]:
    """Draw the cluster weights of the wild bootstrap, one column per replication.

    ``auto`` uses Webb's six-point weights with ``webb_max_clusters`` clusters or fewer
    (Rademacher weights then give too few distinct draws) and Rademacher weights otherwise.
    Returns the (n_clusters, reps) weights and the name of the distribution.
    """
    if kind == "auto":
        kind = "webb" if n_clusters <= webb_max_clusters else "rademacher"
    if kind == "webb":
        draws = _WEBB[rng.integers(0, 6, size=(n_clusters, reps))]
    elif kind == "rademacher":
        draws = rng.integers(0, 2, size=(n_clusters, reps), dtype=np.int8) * 2 - 1
    else:
        raise ValueError(f"unknown bootstrap weights {kind!r}")
    return draws, kind


@dataclass(frozen=True)
class WildBootstrapResult:
    """The wild cluster restricted bootstrap for one coefficient."""

    p_value: float
    ci_low: float
    ci_high: float
    reps: int
    weights: str
    n_clusters: int


def _cluster_sum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum rows (already sorted by cluster) within clusters; ``starts`` are the first rows.

    A product with the sparse cluster-indicator matrix for a tall array of several columns
    (about ten times faster than ``np.add.reduceat`` along the rows at 100,000 rows);
    ``reduceat`` for a single column or a short array, where it is the faster."""
    n = values.shape[0]
    if values.ndim == 1 or n < 20_000:
        return np.add.reduceat(values, starts, axis=0)
    indicator = sparse.csr_matrix((np.ones(n), np.arange(n), np.append(starts, n)), shape=(starts.size, n))
    return np.asarray(indicator @ values)


def _cluster_gram(D: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """D_g'D_g for every cluster (G × p × p): one batched matrix product per cluster size."""
    n, p = D.shape
    sizes = np.diff(np.append(starts, n))
    out = np.empty((starts.size, p, p))
    for size in np.unique(sizes):
        clusters = np.flatnonzero(sizes == size)
        blocks = D[starts[clusters][:, None] + np.arange(size)[None, :]]  # m × size × p
        out[clusters] = blocks.transpose(0, 2, 1) @ blocks
    return out


def _cr2_eigen_blocks(D: np.ndarray, starts: np.ndarray, Q: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """T_g = F_g diag(h_g) F_g' of CR2's A_g = I + D_g T_g D_g' by eigendecomposition, and the
    eigenvalues 1 + λ of G_g on D_g's column space (see ``LinearFit._cr2_low_rank``).
    ``Q`` is None for −I, one p × p matrix, or one per cluster."""
    K = _cluster_gram(D, starts)  # G × p × p
    s2, V = np.linalg.eigh(K)
    keep = s2 > 1e-12 * np.maximum(s2.max(axis=1, keepdims=True), 1e-300)
    s = np.sqrt(np.where(keep, s2, 0.0))
    s_inv = np.where(keep, 1.0 / np.where(keep, s, 1.0), 0.0)
    if Q is None:  # Q = −I: G_g − I is −S² on the basis D_g V S⁻¹ already
        lam, Y = -(s**2), np.broadcast_to(np.eye(s.shape[1]), V.shape)
    else:
        VS = V * s[:, None, :]  # columns v_i s_i
        small = VS.transpose(0, 2, 1) @ Q @ VS  # S V'QVS: G_g − I on the orthonormal basis
        lam, Y = np.linalg.eigh((small + small.transpose(0, 2, 1)) / 2)
    eig = 1.0 + lam
    h = np.where(eig > _EIGEN_TOL, 1.0 / np.sqrt(np.clip(eig, _EIGEN_TOL, None)), 0.0) - 1.0
    F = (V * s_inv[:, None, :]) @ Y  # D_g F_g has orthonormal columns (the eigenvectors)
    return np.einsum("gpr,gr,gqr->gpq", F, h, F), eig


@dataclass(frozen=True, eq=False)
class LinearFit:
    """A least-squares fit with everything its standard errors need.

    Rows are held sorted by cluster. ``X`` is the design actually used (aliased columns
    dropped, demeaned within clusters when cluster effects are absorbed); ``weights`` are
    the analytic weights of WLS (None for OLS); ``bread`` is (X'WX)⁻¹ = R⁻¹R⁻ᵀ with R from the QR
    of √W X and ``r_inverse`` is R⁻¹; ``n_absorbed`` counts the absorbed cluster effects, which
    enter K of the CR1 small-sample factor.
    """

    names: list[str]
    params: np.ndarray
    X: np.ndarray
    y: np.ndarray
    resid: np.ndarray
    weights: np.ndarray | None
    cluster_codes: np.ndarray
    cluster_starts: np.ndarray
    cluster_sizes: np.ndarray
    bread: np.ndarray
    r_inverse: np.ndarray
    n_absorbed: int = 0

    @property
    def n_obs(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_clusters(self) -> int:
        return int(self.cluster_sizes.size)

    @property
    def rank(self) -> int:
        """K: estimated coefficients plus absorbed effects."""
        return int(self.X.shape[1] + self.n_absorbed)

    def index(self, name: str) -> int:
        return self.names.index(name)

    # ------------------------------------------------------------------ CR1 / HC1

    @cached_property
    def _sqrt_w(self) -> np.ndarray:
        return np.ones(self.n_obs) if self.weights is None else np.sqrt(self.weights)

    @cached_property
    def _cluster_scores(self) -> np.ndarray:
        """Per-cluster sums of X_i w_i e_i (the CR0 meat's factors), G × k."""
        w = 1.0 if self.weights is None else self.weights
        return _cluster_sum(self.X * (w * self.resid)[:, None], self.cluster_starts)

    def small_sample_factor(self) -> float:
        """CR1's G/(G−1) · (N−1)/(N−K); N/(N−K) with one cluster per row (HC1)."""
        g, n, k = self.n_clusters, self.n_obs, self.rank
        return g / (g - 1) * (n - 1) / (n - k)

    def vcov_cr1(self) -> np.ndarray:
        """CR1 covariance (HC1 when every row is its own cluster)."""
        s = self._cluster_scores
        return self.small_sample_factor() * self.bread @ (s.T @ s) @ self.bread

    def df_cr1(self) -> float:
        """G−1 for clustered errors, N−K when every row is its own cluster (HC1)."""
        if self.n_clusters == self.n_obs:
            return float(self.n_obs - self.rank)
        return float(self.n_clusters - 1)

    # ------------------------------------------------------------------ CR2

    @cached_property
    def _basis(self) -> np.ndarray:
        """B = X R⁻¹ (R from the QR of √W X): the same column space with B'WB = I, so that CR2's
        small eigenproblems and Satterthwaite sums are formed from bounded, well-scaled numbers
        (the hat block is X_g M X_g' = B_g B_g')."""
        return self.X @ self.r_inverse

    @cached_property
    def _weights_constant_within_clusters(self) -> bool:
        w = self.weights
        return bool(np.all(w == np.repeat(w[self.cluster_starts], self.cluster_sizes)))

    @cached_property
    def _omega_basis(self) -> np.ndarray:
        """B'W²B, which is R Ω R' for Ω = M X'W²X M (weighted fits only)."""
        bw = self._basis * self.weights[:, None]
        return bw.T @ bw

    @cached_property
    def _cr2_low_rank(self) -> dict:
        """CR2's A_g = G_g^{-1/2} in low-rank form: A_g v = v + D_g T_g D_g' v (T_g is p × p).

        ``G_g − I = D_g Q D_g'`` has rank at most p (the columns of D): for OLS D = B and Q = −I
        (plus the column 1/√n_g when cluster effects are absorbed); with weights D = [B, WB] and
        Q = [[B'W²B, −I], [−I, 0]], or D = B and Q_g = B'W²B − 2w_g I when each cluster has one
        weight (the centre-level propensity weights). So no n_g × n_g matrix is ever formed.

        Two exact routes to T_g, chosen per cluster:

        * **series** — with K_g = D_g'D_g, (I + D Q D')^{-1/2} = Σ_n b_n (D Q D')ⁿ where
          b_n = (−1)ⁿ·binom(2n, n)/4ⁿ, and (D Q D')ⁿ = D (Q K)ⁿ⁻¹ Q D', so
          T_g = Σ_{n≥1} b_n (Q_g K_g)ⁿ⁻¹ Q_g. It converges geometrically where
          β_g = ‖Q_g‖₂·tr K_g < 1 (‖Q_g K_g‖₂ ≤ β_g, |b_n| ≤ 1), which holds for nearly every
          cluster once there are many (Σ_g tr K_g is about 2k for the weighted D, k for B) and
          is used where β_g ≤ 1/4, summed until the remainder β^m/(1−β) is below 10⁻¹⁶ of the
          leading term. Such a cluster cannot be singular (every eigenvalue of G_g is at least
          1 − β_g). With absorbed cluster effects the direction 1/√n_g is orthogonal to the
          demeaned B_g and G_g has eigenvalue 0 on it, which the pseudo-inverse drops: A_g
          then also removes the cluster mean.
        * **eigen** — elsewhere (few clusters, a centre its covariates nearly fit): an
          orthonormal basis of D_g's columns from the eigenvectors of K_g, the eigenvalues
          1 + λ of G_g on it from a second p × p problem, h = (1 + λ)^{-1/2} − 1 (−1 where
          1 + λ ≤ 1e-12, as clubSandwich's pseudo-inverse square root), T_g = F h F'.

        Only the series clusters' K_g z products are needed, so applying A costs O(G·p²) per
        term instead of G batched eigendecompositions.
        """
        B, w = self._basis, self.weights
        k = B.shape[1]
        starts, sizes, codes = self.cluster_starts, self.cluster_sizes, self.cluster_codes
        if w is None:
            kind, D, Q = "ols", B, None  # Q = −I
            q_norm = np.ones(sizes.size)

            def apply_q(z: np.ndarray) -> np.ndarray:
                return -z
        elif self._weights_constant_within_clusters:
            # W_g = w_g I (centre-level weights): G_g − I = B_g (B'W²B − 2 w_g I) B_g', rank k
            kind, D, Q = "cluster weights", B, self._omega_basis
            shift = 2 * w[starts]
            omega_eig = np.linalg.eigvalsh(Q)
            q_norm = np.maximum(np.abs(omega_eig[-1] - shift), np.abs(omega_eig[0] - shift))

            def apply_q(z: np.ndarray) -> np.ndarray:
                return z @ Q - shift[:, None] * z
        else:
            kind, D = "row weights", np.column_stack([B, B * w[:, None]])
            Q = np.block([[self._omega_basis, -np.eye(k)], [-np.eye(k), np.zeros((k, k))]])
            q_norm = np.full(sizes.size, np.abs(np.linalg.eigvalsh(Q)).max())

            def apply_q(z: np.ndarray) -> np.ndarray:
                return z @ Q  # Q is symmetric
        K = _cluster_gram(D, starts)  # G × p × p
        bound = q_norm * np.einsum("gii->g", K)
        series = bound <= _SERIES_MAX_BOUND
        worst = float(bound[series].max()) if series.any() else 0.0
        terms = 1 if worst <= 0 else int(np.ceil(np.log(1e-16 * (1 - worst)) / np.log(worst))) + 1
        plan = {"kind": kind, "D": D, "apply_q": apply_q, "K": K, "series": series, "terms": max(terms, 1),
                "exact": None}
        exact = np.flatnonzero(~series)
        if exact.size:
            rows = np.concatenate([np.arange(starts[g], starts[g] + sizes[g]) for g in exact])
            D_exact = D[rows]
            if w is None and self.n_absorbed:
                D_exact = np.column_stack([D_exact, 1.0 / np.sqrt(sizes[codes[rows]])])
            Q_exact = Q if kind != "cluster weights" else Q[None, :, :] - shift[exact, None, None] * np.eye(k)
            sub_sizes = sizes[exact]
            sub_starts = np.concatenate([[0], np.cumsum(sub_sizes)[:-1]])
            T, eig = _cr2_eigen_blocks(D_exact, sub_starts, Q_exact)
            plan["exact"] = {"clusters": exact, "rows": rows, "D": D_exact, "starts": sub_starts,
                             "codes": np.repeat(np.arange(exact.size), sub_sizes), "T": T, "eig": eig}
        return plan

    def _apply_cr2(self, v: np.ndarray) -> np.ndarray:
        """A_g v_g for every cluster at once (v is one value per row)."""
        plan = self._cr2_low_rank
        D, apply_q, K, series = plan["D"], plan["apply_q"], plan["K"], plan["series"]
        starts, codes = self.cluster_starts, self.cluster_codes
        out = np.array(v, dtype="float64", copy=True)
        if series.any():
            u = _cluster_sum(D * v[:, None], starts)  # D_g'v_g, G × p
            z = apply_q(u)
            total = -0.5 * z  # b_1 = −1/2
            coefficient = -0.5
            for n in range(2, plan["terms"] + 1):
                coefficient *= -(2 * n - 1) / (2 * n)  # b_n = b_{n−1}·(−(2n−1)/(2n))
                z = apply_q((K @ z[:, :, None])[:, :, 0])
                total += coefficient * z
            total[~series] = 0.0
            out += np.einsum("ip,ip->i", D, total[codes])
            if self.n_absorbed:  # the pseudo-inverse drops each cluster's mean (G_g's null direction)
                means = _cluster_sum(v, starts) / self.cluster_sizes
                out -= np.where(series, means, 0.0)[codes]
        exact = plan["exact"]
        if exact is not None:
            rows, De = exact["rows"], exact["D"]
            ue = _cluster_sum(De * v[rows][:, None], exact["starts"])
            te = np.einsum("gpr,gr->gp", exact["T"], ue)
            out[rows] = v[rows] + np.einsum("ip,ip->i", De, te[exact["codes"]])
        return out

    @cached_property
    def _cr2_meat_factors(self) -> np.ndarray:
        """X_g' W_g A_g e_g for every cluster, G × k."""
        ae = self._apply_cr2(self.resid)
        if self.weights is not None:
            ae = ae * self.weights
        return _cluster_sum(self.X * ae[:, None], self.cluster_starts)

    @property
    def n_singular_cr2_clusters(self) -> int:
        """Clusters whose ``G_g`` is singular beyond what absorbed cluster effects make it: the
        covariates fit such a cluster exactly (a centre alone in its category, say). CR2 uses
        the pseudo-inverse there, as clubSandwich does, but clubSandwich's own Satterthwaite df
        then depends on rounding (an eigenvalue of 1e-11 is inverted or not)."""
        exact = self._cr2_low_rank["exact"]  # a series cluster's G_g has every eigenvalue ≥ 3/4
        if exact is None:
            return 0
        null = (exact["eig"] <= 1e-8).sum(axis=1) - (1 if self.n_absorbed else 0)
        return int((null > 0).sum())

    def vcov_cr2(self) -> np.ndarray:
        """CR2 covariance, equal to clubSandwich's ``vcovCR(type = "CR2")``."""
        m = self._cr2_meat_factors
        return self.bread @ (m.T @ m) @ self.bread

    def df_satterthwaite(self, name: str) -> float:
        """Satterthwaite degrees of freedom of CR2 for one coefficient (clubSandwich's).

        clubSandwich's df is (tr P)² / ‖P‖²_F for the J × J matrix P_jl = g_j'g_l, where
        g_j = (I − H)'[a_j] and a_j = A_j W_j X_j M c (its working model is the identity). In the
        basis B = X R⁻¹ (so M = I) and with p_j = B_j'a_j, r_j = a_j − W_j B_j p_j, t_j = B_j'W_j r_j,
        Ω_j = B_j'W_j²B_j and Ω = Σ Ω_j:

            P_jj = ‖r_j‖² + p_j'(Ω − Ω_j) p_j
            P_jl = p_j'Ω p_l − (t_j + Ω_j p_j)'p_l − p_j'(t_l + Ω_l p_l)      (j ≠ l)

        Every term is small where the true entry is: a centre that its covariates nearly fit
        has a large a_j but a small g_j, and writing P as diag(‖a_j‖²) plus a low-rank part
        would cancel catastrophically. P is formed explicitly up to 1,000 clusters; beyond,
        ‖P‖² comes from k × k sums (there CR2 is close to CR1 and df are in the hundreds).
        """
        B, w = self._basis, self.weights
        wv = np.ones(self.n_obs) if w is None else w
        starts, codes = self.cluster_starts, self.cluster_codes
        a = self._apply_cr2(B @ self.r_inverse[self.index(name)] * wv)  # A_g W_g X_g M c
        p = _cluster_sum(B * a[:, None], starts)
        r = a - wv * np.einsum("ik,ik->i", B, p[codes])
        if self.n_absorbed:  # (I − H) also removes each cluster's mean
            r = r - np.repeat(_cluster_sum(r, starts) / self.cluster_sizes, self.cluster_sizes)
        t = _cluster_sum(B * (wv * r)[:, None], starts)
        plan = self._cr2_low_rank
        k = B.shape[1]
        if w is None:  # the Gram blocks of CR2's D already hold every B_g'W_g²B_g
            omega_g = plan["K"]
        elif plan["kind"] == "cluster weights":  # D = B
            omega_g = plan["K"] * (w[starts] ** 2)[:, None, None]
        else:  # D = [B, WB]
            omega_g = plan["K"][:, k:, k:]
        omega = omega_g.sum(axis=0)
        v = np.einsum("gkl,gl->gk", omega_g, p)
        diag = _cluster_sum(r * r, starts) + np.einsum("gk,kl,gl->g", p, omega, p) - np.einsum("gk,gk->g", p, v)
        s = t + v
        if self.n_clusters <= _EXPLICIT_P_MAX_CLUSTERS:
            P = p @ omega @ p.T - s @ p.T - p @ s.T
            np.fill_diagonal(P, diag)
            sumsq = float((P**2).sum())
        else:
            k = B.shape[1]
            U = np.hstack([p, s])
            C = np.block([[omega, -np.eye(k)], [-np.eye(k), np.zeros((k, k))]])
            e_diag = np.einsum("gk,kl,gl->g", U, C, U)
            CS = C @ (U.T @ U)
            sumsq = float(np.trace(CS @ CS) - (e_diag**2).sum() + (diag**2).sum())
        return float(diag.sum() ** 2 / sumsq)

    # ------------------------------------------------------------------ summaries

    def coef_test(self, name: str, inference: Literal["CR1", "CR2", "HC1"], alpha: float = 0.05
                  ) -> dict[str, float]:
        """Estimate, SE, df, CI and p-value of one coefficient under CR1, HC1 or CR2."""
        j = self.index(name)
        estimate = float(self.params[j])
        if inference in ("CR1", "HC1"):
            se = float(np.sqrt(max(self.vcov_cr1()[j, j], 0.0)))  # rounding can leave −1e-35
            df = self.df_cr1()
        elif inference == "CR2":
            se = float(np.sqrt(max(self.vcov_cr2()[j, j], 0.0)))
            df = self.df_satterthwaite(name)
        else:
            raise ValueError(f"unknown inference {inference!r}")
        crit = stats.t.ppf(1 - alpha / 2, df)
        p = 2 * stats.t.sf(abs(estimate / se), df) if se > 0 else np.nan
        return {"estimate": estimate, "std_error": se, "df": float(df), "ci_low": estimate - crit * se,
                "ci_high": estimate + crit * se, "p_value": float(p)}

    # ------------------------------------------------------------------ wild bootstrap

    def wild_bootstrap(self, name: str, *, reps: int = 999, seed: int | np.random.SeedSequence = 0,
                       alpha: float = 0.05, weights: Literal["auto", "rademacher", "webb"] = "auto",
                       webb_max_clusters: int = 12) -> WildBootstrapResult:
        """Wild cluster restricted bootstrap-t test and test-inversion interval for one coefficient.

        The bootstrap data impose the null ``beta_name = b0``: the restricted fit's residuals
        are multiplied by one weight per cluster. Each replication's t uses CR1 errors (the
        small-sample factor cancels). With weights the model is bootstrapped in its
        √w-transformed form; absorbed cluster effects stay absorbed.
        """
        j = self.index(name)
        sw = self._sqrt_w
        Xt = self.X * sw[:, None]
        M = self.bread
        estimate = float(self.params[j])
        L = Xt @ M[:, j]  # row j of (X'X)⁻¹X'; by Frisch–Waugh–Lovell it is r / r'r
        r = L / (L @ L)  # x_j with the other columns partialled out
        e_unrestricted = self.resid * sw
        # restricted residuals under b0: e0 − b0·r, with e0 those of the null b0 = 0
        e0 = e_unrestricted + estimate * r
        starts = self.cluster_starts
        alpha0 = _cluster_sum(L * e0, starts)  # bootstrap b* − b0 = Σ_g (alpha0_g − b0·alpha1_g) v_g
        alpha1 = _cluster_sum(L * r, starts)
        E0 = _cluster_sum(Xt * e0[:, None], starts)  # G × k: X_g'e_g
        E1 = _cluster_sum(Xt * r[:, None], starts)
        Qm = _cluster_sum(Xt * L[:, None], starts) @ M  # rows c'M X_g'X_g M
        # The bootstrap scores are s_gb = a_g v_gb − Qm_g·(E'v_b) with a = alpha0 − b0·alpha1 and
        # E = E0 − b0·E1; their sums of squares over g expand into products of k-vectors, so one
        # product of a (4k+2) × G matrix with the G × B weights gives every replication.
        k = Xt.shape[1]
        stacked = np.hstack([E0, E1, Qm * alpha0[:, None], Qm * alpha1[:, None], alpha0[:, None], alpha1[:, None]])
        QQ = Qm.T @ Qm
        g = self.n_clusters
        rng = np.random.default_rng(seed)
        V_all, kind = bootstrap_weights(g, reps, rng, weights, webb_max_clusters)
        squares = np.column_stack([alpha0**2, alpha0 * alpha1, alpha1**2])  # Σ_g a_g² v_gb² terms
        num0, num1 = np.empty(reps), np.empty(reps)
        qa, qb, qc = np.empty(reps), np.empty(reps), np.empty(reps)
        block = max(1, _BLOCK_CELLS // max(g, 1))
        for lo in range(0, reps, block):
            V = V_all[:, lo:lo + block].astype(np.float64)
            P = stacked.T @ V
            U0, U1, Z0, Z1 = P[:k], P[k:2 * k], P[2 * k:3 * k], P[3 * k:4 * k]
            num0[lo:lo + block], num1[lo:lo + block] = P[4 * k], P[4 * k + 1]
            diag = squares.sum(axis=0)[:, None] if kind == "rademacher" else squares.T @ (V * V)
            QU0, QU1 = QQ @ U0, QQ @ U1
            qa[lo:lo + block] = diag[0] - 2 * (U0 * Z0).sum(axis=0) + (U0 * QU0).sum(axis=0)
            qb[lo:lo + block] = diag[1] - (U1 * Z0).sum(axis=0) - (U0 * Z1).sum(axis=0) + (U0 * QU1).sum(axis=0)
            qc[lo:lo + block] = diag[2] - 2 * (U1 * Z1).sum(axis=0) + (U1 * QU1).sum(axis=0)
        score = _cluster_sum(L * e_unrestricted, starts)
        se = float(np.sqrt((score**2).sum()))  # CR0 scale on purpose: the factor cancels

        def p_values(b0: np.ndarray) -> np.ndarray:
            """Bootstrap p-values of the nulls b0 (a vector), all replications at once."""
            b0 = np.asarray(b0, dtype="float64")[:, None]
            t_obs = np.abs(estimate - b0) / se
            den = np.sqrt(np.clip(qa - 2 * b0 * qb + b0 * b0 * qc, 1e-300, None))
            t_star = np.abs(num0 - b0 * num1) / den
            return np.mean(t_star >= t_obs * (1 - 1e-12), axis=1)

        # p(b0) <= alpha exactly when the observed |t| exceeds the k-th largest bootstrap |t|
        k = int(np.floor(alpha * reps)) + 1

        def excess(b0: np.ndarray) -> np.ndarray:
            """|t(b0)| minus the k-th largest bootstrap |t*(b0)|: positive where b0 is rejected."""
            b0 = np.atleast_1d(np.asarray(b0, dtype="float64"))[:, None]
            den = np.sqrt(np.clip(qa - 2 * b0 * qb + b0 * b0 * qc, 1e-300, None))
            t_star = np.abs(num0 - b0 * num1) / den
            critical = np.partition(t_star, reps - k, axis=1)[:, reps - k]
            return np.abs(estimate - b0[:, 0]) / se - critical

        def bound(direction: float) -> float:
            """The first null, moving out from the estimate, that the test rejects at alpha: the
            root of a continuous function (Brent's method), bracketed by doubling steps."""
            unit = se if se > 0 else 1.0
            inside = estimate
            for ladder in (2.0 ** np.arange(-1, 8), 2.0 ** np.arange(8, 60)):
                points = estimate + direction * unit * ladder
                rejected = np.flatnonzero(excess(points) > 0)
                if rejected.size:
                    i = rejected[0]
                    low = inside if i == 0 else points[i - 1]
                    return float(optimize.brentq(lambda b: float(excess(b)[0]), low, points[i], xtol=1e-7 * unit))
                inside = points[-1]
            return direction * np.inf

        return WildBootstrapResult(p_value=float(p_values(np.zeros(1))[0]), ci_low=bound(-1.0), ci_high=bound(1.0),
                                   reps=reps, weights=kind, n_clusters=g)


def _solve_well_conditioned(Xt: np.ndarray, yt: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Least squares through the Cholesky factor of the column-scaled Gram matrix, or None.

    Forming X'X costs one BLAS product, several times cheaper than Householder QR on a tall
    matrix (the dominant cost of a fit on a million rows). It is used only when no column is
    close to the earlier ones (every |R_jj| above 10⁻⁴ of the column's norm, far from the 10⁻⁷
    at which ``lm`` aliases a column), so that squaring the condition number costs at most
    about eight digits of sixteen; the coefficients get one step of iterative refinement
    (corrected semi-normal equations), which brings them to QR's accuracy. Returns the
    coefficients and R (upper triangular with R'R = X'X).
    """
    n, k = Xt.shape
    if n < k or k == 0:
        return None
    norms = np.sqrt(np.einsum("ij,ij->j", Xt, Xt))
    if not np.all(norms > 0):
        return None
    gram = (Xt.T @ Xt) / np.outer(norms, norms)
    try:
        lower = np.linalg.cholesky(gram)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.diag(lower) > 1e-4):
        return None
    r = lower.T * norms[None, :]

    def normal_solve(rhs: np.ndarray) -> np.ndarray:
        return linalg.solve_triangular(r, linalg.solve_triangular(r, rhs, trans="T"))

    params = normal_solve(Xt.T @ yt)
    params = params + normal_solve(Xt.T @ (yt - Xt @ params))
    return params, r


def fit_linear(y: np.ndarray, X: np.ndarray, names: list[str], clusters: np.ndarray | None = None, *,
               weights: np.ndarray | None = None, absorb_clusters: bool = False) -> LinearFit:
    """Least squares with the bookkeeping for cluster-robust inference.

    Parameters
    ----------
    y, X, names
        Outcome, design (n × k) and column names. Columns that are exact combinations of
        earlier ones are dropped first, as R's ``lm`` aliases them.
    clusters
        Cluster labels (one per row); None makes every row its own cluster (HC1/HC2).
    weights
        Analytic weights (WLS), as ``lm(weights = )``; None for OLS.
    absorb_clusters
        Absorb one fixed effect per cluster by demeaning (the intercept must then be left out
        of ``X``); the results equal ``lm`` with the cluster dummies.
    """
    y = np.asarray(y, dtype="float64")
    X = np.asarray(X, dtype="float64")
    n = y.size
    if clusters is None:
        codes = np.arange(n)
    else:  # a Series (e.g. of Arrow strings) is factorised as it is, without a copy to Python objects
        series = clusters if isinstance(clusters, pd.Series) else pd.Series(np.asarray(clusters))
        codes, _ = pd.factorize(series, sort=True)
        codes = np.asarray(codes)
    w = None if weights is None else np.asarray(weights, dtype="float64")
    if np.any(codes[1:] < codes[:-1]):  # rows not yet grouped by cluster
        order = np.argsort(codes, kind="stable")
        y, X, codes = y[order], X[order], codes[order]
        w = None if w is None else w[order]
    sizes = np.bincount(codes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n_absorbed = 0
    if absorb_clusters:
        if w is not None:
            raise ValueError("absorbing cluster effects is implemented for unweighted fits only")
        y = y - np.repeat(_cluster_sum(y, starts) / sizes, sizes)
        X = X - np.repeat(_cluster_sum(X, starts) / sizes[:, None], sizes, axis=0)
        n_absorbed = int(sizes.size)
    sw = np.ones(n) if w is None else np.sqrt(w)
    Xt = X * sw[:, None]
    yt = y * sw
    solved = _solve_well_conditioned(Xt, yt)
    if solved is not None:
        params, r = solved
    else:
        q, r = np.linalg.qr(Xt)
        # |R_jj| is what is left of column j after the earlier ones: when none is negligible
        # nothing is aliased; otherwise find the aliased columns one by one, as lm does
        if Xt.shape[0] < Xt.shape[1] or not np.all(np.abs(np.diag(r)) > 1e-7 * np.sqrt((Xt**2).sum(axis=0))):
            keep = full_rank_columns(Xt)
            X, Xt = X[:, keep], Xt[:, keep]
            names = [names[j] for j in keep]
            q, r = np.linalg.qr(Xt)
        params = np.linalg.solve(r, q.T @ yt)
    r_inv = np.linalg.inv(r)
    bread = r_inv @ r_inv.T
    resid = y - X @ params
    return LinearFit(names=names, params=params, X=X, y=y, resid=resid, weights=w, cluster_codes=codes,
                     cluster_starts=starts, cluster_sizes=sizes, bread=bread, r_inverse=r_inv,
                     n_absorbed=n_absorbed)
