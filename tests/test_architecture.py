"""Every module has a home whose folder says what it is for, and the layers import only downward.

These read the source (imports, names), not behaviour: the behaviour of the moved code is held by the
rest of the suite and the golden runs.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "edgebench"

# shared by several parts, so they have no better home than the top
TOP_LEVEL = {"__init__", "__main__", "errors", "paths", "file_hashes"}

# what each layer may import of edgebench (besides itself and the top-level modules): transport places
# files and runs the runner, whatever a model is; compare and report read stored runs, they run nothing
MAY_IMPORT = {
    "runner": set(),
    "toolchain": set(),
    "models": set(),
    "transport": {"runner", "toolchain"},
    "results": {"runner"},
    "compare": {"config", "results", "runner"},
    "report": {"compare", "results", "runner"},
    # the database loads run directories (results) and feeds a run as it goes (run's observer)
    "db": {"compare", "config", "results", "run", "runner"},
}


def edgebench_imports(path: Path) -> set[str]:
    """The top-level part of edgebench (package or module) each import in `path` reaches, lazy ones too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [f"{node.module}.{alias.name}" for alias in node.names] if node.module == "edgebench" \
                else [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found |= {module.split(".")[1] for module in modules if module.startswith("edgebench.")}
    return found


def test_the_top_level_holds_only_what_parts_share():
    loose = {p.stem for p in PACKAGE.glob("*.py")}
    assert loose == TOP_LEVEL


def test_no_top_level_name_is_a_standard_library_module():
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    assert not names & set(sys.stdlib_module_names)


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_a_layer_imports_only_the_layers_below_it(layer):
    allowed = MAY_IMPORT[layer] | TOP_LEVEL | {layer, "__version__"}
    wrong = {f"{path.relative_to(REPO)} imports edgebench.{part}"
             for path in (PACKAGE / layer).rglob("*.py")
             for part in edgebench_imports(path) - allowed}
    assert not wrong


def test_ab_drives_a_device_through_the_workers_public_steps():
    """ab places a model and measures a cell; failing, retrying and marking a device down stay the worker's."""
    tree = ast.parse((PACKAGE / "run" / "ab.py").read_text())
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "worker"}
    assert used == {"place", "measure", "disconnect"}


def test_one_median_for_the_rows_and_the_gate():
    defined = {f"{path.relative_to(REPO)}:{node.name}"
               for path in PACKAGE.rglob("*.py")
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.FunctionDef) and ("median" in node.name or "quantile" in node.name)}
    # the result model's CellResult.median is a method over its samples that calls order_stats' median
    assert defined == {"edgebench/results/order_stats.py:median", "edgebench/results/order_stats.py:quantile",
                       "edgebench/results/model.py:median"}
    assert "return median(self.values(series))" in (PACKAGE / "results" / "model.py").read_text()


def test_probe_names_one_thing():
    """The fact script, the device probe and the runner's capabilities mode each have their own name."""
    probes = sorted(str(p.relative_to(REPO)) for p in PACKAGE.rglob("*probe*.py"))
    assert probes == ["edgebench/facts/device_probe.py"]
    runner_main = (PACKAGE / "runner" / "main.py").read_text()
    assert 'mode == "capabilities"' in runner_main and '"probe"' not in runner_main


def architecture_section() -> str:
    text = (REPO / "README.md").read_text()
    found = re.search(r"^## Architecture\n(.*?)^## ", text, re.S | re.M)
    assert found, "README.md has an Architecture section"
    return found.group(1)


def test_the_readme_architecture_names_every_folder_and_only_real_paths():
    section = architecture_section()
    folders = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.iterdir()
               if p.is_dir() and (p / "__init__.py").exists()}
    assert {f for f in folders if f"{f}/" not in section} == set()
    named = set(re.findall(r"(?<![\w/<])([a-z_]+(?:/[a-z_]+)*(?:/|\.py))", section))
    # a bare file name in a line that already named its folder (remote_store.py beside transport/)
    missing = {path for path in named
               if not (PACKAGE / path).exists() and not (REPO / path).exists()
               and not list(PACKAGE.rglob(path.rstrip("/")))}
    assert missing == set()
