"""Float64 NumPy references for the similarity kernels, written from the papers' equations.

Samples-first ``(N, D)`` inputs, full-rank views assumed (references, not robust code).

References: Hotelling 1936 (CCA); Raghu et al. 2017 (SVCCA, Sec. 2); Morcos et al.
2018 (PWCCA, Sec. 2.2); Kornblith et al. 2019 (CKA, Eq. 3-5); Song et al. 2012 (unbiased
HSIC, Eq. 5); Nguyen et al. 2021 (minibatch CKA, Eq. 3); google/svcca
``cca_core.get_cca_similarity`` (behaviour re-derived from its description).
"""

from __future__ import annotations

import numpy as np


def _centre(x):
    x = np.asarray(x, np.float64)
    return x - x.mean(axis=0)


def _inv_sqrt(c):
    lam, v = np.linalg.eigh(c)
    return v @ np.diag(lam**-0.5) @ v.T


def _whitened_cross(x, y):
    xc, yc = _centre(x), _centre(y)
    n = xc.shape[0]
    sxx, syy, sxy = xc.T @ xc / (n - 1), yc.T @ yc / (n - 1), xc.T @ yc / (n - 1)
    ix = _inv_sqrt(sxx)
    return xc, ix, ix @ sxy @ _inv_sqrt(syy)


def cca(x, y):
    """Canonical correlations: singular values of ``Sxx^-1/2 Sxy Syy^-1/2`` (Hotelling)."""
    _, _, m = _whitened_cross(x, y)
    return np.linalg.svd(m, compute_uv=False)[: min(m.shape)]


def svcca(x, y, keep=0.99):
    """SVD-reduce each centred view to ``keep`` of its variance, CCA, mean correlation."""

    def reduce(a):
        u, s, _ = np.linalg.svd(_centre(a), full_matrices=False)
        frac = np.cumsum(s**2) / np.sum(s**2)
        k = int(np.searchsorted(frac, keep - 1e-12) + 1)
        return u[:, :k] * s[:k]

    return float(np.mean(cca(reduce(x), reduce(y))))


def pwcca(x, y):
    """Morcos et al.: weights from the canonical variates of the FIRST view."""
    xc, ix, m = _whitened_cross(x, y)
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    c = min(m.shape)
    h = xc @ ix @ u[:, :c]  # canonical variates of x (columns)
    h = h / np.linalg.norm(h, axis=0)
    alpha = np.abs(h.T @ xc).sum(axis=1)
    alpha = alpha / alpha.sum()
    return float(np.sum(alpha * s[:c]))


def google_summary(x, y, epsilon=0.0, threshold=0.98):
    """Independent re-implementation of google/svcca's ``get_cca_similarity`` "mean"."""
    a1, a2 = np.asarray(x, np.float64).T, np.asarray(y, np.float64).T  # neurons first
    nx = a1.shape[0]
    cov = np.cov(a1, a2)
    sxx, sxy, syy = cov[:nx, :nx], cov[:nx, nx:], cov[nx:, nx:]
    xmax, ymax = np.max(np.abs(sxx)), np.max(np.abs(syy))
    sxx, syy, sxy = sxx / xmax, syy / ymax, sxy / np.sqrt(xmax * ymax)
    kx, ky = np.abs(np.diag(sxx)) >= epsilon, np.abs(np.diag(syy)) >= epsilon
    sxx, syy, sxy = sxx[kx][:, kx], syy[ky][:, ky], sxy[kx][:, ky]
    sxx = sxx + epsilon * np.eye(sxx.shape[0])
    syy = syy + epsilon * np.eye(syy.shape[0])

    def sqrt_psd(a):
        lam, v = np.linalg.eigh(a)
        return v @ np.diag(np.sqrt(lam)) @ v.T

    m = sqrt_psd(np.linalg.pinv(sxx)) @ sxy @ sqrt_psd(np.linalg.pinv(syy))
    s = np.abs(np.linalg.svd(m, compute_uv=False))
    idx = len(s)
    for i in range(len(s)):
        if np.sum(s[:i]) / np.sum(s) >= threshold:
            idx = i
            break
    return float(np.mean(s[:idx]))


def _hsic_biased(k, l):
    n = k.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return np.trace(k @ h @ l @ h)


def hsic_unbiased(k, l):
    """Song et al. 2012, Eq. (5)."""
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    one = np.ones(n)
    return (
        np.trace(kt @ lt)
        + (one @ kt @ one) * (one @ lt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ kt @ lt @ one)
    ) / (n * (n - 3))


def _cka(k, l, debiased):
    f = hsic_unbiased if debiased else _hsic_biased
    return float(f(k, l) / np.sqrt(f(k, k) * f(l, l)))


def linear_cka(x, y, debiased=False):
    """Kornblith et al. Eq. (5) with centred features; debiased via unbiased HSIC."""
    xc, yc = _centre(x), _centre(y)
    return _cka(xc @ xc.T, yc @ yc.T, debiased)


def rbf_gram(x, sigma):
    x = np.asarray(x, np.float64)
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)
    return np.exp(-d2 / (2 * sigma**2 * np.median(d2)))


def rbf_cka(x, y, sigma=0.8, debiased=False):
    """RBF CKA, bandwidth ``sigma`` times the median distance (Kornblith et al. Sec. 3)."""
    return _cka(rbf_gram(x, sigma), rbf_gram(y, sigma), debiased)


def minibatch_cka(batches):
    """Nguyen et al. 2021 Eq. (3): sums of per-batch unbiased HSIC of centred features."""
    hxy = hxx = hyy = 0.0
    for x, y in batches:
        xc, yc = _centre(x), _centre(y)
        k, l = xc @ xc.T, yc @ yc.T
        hxy += hsic_unbiased(k, l)
        hxx += hsic_unbiased(k, k)
        hyy += hsic_unbiased(l, l)
    return float(hxy / np.sqrt(hxx * hyy))
