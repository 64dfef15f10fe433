"""The host loop (jaxdyn.train.loop): one loop for single models and populations."""

import dataclasses

from jaxdyn.config import CaptureConfig, DataConfig, ModelConfig, OptimConfig, RunConfig
from jaxdyn.train import lm_task

_SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(240)]
_SPLITS = {"train": _SENTS, "valid": _SENTS[:40], "test": _SENTS[40:80]}

#: the single-seed run behind tests/data/loop_single_seed_reference.npz (plateau rule,
#: capture, step checkpoints, dropout: every branch of the loop)
REF_CFG = RunConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=2, dropout=0.2),
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    optim=OptimConfig(lr=20.0, plateau_factor=0.25),
    capture=CaptureConfig(every=4, reductions=("l2", "te")),
    epochs=3,
    checkpoint_every_steps=5,
    log_every=3,
)


def ref_data():
    return lm_task(_SPLITS, REF_CFG.data)


_ = dataclasses
