"""The report: summary table, numbers for people, stale sections, appendix."""

import math
import re
import time

import pytest

from jaxdyn.report import assemble, combine, read_sections, row, table, write_section
from jaxdyn.report import format as fmt
from jaxdyn.report.summary import scale_warnings, verdict_text


def test_missing_values_are_formatted_for_people():
    nan = float("nan")
    assert fmt.num(None) == fmt.num(nan) == fmt.num(math.inf) == "n/a"
    assert fmt.num(0.0123456) == "0.0123" and fmt.num(-0.5, signed=True) == "-0.5"
    assert fmt.epoch(None) == "never" and fmt.epoch(3) == "3"
    assert fmt.rho(nan, nan, 4) == "rho n/a (too few points) (n 4)"
    assert fmt.rho(-0.1234, 0.004, 57) == "rho -0.123 (p 0.004, n 57)"
    assert fmt.pvalue(nan) == "n/a (too few points)" and fmt.pvalue(0.0) == "< 1e-300"
    assert fmt.interval(None, 1.0) == "n/a" and fmt.interval(-1.0, 2.5) == "[-1, +2.5]"
    assert fmt.mean_interval(0.5, None, None, single="1 seed") == "+0.5 (1 seed)"
    assert fmt.ranges([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"
    text = table(["epoch", "train ppl", "valid ppl"], [(0, nan, 17.0), (1, None, 3.25)])
    assert "n/a" in text and not re.search(r"\bnan\b|\bNone\b", text)


def test_per_part_verdicts_are_combined_without_voting():
    assert combine({"lstm_0": True, "lstm_1": True}) == "reproduced"
    assert combine({"lstm_0": True, "lstm_1": False}) == "mixed (lstm_0 yes, lstm_1 no)"
    assert (
        combine({"embedding": True, "lstm_0": True, "lstm_1": None})
        == "mixed (embedding yes, lstm_0 yes, lstm_1 inconclusive)"
    )  # two of three layers do not outvote the third
    assert combine({"a": "skipped"}) == combine({}) == "inconclusive"
    assert verdict_text("reproduced", 1) == "**reproduced** (single-seed)"
    assert verdict_text("reproduced", 3) == "**reproduced**"


def test_scale_warnings():
    small = scale_warnings(1, 3, 40_000)
    assert any("40,000 training tokens" in w for w in small) and any("3 epochs" in w for w in small)
    assert any("one seed" in w for w in small)
    assert scale_warnings(3, 40, 930_000) == []


def _summary_rows(text):
    head = text.index("## Summary")
    body = text[head : text.index("## Stages")]
    return [ln for ln in body.splitlines() if ln.startswith("| ") and "---" not in ln][1:]


def test_summary_opens_the_report_and_agrees_with_the_sections(tmp_path):
    scale = {"seeds": 1, "epochs": 3, "tokens": 40_000}
    write_section(tmp_path, 10, "training", "## Training\n\nbody\n", stage="train", scale=scale)
    rows = [
        row("1. finding one", "reproduced", "+0.5 [+0.1, +0.9]", seeds=3, scale="3 seeds"),
        row("2. finding two", "mixed (lstm_0 yes, lstm_1 no)", "rho -0.2", seeds=1),
    ]
    write_section(tmp_path, 20, "study", "## Study\n\n| 1 | x |\n", summary=rows)
    text = assemble(tmp_path, "t", "pre\n", appendix="CONFIG-JSON").read_text()
    assert text.index("## Summary") < text.index("## Training") < text.index("## Appendix")
    assert text.rstrip().endswith("CONFIG-JSON")
    assert "too small to count as evidence" in text and "40,000 training tokens" in text
    got = _summary_rows(text)
    assert len(got) == 2
    assert "| study | 1. finding one | **reproduced** | +0.5 [+0.1, +0.9] | 3 seeds |" == got[0]
    assert "**mixed (lstm_0 yes, lstm_1 no)** (single-seed)" in got[1]


def test_sections_from_earlier_invocations_are_marked(tmp_path):
    write_section(
        tmp_path, 20, "sparsity", "## Sparsity\n", summary=[row("f", "reproduced", "1", seeds=2)]
    )
    time.sleep(0.05)
    since = time.time()
    write_section(tmp_path, 40, "interactions", "## Interactions\n", stage="interactions")
    secs = {s["stage"]: s for s in read_sections(tmp_path, since)}
    assert secs["sparsity"]["stale"] and not secs["interactions"]["stale"]
    text = assemble(tmp_path, "t", since=since).read_text()
    stale = secs["sparsity"]["written"]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", stale)
    note = f"> **From an earlier invocation**: stage `sparsity`, written {stale}"
    assert note in text and text.index(note) < text.index("## Sparsity")
    assert text.count("From an earlier invocation") == 1  # interactions is fresh
    assert f"(stale: {stale})" in _summary_rows(text)[0]
    stages = text[text.index("## Stages") : text.index("## Sparsity")]
    assert "| sparsity |" in stages and "no (earlier invocation)" in stages
    assert re.search(r"\| interactions \| [^|]+ \| yes \|", stages)
    # rerunning the stage refreshes it
    write_section(tmp_path, 20, "sparsity", "## Sparsity\n")
    assert "From an earlier invocation" not in assemble(tmp_path, "t", since=since).read_text()


def test_section_without_metadata_still_assembles(tmp_path):
    d = tmp_path / "report" / "sections"
    d.mkdir(parents=True)
    (d / "30-old.md").write_text("## Old\n")
    text = assemble(tmp_path, "t", since=time.time() + 1).read_text()
    assert "stage `old`" in text and "No study findings" in text


@pytest.mark.parametrize("bad", [float("nan"), None])
def test_cells_never_print_raw_python_values(bad):
    assert table(["a"], [(bad,)]).splitlines()[-1] == "| n/a |"


def test_a_cached_section_is_current_and_says_when_it_was_computed(tmp_path):
    import json

    path = write_section(tmp_path, 20, "sparsity", "## Sparsity\n")
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    since = time.time() + 5  # the stage cache stamps it for this invocation
    meta.update(computed_ts=meta["written_ts"], written_ts=since + 1, cached=True)
    meta_path.write_text(json.dumps(meta))
    text = assemble(tmp_path, "t", since=since).read_text()
    assert "From an earlier invocation" not in text
    assert "> Stage `sparsity` was not recomputed: its inputs are unchanged since" in text
    assert "| sparsity |" in text and "yes (cached: inputs unchanged since" in text


def test_checkpoints_skipped_by_analyses_are_listed_in_the_summary(tmp_path):
    import json

    write_section(tmp_path, 10, "sparsity", "## S\n\nsparsity section\n")
    assert "skipped as unreadable" not in assemble(tmp_path, "Run").read_text()
    (tmp_path / "skipped_checkpoints.json").write_text(json.dumps({"sparsity.checkpoints": []}))
    assert "skipped as unreadable" not in assemble(tmp_path, "Run").read_text()
    sub = tmp_path / "interactions" / "lm"
    sub.mkdir(parents=True)
    entry = {"step": 40, "kind": "epoch", "epoch": 2, "problem": "checksum mismatch in x"}
    (sub / "skipped_checkpoints.json").write_text(json.dumps({"interactions.checkpoints": [entry]}))
    text = assemble(tmp_path, "Run").read_text()
    summary = text.split("## Stages")[0]
    assert "skipped as unreadable" in summary
    assert "`interactions.checkpoints` left out the epoch 2 (step 40) of `interactions/lm`" in text
    assert "checksum mismatch in x" in text
