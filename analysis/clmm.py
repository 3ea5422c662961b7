"""Cumulative-link mixed model for ordinal ratings, fitted by Laplace as R's ordinal::clmm."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, special

from analysis import numderiv
from analysis.mixed import (
    COEFFICIENT,
    REFERENCE_CONDITION,
    MixedFit,
    _check_tentative,
    _Cholesky,
    _coefficients,
    _Data,
    _Design,
    _fit_with_slopes,
    _one_blas_thread,
    _prepare,
    _random_effects,
    _selected_inverse,
    _shared,
    _singular_notes,
    _terms,
    _Tests,
    _tril_positions,
    prepare_named,
)

BOUNDARY_TOL = 1e-3  # clmm's paratBoundary2: SD parameters below this are left out of the Hessian
INNER_GRADIENT_TOL = 1e-10  # Newton on the random effects stops at max|gradient| below this
CLMM_GRADIENT_TOL = 1e-4  # clmm.control(gradTol = 1e-4), used for the Hessian as clmm does
INNER_MAX_ITERATIONS = 50  # clmm.control(maxIter = 50)
INNER_MAX_HALVINGS = 50  # clmm.control(maxLineIter = 50)
GRADIENT_TOL = 1e-3  # a larger max|gradient| of -logLik at the optimum is reported as a failure
HESSIAN_DELTA = 1e-4  # ordinal's deriv12(delta = 1e-4), used by clmm for the Hessian


@dataclasses.dataclass
class ClmmFit(MixedFit):
    """A MixedFit with the thresholds and the Laplace log-likelihood of the ordinal model."""

    thresholds: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    log_likelihood: float | None = None
    categories: list[Any] = dataclasses.field(default_factory=list)


# ----------------------------------------------------------------------------- likelihood


def _probabilities(upper: np.ndarray, lower: np.ndarray) -> np.ndarray:
    """P(lower < latent <= upper) for the standard logistic (+-inf bounds allowed).

    The difference of two cdfs is taken in the upper tail where both are close to 1.
    """
    p = special.expit(upper) - special.expit(lower)
    tail = np.flatnonzero(lower > 5.0)
    if tail.size:
        p[tail] = special.expit(-lower[tail]) - special.expit(-upper[tail])
    return p


def _cell_probabilities(
    upper: np.ndarray, lower: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(lower < latent <= upper), f(upper) - f(lower) and f'(upper) - f'(lower).

    f is the logistic density; +-inf bounds (the outer categories) give f = f' = 0.
    """
    Fu, Fl = special.expit(upper), special.expit(lower)
    p = Fu - Fl
    tail = np.flatnonzero(lower > 5.0)
    if tail.size:
        p[tail] = special.expit(-lower[tail]) - special.expit(-upper[tail])
    fu, fl = Fu * (1.0 - Fu), Fl * (1.0 - Fl)
    return p, fu - fl, fu * (1.0 - 2.0 * Fu) - fl * (1.0 - 2.0 * Fl)


