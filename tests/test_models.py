import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from jaxdyn.models import (
    from_torch_state_dict,
    language_model,
    lm_apply,
    share_initialisation,
    tagger,
    to_torch_state_dict,
)
from tests.reference.lstm_ref import lstm_lm_forward


class TorchLM(torch.nn.Module):
    """PyTorch word_language_model's RNNModel (LSTM), eval mode."""

    def __init__(self, v, e, h, layers, tie=False):
        super().__init__()
        self.encoder = torch.nn.Embedding(v, e)
        self.rnn = torch.nn.LSTM(e, h, layers, batch_first=True)
        self.decoder = torch.nn.Linear(h, v)
        if tie:
            self.decoder.weight = self.encoder.weight

    def forward(self, x, hidden=None):
        out, hidden = self.rnn(self.encoder(x), hidden)
        return self.decoder(out), hidden


def _init(model, b=3, t=7, seed=0):
    return model.init(jax.random.key(seed), jnp.zeros((b, t), jnp.int32))["params"]


@pytest.mark.parametrize("tie", [False, True])
def test_forward_matches_torch_two_layers(tie):
    v, e, h = 40, 16, 16
    model = language_model(v, emb_dim=e, hidden=h, num_layers=2, dropout=0.0, tie_weights=tie)
    params = _init(model)
    tm = TorchLM(v, e, h, 2, tie)
    sd = {k: torch.from_numpy(np.array(a)) for k, a in to_torch_state_dict(params).items()}
    tm.load_state_dict(sd)
    tokens = np.random.default_rng(0).integers(0, v, (3, 9))
    with torch.no_grad():
        t_logits, (th, tc) = tm(torch.from_numpy(tokens))
    logits, carry = model.apply({"params": params}, jnp.asarray(tokens))
    np.testing.assert_allclose(np.asarray(logits), t_logits.numpy(), atol=1e-5)
    for l in range(2):
        np.testing.assert_allclose(np.asarray(carry[l][0]), th[l].numpy(), atol=1e-5)
        np.testing.assert_allclose(np.asarray(carry[l][1]), tc[l].numpy(), atol=1e-5)


def test_torch_state_dict_round_trip():
    model = language_model(30, emb_dim=8, hidden=8, num_layers=2)
    tm = TorchLM(30, 8, 8, 2)
    params = from_torch_state_dict(tm.state_dict())
    ref = jax.tree_util.tree_map(jnp.shape, _init(model))
    assert jax.tree_util.tree_map(jnp.shape, params) == ref
    back = to_torch_state_dict(params)
    for k, v in tm.state_dict().items():
        np.testing.assert_array_equal(back[k], v.numpy())
    with pytest.raises(KeyError, match=r"encoder\.weight"):
        from_torch_state_dict({"decoder.bias": np.zeros(3)})


def test_bare_torch_lstm_keys_are_accepted_next_to_encoder_and_decoder():
    tm = TorchLM(30, 8, 8, 2)
    full = tm.state_dict()
    bare = {k: v for k, v in tm.rnn.state_dict().items()}  # weight_ih_l0, ... (no "rnn.")
    assert "weight_ih_l0" in bare
    sd = {**bare, **{k: v for k, v in full.items() if not k.startswith("rnn.")}}
    got, ref = from_torch_state_dict(sd), from_torch_state_dict(full)
    jax.tree_util.tree_map(np.testing.assert_array_equal, got, ref)
    with pytest.raises(KeyError, match="weight_ih_l"):
        from_torch_state_dict({k: v for k, v in sd.items() if k not in bare})


