"""Static option checks shared by the similarity kernels, ``pairwise`` and streaming."""

from __future__ import annotations

CONVENTIONS = ("paper", "google")


def check_keep(keep, name: str) -> None:
    """``keep`` is None or a variance fraction in (0, 1]; raises ValueError."""
    if keep is not None and not 0.0 < keep <= 1.0:
        raise ValueError(f"{name}: keep must be in (0, 1], got {keep}")


def check_google(epsilon, threshold, name: str) -> None:
    """google/svcca's ``epsilon >= 0`` and ``0 < threshold <= 1``; raises ValueError."""
    if not epsilon >= 0 or not 0.0 < threshold <= 1.0:
        raise ValueError(
            f"{name}: need epsilon >= 0 and 0 < threshold <= 1, got {epsilon}, {threshold}"
        )


def check_convention(convention: str, keep, name: str, epsilon: float = 0.0) -> None:
    """PWCCA ``convention`` in ("paper", "google"); google has no SVD step (keep None),
    and ``epsilon`` is google's option only."""
    if convention not in CONVENTIONS:
        raise ValueError(f"{name}: convention must be 'paper' or 'google', got {convention!r}")
    if convention == "google" and keep is not None:
        raise ValueError(f"{name}: convention='google' has no SVD step; keep must be None")
    if convention == "paper" and epsilon != 0:
        raise ValueError(f"{name}: epsilon is an option of convention='google' only")
