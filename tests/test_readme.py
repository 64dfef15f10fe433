"""The README's Python code blocks run as written, and its custom model traces exactly."""

import re
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    """Every fenced block marked ``python`` (indented fences included), in order."""
    pattern = re.compile(r"^( *)```python\n(.*?)^\1```", re.S | re.M)
    out = []
    for m in pattern.finditer(text):
        indent = len(m.group(1))
        out.append("\n".join(line[indent:] for line in m.group(2).splitlines()))
    return out


def _library_block(n: int = 0) -> str:
    section = README.read_text().split("## Library", 1)[1]
    return python_blocks(section)[n]


def test_readme_python_blocks_run_as_written(tmp_path):
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 2  # the library snippet (custom model, host loop) and the allocator one
    lib = _library_block()
    snippet = lib.split("# the host loop", 1)[0]  # the custom model trained and traced
    code = [line for line in snippet.splitlines() if line.strip()]
    assert len(code) <= 25, f"the custom-model snippet has {len(code)} lines"
    assert "optax.adam" in lib and "language_model" not in lib
    # one fresh process, in a scratch folder, all blocks in order in one namespace
    # (later blocks reuse earlier names, as a reader would in one session)
    script = "\n\n".join(f"# --- block {i}\n{b}" for i, b in enumerate(blocks))
    (tmp_path / "readme.py").write_text(script)
    proc = subprocess.run(
        [sys.executable, "readme.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "plateau schedule" in proc.stderr  # plain Adam: the rule is skipped, and said so
    assert (tmp_path / "runs" / "mlp" / "ckpt").is_dir()


def test_readme_model_act_grads_equal_jax_grad_in_float64():
    """``trace["act_grad"]`` of the README model vs ``jax.grad`` w.r.t. each tapped tensor."""
    from jaxdyn.trace import CaptureSpec
    from jaxdyn.train import make_analysis_step, masked_xent

    ns: dict = {}
    lib = _library_block()
    exec(lib.split("\n\nmodel, tx =", 1)[0], ns)  # the class definition only
    with jax.enable_x64(True):
        model = ns["MLPLM"](vocab=50)
        b, t = 4, 9
        p = model.init(jax.random.key(0), jnp.zeros((b, 1), jnp.int32))["params"]
        p = jax.tree.map(lambda a: a.astype(jnp.float64), p)
        rng = np.random.default_rng(0)
        batch = {
            k: jnp.asarray(rng.integers(0, 50, (b, t)), jnp.int32) for k in ("inputs", "targets")
        }
        spec = CaptureSpec(keep_full=True, reductions=("l2",))
        _, trace, _ = make_analysis_step(model, spec)(p, None, batch)
        mask = jnp.ones((b, t), bool)
        d0, d1 = p["Dense_0"], p["Dense_1"]

        def from_hidden(h):
            return masked_xent(h @ d1["kernel"] + d1["bias"], batch["targets"], mask)[0]

        def from_embed(x):
            return from_hidden(jnp.tanh(x @ d0["kernel"] + d0["bias"]))

        embed = p["Embed_0"]["embedding"][batch["inputs"]]
        hidden = jnp.tanh(embed @ d0["kernel"] + d0["bias"])
        ref = {"embed": jax.grad(from_embed)(embed), "hidden": jax.grad(from_hidden)(hidden)}
        assert set(trace["act_grad"]) == set(ref)
        diff = {k: float(jnp.max(jnp.abs(trace["act_grad"][k] - ref[k]))) for k in ref}
        scale = {k: float(jnp.max(jnp.abs(ref[k]))) for k in ref}
        print("README model, max |act_grad - jax.grad| (float64):", diff, "max |grad|:", scale)
        assert trace["act_grad"]["hidden"].dtype == jnp.float64
        assert max(diff.values()) <= 1e-15, diff
        np.testing.assert_allclose(trace["act"]["hidden"], hidden, rtol=0, atol=1e-15)
