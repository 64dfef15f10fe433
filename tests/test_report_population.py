"""A small population run (P = 2) through `run_study`: verdicts across seeds in the report,
the summary consistent with the sections, single-seed wording, stale sections."""

import csv
import dataclasses
import gzip
import json
import re

import pytest

from jaxdyn.config import CaptureConfig, DataConfig, ModelConfig, RunConfig
from jaxdyn.studies.run import run_study
from jaxdyn.train import lm_task

SENTS = [f"w{i % 13} w{(i * 7) % 11} w{i % 5} the end".split() for i in range(200)]
CFG = RunConfig(
    model=ModelConfig(emb_dim=8, hidden=8, num_layers=2, dropout=0.0),
    data=DataConfig(batch_size=4, eval_batch_size=2, bptt=7),
    capture=CaptureConfig(enabled=False),
    epochs=2,
    seeds=2,
)


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    work = tmp_path_factory.mktemp("pop_report")
    data = lm_task({"train": SENTS, "valid": SENTS[:30], "test": SENTS[:10]}, CFG.data)
    report = run_study(CFG, work, stages=["train", "sparsity"], progress=False, data=data)
    return work, data, report.read_text()


def _table_rows(text, heading):
    body = text[text.index(heading) :]
    body = body[: body.index("\n## ", 1)] if "\n## " in body[1:] else body
    return [ln for ln in body.splitlines() if ln.startswith("| ") and "---" not in ln]


def test_sparsity_verdicts_are_decided_across_seeds(population):
    work, _, text = population
    f = json.loads((work / "sparsity" / "findings.json").read_text())
    assert f["seeds"] == [1111, 1112] and f["base_epoch"] == 0
    v = f["f1"]["per_layer"]["lstm_0"]
    assert v["n"] == 2 and v["seeds_used"] == [1111, 1112] and v["lo"] is not None
    assert len(v["effects"]) == 2 and "t-interval across 2 seeds" in v["rule"]
    with gzip.open(work / "sparsity" / "per_type.csv.gz", "rt") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["member"], r["seed"]) for r in rows} == {("0", "1111"), ("1", "1112")}
    section = text[text.index("## Sparsity") :]
    assert "2 seeds (1111, 1112), each analysed as its own model" in section
    assert "reproduced if rho(trained) - rho(untrained) < -0.05" in section  # rule stated
    assert "single-seed" not in section
    assert "analyses every member" in text  # the population notice


def test_summary_is_first_and_consistent_with_the_sections(population):
    _, _, text = population
    assert text.index("## Summary") < text.index("## Training") < text.index("## Appendix")
    assert text.index("## Sparsity") < text.index("## Appendix")
    assert '"seeds": 2' in text[text.index("## Appendix") :]
    assert "Run's language model: 2 seeds, 2 epochs" in text
    assert "too small to count as evidence" in text
    summary = [r for r in _table_rows(text, "## Summary") if r.startswith("| sparsity")]
    section = _table_rows(text, "## Sparsity")
    assert len(summary) == 3  # finding 3 is skipped without POS classes
    for row in summary:
        cells = [c.strip() for c in row.strip("|").split(" | ")]
        number = cells[1].split(".")[0]  # "1", "2", "4"
        match = [r for r in section if r.startswith(f"| {number}. ")]
        assert len(match) == 1 and f"| {cells[2]} |" in match[0], (row, match)
    assert not re.search(r"\bnan\b|\bNone\b", text.replace("nats", ""))


def test_results_table_lists_every_part_with_its_interval(population, capsys):
    from jaxdyn.report.results import HEADER, main, verdict_rows

    work, _, _ = population
    rows = verdict_rows(work)
    f1 = [r for r in rows if "1. frequent input words" in r]
    assert [r.split(" | ")[2] for r in f1] == ["embedding", "lstm_0", "lstm_1"]
    assert all(r.rstrip(" |").endswith("| 2") and re.search(r"\[[-+][\d.e+-]+, ", r) for r in f1)
    assert len([r for r in rows if r.startswith("| sparsity | 2")]) == 6  # both halves
    assert main([str(work)]) == 0 and capsys.readouterr().out.startswith(HEADER)


@pytest.mark.slow  # trains a second (single-seed) run; single-seed wording of the other
# studies is in the default suite (test_study_bottom_up, test_study_interactions)
def test_single_seed_wording(population, tmp_path):
    _, data, _ = population
    one = dataclasses.replace(CFG, seeds=1)
    text = run_study(one, tmp_path, stages=["train", "sparsity"], progress=False, data=data)
    text = text.read_text()
    section = text[text.index("## Sparsity") :]
    assert "one seed (1111): no interval across seeds is available" in section
    assert "(single-seed)" in section and "(single-seed)" in _table_rows(text, "## Summary")[1]
    assert "1 seed: no interval, the seed decides" in section
    assert "one seed (no interval across seeds)" in text  # the evidence warning


def test_a_later_invocation_marks_the_sections_it_did_not_rerun(population):
    work, data, _ = population  # runs last in this module: it changes the report
    text = run_study(CFG, work, stages=["train"], progress=False, data=data).read_text()
    assert re.search(
        r"> \*\*From an earlier invocation\*\*: stage `sparsity`, written \d{4}-", text
    )
    stages = text[text.index("## Stages") : text.index("## Training")]
    assert re.search(r"\| sparsity \| [^|]+ \| no \(earlier invocation\) \|", stages)
    assert re.search(r"\| train \| [^|]+ \| yes \|", stages)
    summary = [r for r in _table_rows(text, "## Summary") if r.startswith("| sparsity")]
    assert summary and all("(stale: " in r for r in summary)