def test_forward_matches_numpy_reference_with_carry_and_gates():
    model = language_model(25, emb_dim=6, hidden=5, num_layers=3, dropout=0.3)
    params = _init(model)
    rng = np.random.default_rng(1)
    tokens = rng.integers(0, 25, (2, 6))
    carry = tuple((rng.normal(size=(2, 5)), rng.normal(size=(2, 5))) for _ in range(3))
    ref_logits, ref_acts, ref_carry = lstm_lm_forward(params, tokens, carry)
    jcarry = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), carry)
    logits, new_carry, acts = model.apply(
        {"params": params}, jnp.asarray(tokens), jcarry, return_acts=True
    )
    np.testing.assert_allclose(np.asarray(logits), ref_logits, atol=2e-5)
    for l in range(3):
        for k in "hcifgo":
            np.testing.assert_allclose(
                np.asarray(acts[f"lstm_{l}"][k]), ref_acts[f"lstm_{l}"][k], atol=2e-5
            )
        np.testing.assert_allclose(np.asarray(new_carry[l][0]), ref_carry[l][0], atol=2e-5)
    lo2, _ = lm_apply(params, jnp.asarray(tokens), jcarry)
    np.testing.assert_array_equal(np.asarray(lo2), np.asarray(logits))


def test_dropout_only_in_train_and_keyed():
    model = language_model(20, emb_dim=8, hidden=8, dropout=0.5)
    params = _init(model)
    x = jnp.ones((2, 4), jnp.int32)
    a, _ = model.apply({"params": params}, x)
    b, _ = model.apply({"params": params}, x)
    np.testing.assert_array_equal(a, b)
    c, _ = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(1)})
    d, _ = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(1)})
    e, _ = model.apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(2)})
    np.testing.assert_array_equal(c, d)
    assert not np.allclose(c, a) and not np.allclose(c, e)


def test_thesis_defaults_and_init_ranges():
    model = language_model(100)
    params = _init(model)
    assert params["encoder"]["weight"].shape == (100, 200)
    assert sorted(params["rnn"]) == ["l0", "l1"]
    assert params["rnn"]["l0"]["weight_ih"].shape == (800, 200)
    assert model.dropout == 0.2
    for w in (params["encoder"]["weight"], params["decoder"]["weight"]):
        assert float(jnp.abs(w).max()) <= 0.1
    np.testing.assert_array_equal(params["decoder"]["bias"], 0.0)


def test_tagger_shares_initialisation_and_validates():
    lm = language_model(50, emb_dim=8, hidden=8)
    tg = tagger(50, 7, emb_dim=8, hidden=8)
    p_lm, p_tg = _init(lm, seed=0), _init(tg, seed=1)
    shared = share_initialisation(p_lm, p_tg)
    assert shared["decoder"]["weight"].shape == (7, 8)
    np.testing.assert_array_equal(shared["encoder"]["weight"], p_lm["encoder"]["weight"])
    logits, _ = tg.apply({"params": shared}, jnp.zeros((2, 3), jnp.int32))
    assert logits.shape == (2, 3, 7)
    with pytest.raises(ValueError, match="cannot share"):
        share_initialisation(p_lm, _init(tagger(50, 7, emb_dim=8, hidden=4)))
    with pytest.raises(ValueError, match="tie_weights"):
        _init(tagger(50, 7, emb_dim=8, hidden=8, tie_weights=True))


def test_lstm_taps_flat_names_in_flax_collections_and_implements_the_carry_protocol():
    from jaxdyn.models import initial_carry, is_recurrent, zero_carry

    model = language_model(20, emb_dim=4, hidden=5, num_layers=2)
    params = _init(model)
    assert set(params) == {"encoder", "rnn", "decoder"} and set(params["rnn"]) == {"l0", "l1"}
    tokens = jnp.zeros((2, 3), jnp.int32)
    _, cols = model.apply({"params": params}, tokens, mutable=["intermediates", "perturbations"])
    outputs = {"embedding", "lstm_0", "lstm_1", "decoder_in", "logits"}
    gates = {f"lstm_{l}.{p}" for l in range(2) for p in "cifgo"}
    assert set(cols["perturbations"]) == outputs
    assert set(cols["intermediates"]) == outputs | gates
    assert is_recurrent(model)
    c = initial_carry(model, params, 2)
    jax.tree_util.tree_map(np.testing.assert_array_equal, c, zero_carry(params, 2))
