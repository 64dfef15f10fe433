"""Float64 NumPy reference of a multi-layer LSTM LM, written from PyTorch's equations."""

from __future__ import annotations

import numpy as np


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def lstm_lm_forward(params, tokens, carry=None):
    """params in jaxdyn layout (any array type); tokens (B, T). Returns logits, acts, carry."""
    p = {k: v for k, v in params.items()}
    emb = np.asarray(p["encoder"]["weight"], np.float64)
    x = emb[np.asarray(tokens)]
    b, t = tokens.shape
    names = sorted(p["rnn"], key=lambda s: int(s[1:]))
    acts = {"embedding": x}
    out_carry = []
    for l, name in enumerate(names):
        q = {k: np.asarray(v, np.float64) for k, v in p["rnn"][name].items()}
        hdim = q["weight_hh"].shape[1]
        if carry is None:
            h, c = np.zeros((b, hdim)), np.zeros((b, hdim))
        else:
            h, c = (np.asarray(a, np.float64) for a in carry[l])
        rec = {k: np.zeros((b, t, hdim)) for k in ("h", "c", "i", "f", "g", "o")}
        for s in range(t):
            a = x[:, s] @ q["weight_ih"].T + q["bias_ih"] + h @ q["weight_hh"].T + q["bias_hh"]
            i = sigmoid(a[:, :hdim])
            f = sigmoid(a[:, hdim : 2 * hdim])
            g = np.tanh(a[:, 2 * hdim : 3 * hdim])
            o = sigmoid(a[:, 3 * hdim :])
            c = f * c + i * g
            h = o * np.tanh(c)
            for k, v in zip("hcifgo", (h, c, i, f, g, o)):
                rec[k][:, s] = v
        acts[f"lstm_{l}"] = rec
        out_carry.append((h, c))
        x = rec["h"]
    dec = p["decoder"]
    w = np.asarray(dec["weight"] if "weight" in dec else p["encoder"]["weight"], np.float64)
    logits = x @ w.T + np.asarray(dec["bias"], np.float64)
    return logits, acts, out_carry