class _CLMM:
    """Laplace approximation to -log L(thresholds, beta, theta), as ordinal's getNLA.

    For given parameters the conditional modes u of the spherical random effects (b = Lambda u)
    minimise h(u) = -sum log p_i(u) + |u|^2 / 2 by Newton's method with step halving (clmm's
    update.u); then -log L ~ h(u) + log|H| / 2, H = Lambda' Z' W Z Lambda + I the Hessian of h,
    W = diag(d^2 (-log p_i) / d s_i^2) for the shift s_i = (Z Lambda u)_i. The Cholesky factor
    of H is the block/Schur factor of analysis.mixed (sparse in the largest grouping).
    """

    def __init__(self, design: _Design, y: np.ndarray, n_categories: int):
        self.design = design
        self.y = y.astype(np.intp)
        self.n_alpha = n_categories - 1
        self.p = design.p
        self.n_theta = design.n_theta
        self.u = np.zeros(design.q)  # warm start of the inner Newton
        self.like_clmm = False  # True: clmm's own inner Newton (cold start, tolerance 1e-4)

    def split(self, pars: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(thresholds, beta, theta) from the parameter vector."""
        a, p = self.n_alpha, self.p
        return pars[:a], pars[a : a + p], pars[a + p :]

    def _bounds(self, alpha: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fixed-effect parts of the upper and lower linear predictors of every row."""
        cuts = np.concatenate([[-np.inf], alpha, [np.inf]])
        xb = self.design.X @ beta if self.p else np.zeros(self.design.n)
        return cuts[self.y + 1] - xb, cuts[self.y] - xb

    def _h(self, upper: np.ndarray, lower: np.ndarray, shift: np.ndarray, u: np.ndarray) -> float:
        p = _probabilities(upper - shift, lower - shift)
        if not np.all(p > 0):
            return np.inf
        return float(-np.log(p).sum() + 0.5 * u @ u)

    def modes(self, pars: np.ndarray) -> dict[str, Any]:
        """Conditional modes u and the Laplace deviance pieces at pars; raises ArithmeticError."""
        alpha, beta, theta = self.split(pars)
        if self.n_alpha > 1 and not np.all(np.diff(alpha) > 0):
            raise ArithmeticError("thresholds out of order")
        d = self.design
        factors = d.factors(theta)
        upper, lower = self._bounds(alpha, beta)
        if self.like_clmm:
            return self._modes_like_clmm(factors, upper, lower)
        u = self.u.copy()
        shift = d.z_lambda_u(factors, u)
        h = self._h(upper, lower, shift, u)
        if not math.isfinite(h):
            u = np.zeros(d.q)
            shift = np.zeros(d.n)
            h = self._h(upper, lower, shift, u)
            if not math.isfinite(h):
                raise ArithmeticError("a rating has probability zero at these parameters")
        for _ in range(INNER_MAX_ITERATIONS + 1):
            gradient, chol = self._newton_pieces(factors, upper, lower, shift, u)
            if np.abs(gradient).max() < INNER_GRADIENT_TOL:
                self.u = u
                return self._state(factors, upper, lower, shift, u, h, chol)
            step = chol.backward(chol.forward(gradient[:, None]))[:, 0]
            factor = 1.0
            for _halving in range(INNER_MAX_HALVINGS):
                u_try = u - factor * step
                shift_try = d.z_lambda_u(factors, u_try)
                h_try = self._h(upper, lower, shift_try, u_try)
                if h_try <= h:
                    break
                factor /= 2.0
            else:
                # no decrease is possible: u is a minimum to rounding
                break
            if h - h_try < 1e-15 * max(1.0, abs(h)) and factor < 1.0:
                u, shift, h = u_try, shift_try, h_try
                break
            u, shift, h = u_try, shift_try, h_try
        else:
            raise ArithmeticError("the random-effects modes did not converge")
        self.u = u
        return self._finish(factors, upper, lower, shift, u, h)

    def _newton_pieces(
        self,
        factors: list[np.ndarray],
        upper: np.ndarray,
        lower: np.ndarray,
        shift: np.ndarray,
        u: np.ndarray,
    ) -> tuple[np.ndarray, _Cholesky]:
        """Gradient of h in u and the Cholesky factor of its Hessian at u."""
        d = self.design
        p, df, dg = _cell_probabilities(upper - shift, lower - shift)
        g1 = df / p  # d(-log p)/ds
        w = g1**2 - dg / p  # d^2(-log p)/ds^2 (clmm's phi2), > 0 for the logit
        if np.any(w < 0):
            raise ArithmeticError("negative curvature in the random-effects Hessian")
        cp = d.crossprod(w, g1[:, None], weight_r=False)
        return d.scaled_zr(factors, cp)[:, 0] + u, _Cholesky(d, factors, cp)

    def _modes_like_clmm(
        self, factors: list[np.ndarray], upper: np.ndarray, lower: np.ndarray
    ) -> dict[str, Any]:
        """clmm's update.u step for step: Newton from u = 0 until max|gradient| < 1e-4.

        The Laplace deviance then carries the same (tiny) inner-convergence error as clmm's,
        which matters for the finite-difference Hessian (step 1e-4) behind the standard errors.
        """
        d = self.design
        u = np.zeros(d.q)
        shift = np.zeros(d.n)
        h = self._h(upper, lower, shift, u)
        if not math.isfinite(h):
            raise ArithmeticError("a rating has probability zero at these parameters")
        factor = 1.0
        gradient, chol = self._newton_pieces(factors, upper, lower, shift, u)
        for _ in range(INNER_MAX_ITERATIONS):
            if np.abs(gradient).max() < CLMM_GRADIENT_TOL:
                break
            step = chol.backward(chol.forward(gradient[:, None]))[:, 0]
            u = u - factor * step
            shift = d.z_lambda_u(factors, u)
            h_try = self._h(upper, lower, shift, u)
            halvings = 0
            while h_try > h or not math.isfinite(h_try):
                factor /= 2.0
                u = u + factor * step
                shift = d.z_lambda_u(factors, u)
                h_try = self._h(upper, lower, shift, u)
                halvings += 1
                if halvings > INNER_MAX_HALVINGS:
                    break
            h = h_try
            gradient, chol = self._newton_pieces(factors, upper, lower, shift, u)
            factor = min(1.0, 2.0 * factor)
        if not math.isfinite(h):
            raise ArithmeticError("a rating has probability zero at these parameters")
        return self._finish(factors, upper, lower, shift, u, h)

    def _finish(
        self,
        factors: list[np.ndarray],
        upper: np.ndarray,
        lower: np.ndarray,
        shift: np.ndarray,
        u: np.ndarray,
        h: float,
    ) -> dict[str, Any]:
        """The modes' state with log|H| at the final modes (clmm's hess.u after its loop)."""
        d = self.design
        p, df, dg = _cell_probabilities(upper - shift, lower - shift)
        w = (df / p) ** 2 - dg / p
        chol = _Cholesky(d, factors, d.crossprod(w, np.zeros((d.n, 1)), weight_r=False))
        return self._state(factors, upper, lower, shift, u, h, chol)

    @staticmethod
    def _state(
        factors: list[np.ndarray],
        upper: np.ndarray,
        lower: np.ndarray,
        shift: np.ndarray,
        u: np.ndarray,
        h: float,
        chol: _Cholesky,
    ) -> dict[str, Any]:
        """What the deviance and its gradient need from the modes."""
        return {
            "u": u,
            "h": h,
            "logdet": chol.logdet,
            "chol": chol,
            "factors": factors,
            "upper": upper - shift,
            "lower": lower - shift,
        }

    def nll_and_gradient(self, pars: np.ndarray) -> tuple[float, np.ndarray]:
        """Laplace -log L and its exact gradient in (thresholds, beta, theta).

        With h(u) = sum l_i + |u|^2 / 2 (l_i = -log p_i), H its Hessian in u and u^ its minimum,
        F = h(u^) + log|H| / 2 and, by the envelope theorem and du^/dphi = -H^-1 d(grad_u h)/dphi,

            dF/dphi = dh/dphi + tr(H^-1 dH/dphi) / 2,

        where dH/dphi moves W both directly and through u^. The traces need only the blocks of
        H^-1 that one row touches (a selected inverse from the block Cholesky factor).
        """
        try:
            state = self.modes(pars)
        except (ArithmeticError, np.linalg.LinAlgError, ValueError):
            self.u = np.zeros(self.design.q)
            return np.inf, np.zeros(len(pars))
        d = self.design
        value = state["h"] + 0.5 * state["logdet"]
        e1, e2 = state["upper"], state["lower"]
        F1, F2 = special.expit(e1), special.expit(e2)
        f1, f2 = F1 * (1 - F1), F2 * (1 - F2)
        d1, d2 = f1 * (1 - 2 * F1), f2 * (1 - 2 * F2)  # f'
        s1, s2 = f1 * (1 - 6 * F1 + 6 * F1**2), f2 * (1 - 6 * F2 + 6 * F2**2)  # f''
        prob = _probabilities(e1, e2)
        ip = 1.0 / prob
        # derivatives of l = -log(F(e1) - F(e2)) in e1 and e2
        l1, l2 = -f1 * ip, f2 * ip
        l11 = -d1 * ip + (f1 * ip) ** 2
        l22 = d2 * ip + (f2 * ip) ** 2
        l12 = -f1 * f2 * ip**2
        l111 = -s1 * ip + 3 * f1 * d1 * ip**2 - 2 * f1**3 * ip**3
        l222 = s2 * ip + 3 * f2 * d2 * ip**2 + 2 * f2**3 * ip**3
        l112 = -d1 * f2 * ip**2 + 2 * f1**2 * f2 * ip**3
        l122 = -f1 * d2 * ip**2 - 2 * f1 * f2**2 * ip**3
        g1 = -(l1 + l2)  # dl/ds, s the random shift (e = ... - s)
        w = l11 + 2 * l12 + l22  # d2l/ds2
        G1, G2 = -(l11 + l12), -(l12 + l22)  # dg1/de1, dg1/de2
        W1 = l111 + 2 * l112 + l122  # dW/de1
        W2 = l112 + 2 * l122 + l222  # dW/de2
        Ws = -(W1 + W2)  # dW/ds

        factors, chol, u = state["factors"], state["chol"], state["u"]
        Pa, local = _selected_inverse(d, chol, factors)
        m = np.einsum("ni,ni->n", local, Pa)  # diag of Z Lambda H^-1 Lambda' Z'
        v = m * Ws
        cp = d.crossprod(None, v[:, None], weight_r=False)
        r = chol.backward(chol.forward(d.scaled_zr(factors, {"zr": cp["zr"]})))[:, 0]
        t = d.z_lambda_u(factors, r)

        A1 = l1 + 0.5 * (m * W1 - t * G1)
        A2 = l2 + 0.5 * (m * W2 - t * G2)
        a, p = self.n_alpha, self.p
        grad = np.empty(len(pars))
        upper_ok = self.y < a  # rows with a finite upper threshold (index y)
        lower_ok = self.y > 0
        grad[:a] = (
            np.bincount(self.y[upper_ok], A1[upper_ok], minlength=a + 1)[:a]
            + np.bincount(self.y[lower_ok] - 1, A2[lower_ok], minlength=a)[:a]
        )
        if p:
            grad[a : a + p] = -(d.X.T @ (A1 + A2))
        # theta: d s / d theta_k for s = Z Lambda u and for s = Z Lambda r
        k_index = a + p
        offset = 0
        slot = 0
        for term, size in zip(d.terms, d.sizes, strict=True):
            U = u[offset : offset + size].reshape(term.n_levels, term.k)[term.codes]
            R = r[offset : offset + size].reshape(term.n_levels, term.k)[term.codes]
            rows, cols = _tril_positions(term.k)
            for row, col in zip(rows, cols, strict=True):
                x = term.columns[:, row]
                su, sr = x * U[:, col], x * R[:, col]
                structural = float(np.sum(w * x * Pa[:, slot + col]))
                grad[k_index] = g1 @ su + structural + 0.5 * (v @ su - g1 @ sr - (t * w) @ su)
                k_index += 1
            offset += size
            slot += term.k
        return value, grad

    def nll(self, pars: np.ndarray) -> float:
        """Laplace negative log-likelihood; inf where it is not defined."""
        try:
            state = self.modes(pars)
        except (ArithmeticError, np.linalg.LinAlgError, ValueError):
            self.u = np.zeros(self.design.q)
            return np.inf
        return state["h"] + 0.5 * state["logdet"]


def _start(y: np.ndarray, n_categories: int, design: _Design) -> np.ndarray:
    """Thresholds at the logits of the cumulative proportions, beta 0, theta at lme4's start."""
    counts = np.bincount(y, minlength=n_categories)
    cumulative = np.cumsum(counts)[:-1] / counts.sum()
    alpha = special.logit(np.clip(cumulative, 1e-6, 1 - 1e-6))
    return np.concatenate([alpha, np.zeros(design.p), design.theta_start])


def _gradient_hessian(
    model: _CLMM, pars: np.ndarray, free: np.ndarray, delta: float = HESSIAN_DELTA
) -> np.ndarray:
    """Hessian over the free parameters by central differences of the exact gradient."""
    H = np.empty((len(free), len(free)))
    for j, index in enumerate(free):
        step = np.zeros(len(pars))
        step[index] = delta
        up = model.nll_and_gradient(pars + step)[1][free]
        down = model.nll_and_gradient(pars - step)[1][free]
        H[:, j] = (up - down) / (2 * delta)
    return (H + H.T) / 2


def _optimum(
    design: _Design, y: np.ndarray, n_categories: int
) -> tuple[_CLMM, optimize.OptimizeResult]:
    """The model and L-BFGS's minimum of its Laplace -log L (no Hessian, no polish)."""
    model = _CLMM(design, y, n_categories)
    result = optimize.minimize(
        model.nll_and_gradient,
        _start(y, n_categories, design),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000, "ftol": 1e-12, "gtol": 1e-6, "maxcor": 20},
    )
    return model, result


