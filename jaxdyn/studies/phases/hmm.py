"""Latent phases of training: a Gaussian HMM (dynamax) over standardised metric trajectories.

Input: an ``(S, T, D)`` array, S seeds (sequences) of T checkpoints with D metrics
each. The metrics are standardised over all seeds and checkpoints (z-scores;
constant columns dropped), optionally projected on their first principal
components, and a Gaussian HMM is fit with EM (``dynamax``) for every state
count in a range, each from several k-means initialisations; the number of
states minimises BIC = -2 log L + p log(S T), p the free parameters (initial
probabilities K - 1, transitions K (K - 1), means K d, variances K d for diagonal
covariances or K d (d + 1) / 2 for full ones). The Viterbi path of each seed gives
its phases; a transition i -> j is characterised by the metrics whose mean moves
most (in standard deviations) between the checkpoints assigned to i and to j.

References: Hu, Chen, Saphra & Cho 2023, "Latent state models of training
dynamics" (TMLR), Sec. 2-3 (HMM over standardised metrics of all seeds, BIC
model selection); Schwarz 1978 (BIC); Rabiner 1989 (EM, Viterbi); Chang et al.
2024, dynamax.
"""

from __future__ import annotations

import dataclasses
import itertools
import warnings
from collections import Counter
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def _quiet():
    """dynamax's TensorFlow Probability substrate still uses deprecated JAX names; its
    DeprecationWarnings (not ours) are silenced around dynamax calls."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", DeprecationWarning)
    return ctx


def _hmm_class(covariance: str):
    ctx = _quiet()
    try:
        from dynamax.hidden_markov_model import DiagonalGaussianHMM, GaussianHMM
    finally:
        ctx.__exit__(None, None, None)
    return DiagonalGaussianHMM if covariance == "diag" else GaussianHMM


@dataclasses.dataclass(frozen=True)
class Standardised:
    """z-scored metrics: ``z`` (S, T, D') over the kept columns ``names``."""

    z: np.ndarray
    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    dropped: list[str]


def standardise(x: np.ndarray, names: Sequence[str]) -> Standardised:
    """z-score every metric over all seeds and checkpoints; drop constant ones.

    Args:
      x: ``(S, T, D)`` metric values (finite).
      names: the D metric names.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 3 or x.shape[2] != len(names):
        raise ValueError(f"standardise: expected (S, T, {len(names)}) metrics, got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("standardise: metrics contain non-finite values")
    flat = x.reshape(-1, x.shape[2])
    mean, std = flat.mean(0), flat.std(0)
    keep = std > 1e-12 * np.maximum(1.0, np.abs(mean))
    if not keep.any():
        raise ValueError("standardise: every metric is constant over the trajectory")
    z = (x[..., keep] - mean[keep]) / std[keep]
    names = list(names)
    return Standardised(
        z,
        [n for n, k in zip(names, keep, strict=True) if k],
        mean[keep],
        std[keep],
        [n for n, k in zip(names, keep, strict=True) if not k],
    )


def principal_components(z: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Project ``(S, T, D)`` on the first ``k`` principal components (0: unchanged).

    Returns ``(y (S, T, k'), explained variance ratio (k',))``, ``k' = min(k, D, S T - 1)``.
    """
    s, t, d = z.shape
    k = min(k, s * t - 1) if k else 0  # more components than points - 1 have no variance
    if k <= 0 or k >= d:
        return z, np.ones(d) / d
    flat = z.reshape(-1, d)
    centred = flat - flat.mean(0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    k = max(1, min(k, len(sv)))
    ratio = sv**2 / max(np.sum(sv**2), 1e-300)
    return (centred @ vt[:k].T).reshape(s, t, k), ratio[:k]


def num_parameters(k: int, d: int, covariance: str) -> int:
    """Free parameters of a K-state Gaussian HMM in d dimensions (for BIC)."""
    cov = k * d if covariance == "diag" else k * d * (d + 1) // 2
    return (k - 1) + k * (k - 1) + k * d + cov


@dataclasses.dataclass(frozen=True)
class Fit:
    """One fitted HMM: ``states`` (S, T) Viterbi paths, transition matrix, log L, BIC."""

    num_states: int
    loglik: float
    bic: float
    states: np.ndarray
    transition_matrix: np.ndarray
    means: np.ndarray
    restarts_loglik: list[float]


def fit_hmm(
    y: np.ndarray,
    num_states: int,
    *,
    key: jax.Array,
    restarts: int = 3,
    em_iters: int = 100,
    covariance: str = "diag",
) -> Fit:
    """Fit a K-state Gaussian HMM to ``(S, T, d)`` sequences; best of ``restarts`` EM runs.

    Args:
      y: ``(S, T, d)`` standardised (or projected) metrics, S sequences of equal length.
      num_states: K.
      key: PRNG key (restarts use its splits for k-means initialisations).
      restarts: EM runs from different initialisations.
      em_iters: EM iterations per run.
      covariance: ``diag`` or ``full``.

    References: Rabiner 1989 (Baum-Welch EM, Viterbi); Schwarz 1978 (BIC).
    """
    if num_states == 1:  # one Gaussian (dynamax's Dirichlet priors need K >= 2): closed form
        return _one_state(np.asarray(y, np.float64), covariance)
    y = jnp.asarray(y, jnp.float32)
    if y.ndim != 3:
        raise ValueError(f"fit_hmm: expected (S, T, d) sequences, got shape {y.shape}")
    s, t, d = y.shape
    if num_states > s * t:
        raise ValueError(f"fit_hmm: {num_states} states for only {s * t} observations")
    hmm = _hmm_class(covariance)(num_states, d)
    flat = y.reshape(-1, d)

    def one_restart(r_key):
        params, props = hmm.initialize(r_key, method="kmeans", emissions=flat)
        params, _ = hmm.fit_em(params, props, y, num_iters=em_iters, verbose=False)
        ll = jnp.sum(jax.vmap(lambda e: hmm.marginal_log_prob(params, e))(y))
        return params, ll

    ctx = _quiet()
    try:  # every restart in one compiled, vmapped call
        all_params, lls = jax.jit(jax.vmap(one_restart))(jax.random.split(key, restarts))
        logliks = [float(v) for v in np.asarray(lls)]
        ok = [r for r, v in enumerate(logliks) if np.isfinite(v)]
        if not ok:
            raise FloatingPointError(f"fit_hmm: every restart of K={num_states} diverged")
        r = max(ok, key=logliks.__getitem__)
        params = jax.tree_util.tree_map(lambda v: v[r], all_params)
        ll = logliks[r]
        states = np.asarray(jax.jit(jax.vmap(lambda e: hmm.most_likely_states(params, e)))(y))
    finally:
        ctx.__exit__(None, None, None)
    bic = -2.0 * ll + num_parameters(num_states, d, covariance) * np.log(s * t)
    # label states in order of first visit (state 0: where training starts)
    order = list(dict.fromkeys(int(v) for v in states.reshape(-1)))
    order += [k for k in range(num_states) if k not in order]  # states never visited
    new = np.empty(num_states, int)
    new[order] = np.arange(num_states)
    trans = np.asarray(params.transitions.transition_matrix)[np.ix_(order, order)]
    return Fit(
        num_states,
        ll,
        float(bic),
        new[states],
        trans,
        np.asarray(params.emissions.means)[order],
        logliks,
    )


def _one_state(y: np.ndarray, covariance: str) -> Fit:
    """The K = 1 model: maximum-likelihood Gaussian of all observations."""
    s, t, d = y.shape
    flat = y.reshape(-1, d)
    mu = flat.mean(0)
    c = flat - mu
    if covariance == "diag":
        var = np.maximum(np.mean(c * c, 0), 1e-12)
        ll = -0.5 * np.sum(c * c / var + np.log(2 * np.pi * var))
    else:
        cov = c.T @ c / len(flat) + 1e-12 * np.eye(d)
        _, logdet = np.linalg.slogdet(cov)
        quad = np.einsum("ni,ij,nj->", c, np.linalg.inv(cov), c)
        ll = -0.5 * (quad + len(flat) * (logdet + d * np.log(2 * np.pi)))
    bic = -2.0 * ll + num_parameters(1, d, covariance) * np.log(s * t)
    return Fit(
        1, float(ll), float(bic), np.zeros((s, t), int), np.ones((1, 1)), mu[None], [float(ll)]
    )


def select_states(
    y: np.ndarray,
    state_range: Sequence[int],
    *,
    key: jax.Array,
    restarts: int = 3,
    em_iters: int = 100,
    covariance: str = "diag",
) -> tuple[Fit, list[Fit]]:
    """Fit every K in ``state_range``; return ``(the fit with the lowest BIC, all fits)``."""
    fits = []
    for k, sub in zip(state_range, jax.random.split(key, len(state_range)), strict=True):
        fits.append(
            fit_hmm(y, k, key=sub, restarts=restarts, em_iters=em_iters, covariance=covariance)
        )
    return min(fits, key=lambda f: f.bic), fits


def change_points(states: np.ndarray, steps: Sequence[int]) -> list[list[tuple[int, int, int]]]:
    """Per seed, ``(step, from_state, to_state)`` at every checkpoint whose state differs
    from the previous checkpoint's."""
    steps = list(steps)
    out = []
    for seq in np.asarray(states):
        out.append(
            [
                (steps[t], int(seq[t - 1]), int(seq[t]))
                for t in range(1, len(seq))
                if seq[t] != seq[t - 1]
            ]
        )
    return out


def transition_counts(states: np.ndarray) -> Counter:
    """``{(i, j): count}`` of observed transitions i -> j (i != j) over all seeds."""
    c: Counter = Counter()
    for seq in np.asarray(states):
        for a, b in itertools.pairwise(seq):
            if a != b:
                c[(int(a), int(b))] += 1
    return c


def characterise(
    z: np.ndarray, names: Sequence[str], states: np.ndarray, top: int = 5
) -> dict[tuple[int, int], list[tuple[str, float]]]:
    """For every observed transition i -> j, the ``top`` metrics with the largest change
    of their mean (in standard deviations) from the checkpoints in state i to those in j.

    Args:
      z: ``(S, T, D)`` standardised metrics; names: their D names; states: ``(S, T)``.
    """
    flat, lab = z.reshape(-1, z.shape[-1]), np.asarray(states).reshape(-1)
    means = {int(k): flat[lab == k].mean(0) for k in np.unique(lab)}
    out = {}
    for i, j in sorted(transition_counts(states)):
        delta = means[j] - means[i]
        order = np.argsort(-np.abs(delta))[:top]
        out[(i, j)] = [(names[n], float(delta[n])) for n in order]
    return out


def state_means(z: np.ndarray, names: Sequence[str], states: np.ndarray) -> dict[int, np.ndarray]:
    """Mean standardised metric vector of the checkpoints assigned to each state."""
    flat, lab = z.reshape(-1, z.shape[-1]), np.asarray(states).reshape(-1)
    return {int(k): flat[lab == k].mean(0) for k in np.unique(lab)}
