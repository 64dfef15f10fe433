"""Configuration of the sparsity study (``sparsity.*`` keys)."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class SparsityConfig:
    """The sparsity study on the run's own checkpoints.

    Attributes:
      split: the held-out stream traced: ``valid`` or ``test`` of the run's corpus.
      max_chunks: held-out BPTT chunks traced per checkpoint (None: the whole
        validation stream).
      min_count: word types seen fewer times are left out of the correlations.
      checkpoints: which checkpoints to trace: ``all``, ``last`` or epochs ``0,5``
        (finding 4, emergence over training, needs more than one).
      rho_margin: findings 1-2: the Spearman rho (TE vs log frequency) must differ from
        the untrained checkpoint's by more than this, across seeds.
      te_margin: finding 3: the function-minus-content TE difference (TE units) must
        exceed the untrained checkpoint's by more than this.
      drop_margin: finding 4: the mean activation TE must fall by more than this
        fraction of its epoch-0 value.
    """

    split: str = "valid"
    max_chunks: int | None = None
    min_count: int = 3
    checkpoints: str = "all"
    rho_margin: float = 0.05
    te_margin: float = 0.05
    drop_margin: float = 0.02

    def __post_init__(self):
        from jaxdyn.studies._common import check_checkpoints

        if self.split not in ("valid", "test"):
            raise ValueError(f"sparsity.split must be 'valid' or 'test', got {self.split!r}")
        if self.max_chunks is not None and self.max_chunks < 1:
            raise ValueError(f"sparsity.max_chunks must be >= 1 or none, got {self.max_chunks}")
        if self.min_count < 1:
            raise ValueError(f"sparsity.min_count must be >= 1, got {self.min_count}")
        check_checkpoints(self.checkpoints, "sparsity.checkpoints")
        for k in ("rho_margin", "te_margin", "drop_margin"):
            v = getattr(self, k)
            if not (isinstance(v, (int, float)) and v >= 0 and v == v):
                raise ValueError(f"sparsity.{k} must be a number >= 0, got {v!r}")