def _fit_design(
    design: _Design, y: np.ndarray, n_categories: int, hessian: str = "gradient"
) -> dict[str, Any]:
    """Fit a CLMM to a design (any fixed effects X without intercept, any crossed terms).

    ``hessian="gradient"`` differentiates the exact gradient (2k evaluations for k parameters);
    ``hessian="clmm"`` repeats clmm's deriv12 on clmm's own inner Newton (tolerance 1e-4), whose
    small inner-convergence error moves clmm's threshold standard errors by up to ~5e-4
    relative. Returns the parameters (thresholds, beta, canonical theta), their covariance
    (NaN where the Hessian is not usable), -log L, the gradient and notes.
    """
    if hessian not in ("gradient", "clmm"):
        raise ValueError(f"hessian must be 'gradient' or 'clmm', got {hessian!r}")
    model, result = _optimum(design, y, n_categories)
    a, p = model.n_alpha, model.p
    pars = result.x.copy()
    pars[a + p :] = design.canonical(pars[a + p :])
    notes: list[str] = []
    theta = pars[a + p :]
    boundary = np.zeros(len(pars), dtype=bool)
    boundary[a + p :] = design.diagonal & (np.abs(theta) < BOUNDARY_TOL)
    free = np.flatnonzero(~boundary)

    # Polish with Newton steps on the free parameters (L-BFGS stops a little early on flat
    # likelihoods), with the Hessian taken once; it is taken again only if the steps moved
    # the parameters enough to change it at the 1e-6 level.
    fx, gradient_full = model.nll_and_gradient(pars)
    H = _gradient_hessian(model, pars, free)
    moved = 0.0
    for _ in range(4):
        try:
            step = np.linalg.solve(H, gradient_full[free])
        except np.linalg.LinAlgError:
            break
        if not np.all(np.isfinite(step)) or np.abs(step).max() > 0.1:
            break
        trial = pars.copy()
        trial[free] -= step
        f_trial, g_trial = model.nll_and_gradient(trial)
        if not (np.isfinite(f_trial) and f_trial <= fx + 1e-12 * abs(fx)):
            break
        pars, fx, gradient_full = trial, f_trial, g_trial
        moved += float(np.abs(step).max())
        if np.abs(gradient_full[free]).max() < 1e-8:
            break
    gradient = gradient_full[free]
    if hessian == "clmm":

        def restricted(x: np.ndarray) -> float:
            full = pars.copy()
            full[free] = x
            return model.nll(full)

        model.like_clmm = True
        H = numderiv.central_hessian(restricted, pars[free], restricted(pars[free]), HESSIAN_DELTA)
        model.like_clmm = False
    elif moved > 1e-5:
        H = _gradient_hessian(model, pars, free)
    cov = np.full((len(pars), len(pars)), np.nan)
    try:
        inverse = np.linalg.inv(H)
        if np.all(np.isfinite(inverse)) and np.linalg.eigvalsh(H).min() > 0:
            cov[np.ix_(free, free)] = inverse
        else:
            notes.append(
                "the Hessian of -logLik is not positive definite: no standard errors "
                "(the model may be over-parameterised or the data separated)"
            )
    except np.linalg.LinAlgError:
        notes.append("the Hessian of -logLik is singular: no standard errors")
    worst = float(np.abs(gradient).max()) if len(gradient) else 0.0
    converged = bool(np.isfinite(fx) and worst <= GRADIENT_TOL)
    if not converged:
        notes.append(
            f"failed to converge: max|gradient| of -logLik = {worst:.3g} (tol = {GRADIENT_TOL:g})"
        )
    if boundary.any():
        notes.append(
            "a random-effect SD is at its boundary (< 1e-3): it is held fixed in the Hessian "
            "for the standard errors, as clmm does"
        )
    return {
        "pars": pars,
        "cov": cov,
        "nll": float(fx),
        "gradient_max": worst,
        "converged": converged,
        "notes": notes,
        "theta": pars[a + p :],
        "n_alpha": a,
    }


