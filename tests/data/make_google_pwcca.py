"""Reference PWCCA values from google/svcca's own code, computed once.

Usage: ``python tests/data/make_google_pwcca.py PATH`` where PATH is a checkout of
https://github.com/google/svcca (a folder holding ``cca_core.py`` and ``pwcca.py``)
or its bare git directory (files read with ``git show HEAD:...``). Nothing of
google's code is stored: it is imported from PATH (a temporary copy for a git dir),
run on the seeded cases of :func:`cases`, and only its outputs are written to
``tests/data/google_pwcca.json``.

For each case the file records ``compute_pwcca(x.T, y.T, epsilon)[0]`` where google's
code runs, ``null`` where it raises (its second branch indexes ``acts1`` with the
second view's mask, google/svcca PR #9), and in ``intent`` the value of the same code
with that one index corrected (the second view's activations), i.e. the evident
intent that ``pwcca(x, y, convention="google")`` follows there. It also records
``get_cca_similarity(x.T, y.T, epsilon)["mean"][0]`` (google's summary).
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("google_pwcca.json")


def _shared(rng, n, d, k, offset):
    """(n, d) tanh activations of mixed latent factors, the first k shared."""
    return lambda latent: np.tanh(
        np.concatenate([latent, rng.normal(size=(n, d - k))], axis=1)
        @ rng.normal(size=(d, d))
        * (0.6 / np.sqrt(d))
        + offset
    )


def cases():
    """Seeded ``(name, x (N, Dx) float32, y (N, Dy) float32, epsilon)`` test cases."""
    out = []
    specs = [
        # name, seed, n, dx, dy, shared, x offset, y offset, epsilon
        ("narrow_first", 0, 2000, 20, 35, 8, 0.3, -0.2, 0.0),
        ("equal_widths", 1, 2500, 30, 30, 12, 0.1, 0.4, 0.0),
        ("wide_first_crash", 2, 3000, 70, 40, 10, 0.2, 0.0, 0.0),
        ("large_means", 3, 1500, 16, 24, 6, 1.5, -1.0, 0.0),
    ]
    for name, seed, n, dx, dy, k, ox, oy, eps in specs:
        rng = np.random.default_rng(seed)
        latent = rng.normal(size=(n, k))
        x = _shared(rng, n, dx, k, ox)(latent)
        y = _shared(rng, n, dy, k, oy)(latent) + 0.2 * rng.normal(size=(n, dy))
        out.append((name, x.astype(np.float32), y.astype(np.float32), eps))
    # epsilon cropping: two near-dead units in x (kept count 22 < 40)
    rng = np.random.default_rng(4)
    latent = rng.normal(size=(2000, 8))
    x = _shared(rng, 2000, 24, 8, 0.2)(latent)
    x[:, [3, 11]] *= 1e-3
    y = _shared(rng, 2000, 40, 8, -0.3)(latent)
    out.append(("epsilon_crop", x.astype(np.float32), y.astype(np.float32), 1e-4))
    return out


def _load(path: Path):
    if (path / "cca_core.py").is_file():
        folder = path
    else:  # a bare git directory
        folder = Path(tempfile.mkdtemp())
        for f in ("cca_core.py", "pwcca.py"):
            src = subprocess.run(
                ["git", f"--git-dir={path}", "show", f"HEAD:{f}"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            (folder / f).write_text(src)
    sys.path.insert(0, str(folder))
    cca_core, pwcca = importlib.import_module("cca_core"), importlib.import_module("pwcca")
    # the evident intent: the same function with its second branch reading acts2
    src = (folder / "pwcca.py").read_text()
    head, sep, branch = src.partition("else:")  # the branch for a wider first view
    fixed = head + sep + branch.replace("(acts1[", "(acts2[", 1)
    if not sep or fixed == src:
        raise RuntimeError("could not locate the second branch of compute_pwcca")
    intent = {"cca_core": cca_core, "np": np}
    exec(compile(fixed, "pwcca_intent", "exec"), intent)
    return cca_core, pwcca.compute_pwcca, intent["compute_pwcca"]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    cca_core, compute_pwcca, compute_intent = _load(Path(sys.argv[1]).resolve())
    rows = {}
    for name, x, y, eps in cases():
        a, b = x.T, y.T
        try:
            google = float(compute_pwcca(a, b, epsilon=eps)[0])
        except IndexError:
            google = None
        summary = cca_core.get_cca_similarity(a, b, epsilon=eps, verbose=False)["mean"][0]
        rows[name] = {
            "google": google,
            "intent": float(compute_intent(a, b, epsilon=eps)[0]),
            "reversed": float(compute_intent(b, a, epsilon=eps)[0]),
            "summary": float(summary),
            "epsilon": eps,
            "shapes": [list(x.shape), list(y.shape)],
        }
        print(name, rows[name])
    OUT.write_text(json.dumps(rows, indent=1) + "\n")
    print("wrote", OUT)


if __name__ == "__main__":
    main()
