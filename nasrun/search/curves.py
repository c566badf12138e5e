"""Learning-curve extrapolation (after Domhan, Springenberg & Hutter 2015): fit parametric curves to the epochs
seen, and the probability that the curve ends above a target at the last epoch.

Three of Domhan et al.'s eleven families, chosen because they are the ones that saturate: each rises towards
an asymptote, as an accuracy curve does, and each bends differently, so together they cover the shapes seen:
- pow3, c - a x^(-α): power-law saturation (the most common fit in their study);
- log_power, a / (1 + (x / e^b)^c): a logistic in log x, which also fits a slow start;
- exp3, c - exp(b - a x): exponential saturation, the most pessimistic (it flattens fastest).
The rest (vapor pressure, MMF, Janoschek, Weibull, ...) add parameters a few epochs cannot pin down.

Instead of their MCMC over a weighted ensemble, each family is fitted by least squares (scipy's curve_fit,
bounded so every curve stays an accuracy in [0, 1]), and its prediction at the last epoch is a normal whose
variance is the residual noise plus the parameters' uncertainty carried through the curve (the delta method:
J Σ Jᵀ). The families that fit are averaged with equal weight. No sampling: the same curve always gives the
same probability, so a resumed run decides as the first one did.
"""

from __future__ import annotations

import math
import warnings
from typing import Callable, Sequence

import numpy as np

NOISE_FLOOR = 0.005  # 0.5 accuracy points: no fit is trusted to be more certain than one epoch's jitter


def pow3(x, c, a, alpha):
    return c - a * np.power(x, -alpha)


def log_power(x, a, b, c):
    return a / (1.0 + np.power(x / np.exp(b), c))


def exp3(x, c, a, b):
    return c - np.exp(b - a * x)


# name -> (function, initial guess from the curve, bounds)
FAMILIES: dict[str, tuple[Callable, Callable, tuple]] = {
    "pow3": (pow3, lambda y: (min(1.0, y[-1] + 0.05), max(1e-3, y[-1] - y[0] + 0.05), 0.5),
             ([0.0, 0.0, 0.0], [1.0, 10.0, 10.0])),
    "log_power": (log_power, lambda y: (min(1.0, y[-1] + 0.05), 0.0, -1.0),
                  ([0.0, -10.0, -10.0], [1.0, 10.0, 0.0])),
    "exp3": (exp3, lambda y: (min(1.0, y[-1] + 0.05), 0.5, 0.0), ([0.0, 0.0, -10.0], [1.0, 10.0, 10.0])),
}


def predict(curve: Sequence[float], at: int) -> list[tuple[str, float, float]]:
    """(family, mean, standard deviation) of each family's prediction of the curve at epoch `at`; the curve is
    a fraction per epoch from epoch 1. Families that do not fit are left out."""
    from scipy.optimize import OptimizeWarning, curve_fit

    y = np.asarray(curve, dtype=float)
    x = np.arange(1, len(y) + 1, dtype=float)
    out = []
    for name, (f, guess, bounds) in FAMILIES.items():
        p0 = np.clip(guess(y), np.asarray(bounds[0]) + 1e-9, np.asarray(bounds[1]) - 1e-9)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in a trial step; the fit recovers
            try:
                params, cov = curve_fit(f, x, y, p0=p0, bounds=bounds, maxfev=2000)
            except (RuntimeError, ValueError):  # no convergence, or a non-finite residual: this family sits out
                continue
        residuals = y - f(x, *params)
        dof = len(y) - len(params)
        noise = math.sqrt(float(residuals @ residuals) / dof) if dof > 0 else 0.0
        mean = float(f(float(at), *params))
        grad = _gradient(f, float(at), params)
        spread = float(grad @ cov @ grad) if np.all(np.isfinite(cov)) else 0.0
        sd = math.sqrt(max(noise, NOISE_FLOOR) ** 2 + max(spread, 0.0))
        if math.isfinite(mean) and math.isfinite(sd):
            out.append((name, min(max(mean, 0.0), 1.0), sd))
    return out


def probability_above(curve: Sequence[float], at: int, target: float) -> float | None:
    """The probability that the curve (fractions per epoch) ends above `target` at epoch `at`, averaged over
    the families that fit; None when none does."""
    from scipy.stats import norm

    fits = predict(curve, at)
    if not fits:
        return None
    return float(np.mean([norm.sf(target, loc=mean, scale=sd) for _, mean, sd in fits]))


def _gradient(f, x: float, params: np.ndarray) -> np.ndarray:
    """The derivative of f(x) with respect to each parameter (central differences)."""
    grad = np.empty(len(params))
    for i in range(len(params)):
        step = 1e-6 * max(1.0, abs(params[i]))
        up, down = params.copy(), params.copy()
        up[i] += step
        down[i] -= step
        grad[i] = (f(x, *up) - f(x, *down)) / (2 * step)
    return grad