# ----------------------------------------------------------------------------- public API


def _categories(values: np.ndarray, categories: Sequence[Any] | None) -> tuple[list, list[str]]:
    """Ordered response categories used in the data, and notes on unused scale points."""
    used = sorted(set(values.tolist()))
    notes = []
    if categories is not None:
        scale = sorted(set(float(c) for c in categories))
        outside = [v for v in used if v not in scale]
        if outside:
            raise ValueError(
                f"ratings {', '.join(f'{v:g}' for v in outside)} are not on the scale "
                f"{', '.join(f'{c:g}' for c in scale)}"
            )
        unused = [c for c in scale if c not in used]
        if unused:
            notes.append(
                f"categor{'y' if len(unused) == 1 else 'ies'} "
                f"{', '.join(f'{c:g}' for c in unused)} of the scale never used: thresholds "
                "are estimated between the categories that occur (as clmm, which drops unused "
                "levels)"
            )
    return used, notes


def _check_separation(d: _Data, dv: str) -> None:
    """Refuse ratings that separate the conditions (no finite estimate exists)."""
    ai, real = d.y[d.ai == 1], d.y[d.ai == 0]
    if ai.min() >= real.max() or real.min() >= ai.max():
        high, low = ("ai", "real") if ai.min() >= real.max() else ("real", "ai")
        raise ValueError(
            f"column {dv!r}: every {high} rating is at or above every {low} rating (perfect "
            "separation); the log cumulative odds ratio has no finite estimate"
        )


