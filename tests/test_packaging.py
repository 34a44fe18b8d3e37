"""pyproject.toml, requirements*.txt and the Makefile describe one installation, and the code imports nothing else.

The declared dependencies are what `pip install mlret` checks; the pins are what
`make install` reproduces. These tests keep the two in step with the imports in
src/, tests/ and benchmarks/, so a new import cannot run here (where it happens
to be installed) and fail on a fresh machine, and a stale pin cannot linger.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from mlret.cli import main

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def declared(requirements: list[str]) -> dict[str, Requirement]:
    parsed = [Requirement(line) for line in requirements]
    return {canonicalize_name(req.name): req for req in parsed}


RUNTIME = declared(PYPROJECT["dependencies"])
EXTRAS = {extra: declared(reqs) for extra, reqs in PYPROJECT["optional-dependencies"].items()}


def pins(path: Path) -> dict[str, str]:
    """``name==version`` lines of a requirements file (``-r`` includes are not followed)."""
    found: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, sep, version = line.partition("==")
        assert sep, f"{path.name}: {line!r} is not an exact pin (name==version)"
        found[canonicalize_name(name.strip())] = version.strip()
    return found


RUNTIME_PINS = pins(ROOT / "requirements.txt")
DEV_PINS = pins(ROOT / "requirements-dev.txt")


# The project's own modules: the package, and the scripts that tests, benchmarks and stages
# import by putting their folder on sys.path (pytest does so for each test folder).
SCRIPT_TREES = [ROOT / name for name in ("stages", "tests", "benchmarks")]
LOCAL = {"mlret"} | {path.stem for tree in SCRIPT_TREES for path in tree.rglob("*.py")}


def third_party_imports(root: Path) -> dict[str, set[Path]]:
    """Top-level modules imported anywhere under ``root`` (lazy imports in functions too), less stdlib and local
    ones."""
    found: dict[str, set[Path]] = {}
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top not in sys.stdlib_module_names and top not in LOCAL:
                    found.setdefault(top, set()).add(path.relative_to(ROOT))
    return found


def undeclared(root: Path, allowed: set[str]) -> list[str]:
    providers = metadata.packages_distributions()
    problems = []
    for module, paths in sorted(third_party_imports(root).items()):
        where = ", ".join(sorted(map(str, paths)))
        dists = {canonicalize_name(d) for d in providers.get(module, [])}
        if not dists:
            problems.append(f"{module} (imported in {where}) is not installed, so no declared dependency provides it")
        elif not dists & allowed:
            problems.append(f"{module} (imported in {where}) comes from {sorted(dists)}, which is not declared")
    return problems


def test_every_import_in_src_is_a_declared_runtime_dependency() -> None:
    assert undeclared(ROOT / "src", set(RUNTIME)) == []


def test_every_import_in_tests_and_benchmarks_is_declared_in_their_extra() -> None:
    assert undeclared(ROOT / "tests", set(RUNTIME) | set(EXTRAS["test"])) == []
    assert undeclared(ROOT / "benchmarks", set(RUNTIME) | set(EXTRAS["bench"])) == []


@pytest.mark.parametrize(
    ("requirements", "pinned"),
    [(RUNTIME, RUNTIME_PINS), (EXTRAS["test"], DEV_PINS), (EXTRAS["bench"], DEV_PINS), (EXTRAS["lint"], DEV_PINS)],
    ids=[
        "runtime-in-requirements.txt",
        "test-in-requirements-dev.txt",
        "bench-in-requirements-dev.txt",
        "lint-in-requirements-dev.txt",
    ],
)
def test_every_declared_dependency_is_pinned_inside_its_declared_range(
    requirements: dict[str, Requirement], pinned: dict[str, str]
) -> None:
    for name, req in requirements.items():
        assert name in pinned, f"{req} is declared in pyproject.toml but not pinned"
        assert req.specifier.contains(pinned[name], prereleases=True), (
            f"pin {name}=={pinned[name]} is outside the declared {req}"
        )


def requirement_closure(names: set[str]) -> set[str]:
    """``names`` and everything their installed distributions require (extras left out), transitively."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(canonicalize_name(req.name))
    return seen


def test_requirements_pin_nothing_that_no_declared_dependency_needs() -> None:
    runtime = requirement_closure(set(RUNTIME))
    assert sorted(set(RUNTIME_PINS) - runtime) == []
    dev = requirement_closure(set(RUNTIME) | set(EXTRAS["test"]) | set(EXTRAS["bench"]) | set(EXTRAS["lint"]))
    assert sorted(set(DEV_PINS) - dev) == []
    assert sorted(set(DEV_PINS) & set(RUNTIME_PINS)) == [], (
        "requirements-dev.txt includes requirements.txt: pin each package once"
    )


def test_the_installed_versions_satisfy_the_declared_ranges() -> None:
    """Why `torch>=2.3` never downloads anything: the local CPU build (2.13.0+cpu) already satisfies it."""
    for req in [*RUNTIME.values(), *EXTRAS["test"].values()]:
        version = metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), (
            f"installed {req.name} {version} is outside the declared {req}"
        )


def test_the_makefile_installs_the_pinned_torch_first() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    first = re.search(r"pip install .*torch==(\S+)", makefile)
    assert first is not None and first.group(1) == RUNTIME_PINS["torch"]
    assert makefile.index("torch==") < makefile.index("-r requirements.txt")


def test_the_mlret_console_script_is_the_cli() -> None:
    assert PYPROJECT["scripts"] == {"mlret": "mlret.cli:main"}
    installed = [ep for ep in metadata.distribution("mlret").entry_points if ep.group == "console_scripts"]
    assert [(ep.name, ep.value) for ep in installed] == [("mlret", "mlret.cli:main")], (
        "re-run `pip install -e .` after editing pyproject.toml"
    )
    assert installed[0].load() is main


def test_mlret_search_passes_the_rest_of_the_arguments_to_the_search_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(
            [
                "search",
                "q",
                "--model",
                "models/base",
                "--dataset",
                "xquad-r",
                "--index-root",
                str(tmp_path),
                "--params",
                str(ROOT / "params.yaml"),
            ]
        )
    assert exit_.value.code == 1
    assert f"{tmp_path}/base/xquad-r/all.faiss: no index" in capsys.readouterr().err


def test_the_mlret_command_runs_and_names_unknown_commands() -> None:
    script = Path(sys.executable).parent / "mlret"
    shown = subprocess.run([str(script), "search", "--help"], capture_output=True, text=True, check=False)
    assert shown.returncode == 0 and "--model" in shown.stdout and "--dataset" in shown.stdout
    listed = subprocess.run([str(script), "--help"], capture_output=True, text=True, check=False)
    assert listed.returncode == 0 and "search" in listed.stdout
    unknown = subprocess.run([str(script), "serach"], capture_output=True, text=True, check=False)
    assert unknown.returncode == 1
    assert unknown.stderr.splitlines() == [
        "error: unknown command 'serach'.",
        "       Use one of: search (see `mlret --help`).",
    ]
    bare = subprocess.run([str(script)], capture_output=True, text=True, check=False)
    assert bare.returncode == 2 and bare.stderr.startswith("usage: mlret COMMAND")
