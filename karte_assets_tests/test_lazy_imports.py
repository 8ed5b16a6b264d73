"""The code location does not import the learners, plotting or per-service client libraries: they cost
seconds of every load (UI, daemon, `dg check defs`, each run worker) and are imported by the
functions that use them (BENCHMARKS.md, "Many client shops")."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "karte_assets"
# Each of these, with what it pulls in (scikit-learn brings SciPy), adds 0.3-5 s to a load.
HEAVY = (
    "lightgbm",
    "sklearn",
    "scipy",
    "matplotlib",
    "statsforecast",
    "mlforecast",
    "sqlglot",
    "comet_ml",
    "google.cloud.pubsub_v1",
    "google.cloud.aiplatform_v1",
)


def heavy(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in HEAVY)


def module_file(module: str) -> Path | None:
    """The source of a karte_assets module, or None for another package's."""
    parts = module.split(".")
    if parts[0] != "karte_assets":
        return None
    base = PACKAGE.joinpath(*parts[1:])
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def import_time_statements(tree: ast.Module):
    """The import statements that run when the module is imported: module level, inside top-level
    ``if``/``try`` blocks, but not under ``if TYPE_CHECKING:`` nor inside functions."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            if not (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"):
                pending.extend(node.body)
            pending.extend(node.orelse)
        elif isinstance(node, ast.Try):
            pending.extend([*node.body, *node.orelse, *node.finalbody])
            for handler in node.handlers:
                pending.extend(handler.body)


def imported_by(module: str, statement: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(statement, ast.Import):
        return [alias.name for alias in statement.names]
    assert not statement.level, f"{module}: the package uses absolute imports only"
    base = statement.module
    # `from package import name` imports the submodule `package.name` when there is one (always
    # counted for other packages: `from google.cloud import pubsub_v1` is a module).
    names = [f"{base}.{alias.name}" for alias in statement.names]
    return [base, *(name for name in names if module_file(name) or not name.startswith("karte_assets."))]


def import_time_modules(root: str) -> dict[str, str]:
    """Every module imported with ``root`` -> the karte_assets module that imports it."""
    seen: dict[str, str] = {root: ""}
    pending = [root]
    while pending:
        module = pending.pop()
        source = module_file(module)
        if source is None:
            continue
        for statement in import_time_statements(ast.parse(source.read_text(), str(source))):
            for name in imported_by(module, statement):
                # Importing a.b.c runs a/__init__ and a/b/__init__ first.
                parts = name.split(".")
                for end in range(1, len(parts) + 1):
                    prefix = ".".join(parts[:end])
                    if prefix not in seen:
                        seen[prefix] = module
                        pending.append(prefix)
    return seen


def test_no_module_of_the_code_location_imports_a_heavy_library_at_import_time():
    modules = import_time_modules("karte_assets.definitions")
    assert "karte_assets.assets.anomaly" in modules and "karte_assets.training.loyalty" in modules
    offenders = {name: importer for name, importer in modules.items() if heavy(name)}
    assert not offenders, f"imported with the code location (library -> importing module): {offenders}"


LOADED = f"""
import json, sys
import karte_assets.definitions
heavy = {HEAVY!r}
print(json.dumps(sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))))
"""


@pytest.mark.slow
def test_the_loaded_code_location_has_no_heavy_library_in_sys_modules(tmp_path):
    """The real import, in a fresh process: also catches a library pulled in by another package."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED],
        cwd=PACKAGE.parent,
        env={**os.environ, "KARTE_HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