def _label(value: float) -> str:
    """A category as R prints a factor level (4, not 4.0)."""
    return f"{value:g}"


def _clmm_formula(d: _Data, slopes: bool) -> str:
    """clmm formula text of the model fitted (the rating as an ordered factor)."""
    n = d.names
    inner = f"1 + {n['condition']}" if slopes else "1"
    return (
        f"ordered({n['dv']}) ~ {d.fixed} + ({inner} | {n['participant']}) "
        f"+ ({inner} | {n['identity']})"
    )


def _fit_one(
    d: _Data,
    slopes: bool,
    tentative: bool = False,
    *,
    categories: list,
    extra_notes: list[str],
    hessian: str = "gradient",
) -> ClmmFit:
    """Fit one CLMM (fixed random-effects structure) and test every fixed effect (Wald z).

    The thresholds take the place of the intercept: the fixed effects are the columns of the
    model matrix after its intercept, as in clmm.
    """
    codes = np.searchsorted(np.asarray(categories, dtype=float), d.y)
    X, names = d.X[:, 1:], d.columns[1:]
    design = _Design(_terms(d, slopes), X, codes.astype(float))
    fit = _fit_design(design, codes, len(categories), hessian)
    a, p = fit["n_alpha"], X.shape[1]
    theta = fit["theta"]
    notes = _singular_notes(design, theta)
    singular = bool(notes)
    _check_tentative(tentative, singular, fit["converged"], notes + fit["notes"])
    notes = list(d.notes) + list(extra_notes) + notes + fit["notes"]
    tests = _Tests("z", fit["pars"][a : a + p], fit["cov"][a : a + p, a : a + p])
    coefficients = _coefficients(tests, names)
    thresholds = []
    for j in range(a):
        var = fit["cov"][j, j]
        sej = math.sqrt(var) if var > 0 else math.nan
        thresholds.append(
            {
                "name": f"{_label(categories[j])}|{_label(categories[j + 1])}",
                "estimate": float(fit["pars"][j]),
                "se": sej,
            }
        )
    effects = _random_effects(design, theta, 1.0, [d.names["participant"], d.names["identity"]])
    for row in effects:
        row["sd"] = math.sqrt(max(row["variance"], 0.0))
    return ClmmFit(
        method="clmm",
        random_effects=effects,
        residual_variance=None,
        singular=singular,
        converged=fit["converged"],
        notes=notes,
        formula=_clmm_formula(d, slopes),
        deviance=2.0 * fit["nll"],
        **_shared(d, slopes, coefficients, tests.vcov, a + p + design.n_theta),
        tests=tests,
        thresholds=thresholds,
        log_likelihood=-fit["nll"],
        categories=[c.item() if isinstance(c, np.generic) else c for c in categories],
    )


