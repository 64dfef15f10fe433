"""Model-agnostic interaction measures over decomposed representations.

``di_ratio`` is the decompositional interdependence ratio of Saphra & Lopez (2020):
given the relevant parts ``beta_x``, ``beta_y`` and ``beta_{x,y}`` of one
representation (a hidden state, logits, any vector) that a decomposition assigns
to the parts ``x``, ``y`` and their union, the share of the joint contribution
that is not additive. How the parts are computed (e.g. contextual decomposition of
an LSTM, :mod:`jaxdyn.decompose.lstm`) is not this module's concern.

References:
  Saphra & Lopez (2020), "LSTMs Compose (and Learn) Bottom-Up", Findings of EMNLP,
  Eq. 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def di_ratio(beta_x: jax.Array, beta_y: jax.Array, beta_xy: jax.Array) -> jax.Array:
    """Decompositional interdependence ``||b_xy - b_x - b_y|| / ||b_xy||`` over the last axis.

    Args:
      beta_x, beta_y, beta_xy: ``(..., D)`` relevant parts of ``x``, ``y`` and ``x``
        together with ``y`` (broadcastable to one shape).

    Returns:
      ``(...)`` values in ``[0, inf)``; exactly 0 where ``b_xy = 0`` (e.g. empty
      spans or spans after the read-out position), never NaN.

    Raises:
      ValueError: an input is a scalar (there is no vector axis to take the norm over).

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    beta_x, beta_y, beta_xy = (jnp.asarray(v) for v in (beta_x, beta_y, beta_xy))
    if min(beta_x.ndim, beta_y.ndim, beta_xy.ndim) < 1:
        raise ValueError(
            "di_ratio needs vectors (..., D); got shapes "
            f"{beta_x.shape}, {beta_y.shape}, {beta_xy.shape}"
        )
    num = jnp.linalg.norm(beta_xy - beta_x - beta_y, axis=-1)
    den = jnp.linalg.norm(beta_xy, axis=-1)
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _norm_factor(w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``M (D, D)`` with ``||v W^T|| = ||v M||`` for all ``v``, and whether it is accurate.

    CholeskyQR2 of ``W (K, D)``: ``W = Q R`` with ``M = R^T``, from two Cholesky
    factorisations of Gram matrices and triangular solves (``O(K D^2)``). Accurate
    when ``Q``'s computed columns are orthonormal to ``64 eps`` (checked here; with a
    badly conditioned ``W`` the check fails or the factorisation gives NaN).

    References:
      Fukaya, Nakatsukasa, Yanagisawa & Yamamoto (2014), "CholeskyQR2: a simple and
      communication-avoiding algorithm for computing a tall-skinny QR factorization".
    """
    from jax.scipy.linalg import solve_triangular

    eye = jnp.eye(w.shape[1], dtype=w.dtype)
    # inverses of the small triangular factors, then GEMMs: XLA:CPU's triangular solve
    # with a (D, K) right-hand side is much slower; the check below covers the rounding
    l1 = jnp.linalg.cholesky(w.T @ w)
    q1t = solve_triangular(l1, eye, lower=True) @ w.T  # (W L1^-T)^T
    l2 = jnp.linalg.cholesky(q1t @ q1t.T)
    q2t = solve_triangular(l2, eye, lower=True) @ q1t
    err = jnp.max(jnp.abs(q2t @ q2t.T - eye))
    return l1 @ l2, err <= 64 * jnp.finfo(w.dtype).eps  # False for NaN too


def di_ratio_linear(
    beta_x: jax.Array, beta_y: jax.Array, beta_xy: jax.Array, w: jax.Array
) -> jax.Array:
    """:func:`di_ratio` of the images ``beta W^T`` under a linear map ``W (K, D)``.

    Equal to ``di_ratio(beta_x @ W.T, beta_y @ W.T, beta_xy @ W.T)`` up to rounding
    (e.g. DI in logit space from hidden-space parts and a decoder matrix). The ratio
    needs only norms, and ``||v W^T|| = ||v R^T||`` with ``W = Q R``, so for many
    vectors and ``K > D`` it uses the ``D x D`` factor (CholeskyQR2, checked) instead
    of forming the ``(N, K)`` images; it forms them when that is cheaper by shape
    (``K <= D`` or ``3 N <= 5 D``) or when the factor is inaccurate.

    Args:
      beta_x, beta_y, beta_xy: ``(N, D)`` parts; w: ``(K, D)`` the map.

    Returns:
      ``(N,)`` DI values (0 where ``beta_xy W^T = 0``).

    References:
      Saphra & Lopez (2020), Findings of EMNLP, Eq. 1.
    """
    k, d = w.shape
    n = beta_xy.shape[0]

    def direct():
        return di_ratio(beta_x @ w.T, beta_y @ w.T, beta_xy @ w.T)

    if k <= d or 3 * n <= 5 * d:
        return direct()
    m, ok = _norm_factor(w)
    return jax.lax.cond(ok, lambda: di_ratio(beta_x @ m, beta_y @ m, beta_xy @ m), direct)
