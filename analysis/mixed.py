"""Mixed models with crossed random effects of participants and identities, fitted as lme4 does."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from scipy import linalg, optimize, sparse, special, stats
from threadpoolctl import threadpool_limits

from analysis import numderiv

REFERENCE_CONDITION = "real"
TREATMENT_CONDITION = "ai"
COEFFICIENT = "condition" + TREATMENT_CONDITION  # lme4's name for the ai-minus-real coefficient
SINGULAR_TOL = 1e-4  # lme4::isSingular(tol = 1e-4)
GRADIENT_TOL = 2e-3  # lme4's check.conv.grad = .makeCC("warning", tol = 2e-3)
HESSIAN_EIGEN_TOL = 1e-8  # lmerTest::as_lmerModLT(tol = 1e-8)


@dataclasses.dataclass
class MixedFit:
    """Result of one mixed model: the ai-minus-real fixed effect, its test and the variances."""

    method: str
    estimate: float
    se: float
    statistic: float
    df: float | None
    p_value: float
    ci_low: float
    ci_high: float
    n_obs: int
    n_participants: int
    n_identities: int
    random_effects: list[dict[str, Any]]
    residual_variance: float | None
    singular: bool
    converged: bool
    notes: list[str]
    formula: str
    deviance: float | None = None  # REML criterion (lmm) or Laplace deviance (glmm), as lme4

    def to_dict(self) -> dict[str, Any]:
        """Return the fit as plain JSON-ready Python values."""
        return _plain(dataclasses.asdict(self))


def _plain(value: Any) -> Any:
    """Convert numpy scalars (recursively) to Python values json.dump(allow_nan=False) accepts."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


# ----------------------------------------------------------------------------- input


@dataclasses.dataclass
class _Data:
    """Validated model data: response, ai indicator and integer codes of both groupings."""

    y: np.ndarray
    ai: np.ndarray
    participant: np.ndarray
    identity: np.ndarray
    n_participants: int
    n_identities: int
    names: dict[str, str]


def _shown(value: Any) -> Any:
    """A value as Python shows it (2, not np.int64(2)) for error messages."""
    return value.item() if isinstance(value, np.generic) else value


def _prepare(
    data: pd.DataFrame, dv: str, condition: str, participant: str, identity: str, binary: bool
) -> _Data:
    """Check the input and code it for the model; raise ValueError naming column and value."""
    if not isinstance(data, pd.DataFrame):
        raise ValueError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError("data has no rows")
    names = {"dv": dv, "condition": condition, "participant": participant, "identity": identity}
    for column in names.values():
        if column not in data.columns:
            raise ValueError(f"column {column!r} is missing from data")
    for column in names.values():
        missing = data[column].isna().to_numpy()
        if missing.any():
            row = data.index[np.flatnonzero(missing)[0]]
            raise ValueError(f"column {column!r} has a missing value (NaN) at row {_shown(row)!r}")

    raw_dv = data[dv]
    y = pd.to_numeric(raw_dv, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y)
    if bad.any():
        i = np.flatnonzero(bad)[0]
        raise ValueError(
            f"column {dv!r} has a non-numeric value {_shown(raw_dv.iloc[i])!r} "
            f"at row {_shown(data.index[i])!r}"
        )
    if binary:
        bad = (y != 0) & (y != 1)
        if bad.any():
            i = np.flatnonzero(bad)[0]
            raise ValueError(
                f"column {dv!r} must be 0 or 1 for a logistic model, "
                f"got {_shown(raw_dv.iloc[i])!r} at row {_shown(data.index[i])!r}"
            )

    cond = data[condition].astype(str).to_numpy()
    allowed = (REFERENCE_CONDITION, TREATMENT_CONDITION)
    unknown = ~np.isin(cond, allowed)
    if unknown.any():
        i = np.flatnonzero(unknown)[0]
        raise ValueError(
            f"column {condition!r} has value {cond[i]!r} at row "
            f"{_shown(data.index[i])!r}; expected {allowed[0]!r} or {allowed[1]!r}"
        )
    present = set(cond)
    if len(present) < 2:
        raise ValueError(
            f"column {condition!r} has only the value {present.pop()!r}; "
            f"the model needs both {allowed[0]!r} and {allowed[1]!r}"
        )

    codes = {}
    for key in ("participant", "identity"):
        column = names[key]
        code, levels = pd.factorize(data[column], sort=True)
        if len(levels) < 2:
            raise ValueError(
                f"column {column!r} has one level ({_shown(levels[0])!r}); "
                "a random effect needs at least two"
            )
        if len(levels) >= len(data):
            # lme4 refuses this too: a grouping factor needs fewer levels than observations
            raise ValueError(
                f"column {column!r} has {len(levels)} levels for {len(data)} rows; "
                "a random effect needs fewer levels than observations"
            )
        codes[key] = (code.astype(np.intp), len(levels))
    if binary and (y.min() == y.max()):
        raise ValueError(
            f"column {dv!r} has the single value {y[0]:g}; a logistic model needs both 0 and 1"
        )
    return _Data(
        y=y,
        ai=(cond == TREATMENT_CONDITION).astype(float),
        participant=codes["participant"][0],
        identity=codes["identity"][0],
        n_participants=codes["participant"][1],
        n_identities=codes["identity"][1],
        names=names,
    )


# ----------------------------------------------------------------------------- design


@dataclasses.dataclass(frozen=True)
class _Term:
    """One random-effects term, (1 | group) or (1 + condition | group), with its model matrix."""

    group: str
    codes: np.ndarray
    n_levels: int
    columns: np.ndarray
    names: tuple[str, ...]

    @property
    def k(self) -> int:
        """Number of random effects per level."""
        return self.columns.shape[1]

    @property
    def n_theta(self) -> int:
        """Number of covariance parameters (lower triangle of the k x k factor)."""
        return self.k * (self.k + 1) // 2


