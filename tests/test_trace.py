"""CaptureSpec and the trace adapters (jaxdyn.trace)."""

from jaxdyn.trace import CaptureSpec


def test_capture_spec_single_string_is_one_name():
    s = CaptureSpec(modules="lstm", reductions="te")
    assert s.modules == ("lstm",) and s.reductions == ("te",)
    assert s.wants("lstm_0") and not s.wants("logits") and not s.wants("embedding")
    assert s == CaptureSpec(modules=("lstm",), reductions=("te",))
    assert hash(s) == hash(CaptureSpec(modules=("lstm",), reductions=("te",)))
