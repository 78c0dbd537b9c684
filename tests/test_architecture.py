"""Every module has a home whose folder says what it is for, and the layers import only downward.

These read the source (imports, names), not behaviour: the behaviour of the moved code is held by the
rest of the suite and the golden runs.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "edgebench"

# shared by several parts, so they have no better home than the top (outputs.py: every writer's
# temporary-name-and-rename, and the checks of a path from the command line)
TOP_LEVEL = {"__init__", "__main__", "errors", "paths", "file_hashes", "outputs"}

# what each package may import of edgebench (besides itself and the top-level modules), bottom up: the
# runner, the builds, model files and the examples need nothing; transport places files and runs the
# runner, whatever a model is; compare and report read stored runs, they run nothing; config reads
# what transports, engines and telemetry sources declare; the controller's loop (sweep/) drives devices
# and builds the engine at a commit for them (toolchain);
# the database loads run directories (results) and feeds a run as it goes (sweep's observer); the
# command line sits on top of everything
MAY_IMPORT = {
    "runner": set(),
    # a build here and one on the device (runner/engine_build.py) share what they find in a build
    "toolchain": {"runner"},
    "models": set(),
    "examples": set(),
    "transport": {"runner", "toolchain"},
    "results": {"runner"},
    "compare": {"results", "runner"},
    "report": {"compare", "results", "runner"},
    "quality": {"models", "runner"},
    "config": {"compare", "models", "runner", "transport"},
    "facts": {"config", "models", "results", "runner", "transport"},
    "sweep": {"compare", "config", "facts", "models", "quality", "results", "runner", "toolchain", "transport"},
    "plan": {"config", "facts", "models", "results", "sweep", "runner"},
    "db": {"compare", "config", "results", "sweep", "runner"},
    "cli": {"compare", "config", "db", "examples", "facts", "models", "plan", "quality", "report", "results", "sweep",
            "runner", "toolchain", "transport"},
}
PACKAGES = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}


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


def test_the_top_level_imports_no_package():
    """They sit below every package; only `python -m edgebench` starts the command line."""
    wrong = {f"{path.name} imports edgebench.{part}" for path in PACKAGE.glob("*.py") if path.name != "__main__.py"
             for part in edgebench_imports(path) - TOP_LEVEL - {"__version__"}}
    assert not wrong


# a finished build moved out of its work folder, where another build of the same key may win the name
OWN_RENAME = {"edgebench/toolchain/device_build.py"}


def test_one_temporary_name_and_rename_for_the_controller():
    """Files are put in place whole through outputs.replacing; the runner, shipped alone, has its own.
    A rename into the path `replacing` gives is that same helper at work."""
    renames = set()
    for path in PACKAGE.rglob("*.py"):
        relative = str(path.relative_to(REPO))
        if relative.startswith("edgebench/runner/") or relative == "edgebench/outputs.py" or relative in OWN_RENAME:
            continue
        tree = ast.parse(path.read_text())
        given = {item.optional_vars.id for node in ast.walk(tree) if isinstance(node, ast.With)
                 for item in node.items if isinstance(item.optional_vars, ast.Name)
                 and isinstance(item.context_expr, ast.Call) and ast.unparse(item.context_expr.func) == "replacing"}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("replace", "rename")):
                continue
            by_os = isinstance(node.func.value, ast.Name) and node.func.value.id == "os"
            by_path = len(node.args) == 1 and not node.keywords
            into_replacing = by_path and isinstance(node.args[0], ast.Name) and node.args[0].id in given
            if (by_os or by_path) and not into_replacing:
                renames.add(f"{relative}:{node.lineno}")
    assert not renames


def test_no_top_level_name_is_a_standard_library_module():
    names = {p.stem for p in PACKAGE.glob("*.py")} | {p.name for p in PACKAGE.iterdir() if p.is_dir()}
    assert not names & set(sys.stdlib_module_names)


def test_every_package_has_an_allow_list():
    assert set(MAY_IMPORT) == PACKAGES


def test_the_allow_lists_have_no_loop():
    """Each package may import only packages listed before it: the order above is the layering."""
    order = list(MAY_IMPORT)
    upward = {f"{layer} may import {part}" for layer in order for part in MAY_IMPORT[layer]
              if part not in order[:order.index(layer)]}
    assert not upward


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_a_layer_imports_only_the_layers_below_it(layer):
    allowed = MAY_IMPORT[layer] | TOP_LEVEL | {layer, "__version__"}
    wrong = {f"{path.relative_to(REPO)} imports edgebench.{part}"
             for path in (PACKAGE / layer).rglob("*.py")
             for part in edgebench_imports(path) - allowed}
    assert not wrong


def _imported(node: ast.AST) -> list[str]:
    """The top-level names an import statement reaches; none for a relative one (the runner's own)."""
    if isinstance(node, ast.Import):
        return [alias.name.split(".")[0] for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0:
        return [node.module.split(".")[0]]
    return []


def test_the_runner_is_python38_stdlib_only_with_relative_imports():
    """The whole runner package ships alone in the zipapp and runs on a device's Python 3.8 with
    nothing installed: standard-library imports, its own by relative import, and no 3.9+ syntax or
    API. An engine's own library (onnxruntime) is imported inside its functions only, when a job asks
    for that engine."""
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    wrong = set()
    for path in sorted((PACKAGE / "runner").rglob("*.py")):
        name = str(path.relative_to(PACKAGE / "runner"))
        tree = ast.parse(path.read_text(), filename=str(path), feature_version=(3, 8))
        in_functions = {id(inner) for node in ast.walk(tree)
                        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) for inner in ast.walk(node)}
        lazy_ok = name.startswith("engines/") and name.endswith("_engine.py")
        for node in ast.walk(tree):
            outside = {module for module in _imported(node) if module not in stdlib}
            if outside and not (lazy_ok and id(node) in in_functions):
                wrong |= {f"{name} imports {module}" for module in outside}
            # 3.9+ APIs that ast's feature_version cannot catch
            if isinstance(node, ast.Attribute) and node.attr in ("removeprefix", "removesuffix", "is_relative_to"):
                wrong.add(f"{name} uses {node.attr}")
    assert not wrong


def test_a_like_preset_is_described_straight_from_its_shape():
    """`plan --like PRESET` reads the preset's shape, not the synthetic-model writer or quantizer."""
    script = ("import json, sys; from edgebench.models.gguf_info import info_from_preset; "
              "info = info_from_preset('qwen3.5-4b', 'Q4_K_M'); "
              "print(json.dumps([info.n_layer, [m for m in sys.modules if m.startswith('edgebench.models.synth.')]]))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    layers, loaded = json.loads(done.stdout)
    assert layers > 0
    assert not {"writer", "build", "quantize", "engine_log"} & {m.rsplit(".", 1)[1] for m in loaded}


def test_ab_drives_a_device_through_the_workers_public_steps():
    """ab places a model and measures a cell; failing, retrying, marking a device down and letting it go
    stay the worker's."""
    tree = ast.parse((PACKAGE / "sweep" / "ab.py").read_text())
    used = {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "worker"}
    assert used == {"place", "measure", "close"}


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
