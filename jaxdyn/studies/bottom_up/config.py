"""Configuration of the synthetic bottom-up study (``bottom_up.*`` keys)."""

from __future__ import annotations

import dataclasses

from jaxdyn.config.sections import ModelConfig, OptimConfig
from jaxdyn.data.synthetic import BracketConfig

#: Evaluation sets: bank conduits (``familiar``) and never-seen conduits (``fresh``).
EVAL_SETS = ("familiar", "fresh")
#: Measures at the closing symbol (see ``compute``).
MEASURES = ("full_logp", "correct", "cd_open", "cd_conduit", "cd_both", "di_hidden", "di_logits")


@dataclasses.dataclass(frozen=True)
class BottomUpConfig:
    """Sizes of the synthetic bottom-up study.

    Attributes:
      rule_lengths: conduit lengths ``L`` (one pair of conditions each).
      familiar_repeats: out-of-bracket copies of each bank conduit in the familiar
        condition (the unfamiliar condition has 0).
      vocab_size, num_tokens, num_rules, bank_size, num_eval, eval_length: the data
        (:class:`jaxdyn.data.synthetic.BracketConfig`).
      model, optim: every condition's language model (same sections as the run's).
      epochs: training epochs; None: the run's ``epochs``.
      batch_size, bptt: training batches.
      learned_gain: smallest rise (accuracy, or nats for log-probabilities) from
        epoch 0 that counts as "learned" when timing the findings.
      eval_chunk: evaluation sequences per compiled call.
      seed: data seed (models are initialised from ``seed + 1111``).
      checkpoints: which checkpoints to measure: ``all``, ``last`` or epochs ``0,5``
        (the findings time the rise of accuracy, so they need ``all``).
      seeds: models per condition (a population, seeds ``seed + 1111 + m``), each
        measured on its own; the findings are decided across them. None: the run's
        ``seeds``.
    """

    rule_lengths: tuple[int, ...] = (3, 8)
    familiar_repeats: int = 20
    vocab_size: int = 100
    num_tokens: int = 100_000
    num_rules: int = 1_500
    bank_size: int = 20
    num_eval: int = 200
    eval_length: int = 24
    model: ModelConfig = ModelConfig(emb_dim=48, hidden=48, num_layers=2, dropout=0.0)
    optim: OptimConfig = OptimConfig()
    epochs: int | None = 8
    batch_size: int = 20
    bptt: int = 35
    learned_gain: float = 0.1
    eval_chunk: int = 256
    seed: int = 0
    checkpoints: str = "all"
    seeds: int | None = None

    def __post_init__(self):
        from jaxdyn.studies._common import check_checkpoints

        if not self.rule_lengths or min(self.rule_lengths) < 1:
            raise ValueError(f"bottom_up.rule_lengths must be >= 1, got {self.rule_lengths}")
        for k in ("batch_size", "bptt", "eval_chunk", "num_eval", "eval_length"):
            if getattr(self, k) < 1:
                raise ValueError(f"bottom_up.{k} must be >= 1, got {getattr(self, k)}")
        if self.epochs is not None and self.epochs < 0:
            raise ValueError("bottom_up.epochs must be >= 0 or none")
        check_checkpoints(self.checkpoints, "bottom_up.checkpoints")
        if self.seeds is not None and self.seeds < 1:
            raise ValueError(f"bottom_up.seeds must be >= 1 or none, got {self.seeds}")

    def bracket_config(self, rule_length: int, repeats: int) -> BracketConfig:
        """Data of one condition."""
        return BracketConfig(
            vocab_size=self.vocab_size,
            num_tokens=self.num_tokens,
            rule_length=rule_length,
            num_rules=self.num_rules,
            bank_size=self.bank_size,
            familiar_repeats=repeats,
            num_eval=self.num_eval,
            eval_length=self.eval_length,
            seed=self.seed,
        )

    def conditions(self) -> list[tuple[str, int, int]]:
        """``(name, rule_length, familiar_repeats)`` of every condition."""
        out = []
        for rule_length in self.rule_lengths:
            out.append((f"L{rule_length}-unfamiliar", rule_length, 0))
            out.append((f"L{rule_length}-familiar", rule_length, self.familiar_repeats))
        return out
