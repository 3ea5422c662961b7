"""Finite-difference derivatives: ports of R's numDeriv (Richardson) and of lme4's deriv12."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

_ZERO_TOL = math.sqrt(np.finfo(float).eps / 7e-7)  # numDeriv's zero.tol


def _richardson(a: npt.ArrayLike) -> np.ndarray:
    """Richardson extrapolation over successive halvings (numDeriv, v = 2)."""
    values = np.asarray(a, dtype=float)
    for m in range(1, values.shape[0]):
        values = (values[1:] * 4.0**m - values[:-1]) / (4.0**m - 1.0)
    return values[0]


def _steps(x: np.ndarray, d: float, eps: float) -> np.ndarray:
    """numDeriv's initial steps: relative d, absolute eps for coordinates near zero."""
    return np.abs(d * x) + eps * (np.abs(x) < _ZERO_TOL)


def hessian(
    f: Callable[[np.ndarray], float], x: np.ndarray, d: float = 0.1, eps: float = 1e-4, r: int = 4
) -> np.ndarray:
    """Hessian of a scalar function as numDeriv::hessian (genD, Richardson, r = 4)."""
    n = len(x)
    f0 = f(x)
    h0 = _steps(x, d, eps)
    H = np.empty((n, n))
    for i in range(n):
        approx = []
        for k in range(r):
            e = np.zeros(n)
            e[i] = h0[i] / 2**k
            approx.append((f(x + e) - 2 * f0 + f(x - e)) / e[i] ** 2)
        H[i, i] = _richardson(approx)
    for i in range(n):
        for j in range(i):
            approx = []
            for k in range(r):
                e = np.zeros(n)
                e[i], e[j] = h0[i] / 2**k, h0[j] / 2**k
                approx.append(
                    (f(x + e) - 2 * f0 + f(x - e) - H[i, i] * e[i] ** 2 - H[j, j] * e[j] ** 2)
                    / (2 * e[i] * e[j])
                )
            H[i, j] = H[j, i] = _richardson(approx)
    return H


def jacobian(
    f: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    d: float = 1e-4,
    eps: float = 1e-4,
    r: int = 4,
) -> np.ndarray:
    """Jacobian (m x n) of a vector function as numDeriv::jacobian (Richardson, r = 4)."""
    h0 = _steps(x, d, eps)
    columns = []
    for i in range(len(x)):
        approx = []
        for k in range(r):
            e = np.zeros(len(x))
            e[i] = h0[i] / 2**k
            approx.append((np.ravel(f(x + e)) - np.ravel(f(x - e))) / (2 * e[i]))
        columns.append(_richardson(np.array(approx)))
    return np.column_stack(columns)


def central_hessian(
    f: Callable[[np.ndarray], float], x: np.ndarray, fx: float, delta: float = 1e-4
) -> np.ndarray:
    """Hessian by plain central differences, as lme4's deriv12 (delta = 1e-4) for glmer."""
    n = len(x)
    H = np.empty((n, n))
    for j in range(n):
        e_j = np.zeros(n)
        e_j[j] = delta
        H[j, j] = (f(x + e_j) - 2 * fx + f(x - e_j)) / delta**2
        for i in range(j):
            e_i = np.zeros(n)
            e_i[i] = delta
            H[i, j] = H[j, i] = (
                f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j) + f(x - e_i - e_j)
            ) / (2 * delta) ** 2
    return H


def central_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-6
) -> np.ndarray:
    """Gradient by central differences (the deviances are smooth, also across theta = 0)."""
    g = np.empty(len(x))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = h * max(1.0, abs(x[i]))
        g[i] = (f(x + e) - f(x - e)) / (2 * e[i])
    return g


def forward_value_and_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray
) -> tuple[float, np.ndarray]:
    """Value and forward-difference gradient: n + 1 evaluations instead of 2n + 1."""
    fx = f(x)
    g = np.empty(len(x))
    for i in range(len(x)):
        e = np.zeros(len(x))
        e[i] = 1e-7 * max(1.0, abs(x[i]))
        g[i] = (f(x + e) - fx) / e[i]
    return fx, g
