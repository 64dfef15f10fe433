"""Configuration of the syntactic-attention study (``attention.*`` keys)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class AttentionConfig:
    """Attention heads against UD English-EWT dependency heads, on the run's checkpoints.

    Attributes:
      split: EWT sentences read: ``valid`` (dev) or ``test``.
      num_sentences: the first N sentences that fit the context (None: all).
      lowercase: lowercase EWT words before the run's vocabulary encodes them.
      checkpoints: ``all``, ``last`` or epochs ``0,5`` (the onset needs several).
      batch_sentences: sentences per traced batch (padded, one compiled shape).
      min_effect: UAS points the best head must gain over its untrained value (and
        beat the previous-token baseline by) for a finding; also the onset's threshold.
    """

    split: str = "valid"
    num_sentences: int | None = 500
    lowercase: bool = True
    checkpoints: str = "all"
    batch_sentences: int = 32
    min_effect: float = 0.05

    def __post_init__(self):
        from jaxdyn.studies._common import check_checkpoints

        if self.split not in ("valid", "test"):
            raise ValueError(f"attention.split must be 'valid' or 'test', got {self.split!r}")
        if self.num_sentences is not None and self.num_sentences < 1:
            raise ValueError(
                f"attention.num_sentences must be >= 1 or none, got {self.num_sentences}"
            )
        if self.batch_sentences < 1:
            raise ValueError(f"attention.batch_sentences must be >= 1, got {self.batch_sentences}")
        check_checkpoints(self.checkpoints, "attention.checkpoints")
        v = self.min_effect
        if not (isinstance(v, (int, float)) and 0 <= v < 1):
            raise ValueError(f"attention.min_effect must be in [0, 1), got {v!r}")
