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