def fit_clmm(
    data: pd.DataFrame,
    dv: str = "value",
    condition: str = "condition",
    participant: str = "participant",
    identity: str = "identity",
    slopes: bool | str = "auto",
    categories: Sequence[Any] | None = None,
    hessian: str = "gradient",
    *,
    fixed: str | None = None,
    baseline: str = REFERENCE_CONDITION,
    treatment: str | None = None,
    reference: dict[str, str] | None = None,
    factors: tuple[str, ...] | list[str] = (),
) -> ClmmFit:
    """Fit a cumulative-link (logit) mixed model with crossed random effects, as ordinal::clmm.

    The model (Christensen 2019; Liddell & Kruschke 2018 on why ratings need it) is ::

        P(Y_i <= j) = logit^-1(theta_j - beta [condition_i = ai] - b_participant - b_identity),

    with flexible thresholds theta_1 < ... < theta_{J-1} between the J rating categories that
    occur, b = Lambda u and u ~ N(0, I). beta is the log cumulative odds ratio of ai against
    real; as in clmm a positive beta means higher ratings for ai. The parameters maximise the
    Laplace approximation (clmm's default, nAGQ = 1)

        log L ~ sum_i log p_i(u^) - |u^|^2 / 2 - log|L|,  L L' = Lambda' Z' W Z Lambda + I,

    u^ the conditional modes (penalised Newton), W the curvature of -log p_i in the linear
    predictor. Standard errors come from the inverse of the finite-difference Hessian of
    -log L over (thresholds, beta, random-effect SDs) with step 1e-4, leaving out SDs on their
    boundary (< 1e-3), exactly as clmm; the test is a Wald z.

    Parameters
    ----------
    data : pandas.DataFrame
        One row per trial (long format).
    dv : str
        Numeric rating column (e.g. 1..7); its distinct values are the ordered categories.
    condition, participant, identity, slopes
        As in :func:`analysis.mixed.fit_lmm`.
    categories : sequence, optional
        The full scale (e.g. 1..7). Points never used get a note (they carry no threshold);
        a rating off the scale is an error.
    fixed, baseline, treatment, reference, factors
        As in :func:`analysis.mixed.fit_lmm` (e.g. ``fixed="condition * gender"``): the
        thresholds replace the intercept, so each other column of the model matrix is one
        coefficient, named as R names it; every one is tested in ``coefficients`` and
        :meth:`~analysis.mixed.MixedFit.contrast` tests any combination (Wald z).

    Returns
    -------
    ClmmFit
        ``estimate`` (log cumulative odds ratio, ai minus real), ``se``, ``statistic`` (z),
        ``p_value``, ``ci_low``/``ci_high`` (95 % Wald), ``thresholds`` (name, estimate, se),
        ``random_effects`` (variance, sd, correlation), ``log_likelihood``, ``deviance``
        (-2 logLik), ``singular``, ``converged``, ``notes`` and the clmm ``formula``.

    Raises
    ------
    ValueError
        As :func:`analysis.mixed.fit_lmm`; fewer than two rating categories; ratings that
        separate the conditions perfectly.

    References
    ----------
    Christensen, R. H. B. (2019). Cumulative link models for ordinal regression with the R
    package ordinal. https://cran.r-project.org/package=ordinal
    Liddell, T. M. & Kruschke, J. K. (2018). Analyzing ordinal data with metric models: what
    could possibly go wrong? Journal of Experimental Social Psychology, 79, 328-348.
    """
    d = _prepare(
        data,
        dv,
        condition,
        participant,
        identity,
        False,
        fixed,
        baseline,
        treatment,
        reference,
        factors,
    )
    used, notes = _categories(d.y, categories)
    if len(used) < 2:
        raise ValueError(
            f"column {dv!r} has the single value {used[0]:g}; an ordinal model needs at least "
            "two rating categories"
        )
    _check_separation(d, dv)
    with _one_blas_thread():

        def fit_one(data_: _Data, slopes_: bool, tentative: bool = False) -> ClmmFit:
            return _fit_one(
                data_, slopes_, tentative, categories=used, extra_notes=notes, hessian=hessian
            )

        fit = _fit_with_slopes(fit_one, d, slopes)
    assert isinstance(fit, ClmmFit)
    return fit


def ml_deviance(data: pd.DataFrame, fixed: str, slopes: bool, **names: Any) -> tuple[float, int]:
    """-2 log L (Laplace) and the number of parameters of a CLMM with the given fixed effects.

    What a likelihood-ratio test compares (ordinal's ``anova(m0, m1)``); ``names`` are the
    column and level arguments of :func:`fit_clmm`.
    """
    d = prepare_named(data, fixed, False, names)
    used, _notes = _categories(d.y, None)
    codes = np.searchsorted(np.asarray(used, dtype=float), d.y)
    design = _Design(_terms(d, slopes), d.X[:, 1:], codes.astype(float))
    # Only the maximum is needed: L-BFGS's (to ~1e-9 in -log L) without the Hessian and Newton
    # polish that the standard errors of a full fit need.
    with _one_blas_thread():
        _model, result = _optimum(design, codes, len(used))
    return 2.0 * float(result.fun), len(used) - 1 + design.p + design.n_theta


__all__ = ["COEFFICIENT", "ClmmFit", "fit_clmm", "ml_deviance"]
