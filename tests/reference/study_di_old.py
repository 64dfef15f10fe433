"""The interactions and bottom-up studies' DI code before they called the DI kernel.

Kept verbatim in substance (fixed-shape ``span_beta`` over all ``T`` steps, the
studies' own DI ratio, the bottom-up study's second forward pass) so that tests can
check the refactor did not change the numbers and ``benchmarks/interdependence.py
--studies`` can time old against new. Not used by the library.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdyn.data.synthetic import CLOSE
from jaxdyn.decompose import forward, span_beta, zero_carry_single

MEASURES = ("full_logp", "correct", "cd_open", "cd_conduit", "cd_both", "di_hidden", "di_logits")


def _ratio(a, b, ab):
    num = jnp.linalg.norm(ab - a - b, axis=-1)
    den = jnp.linalg.norm(ab, axis=-1)
    ok = den > 0
    return jnp.where(ok, num / jnp.where(ok, den, 1.0), 0.0)


def _decoder(params):
    dec = params["decoder"]
    return dec["weight"] if "weight" in dec else params["encoder"]["weight"]


def _di_one(params, tokens, length, pairs, targets):
    t_len, n_pairs = tokens.shape[0], pairs.shape[0]
    pos = jnp.arange(t_len)
    x, y = pairs[:, 0], pairs[:, 1]
    pair_masks = ((pos[None] == x[:, None]) | (pos[None] == y[:, None])) & (x[:, None] >= 0)
    masks = jnp.concatenate([jnp.eye(t_len, dtype=bool), pair_masks])
    beta = span_beta(params, tokens, masks, layer=-1, length=length)  # (T + P, T, H)
    ok = x >= 0
    bx = jnp.where(ok[:, None], beta[jnp.clip(x, 0), targets], 0.0)
    by = jnp.where(ok[:, None], beta[jnp.clip(y, 0), targets], 0.0)
    bxy = beta[t_len + jnp.arange(n_pairs), targets]
    w = _decoder(params)
    return _ratio(bx, by, bxy), _ratio(bx @ w.T, by @ w.T, bxy @ w.T)


_batch_di = jax.jit(jax.vmap(_di_one, in_axes=(None, 0, 0, 0, 0)))


def old_batch_di(params, batch) -> tuple[np.ndarray, np.ndarray]:
    """``jaxdyn.studies.interactions.pairs.batch_di`` before the refactor."""
    out = _batch_di(params, batch.tokens, batch.lengths, batch.pairs, batch.targets)
    return tuple(np.asarray(v) for v in jax.device_get(out))


def _closing_one(params, tokens, open_pos, rule_length):
    pos = jnp.arange(tokens.shape[0])
    t = open_pos + rule_length
    m_open = pos == open_pos
    m_cond = (pos > open_pos) & (pos <= t)
    beta = span_beta(params, tokens, jnp.stack([m_open, m_cond, m_open | m_cond]), layer=-1)
    b = beta[:, t]
    w = _decoder(params)
    rel = b @ w.T
    cd = jax.nn.log_softmax(rel, axis=-1)[:, CLOSE]
    hs, _, _ = forward(params, tokens, zero_carry_single(params, w.dtype))
    full = jax.nn.log_softmax(hs[-1][t] @ w.T + params["decoder"]["bias"])[CLOSE]
    return {
        "full_logp": full,
        "correct": (full > jnp.log(0.5)).astype(jnp.float32),
        "cd_open": cd[0],
        "cd_conduit": cd[1],
        "cd_both": cd[2],
        "di_hidden": _ratio(b[0], b[1], b[2]),
        "di_logits": _ratio(rel[0], rel[1], rel[2]),
    }


_closing_batch = jax.jit(jax.vmap(_closing_one, in_axes=(None, 0, 0, None)))


def old_closing_measures(params, sequences, open_pos, rule_length, *, chunk=256):
    """``jaxdyn.studies.bottom_up.compute.closing_measures`` before the refactor."""
    seq, op = np.asarray(sequences, np.int32), np.asarray(open_pos, np.int32)
    n = len(seq)
    size = min(chunk, n)
    parts: dict[str, list] = {k: [] for k in MEASURES}
    for s in range(0, n, size):
        idx = np.arange(s, s + size) % n
        out = jax.device_get(
            _closing_batch(params, jnp.asarray(seq[idx]), jnp.asarray(op[idx]), rule_length)
        )
        keep = min(size, n - s)
        for k in MEASURES:
            parts[k].append(np.asarray(out[k], np.float64)[:keep])
    return {k: np.concatenate(v) for k, v in parts.items()}
