"""CaptureSpec and the trace adapters (jaxdyn.trace)."""

from jaxdyn.trace import CaptureSpec


def test_capture_spec_single_string_is_one_name():
    s = CaptureSpec(modules="lstm", reductions="te")
    assert s.modules == ("lstm",) and s.reductions == ("te",)
    assert s.wants("lstm_0") and not s.wants("logits") and not s.wants("embedding")
    assert s == CaptureSpec(modules=("lstm",), reductions=("te",))
    assert hash(s) == hash(CaptureSpec(modules=("lstm",), reductions=("te",)))


def test_module_names_match_exactly_or_by_segment():
    s = CaptureSpec(modules=("lstm_1",))
    assert s.wants("lstm_1") and s.wants("lstm_1.f")
    assert not s.wants("lstm_10") and not s.wants("lstm_10.f") and not s.wants("lstm_0")
    p = CaptureSpec(modules=("lstm",))
    assert p.wants("lstm_0") and p.wants("lstm_10") and p.wants("lstm_1.f")
    assert not p.wants("lstmx") and not p.wants("logits")
    assert CaptureSpec(modules=("head",)).wants("head/pre")
    assert not CaptureSpec(modules=("head",)).wants("header")
    assert CaptureSpec(modules=("lstm_0.f",)).wants("lstm_0.f")
    assert not CaptureSpec(modules=("lstm_0.f",)).wants("lstm_0")
