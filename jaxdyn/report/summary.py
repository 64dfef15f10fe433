"""The report's summary: one row per finding, per-part verdicts, and the run's scale.

Studies hand :func:`jaxdyn.report.write_section` a list of :func:`row` dicts; the
assembled report opens with all of them in one table (:func:`summary_table`).

* Per-part verdicts (one per layer, distance or condition) are combined by
  :func:`combine`: the common label when every part agrees, else
  ``mixed (lstm_0 yes, lstm_1 no)`` naming every part (no majority vote).
* :func:`verdict_text` marks a verdict decided by one seed as ``single-seed``.
* :func:`scale_warnings` says when a run is too small to count as evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

#: Below these a run is flagged as too small to count as evidence (the thesis's runs:
#: Penn Treebank's ~930k training tokens, 40 epochs).
MIN_TOKENS = 200_000
MIN_EPOCHS = 4

_SHORT = {"reproduced": "yes", "contradicted": "no", "inconclusive": "inconclusive"}
_LABEL = {True: "reproduced", False: "contradicted", None: "inconclusive"}


def label(v) -> str:
    """A verdict label from True/False/None, a label string or a ``Verdict``."""
    if hasattr(v, "label"):
        return v.label
    if isinstance(v, str):
        return v
    return _LABEL[v]


def combine(parts: Mapping[str, object]) -> str:
    """One verdict over parts (layers, distances, conditions) without voting.

    Args:
      parts: ``{part name: verdict}`` (True/False/None, a label or a ``Verdict``);
        parts whose verdict is the string ``"skipped"`` are left out.

    Returns:
      The shared label when all parts agree; ``"mixed (a yes, b no, ...)"`` otherwise;
      ``"inconclusive"`` when there are no parts.
    """
    named = {k: label(v) for k, v in parts.items() if label(v) != "skipped"}
    if not named:
        return "inconclusive"
    kinds = set(named.values())
    if len(kinds) == 1:
        return kinds.pop()
    return "mixed (" + ", ".join(f"{k} {_SHORT.get(v, v)}" for k, v in named.items()) + ")"


def over_training(by_epoch: Mapping[int, str], final: str) -> str:
    """The epochs whose verdict differs from the final one, as text for a report:
    ``"contradicted at epochs 1-2; inconclusive at epoch 4"`` ("" when none differs).

    Args:
      by_epoch: ``{epoch: verdict label}`` of a finding judged at every epoch.
      final: the finding's verdict label (at the last epoch).
    """
    from jaxdyn.report.format import ranges

    other: dict[str, list[int]] = {}
    for e, lab in sorted(by_epoch.items()):
        if lab != final:
            other.setdefault(lab, []).append(e)
    return "; ".join(
        f"{lab} at epoch{'s' if len(es) > 1 else ''} {ranges(es)}" for lab, es in other.items()
    )


def verdict_text(word: str, n_seeds: int) -> str:
    """``**word**``, with ``(single-seed)`` when one seed decided it."""
    return f"**{word}**" + (" (single-seed)" if n_seeds == 1 else "")


def row(
    finding: str, verdict: str, number: str, *, seeds: int, scale: str = "", rule: str = ""
) -> dict:
    """One summary row (JSON-able).

    Args:
      finding: short name of the finding.
      verdict: its label (:func:`combine`'s output for per-part findings).
      number: the key number with its interval, formatted for people.
      seeds: how many seeds decided it (1: single-seed).
      scale: the scale of the model(s) behind it (seeds, epochs, tokens).
      rule: the rule that decided it, stated in words.
    """
    return {
        "finding": finding,
        "verdict": verdict,
        "number": number,
        "seeds": int(seeds),
        "scale": scale,
        "rule": rule,
    }


def scale_text(seeds: int, epochs: int, tokens: int | None) -> str:
    """``3 seeds, 6 epochs, 250,000 training tokens``."""
    tok = "all" if tokens is None else f"{int(tokens):,}"
    return f"{seeds} seed{'s' if seeds != 1 else ''}, {epochs} epochs, {tok} training tokens"


def scale_warnings(seeds: int, epochs: int, tokens: int | None) -> list[str]:
    """Why a run of this scale is not evidence (empty when it is large enough)."""
    out = []
    if tokens is not None and tokens < MIN_TOKENS:
        out.append(f"{int(tokens):,} training tokens (< {MIN_TOKENS:,})")
    if epochs < MIN_EPOCHS:
        out.append(f"{epochs} epochs (< {MIN_EPOCHS})")
    if seeds < 2:
        out.append("one seed (no interval across seeds)")
    return out


def _cell(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def summary_table(sections: Sequence[Mapping]) -> str:
    """The summary's Markdown table from section metadata (``write_section``'s JSON).

    Each entry: ``{"stage", "written", "stale", "summary": [row, ...]}``; stale rows
    carry the date they were written.
    """
    lines = [
        "| study | finding | verdict | key number [95% interval] | scale |",
        "|---|---|---|---|---|",
    ]
    n = 0
    for sec in sections:
        for r in sec.get("summary") or ():
            v = verdict_text(r["verdict"], r["seeds"])
            if sec.get("stale"):
                v += f" (stale: {sec['written']})"
            lines.append(
                "| "
                + " | ".join(
                    _cell(x) for x in (sec["stage"], r["finding"], v, r["number"], r["scale"])
                )
                + " |"
            )
            n += 1
    if not n:
        return "No study findings in this report yet."
    return "\n".join(lines)