def _tril_positions(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangle positions in lme4's column-major order (theta order)."""
    rows, cols = zip(*[(i, j) for j in range(k) for i in range(j, k)], strict=True)
    return np.array(rows), np.array(cols)


class _Design:
    """Crossed random-effects design: the terms, fixed effects X and response y.

    Terms are held in lme4's order (decreasing number of levels), so that the first one,
    whose block of Z'Z is block diagonal, can be eliminated cheaply (a Schur complement)
    and only the remaining terms form a dense block.
    """

    def __init__(self, terms: list[_Term], X: np.ndarray, y: np.ndarray):
        self.terms = sorted(terms, key=lambda t: -t.n_levels)
        self.X = X
        self.y = y
        self.n, self.p = X.shape
        self.sizes = [t.n_levels * t.k for t in self.terms]
        self.q = sum(self.sizes)
        self.n_theta = sum(t.n_theta for t in self.terms)
        self.diagonal = np.concatenate(
            [_tril_positions(t.k)[0] == _tril_positions(t.k)[1] for t in self.terms]
        )
        self.theta_start = np.where(self.diagonal, 1.0, 0.0)  # lme4's default start
        # Z' of each term as a sparse (levels * k) x n matrix, and the cross-classified cell
        # index of each pair of terms, computed once
        self._zt = [
            sparse.csr_matrix(
                (
                    t.columns.ravel(),
                    (
                        (t.codes[:, None] * t.k + np.arange(t.k)).ravel(),
                        np.repeat(np.arange(self.n), t.k),
                    ),
                ),
                shape=(t.n_levels * t.k, self.n),
            )
            for t in self.terms
        ]
        self._pair_index = {
            (s, t): self.terms[s].codes * self.terms[t].n_levels + self.terms[t].codes
            for s in range(len(self.terms))
            for t in range(s + 1, len(self.terms))
        }

    def factors(self, theta: np.ndarray) -> list[np.ndarray]:
        """Relative covariance factors T_t (lower triangular k x k) from theta."""
        out, start = [], 0
        for term in self.terms:
            T = np.zeros((term.k, term.k))
            T[_tril_positions(term.k)] = theta[start : start + term.n_theta]
            out.append(T)
            start += term.n_theta
        return out

    def canonical(self, theta: np.ndarray) -> np.ndarray:
        """The same covariances with a non-negative diagonal in every T (lme4's bounds).

        T and T D, D = diag(+-1), give the same T T', so the deviance is optimised without
        bounds and the signs are fixed afterwards. With lme4's bound theta_jj >= 0 a
        gradient method can stall on the boundary: the deviance is even in theta_jj, so its
        derivative there is zero even when a positive variance fits much better.
        """
        out, start = theta.copy(), 0
        for term in self.terms:
            rows, cols = _tril_positions(term.k)
            block = out[start : start + term.n_theta]
            for j in range(term.k):
                if block[(rows == j) & (cols == j)][0] < 0:
                    block[cols == j] *= -1.0
            start += term.n_theta
        return out

    def crossprod(
        self, weights: np.ndarray | None, R: np.ndarray, weight_r: bool = True
    ) -> dict[str, Any]:
        """Weighted cross-products Z'WZ (by blocks), Z'WR and R'WR for an n x m matrix R.

        With ``weight_r=False`` the products with R are unweighted (Z'R, R'R).
        """
        w = np.ones(self.n) if weights is None else weights
        wr = w if weight_r else np.ones(self.n)
        diag, off, zr = [], {}, []
        for term, Zt in zip(self.terms, self._zt, strict=True):
            L, k = term.n_levels, term.k
            diag.append((Zt @ (term.columns * w[:, None])).reshape(L, k, k))
            zr.append((Zt @ (R * wr[:, None])).reshape(L, k, R.shape[1]))
        for (s, t), index in self._pair_index.items():
            ts, tt = self.terms[s], self.terms[t]
            block = np.empty((ts.n_levels, ts.k, tt.n_levels, tt.k))
            for i in range(ts.k):
                for j in range(tt.k):
                    block[:, i, :, j] = np.bincount(
                        index,
                        w * ts.columns[:, i] * tt.columns[:, j],
                        minlength=ts.n_levels * tt.n_levels,
                    ).reshape(ts.n_levels, tt.n_levels)
            off[(s, t)] = block
        rr = (R * wr[:, None]).T @ R
        return {"diag": diag, "off": off, "zr": zr, "rr": rr}

    def scaled_zr(self, factors: list[np.ndarray], cp: dict[str, Any]) -> np.ndarray:
        """Lambda' Z' W R as a (q, m) array."""
        return np.concatenate(
            [
                np.matmul(T.T, zr).reshape(-1, zr.shape[-1])
                for T, zr in zip(factors, cp["zr"], strict=True)
            ]
        )

    def z_lambda_u(self, factors: list[np.ndarray], u: np.ndarray) -> np.ndarray:
        """Z Lambda u, the random part of the linear predictor of each row."""
        eta = np.zeros(self.n)
        start = 0
        for term, T, size in zip(self.terms, factors, self.sizes, strict=True):
            b = u[start : start + size].reshape(term.n_levels, term.k) @ T.T
            eta += np.einsum("ni,ni->n", term.columns, b[term.codes])
            start += size
        return eta


def _congruence(S: np.ndarray, A: np.ndarray, T: np.ndarray) -> np.ndarray:
    """S' A_ab T for every block of A, shaped (La, ks, kt) or (La, ks, Lb, kt)."""
    if S.shape == (1, 1) and T.shape == (1, 1):
        return A * (S[0, 0] * T[0, 0])
    left = np.matmul(S.T, A.reshape(A.shape[0], A.shape[1], -1))
    return np.matmul(left.reshape(A.shape[:-1] + (-1,)), T).reshape(A.shape)


class _Cholesky:
    """Cholesky factor L of Lambda' Z'WZ Lambda + I for crossed terms.

    The first term's block is block diagonal (k x k per level) and is factored level by
    level; the other terms form a dense Schur complement of size q2, so the cost is
    O(L1 k^3 + q2 L1 k + q2^3) instead of O(q^3).
    """

    def __init__(self, design: _Design, factors: list[np.ndarray], cp: dict[str, Any]):
        terms = design.terms
        T0, k0, L0 = factors[0], terms[0].k, terms[0].n_levels
        D = _congruence(T0, cp["diag"][0], T0) + np.eye(k0)
        self.L11 = np.linalg.cholesky(D)
        self.L11inv = np.linalg.inv(self.L11)
        self.shape0 = (L0, k0)
        logdet = 2.0 * np.log(np.einsum("aii->ai", self.L11)).sum()
        self.q2 = sum(design.sizes[1:])
        if self.q2:
            rows = []
            for t in range(1, len(terms)):
                G = _congruence(T0, cp["off"][(0, t)], factors[t])
                rows.append(G.reshape(L0 * k0, -1).T)
            B = np.concatenate(rows).reshape(self.q2, L0, k0)
            # L21 = B L11^-T, one k0 x k0 block of L11 per level of the first term
            self.L21 = np.matmul(B.transpose(1, 0, 2), self.L11inv.transpose(0, 2, 1))
            self.L21 = self.L21.transpose(1, 0, 2).reshape(self.q2, L0 * k0)
            C = np.zeros((self.q2, self.q2))
            offsets = np.cumsum([0] + design.sizes[1:])
            for t in range(1, len(terms)):
                a, b = offsets[t - 1], offsets[t]
                blocks = _congruence(factors[t], cp["diag"][t], factors[t])
                L, k = blocks.shape[:2]
                index = a + np.arange(L)[:, None, None] * k
                C[index + np.arange(k)[:, None], index + np.arange(k)] = blocks
                for s in range(t + 1, len(terms)):
                    c, d = offsets[s - 1], offsets[s]
                    G = _congruence(factors[t], cp["off"][(t, s)], factors[s])
                    C[a:b, c:d] = G.reshape(b - a, d - c)
                    C[c:d, a:b] = C[a:b, c:d].T
            S = C + np.eye(self.q2) - self.L21 @ self.L21.T
            self.L22 = linalg.cholesky(S, lower=True, check_finite=False)
            logdet += 2.0 * np.log(np.diag(self.L22)).sum()
        self.logdet = logdet  # log |L|^2 (lme4's ldL2)

    def forward(self, rhs: np.ndarray) -> np.ndarray:
        """Solve L v = rhs for a (q, m) right-hand side."""
        L0, k0 = self.shape0
        m = rhs.shape[1]
        v1 = np.matmul(self.L11inv, rhs[: L0 * k0].reshape(L0, k0, m))
        v1 = v1.reshape(L0 * k0, m)
        if not self.q2:
            return v1
        v2 = linalg.solve_triangular(
            self.L22, rhs[L0 * k0 :] - self.L21 @ v1, lower=True, check_finite=False
        )
        return np.concatenate([v1, v2])

    def backward(self, v: np.ndarray) -> np.ndarray:
        """Solve L' w = v for a (q, m) right-hand side."""
        L0, k0 = self.shape0
        m = v.shape[1]
        v1 = v[: L0 * k0]
        if self.q2:
            w2 = linalg.solve_triangular(
                self.L22, v[L0 * k0 :], lower=True, trans="T", check_finite=False
            )
            v1 = v1 - self.L21.T @ w2
        w1 = np.matmul(self.L11inv.transpose(0, 2, 1), v1.reshape(L0, k0, m))
        w1 = w1.reshape(L0 * k0, m)
        return np.concatenate([w1, w2]) if self.q2 else w1


def _minimize(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    maxiter: int = 2000,
    ftol: float = 1e-14,
    forward: bool = False,
) -> optimize.OptimizeResult:
    """Minimise a smooth deviance (L-BFGS-B, finite-difference gradient, no bounds).

    Central differences by default; ``forward=True`` halves the cost per iteration where a
    gradient accurate to ~1e-4 suffices (the GLMM, whose evaluations each run PIRLS).
    """
    fun: Callable[[np.ndarray], Any]
    jac: bool | Callable[[np.ndarray], np.ndarray]
    if forward:
        fun, jac = (lambda x: numderiv.forward_value_and_gradient(f, x)), True
    else:
        fun, jac = f, (lambda x: numderiv.central_gradient(f, x))
    result = optimize.minimize(
        fun,
        x0,
        jac=jac,
        method="L-BFGS-B",
        options={"maxiter": maxiter, "ftol": ftol, "gtol": 1e-7, "maxcor": 20},
    )
    # L-BFGS-B stops "abnormally" when the line search can no longer improve a deviance that
    # is already minimal to rounding; convergence is judged afterwards as lme4 judges it
    # (`_lme4_convergence`), so here only a finite deviance counts.
    result.gradient_max = float(np.abs(result.jac).max())
    result.success = bool(np.isfinite(result.fun))
    return result


def _lme4_convergence(
    f: Callable[[np.ndarray], float], x: np.ndarray, fx: float, H: np.ndarray | None = None
) -> tuple[bool, float, str | None]:
    """Converged or not by lme4's own test (checkConv, check.conv.grad), and why not.

    lme4 takes the derivatives at the optimum (deriv12, central differences with delta 1e-4),
    scales the gradient by the Hessian, ``scgrad <- solve(chol(Hessian), gradient)``, and warns
    only when ``max(pmin(abs(scgrad), abs(gradient)))`` exceeds tol = 0.002: a raw gradient
    that is large only because the deviance is large (a big study) is not a failure. When the
    Hessian has no Cholesky factor (e.g. on the boundary of a singular fit) the scaled gradient
    cannot be evaluated and the raw gradient decides. Returns (converged, the max|grad| that was
    compared with tol, a note or None).
    """
    delta = 1e-4
    gradient = np.empty(len(x))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = delta
        gradient[i] = (f(x + e) - f(x - e)) / (2 * delta)
    if H is None:
        H = numderiv.central_hessian(f, x, fx, delta)
    note = None
    try:
        # R's solve(chol(H), g): R y = g, R the upper-triangular factor with H = R'R
        scaled = linalg.solve_triangular(linalg.cholesky(H, lower=False), gradient, lower=False)
        mingrad = np.minimum(np.abs(scaled), np.abs(gradient))
    except (linalg.LinAlgError, ValueError):
        mingrad = np.abs(gradient)
        note = (
            "the scaled gradient could not be evaluated (the Hessian is not positive "
            "definite); the raw gradient was checked instead"
        )
    worst = float(mingrad.max()) if len(mingrad) else 0.0
    converged = bool(np.isfinite(worst) and worst <= GRADIENT_TOL)
    if not converged:
        note = (
            f"failed to converge by lme4's criterion: max|grad| = {worst:.3g} "
            f"(tol = {GRADIENT_TOL:g}, component {int(np.argmax(mingrad)) + 1})"
        )
    return converged, worst, note


# ----------------------------------------------------------------------------- LMM


class _LMM:
    """Profiled REML deviance of a linear mixed model (Bates et al. 2015, section 3)."""

    def __init__(self, design: _Design):
        self.design = design
        X, y = design.X, design.y
        self.cp = design.crossprod(None, np.column_stack([y, X]))
        rr = self.cp["rr"]
        self.yty, self.Xty, self.XtX = rr[0, 0], rr[1:, 0], rr[1:, 1:]
        self.n, self.p = design.n, design.p

    def pls(self, theta: np.ndarray) -> dict[str, Any]:
        """Solve the penalised least squares problem for one theta."""
        factors = self.design.factors(theta)
        chol = _Cholesky(self.design, factors, self.cp)
        c = chol.forward(self.design.scaled_zr(factors, self.cp))
        cu, RZX = c[:, 0], c[:, 1:]
        RX = linalg.cholesky(self.XtX - RZX.T @ RZX, lower=False, check_finite=False)
        cbeta = linalg.solve_triangular(RX, self.Xty - RZX.T @ cu, trans="T", check_finite=False)
        beta = linalg.solve_triangular(RX, cbeta, check_finite=False)
        pwrss = self.yty - cu @ cu - cbeta @ cbeta
        return {
            "ldL2": chol.logdet,
            "ldRX2": 2.0 * np.log(np.abs(np.diag(RX))).sum(),
            "pwrss": pwrss,
            "beta": beta,
            "RX": RX,
            "cu": cu,
            "RZX": RZX,
            "chol": chol,
        }

    def reml(self, theta: np.ndarray) -> float:
        """REML criterion: log|L|^2 + log|RX|^2 + (n-p)(1 + log(2 pi pwrss / (n-p)))."""
        s = self.pls(theta)
        dof = self.n - self.p
        if not s["pwrss"] > 0:
            return np.inf
        return s["ldL2"] + s["ldRX2"] + dof * (1.0 + math.log(2 * math.pi * s["pwrss"] / dof))

    def deviance_varpar(self, varpar: np.ndarray) -> float:
        """REML deviance as a function of (theta, sigma), lmerTest's devfun_vp."""
        theta, sigma2 = varpar[:-1], varpar[-1] ** 2
        s = self.pls(theta)
        return (
            s["ldL2"]
            + s["ldRX2"]
            + s["pwrss"] / sigma2
            + (self.n - self.p) * math.log(2 * math.pi * sigma2)
        )

    def covbeta(self, varpar: np.ndarray) -> np.ndarray:
        """sigma^2 (RX' RX)^-1 as a function of (theta, sigma), lmerTest's get_covbeta."""
        RXi = linalg.solve_triangular(
            self.pls(varpar[:-1])["RX"], np.eye(self.p), check_finite=False
        )
        return varpar[-1] ** 2 * RXi @ RXi.T


def _satterthwaite(
    model: _LMM, theta: np.ndarray, sigma: float, contrast: np.ndarray, notes: list[str]
) -> tuple[float, float]:
    """Variance and Satterthwaite df of a contrast, as lmerTest::contest1D.

    Var(L'beta) = L' C(psi) L with psi = (theta, sigma) and C = sigma^2 (RX'RX)^-1;
    df = 2 Var^2 / (g' A g), where g_i = L' (dC / dpsi_i) L (Richardson Jacobian) and
    A = 2 H^+ is the Moore-Penrose inverse of the numerical Hessian H of the REML deviance
    in psi (numDeriv::hessian).
    """
    varpar = np.append(theta, sigma)
    H = numderiv.hessian(model.deviance_varpar, varpar)
    values, vectors = np.linalg.eigh(H)
    if (values < -HESSIAN_EIGEN_TOL).any():
        notes.append(
            "the Hessian of the REML deviance has negative eigenvalues "
            f"({', '.join(f'{v:.1e}' for v in values[values < -HESSIAN_EIGEN_TOL])}): "
            "the model may not have converged"
        )
    zero = np.abs(values) < HESSIAN_EIGEN_TOL
    if zero.any():
        notes.append(
            "the Hessian of the REML deviance has eigenvalues close to zero "
            f"({', '.join(f'{v:.1e}' for v in values[zero])}): the Satterthwaite df "
            "use its generalised inverse"
        )
    pos = values > HESSIAN_EIGEN_TOL
    vcov_varpar = 2.0 * (vectors[:, pos] / values[pos]) @ vectors[:, pos].T
    jac = numderiv.jacobian(model.covbeta, varpar)
    p = model.p
    grad = np.array([contrast @ jac[:, i].reshape(p, p) @ contrast for i in range(len(varpar))])
    var = contrast @ model.covbeta(varpar) @ contrast
    denom = grad @ vcov_varpar @ grad
    return var, (2.0 * var**2 / denom if denom > 0 else np.inf)


# ----------------------------------------------------------------------------- GLMM


_LOGIT_BOUND = 30.0  # R's binomial()$linkinv clamps eta at +-30 (THRESH in family.c)


def _inverse_logit(eta: np.ndarray) -> np.ndarray:
    """Mean of a 0/1 response, clamped as R's logit link so weights never vanish."""
    return special.expit(np.clip(eta, -_LOGIT_BOUND, _LOGIT_BOUND))


def _bernoulli_deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """Sum of binomial deviance residuals for 0/1 data (= the binomial aic() lme4 adds)."""
    return -2.0 * float(np.sum(np.where(y > 0, np.log(mu), np.log1p(-mu))))


class _GLMM:
    """Laplace deviance of a logistic mixed model, evaluated exactly as lme4::glmer does.

    Every evaluation starts the penalised IRLS at the same linear predictor ``lp0`` and stops
    when the penalised deviance changes by less than ``tolPwrss`` = 1e-7 relative; the
    log-determinant is that of the last factorisation (weights of the previous iterate).
    This is lme4's pwrssUpdate/glmerLaplace, so the finite-difference Hessian, and with it
    the standard error, agree with glmer's to about 1e-6.
    """

    tol = 1e-7  # glmerControl(tolPwrss = 1e-7)
    max_iterations = 100  # glmerControl default maxit for PIRLS
    max_halvings = 20  # lme4's maxstephalfit

    def __init__(self, design: _Design):
        self.design = design
        mustart = (design.y + 0.5) / 2.0  # binomial()$initialize for 0/1 data
        self.lp0 = np.log(mustart / (1.0 - mustart))

    def pirls(self, theta: np.ndarray, beta: np.ndarray | None) -> dict[str, Any]:
        """One PIRLS run from lp0: over u for given beta, or over (u, beta) when beta is None."""
        d = self.design
        factors = d.factors(theta)
        offset = np.zeros(d.n) if beta is None else d.X @ beta
        eta = self.lp0.copy()  # resp$updateMu(lp0): eta = lp0, before the new offset applies
        mu = _inverse_logit(eta)
        old = np.inf  # lme4 starts from DBL_MAX: the first iteration never converges
        u_old, b_old = np.zeros(d.q), np.zeros(d.p)
        for _ in range(self.max_iterations):
            w = mu * (1.0 - mu)
            z = (eta - offset) + (d.y - mu) / w  # working response
            cp = d.crossprod(w, np.column_stack([z, d.X]))
            chol = _Cholesky(d, factors, cp)
            c = chol.forward(d.scaled_zr(factors, cp))
            if beta is None:
                cu, RZX = c[:, 0], c[:, 1:]
                rr = cp["rr"]
                RX = linalg.cholesky(rr[1:, 1:] - RZX.T @ RZX, lower=False, check_finite=False)
                b = linalg.solve_triangular(
                    RX,
                    linalg.solve_triangular(
                        RX, rr[1:, 0] - RZX.T @ cu, trans="T", check_finite=False
                    ),
                    check_finite=False,
                )
                u = chol.backward((cu - RZX @ b)[:, None])[:, 0]
            else:
                b = np.zeros(d.p)
                u = chol.backward(c[:, :1])[:, 0]

            def update(u_: np.ndarray, b_: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
                lin_ = d.X @ b_ + d.z_lambda_u(factors, u_)
                mu_ = _inverse_logit(offset + lin_)
                return _bernoulli_deviance(d.y, mu_) + u_ @ u_, lin_, mu_

            pdev, lin, mu = update(u, b)
            if abs(old - pdev) < self.tol * abs(pdev):
                break
            halvings = 0
            while not pdev <= old:  # also catches NaN
                halvings += 1
                if halvings > self.max_halvings:
                    raise ArithmeticError("PIRLS step halvings failed to reduce the deviance")
                u, b = (u_old + u) / 2.0, (b_old + b) / 2.0
                pdev, lin, mu = update(u, b)
            old, u_old, b_old = pdev, u, b
            eta = offset + lin
        else:
            raise ArithmeticError("PIRLS did not converge")
        return {
            "deviance": chol.logdet + pdev,
            "lin": lin,
            "u": u,
            "beta": b,
            "mu": mu,
            "chol": chol,
            "factors": factors,
        }

    def laplace0(self, theta: np.ndarray) -> float:
        """glmer's first stage (nAGQ = 0): beta found with u inside PIRLS."""
        try:
            return self.pirls(theta, None)["deviance"]
        except (ArithmeticError, np.linalg.LinAlgError):
            return np.inf

    def laplace(self, pars: np.ndarray) -> float:
        """Laplace deviance at pars = (theta, beta): sum(dev.resid) + |u|^2 + log|L|^2."""
        k = self.design.n_theta
        try:
            return self.pirls(pars[:k], pars[k:])["deviance"]
        except (ArithmeticError, np.linalg.LinAlgError):
            return np.inf

    def vcov_rx(self, state: dict[str, Any]) -> np.ndarray:
        """(RX' RX)^-1 at the conditional modes: the fixed-effects covariance for known theta."""
        d = self.design
        w = state["mu"] * (1.0 - state["mu"])
        cp = d.crossprod(w, d.X)
        chol = _Cholesky(d, state["factors"], cp)
        RZX = chol.forward(d.scaled_zr(state["factors"], cp))
        return np.linalg.inv(cp["rr"] - RZX.T @ RZX)


# ----------------------------------------------------------------------------- public API


def _terms(d: _Data, slopes: bool) -> list[_Term]:
    """Random-effects terms for participants and identities, with or without slopes."""
    intercept = np.ones((len(d.y), 1))
    columns = np.column_stack([intercept, d.ai]) if slopes else intercept
    names = ("(Intercept)", COEFFICIENT) if slopes else ("(Intercept)",)
    return [
        _Term(d.names["participant"], d.participant, d.n_participants, columns, names),
        _Term(d.names["identity"], d.identity, d.n_identities, columns, names),
    ]


def _formula(d: _Data, slopes: bool) -> str:
    """lme4 formula text of the model fitted."""
    n = d.names
    inner = f"1 + {n['condition']}" if slopes else "1"
    return (
        f"{n['dv']} ~ {n['condition']} + ({inner} | {n['participant']}) "
        f"+ ({inner} | {n['identity']})"
    )


def _random_effects(
    design: _Design, theta: np.ndarray, scale: float, order: list[str]
) -> list[dict[str, Any]]:
    """Variance (and slope-intercept correlation) of each random effect, in formula order."""
    by_group = {}
    for term, T in zip(design.terms, design.factors(theta), strict=True):
        cov = scale * T @ T.T
        entries = []
        for i, name in enumerate(term.names):
            row = {"group": term.group, "term": name, "variance": float(cov[i, i])}
            if i > 0:
                denom = math.sqrt(cov[0, 0] * cov[i, i])
                row["correlation"] = float(cov[0, i] / denom) if denom > 0 else None
            entries.append(row)
        by_group[term.group] = entries
    return [row for group in order for row in by_group[group]]


def _singular_notes(design: _Design, theta: np.ndarray) -> list[str]:
    """Name every degenerate direction of the random-effects covariance.

    lme4::isSingular (tol = 1e-4) flags a diagonal theta below 1e-4. A slope whose diagonal
    is tiny relative to its row of T is also degenerate: its correlation with the intercept
    is +-1 to eight digits (lme4's documentation names such fits singular too).
    """
    notes = []
    for term, T in zip(design.terms, design.factors(theta), strict=True):
        for j in range(term.k):
            row = float(np.linalg.norm(T[j, : j + 1]))
            if abs(T[j, j]) < SINGULAR_TOL:
                notes.append(
                    f"singular fit: the {term.names[j]} variance for {term.group} "
                    f"is estimated at (or near) zero (theta = {abs(T[j, j]):.2g})"
                )
            elif abs(T[j, j]) < SINGULAR_TOL * row:
                notes.append(
                    f"singular fit: the {term.names[j]} effect for {term.group} is "
                    "perfectly correlated with the intercept (correlation +-1)"
                )
    return notes


def _both_conditions(d: _Data) -> str | None:
    """Return why random slopes cannot be estimated, or None when every group saw both."""
    for key, codes, count in (
        ("participant", d.participant, d.n_participants),
        ("identity", d.identity, d.n_identities),
    ):
        seen_ai = np.bincount(codes, d.ai, minlength=count)
        seen = np.bincount(codes, minlength=count)
        one = np.flatnonzero((seen_ai == 0) | (seen_ai == seen))
        if one.size:
            return f"some {d.names[key]} levels have data in one condition only"
    if len(d.y) <= 2 * max(d.n_participants, d.n_identities):
        return "there are fewer observations than random effects"
    return None


def _one_blas_thread() -> threadpool_limits:
    """Context in which BLAS runs single-threaded."""
    # The fits make thousands of small dense calls; OpenBLAS's thread hand-offs cost up to
    # ten times their arithmetic on a busy 2-core machine.
    return threadpool_limits(limits=1, user_api="blas")


class _SlopesRejected(Exception):
    """A random-slopes fit that slopes="auto" does not keep (singular or not converged)."""


def _check_tentative(tentative: bool, singular: bool, converged: bool, notes: list[str]) -> None:
    """Stop a tentative slopes fit before its (costly) tests when 'auto' would discard it."""
    if tentative and (singular or not converged):
        what = "was singular" if singular else "did not converge"
        raise _SlopesRejected(f"the random-slopes model {what} ({'; '.join(notes)})")


def _fit_with_slopes(fit_one: Callable[..., MixedFit], d: _Data, slopes: bool | str) -> MixedFit:
    """Fit with random slopes, intercepts only, or slopes falling back to intercepts ('auto')."""
    if not (slopes is True or slopes is False or slopes == "auto"):
        raise ValueError(f"slopes must be True, False or 'auto', got {slopes!r}")
    if slopes is False:
        return fit_one(d, False)
    if slopes is True:
        if len(d.y) <= 2 * max(d.n_participants, d.n_identities):
            raise ValueError(
                f"random slopes need more rows than random effects: {len(d.y)} rows "
                f"for {2 * max(d.n_participants, d.n_identities)} effects"
            )
        return fit_one(d, True)
    reason = _both_conditions(d)
    if reason is None:
        try:
            return fit_one(d, True, tentative=True)
        except _SlopesRejected as exc:
            reason = str(exc)
        except (ArithmeticError, np.linalg.LinAlgError, ValueError) as exc:
            reason = f"the random-slopes model failed ({exc})"
    fit = fit_one(d, False)
    fit.notes.insert(0, f"random intercepts only: {reason}")
    return fit


def _fit_lmm(d: _Data, slopes: bool, tentative: bool = False) -> MixedFit:
    """Fit one LMM (fixed random-effects structure) and test the condition coefficient."""
    X = np.column_stack([np.ones(len(d.y)), d.ai])
    design = _Design(_terms(d, slopes), X, d.y)
    model = _LMM(design)
    result = _minimize(model.reml, design.theta_start)
    theta = design.canonical(result.x)
    state = model.pls(theta)
    dof = model.n - model.p
    sigma = math.sqrt(state["pwrss"] / dof)
    notes = _singular_notes(design, theta)
    singular = bool(notes)
    _check_tentative(tentative, singular, True, notes)
    converged, _gradient, why = _lme4_convergence(model.reml, result.x, float(result.fun))
    converged = converged and bool(result.success)
    if why:
        notes.append(why)
    _check_tentative(tentative, singular, converged, notes)
    contrast = np.array([0.0, 1.0])
    var, df = _satterthwaite(model, theta, sigma, contrast, notes)
    if not math.isfinite(df):
        # lmerTest's 2 V^2 / 0: a t with infinite df is the normal distribution
        notes.append(
            "the Satterthwaite df are unbounded (no variance parameter moves the "
            "standard error): p and CI use the normal distribution"
        )
    estimate = float(state["beta"][1])
    se = math.sqrt(var)
    t = estimate / se
    half = stats.t.ppf(0.975, df) * se
    return MixedFit(
        method="lmm",
        estimate=estimate,
        se=se,
        statistic=t,
        df=float(df) if math.isfinite(df) else None,
        p_value=float(2 * stats.t.sf(abs(t), df)),
        ci_low=estimate - half,
        ci_high=estimate + half,
        n_obs=len(d.y),
        n_participants=d.n_participants,
        n_identities=d.n_identities,
        random_effects=_random_effects(
            design, theta, sigma**2, [d.names["participant"], d.names["identity"]]
        ),
        residual_variance=sigma**2,
        singular=singular,
        converged=converged,
        notes=notes,
        formula=_formula(d, slopes),
        deviance=float(result.fun),
    )


def _fit_glmm(d: _Data, slopes: bool, tentative: bool = False) -> MixedFit:
    """Fit one logistic GLMM by Laplace and test the condition coefficient (Wald z)."""
    X = np.column_stack([np.ones(len(d.y)), d.ai])
    design = _Design(_terms(d, slopes), X, d.y)
    model = _GLMM(design)
    k = design.n_theta
    # glmer's two stages: (1) theta with beta inside PIRLS (nAGQ = 0), from which every
    # later PIRLS starts; (2) Laplace deviance over (theta, beta) jointly.
    first = model.pirls(design.theta_start, None)
    model.lp0 = first["lin"]
    # Stage 1 only supplies the start and lp0, to which the result is insensitive
    # (second order), so it stops earlier than stage 2.
    stage1 = _minimize(model.laplace0, design.theta_start, ftol=1e-10, forward=True)
    start = model.pirls(stage1.x, None)
    model.lp0 = start["lin"]
    result = _minimize(model.laplace, np.concatenate([stage1.x, start["beta"]]), forward=True)
    theta = design.canonical(result.x[:k])
    pars = np.concatenate([theta, result.x[k:]])
    notes = _singular_notes(design, theta)
    singular = bool(notes)
    _check_tentative(tentative, singular, True, notes)
    fx = model.laplace(pars)
    # lme4 >= 1.1 (vcov.merMod, use.hessian = TRUE): the beta block of 2 H^-1, H the
    # finite-difference Hessian over (theta, beta); RX-based covariance if H is not usable.
    H = numderiv.central_hessian(model.laplace, pars, fx)
    converged, _gradient, why = _lme4_convergence(model.laplace, pars, fx, H)
    converged = converged and bool(result.success)
    if why:
        notes.append(why)
    _check_tentative(tentative, singular, converged, notes)
    try:
        V = 2.0 * np.linalg.inv(H)[k:, k:]
        usable = bool(np.all(np.isfinite(V)) and np.linalg.eigvalsh(V).min() > 0)
    except np.linalg.LinAlgError:
        usable = False
    if not usable:
        notes.append(
            "the finite-difference Hessian is not positive definite: standard errors "
            "use the conditional (RX) covariance instead"
        )
        V = model.vcov_rx(model.pirls(theta, pars[k:]))
    estimate = float(pars[k + 1])
    se = math.sqrt(V[1, 1])
    z = estimate / se
    half = stats.norm.ppf(0.975) * se
    return MixedFit(
        method="glmm",
        estimate=estimate,
        se=se,
        statistic=z,
        df=None,
        p_value=float(2 * stats.norm.sf(abs(z))),
        ci_low=estimate - half,
        ci_high=estimate + half,
        n_obs=len(d.y),
        n_participants=d.n_participants,
        n_identities=d.n_identities,
        random_effects=_random_effects(
            design, theta, 1.0, [d.names["participant"], d.names["identity"]]
        ),
        residual_variance=None,
        singular=singular,
        converged=converged,
        notes=notes,
        formula=_formula(d, slopes),
        deviance=float(fx),
    )


def fit_lmm(
    data: pd.DataFrame,
    dv: str = "value",
    condition: str = "condition",
    participant: str = "participant",
    identity: str = "identity",
    slopes: bool | str = "auto",
) -> MixedFit:
    """Fit a linear mixed model with crossed random effects by REML, as lme4::lmer.

    The model is ``dv ~ condition + (1 | participant) + (1 | identity)`` (Judd, Westfall &
    Kenny 2012), with ``real`` as the baseline so the coefficient is ai minus real::

        y = X beta + Z b + e,   b = Lambda(theta) u,   u ~ N(0, sigma^2 I),   e ~ N(0, sigma^2 I)

    theta is found by minimising the profiled REML criterion (Bates et al. 2015, eq. 42)

        d_R(theta) = log|L|^2 + log|R_X|^2 + (n - p) [1 + log(2 pi r^2 / (n - p))],

    where L L' = Lambda' Z'Z Lambda + I, R_X' R_X = X'X - R_ZX' R_ZX and r^2 is the penalised
    residual sum of squares. The t test of the coefficient uses Satterthwaite's (1946)
    degrees of freedom computed as lmerTest does (Kuznetsova et al. 2017): the gradient of
    Var(beta) with respect to (theta, sigma) and the inverse Hessian of the REML deviance,
    both by Richardson-extrapolated finite differences.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial (long format).
    dv : str
        Numeric response column.
    condition : str
        Column with the values ``real`` and ``ai``.
    participant, identity : str
        Grouping columns of the crossed random effects.
    slopes : {"auto", True, False}
        True fits ``(1 + condition | participant) + (1 + condition | identity)`` with a
        general 2 x 2 covariance per grouping (lme4's lower-triangular theta); False
        fits intercepts only; "auto" tries slopes when every participant and every identity
        has data in both conditions and falls back to intercepts (with a note) when the
        slope fit is singular or fails.

    Returns
    -------
    MixedFit
        ``estimate`` (ai minus real), ``se``, ``statistic`` (t), ``df`` (Satterthwaite),
        ``p_value``, ``ci_low``/``ci_high`` (95 %, t with Satterthwaite df),
        ``random_effects`` (variances), ``residual_variance``, ``singular`` (a theta on its
        boundary), ``converged``, ``notes`` and the lme4 ``formula`` fitted.

    Raises
    ------
    ValueError
        No rows, a missing or non-numeric value, a condition other than real/ai or only
        one of them, a grouping column with a single level.

    References
    ----------
    Bates, D., Maechler, M., Bolker, B. & Walker, S. (2015). Fitting linear mixed-effects
    models using lme4. Journal of Statistical Software, 67(1).
    Kuznetsova, A., Brockhoff, P. B. & Christensen, R. H. B. (2017). lmerTest package: tests
    in linear mixed effects models. Journal of Statistical Software, 82(13).
    Judd, C. M., Westfall, J. & Kenny, D. A. (2012). Treating stimuli as a random factor in
    social psychology. Journal of Personality and Social Psychology, 103(1), 54-69.
    Satterthwaite, F. E. (1946). An approximate distribution of estimates of variance
    components. Biometrics Bulletin, 2(6), 110-114.
    """
    d = _prepare(data, dv, condition, participant, identity, binary=False)
    with _one_blas_thread():
        return _fit_with_slopes(_fit_lmm, d, slopes)


def fit_glmm(
    data: pd.DataFrame,
    dv: str = "correct",
    condition: str = "condition",
    participant: str = "participant",
    identity: str = "identity",
    slopes: bool | str = "auto",
) -> MixedFit:
    """Fit a logistic mixed model with crossed random effects by Laplace, as lme4::glmer.

    The model is ``logit P(dv = 1) = beta0 + beta1 [condition = ai] + b_participant +
    b_identity`` with b = Lambda(theta) u, u ~ N(0, I). For each (theta, beta) the conditional
    modes u are found by penalised iteratively reweighted least squares, and the Laplace
    deviance (Bates et al. 2015; lme4's glmerLaplace)

        d(theta, beta) = sum(deviance residuals) + |u|^2 + log|L|^2,
        L L' = Lambda' Z' W Z Lambda + I,  W = diag(mu (1 - mu)),

    is minimised jointly over (theta, beta) (glmer's second stage, nAGQ = 1). As in lme4 >= 1.1,
    the covariance of beta is the beta block of 2 H^-1, H the finite-difference Hessian
    (deriv12, step 1e-4) of d over (theta, beta); the test is a Wald z.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial (long format).
    dv : str
        0/1 response column (e.g. ``correct``).
    condition, participant, identity, slopes
        As in :func:`fit_lmm`.

    Returns
    -------
    MixedFit
        ``estimate`` (log odds ratio, ai minus real), ``se``, ``statistic`` (z), ``df`` None,
        ``p_value``, ``ci_low``/``ci_high`` (95 % Wald), ``random_effects`` (variances on the
        logit scale), ``residual_variance`` None, ``singular``, ``converged``, ``notes``,
        ``formula``.

    Raises
    ------
    ValueError
        As :func:`fit_lmm`, and a response other than 0/1.

    References
    ----------
    Bates, D., Maechler, M., Bolker, B. & Walker, S. (2015). Fitting linear mixed-effects
    models using lme4. Journal of Statistical Software, 67(1).
    Judd, C. M., Westfall, J. & Kenny, D. A. (2012). Treating stimuli as a random factor in
    social psychology. Journal of Personality and Social Psychology, 103(1), 54-69.
    """
    d = _prepare(data, dv, condition, participant, identity, binary=True)
    with _one_blas_thread():
        return _fit_with_slopes(_fit_glmm, d, slopes)
