"""Configuration of the training-maps study (``phases.*`` keys)."""

from __future__ import annotations

import dataclasses

#: Metric families of the tidy table (the ``family`` column).
FAMILIES = ("weights", "grad", "loss", "te", "sim")


@dataclasses.dataclass(frozen=True)
class PhasesConfig:
    """Metric trajectories of the run's checkpoints and a Gaussian HMM over them.

    Attributes:
      split: held-out stream (``valid`` or ``test``) for losses, TE and similarity.
      max_chunks: held-out BPTT chunks traced per checkpoint.
      grad_chunks: training chunks (from the start of the stream, evaluation mode)
        whose loss gradient gives the gradient norms at each checkpoint.
      sim_tokens: held-out tokens (the first ones) whose layer activations are
        compared with the previous checkpoint's (SVCCA, linear CKA).
      svcca_keep: SVCCA's kept fraction of each view's variance (``pairwise`` ``keep``).
      compute_families: metric families computed per checkpoint (comma-separated;
        leaving out ``grad``, ``loss``/``te`` or ``sim`` skips that pass over the data).
      hmm_families: metric families the HMM sees (comma-separated; ``sim`` is
        left out by default: similarity to the *previous* checkpoint depends on the
        schedule's spacing and is undefined at the first checkpoint).
      components: principal components of the standardised metrics the HMM is fit
        to (0: every metric; Hu et al. fit all of theirs, with many more checkpoints).
      min_states, max_states: the range of state counts compared by BIC.
      restarts: EM restarts per state count (different k-means seeds); the best
        log-likelihood is kept.
      em_iters: EM iterations per restart.
      covariance: ``diag`` or ``full`` Gaussian emissions.
      seed: the HMM's random seed.
      top_metrics: metrics listed per transition.
      coincide_quantile: a transition coincides with a sparsity (similarity) change
        when the TE (similarity) change at its checkpoint reaches this quantile of
        the run's changes.
    """

    split: str = "valid"
    max_chunks: int = 4
    grad_chunks: int = 2
    sim_tokens: int = 1000
    svcca_keep: float = 0.99
    compute_families: str = "weights,grad,loss,te,sim"
    hmm_families: str = "weights,grad,loss,te"
    components: int = 4
    min_states: int = 1
    max_states: int = 6
    restarts: int = 3
    em_iters: int = 100
    covariance: str = "diag"
    seed: int = 0
    top_metrics: int = 5
    coincide_quantile: float = 0.75

    def __post_init__(self):
        if self.split not in ("valid", "test"):
            raise ValueError(f"phases.split must be 'valid' or 'test', got {self.split!r}")
        if not 0.0 < self.svcca_keep <= 1.0:
            raise ValueError(f"phases.svcca_keep must be in (0, 1], got {self.svcca_keep}")
        for key in ("max_chunks", "grad_chunks", "sim_tokens", "restarts"):
            if getattr(self, key) < 1:
                raise ValueError(f"phases.{key} must be >= 1, got {getattr(self, key)}")
        if self.em_iters < 1 or self.top_metrics < 1 or self.components < 0:
            raise ValueError("phases.em_iters, top_metrics must be >= 1 and components >= 0")
        if not 1 <= self.min_states <= self.max_states:
            raise ValueError(
                f"phases: need 1 <= min_states <= max_states, got {self.min_states}, "
                f"{self.max_states}"
            )
        if self.covariance not in ("diag", "full"):
            raise ValueError(f"phases.covariance must be diag or full, got {self.covariance!r}")
        for key, fams in (
            ("compute_families", self.computed()),
            ("hmm_families", self.families()),
        ):
            bad = [f for f in fams if f not in FAMILIES]
            if bad or not fams:
                raise ValueError(f"phases.{key}: unknown {bad}; choose from {FAMILIES}")
        if not set(self.families()) <= set(self.computed()):
            raise ValueError(
                f"phases.hmm_families {self.hmm_families!r} must be among "
                f"phases.compute_families {self.compute_families!r}"
            )
        if not 0.0 < self.coincide_quantile < 1.0:
            raise ValueError("phases.coincide_quantile must be in (0, 1)")

    def computed(self) -> tuple[str, ...]:
        """The computed metric families as a tuple."""
        return tuple(f.strip() for f in self.compute_families.split(",") if f.strip())

    def families(self) -> tuple[str, ...]:
        """The HMM's metric families as a tuple."""
        return tuple(f.strip() for f in self.hmm_families.split(",") if f.strip())
