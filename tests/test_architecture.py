"""Imports only point down: the layers of ARCHITECTURE.md (../shared/), held as data.

Every module of the package is parsed with ``ast`` and every ``import`` in it, module-level or
inside a function, is checked against the layer order below. A module may import from its own
layer or any layer below; an import from a higher layer fails, as does any import of
``nerfvae.cli`` outside ``nerfvae/cli`` (the command line holds no logic: nothing imports it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nerfvae"

# package or module -> layer, lowest first; the most specific (longest) name applies.
LAYERS: dict[str, int] = {
    # the package root (version only), error types, precision, the one PSNR formula and the
    # bootstrap statistics over scenes: pure helpers (torch / numpy only) every layer may use;
    # ARCHITECTURE.md draws no layer for them
    "nerfvae": 0,
    "nerfvae.errors": 0,
    "nerfvae.precision": 0,
    "nerfvae.image_metrics": 0,
    "nerfvae.statistics": 0,
    "nerfvae.geometry": 1,
    "nerfvae.rendering": 2,
    "nerfvae.data": 3,
    "nerfvae.models": 4,
    # "this scene from these views", metrics, and the image helpers of figures and the training
    # validation sheet: what training and evaluation both use
    "nerfvae.inference": 5,
    "nerfvae.metrics": 5,
    "nerfvae.visualise": 5,
    "nerfvae.training": 6,
    "nerfvae.evaluation": 7,
    "nerfvae.export": 8,
    "nerfvae.viewer": 8,
    # the experiments' reports (markdown, figures, claims' intervals and verdicts, provenance,
    # the results summary): drawn from saved results, below the experiments that compute them
    "nerfvae.experiment_reports": 9,
    "nerfvae.experiments": 10,
    "nerfvae.demo": 11,
    "nerfvae.cli": 12,
}

# models know no files, no optimiser, no CLI: only geometry, rendering and the pure helpers
MODELS_MAY_IMPORT = (
    "nerfvae.models",
    "nerfvae.geometry",
    "nerfvae.rendering",
    "nerfvae.errors",
    "nerfvae.precision",
    "nerfvae.image_metrics",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(name: str) -> tuple[str, int] | None:
    """``(the LAYERS entry, its layer)`` that ``name`` (a module or a name in one) falls under."""
    parts = name.split(".")
    for length in range(len(parts), 1, -1):
        prefix = ".".join(parts[:length])
        if prefix in LAYERS:
            return prefix, LAYERS[prefix]
    return ("nerfvae", LAYERS["nerfvae"]) if name == "nerfvae" else None  # the root, not all


def is_module(name: str) -> bool:
    """Whether dotted ``name`` is a module or package of ours (not a function or class)."""
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, dotted module name)`` of every absolute import of the package in ``tree``; for
    ``from nerfvae import visualise`` both ``nerfvae`` and ``nerfvae.visualise``."""
    found = []
    for node in ast.walk(tree):  # also imports inside functions
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            submodules = (f"{node.module}.{alias.name}" for alias in node.names)
            found += [(node.lineno, name) for name in submodules if is_module(name)]
    return [(line, name) for line, name in found if name.split(".")[0] == "nerfvae"]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_walk_sees_the_package() -> None:
    names = {module_name(path) for path in MODULES}
    assert {"nerfvae.cli.main", "nerfvae.models.nerfvae", "nerfvae.inference"} <= names
    assert sum(len(imported_names(ast.parse(path.read_text()))) for path in MODULES) > 300


def violations(name: str, tree: ast.AST) -> list[str]:
    """What is wrong with the imports of module ``name`` (parsed into ``tree``)."""
    own = layer_of(name)
    if own is None:
        return [f"{name} is in no layer: add it to LAYERS (following ARCHITECTURE.md)"]
    problems = []
    for line, imported in imported_names(tree):
        target = layer_of(imported)
        if target is None:
            problems.append(f"line {line}: {imported} is in no layer")
        elif target[1] > own[1]:
            problems.append(f"line {line}: {imported} (layer {target[1]}) is above {own}")
        elif target[0] == "nerfvae.cli" and own[0] != "nerfvae.cli":
            problems.append(f"line {line}: {imported}: nothing outside nerfvae/cli imports it")
        elif own[0] == "nerfvae.models" and not imported.startswith(MODELS_MAY_IMPORT):
            problems.append(f"line {line}: models may not import {imported}")
    return problems


@pytest.mark.parametrize("path", MODULES, ids=module_name)
def test_imports_point_down(path: Path) -> None:
    problems = violations(module_name(path), ast.parse(path.read_text(), str(path)))
    assert not problems, f"{module_name(path)}:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("name", "source", "message"),
    [
        # an upward import inside a function is still an upward import
        (
            "nerfvae.training.validation",
            "def f():\n    from nerfvae.evaluation.evaluate import evaluate\n",
            "is above",
        ),
        ("nerfvae.experiments.views", "from nerfvae.cli.baseline import x\n", "is above"),
        ("nerfvae.demo", "import nerfvae.cli.evaluate\n", "is above"),
        ("nerfvae.export.mesh", "from nerfvae.cli import common\n", "is above"),
        ("nerfvae.models.base", "from nerfvae.data.loader import x\n", "models may not import"),
        ("nerfvae.newpackage.thing", "import torch\n", "is in no layer"),
    ],
)
def test_the_check_catches(name: str, source: str, message: str) -> None:
    problems = violations(name, ast.parse(source))
    assert problems and message in problems[0]
