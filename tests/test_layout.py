"""Import direction: ``jaxdyn.analysis`` holds model-agnostic kernels (jax/numpy only).

An AST check of every module under ``jaxdyn/analysis/``: no import, at any level
(module, function, ``if TYPE_CHECKING``), of models, training, studies,
decompositions, traces, Flax or Optax. The one exception is the module-level
``__getattr__`` of ``jaxdyn/analysis/__init__.py``, which serves deprecated
aliases of names that moved to :mod:`jaxdyn.decompose`.
"""

from __future__ import annotations

import ast
import importlib
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ANALYSIS = ROOT / "jaxdyn" / "analysis"
FORBIDDEN = (
    "jaxdyn.models",
    "jaxdyn.train",
    "jaxdyn.studies",
    "jaxdyn.decompose",
    "jaxdyn.trace",
    "flax",
    "optax",
)
ALIAS_FUNCTION = "__getattr__"  # in jaxdyn/analysis/__init__.py only


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imported_names(tree: ast.AST, module: str, is_package: bool, skip=()):
    """``(lineno, dotted name)`` of every import in ``tree`` outside functions ``skip``
    defined at module level; ``from a import b`` yields ``a`` and ``a.b``."""
    skipped = {
        id(n)
        for n in getattr(tree, "body", [])
        if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name in skip
    }
    out = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, module, is_package)
            out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
        elif isinstance(node, ast.Call):  # importlib.import_module("...") / __import__("...")
            fn = node.func
            name = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
            if name in ("import_module", "__import__") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    out.append((node.lineno, arg.value))
        stack.extend(ast.iter_child_nodes(node))
    return out


def _forbidden(name: str) -> bool:
    return any(name == f or name.startswith(f + ".") for f in FORBIDDEN)


def _violations(path: Path) -> list[str]:
    rel = path.relative_to(ROOT)
    is_package = path.name == "__init__.py"
    parts = rel.with_suffix("").parts
    module = ".".join(parts[:-1] if is_package else parts)
    skip = (ALIAS_FUNCTION,) if path == ANALYSIS / "__init__.py" else ()
    tree = ast.parse(path.read_text(), str(rel))
    return [
        f"{rel}:{line}: imports {name}"
        for line, name in imported_names(tree, module, is_package, skip)
        if _forbidden(name)
    ]


def test_analysis_imports_only_model_agnostic_code():
    files = sorted(ANALYSIS.rglob("*.py"))
    assert len(files) > 5
    bad = [v for f in files for v in _violations(f)]
    assert not bad, "jaxdyn.analysis must not import models/train/studies/...:\n" + "\n".join(bad)


def test_checker_finds_nested_and_relative_imports():
    src = (
        "import flax.linen as nn\n"
        "from . import interactions\n"
        "from ..models import lstm\n"
        "def f():\n    from jaxdyn.train import step\n"
        "def __getattr__(name):\n    from jaxdyn import decompose\n"
        "if True:\n    import importlib; importlib.import_module('optax')\n"
    )
    tree = ast.parse(src)
    names = [n for _, n in imported_names(tree, "jaxdyn.analysis", True, ("__getattr__",))]
    assert sorted(n for n in names if _forbidden(n)) == [
        "flax.linen",
        "jaxdyn.models",
        "jaxdyn.models.lstm",
        "jaxdyn.train",
        "jaxdyn.train.step",
        "optax",
    ]
    assert "jaxdyn.analysis.interactions" in names
    assert not any(n.startswith("jaxdyn.decompose") for n in names)  # inside the alias hook


@pytest.mark.parametrize(
    "name",
    [
        "CDResult",
        "all_pairs",
        "all_pairs_interdependence",
        "cd_batch",
        "contextual_decomposition",
        "interdependence",
        "interdependence_batch",
        "span_beta",
    ],
)
def test_deprecated_alias_works_and_warns(name):
    analysis = importlib.import_module("jaxdyn.analysis")
    decompose = importlib.import_module("jaxdyn.decompose")
    with pytest.warns(DeprecationWarning, match=rf"jaxdyn\.decompose\.{name}\b"):
        obj = getattr(analysis, name)
    assert obj is getattr(decompose, name)


def test_deprecated_alias_from_import_and_unknown_name():
    with pytest.warns(DeprecationWarning, match="jaxdyn.decompose"):
        from jaxdyn.analysis import interdependence_batch
    from jaxdyn.decompose.lstm.interdependence import interdependence_batch as new

    assert interdependence_batch is new
    analysis = importlib.import_module("jaxdyn.analysis")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError, match="no_such_kernel"):
            analysis.no_such_kernel  # noqa: B018
        assert callable(analysis.di_ratio)  # a real kernel: no warning
