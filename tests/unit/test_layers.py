"""The checks that keep the package in shape: ruff (lint and format) and the layer contract.

The layer order lives in pyproject.toml ([tool.importlinter]); `lint-imports` reads every
import, including the ones inside functions. The versions are pinned in requirements.txt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(tool: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None):
    exe = BIN / tool
    if not exe.exists():
        pytest.fail(
            f"{tool} is not installed in {BIN}: run `make setup` (requirements.txt pins it)"
        )
    return subprocess.run(
        [str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "tool, args",
    [
        ("ruff", ("check", ".")),
        ("ruff", ("format", "--check", ".")),
        ("lint-imports", ("--no-cache",)),
    ],
    ids=["ruff check", "ruff format", "layer contract"],
)
def test_the_tree_is_clean(tool, args):
    done = run(tool, *args)
    assert done.returncode == 0, f"`{tool} {' '.join(args)}` failed:\n{done.stdout}\n{done.stderr}"


def test_only_the_top_layer_imports_the_package_root():
    """`import mpsoa_lab` runs the root's imports of every layer: below the top it is an upward
    import that the layers contract cannot see (the root belongs to no layer)."""
    import grimp

    graph = grimp.build_graph("mpsoa_lab", cache_dir=None)
    importers = graph.find_modules_that_directly_import("mpsoa_lab")
    below_the_top = sorted(
        m for m in importers if not m.startswith(("mpsoa_lab.experiments", "mpsoa_lab.bench"))
    )
    assert below_the_top == [], f"these import the package root: {below_the_top}"


def test_an_upward_import_breaks_the_contract(tmp_path):
    """The contract can fail: a plumbing module that imports the running lab is reported."""
    shutil.copytree(
        ROOT / "mpsoa_lab", tmp_path / "mpsoa_lab", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "mpsoa_lab" / "plumbing" / "upward.py").write_text(
        "def lab():\n    from ..running.lab import up\n\n    return up\n"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = run("lint-imports", "--no-cache", cwd=tmp_path, env=env)
    assert done.returncode != 0, done.stdout
    assert "mpsoa_lab.plumbing.upward -> mpsoa_lab.running.lab" in done.stdout, done.stdout


def test_the_readme_table_matches_the_tree():
    """Every module of every layer is in the README's table, and the table names no other."""
    import re

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| Layer | Module | Job |") :].split("\n\n")[0]
    rows = re.findall(r"^\| `(\w+)` \| ([^|]+) \|", table, re.M)
    in_readme = {
        (layer, module)
        for layer, cell in rows
        for module in (re.findall(r"`(\w+)`", cell) or [None])
    }
    package = ROOT / "mpsoa_lab"
    in_tree = set()
    for layer in sorted(p for p in package.iterdir() if (p / "__init__.py").exists()):
        if layer.name == "bench":
            in_tree.add(("bench", None))
            continue
        for entry in layer.iterdir():
            if entry.name.startswith("_"):
                continue
            if entry.suffix == ".py" or (entry / "__init__.py").exists():
                in_tree.add((layer.name, entry.stem))
    assert in_readme == in_tree, (
        f"only in the README: {sorted(in_readme - in_tree, key=str)}; "
        f"only in the tree: {sorted(in_tree - in_readme, key=str)}"
    )


LAYERS = ["plumbing", "observe", "design", "running", "legacy", "experiments"]


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_exports_its_modules_public_names(layer):
    """`from mpsoa_lab.<layer> import X` gives the module's own X, and shadows no module."""
    import importlib

    package = importlib.import_module(f"mpsoa_lab.{layer}")
    modules = {p.stem for p in (ROOT / "mpsoa_lab" / layer).iterdir() if not p.name.startswith("_")}
    for name, module_name in package._EXPORTS.items():
        module = importlib.import_module(f"mpsoa_lab.{layer}.{module_name}")
        assert name in module.__all__, f"{name} is not in mpsoa_lab.{layer}.{module_name}.__all__"
        assert getattr(package, name) is getattr(module, name)
        assert name not in modules, f"mpsoa_lab.{layer}.{name} is a module and an exported name"
