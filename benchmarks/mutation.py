"""Mutation testing of the metric, statistics, sampler and training-loop modules with mutmut 3.

A test suite that passes says little about the numbers unless a wrong number makes it fail.
mutmut changes one operator, constant or argument at a time (a "mutant") and runs the tests that
cover the changed function; a mutant that no test notices ("survived") is either equivalent (it
cannot change behaviour) or a gap in the tests. Not part of CI: a full run takes about 23 minutes
on 2 cores. mutmut is a development tool, not a dependency of the project; install it into the
project's environment by hand:

    .venv/bin/pip install mutmut==3.8.1
    .venv/bin/python benchmarks/mutation.py                      # every module in MODULES
    .venv/bin/python benchmarks/mutation.py --module src/mlret/reporting/stats.py
    .venv/bin/python benchmarks/mutation.py --repo /tmp/old-checkout --json survivors.json --keep /tmp/mut

Each module runs in its own temporary copy of ``--repo`` (src/, tests/ and the files in COPY), never
in the checkout itself: mutmut writes a ``mutants/`` folder and its config there. The copy's
pyproject.toml gets a ``[tool.mutmut]`` table that mutates only that module and selects only its
test files from MODULES, without the tests marked slow; in those files (in the copy only) fixtures
shared by a module or session become per test, because mutmut credits a function only to the test
that first built the shared fixture calling it (see unshare_fixtures). mutmut puts ``mutants/src`` first on
``sys.path``, so the mutated copy shadows the editable install of the checkout the environment
was made from; if the tests imported the package from anywhere else, mutmut stops with "could not
find any test case for any mutant" instead of reporting every mutant as surviving.

Prints, per module and in total, the mutants generated, killed, survived, timed out and the rest
(suspicious, segfault, no tests, skipped), and the wall time. ``--json`` writes the counts and the
survivors' ids (with their diffs); ``--keep DIR`` keeps each module's copy under DIR, where
``mutmut show <id>`` and ``mutmut browse`` work. Exits 1 when a module cannot be run.

When modules move, edit MODULES: the keys are source files relative to the repository root, the
values the test files that exercise them (fast ones; each mutant reruns the tests that cover the
function it changed, so a slow test multiplies). FUNCTIONS narrows a module to some of its
functions when its tests are too slow for all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections import Counter
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatch
from pathlib import Path

# module -> the tests that kill its mutants: test files (or pytest node ids) that must exist in --repo.
MODULES: dict[str, tuple[str, ...]] = {
    "src/mlret/scoring/ranking.py": ("tests/scoring/test_ranking.py", "tests/scoring/test_runs.py"),
    "src/mlret/scoring/measures.py": ("tests/scoring/test_measures.py", "tests/scoring/test_settings.py"),
    "src/mlret/scoring/runs.py": ("tests/scoring/test_runs.py",),
    "src/mlret/scoring/settings.py": ("tests/scoring/test_settings.py",),
    "src/mlret/reporting/stats.py": ("tests/reporting/test_stats.py",),
    # test_report.py builds a whole report per mutant (6 s of fixtures): 10 more minutes for this file.
    "src/mlret/reporting/tables.py": ("tests/reporting/test_tables.py",),
    "src/mlret/reporting/robustness.py": ("tests/reporting/test_robustness.py",),
    "src/mlret/training/samplers.py": ("tests/training/test_samplers.py", "tests/training/test_schedule.py"),
    "src/mlret/training/pairs.py": ("tests/training/test_samplers.py", "tests/training/test_schedule.py"),
    # Each loop test trains a tiny model (1-7 s, plus a fresh checkpoint per mutant): see FUNCTIONS.
    "src/mlret/training/loop.py": (
        "tests/training/test_optimisation.py",
        "tests/training/test_loop.py::test_frozen_word_embeddings_do_not_move",
    ),
}
# Modules mutated only in these functions ("name" or "Class.method"): the rest of loop.py (resume,
# checkpoints, signals) would need test_loop.py and test_resume.py, about 20 more minutes.
FUNCTIONS: dict[str, tuple[str, ...]] = {
    "src/mlret/training/loop.py": (
        "planned_steps",
        "_no_decay",
        "Trainer.__init__",
        "Trainer.embed",
        "Trainer.batch_texts",
        "Trainer.train_step",
        "Trainer.backward",
        "Trainer.optimizer_step",
    ),
}
# Copied from --repo into each temporary copy (src/ and tests/ always). Tests read params.yaml.
COPY = ("pyproject.toml", "params.yaml", "dvc.yaml")
PYTEST_ARGS = ("-m", "not slow", "-p", "no:cacheprovider")
MUTMUT_VERSION = "3."
# One row of `mutmut results --all true`: "    mlret.x.y.x_f__mutmut_3: survived".
RESULT_LINE = re.compile(r"^\s+(\S+__mutmut_\d+): (.+)$")
OTHER = (
    "suspicious",
    "segfault",
    "no tests",
    "skipped",
    "caught by type check",
    "not checked",
    "check was interrupted by user",
)
REPO = Path(__file__).resolve().parents[1]


@dataclass
class ModuleResult:
    module: str
    tests: list[str]
    seconds: float
    counts: dict[str, int]
    survivors: list[dict[str, str]] = field(default_factory=list)

    @property
    def generated(self) -> int:
        return sum(self.counts.values())

    def other(self) -> int:
        return sum(self.counts.get(k, 0) for k in OTHER)


def fail(what: str, fix: str) -> SystemExit:
    return SystemExit(f"error: {what}\n       {fix}")


def mutmut_executable() -> str:
    """mutmut's own script: `python -m mutmut` re-imports mutmut.__main__ and warns about it."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        found = version("mutmut")
    except PackageNotFoundError:
        raise fail(
            "mutmut is not installed in this environment", f"{sys.executable} -m pip install mutmut==3.8.1"
        ) from None
    if not found.startswith(MUTMUT_VERSION):
        raise fail(
            f"mutmut {found} is installed; this script drives mutmut 3",
            f"{sys.executable} -m pip install mutmut==3.8.1",
        )
    script = Path(sys.executable).parent / "mutmut"
    return str(script) if script.exists() else shutil.which("mutmut") or "mutmut"


def check_mapping(repo: Path, modules: dict[str, tuple[str, ...]]) -> None:
    paths = [p.split("::")[0] for module, tests in modules.items() for p in (module, *tests)]
    missing = [p for p in paths if not (repo / p).is_file()]
    if missing:
        raise fail(
            f"not in {repo}: {', '.join(missing)}",
            "Update MODULES at the top of benchmarks/mutation.py to the checkout's layout.",
        )


def mutmut_table(module: str, tests: tuple[str, ...]) -> str:
    """The [tool.mutmut] table: the whole src/ is copied (so the package imports from mutants/src), one file mutated."""

    def toml_list(items: tuple[str, ...] | list[str]) -> str:
        return "[" + ", ".join(json.dumps(i) for i in items) + "]"

    also_copy = [name for name in COPY if name != "pyproject.toml"]
    return (
        "\n[tool.mutmut]\n"
        'source_paths = ["src"]\n'
        f"only_mutate = {toml_list([module])}\n"
        f"pytest_add_cli_args_test_selection = {toml_list(tests)}\n"
        f"pytest_add_cli_args = {toml_list(PYTEST_ARGS)}\n"
        f"also_copy = {toml_list(also_copy)}\n"
        "use_git_change_detection = false\n"
    )


def prepare_copy(repo: Path, dest: Path, module: str, tests: tuple[str, ...]) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "mutants")
    shutil.copytree(repo / "src", dest / "src", ignore=ignore)
    shutil.copytree(repo / "tests", dest / "tests", ignore=ignore)
    for name in COPY:
        if (repo / name).is_file():
            shutil.copy2(repo / name, dest / name)
    for test in {t.split("::")[0] for t in tests}:
        unshare_fixtures(dest / test)
    pyproject = dest / "pyproject.toml"
    text = pyproject.read_text() if pyproject.exists() else ""
    if "mutmut" in tomllib.loads(text).get("tool", {}):
        raise fail(
            f"{repo / 'pyproject.toml'} already has a [tool.mutmut] table",
            "Remove it: this script writes its own per module.",
        )
    pyproject.write_text(text + mutmut_table(module, tests))
    tomllib.loads(pyproject.read_text())


def mutant_globs(module: str) -> list[str]:
    """mutmut's names for the mutants of FUNCTIONS[module]: ``pkg.mod.x_func__mutmut_3``,
    ``pkg.mod.xǁClassǁmethod__mutmut_3``."""
    dotted = module.removeprefix("src/").removesuffix(".py").replace("/", ".")
    return [
        f"{dotted}.{'xǁ' + name.replace('.', 'ǁ') if '.' in name else 'x_' + name}__mutmut_*"
        for name in FUNCTIONS.get(module, ())
    ]


def unshare_fixtures(test_file: Path) -> None:
    """Make the copy's module- and session-scoped fixtures per test.

    mutmut maps a function to the tests that called it while it collected stats. A fixture shared
    by several tests runs once, inside the first of them, so the others are never run against the
    mutants of what the fixture calls (results_table, PairPool) and mutants they would kill survive.
    Fixtures of tests/conftest.py stay shared: none of them calls a module in MODULES.
    """
    text = test_file.read_text()
    test_file.write_text(
        re.sub(r"@pytest\.fixture\(scope=\"(module|session|package|class)\"\)", "@pytest.fixture", text)
    )


def run_env() -> dict[str, str]:
    """One thread per test process: mutmut already runs --max-children of them side by side.

    No PYTHONPATH: mutmut puts mutants/src first itself. Naming it here, before mutmut creates it,
    makes Python cache "nothing there" for that entry, and the tests then import the unmutated
    package from the editable install.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TQDM_DISABLE="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


def mutate_module(
    repo: Path, module: str, tests: tuple[str, ...], work: Path, max_children: int, diffs: bool
) -> ModuleResult:
    mutmut = mutmut_executable()
    prepare_copy(repo, work, module, tests)
    env = run_env()
    globs = mutant_globs(module)
    log = work / "mutmut-run.log"
    start = time.perf_counter()
    with log.open("w") as out:
        command = [mutmut, "run", "--max-children", str(max_children), *globs]
        run = subprocess.run(command, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if run.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise fail(
            f"mutmut run failed for {module} (exit {run.returncode}); last lines of {log}:\n{tail}",
            "Run its tests in a plain checkout first; they must pass there without network access.",
        )
    listing = subprocess.run(
        [mutmut, "results", "--all", "true"], cwd=work, env=env, capture_output=True, text=True, check=True
    )
    statuses = {m.group(1): m.group(2).strip() for m in map(RESULT_LINE.match, listing.stdout.splitlines()) if m}
    if globs:  # the other functions' mutants exist but were never run
        statuses = {k: v for k, v in statuses.items() if any(fnmatch(k, g) for g in globs)}
    if not statuses:
        raise fail(
            f"mutmut generated no mutants for {module}",
            "Check that the file has functions (mutmut 3 mutates function bodies only).",
        )
    survivors = [{"id": key} for key in sorted(k for k, status in statuses.items() if status == "survived")]
    if diffs and survivors:
        shown = show_all(work, env, [row["id"] for row in survivors])
        for row in survivors:
            row["diff"] = shown.get(row["id"], "")
    return ModuleResult(module, list(tests), round(seconds, 1), dict(Counter(statuses.values())), survivors)


def show_all(work: Path, env: dict[str, str], ids: list[str]) -> dict[str, str]:
    """`mutmut show` of each id, in one process: a `mutmut show` per survivor costs a second of imports each."""
    program = "import sys\nfrom mutmut.__main__ import show\nfor key in sys.argv[1:]:\n    show.callback(key)\n"
    out = subprocess.run(
        [sys.executable, "-c", program, *ids], cwd=work, env=env, capture_output=True, text=True
    ).stdout
    diffs: dict[str, str] = {}
    for block in re.split(r"^(?=# \S+__mutmut_\d+: )", out, flags=re.M):
        header = re.match(r"# (\S+): ", block)
        if header:
            diffs[header.group(1)] = block
    return diffs


def print_row(name: str, generated: int, counts: dict[str, int], other: int, seconds: float) -> None:
    print(
        f"{name:<40} {generated:>9} {counts.get('killed', 0):>6} {counts.get('survived', 0):>8} "
        f"{counts.get('timeout', 0):>7} {other:>6} {seconds:>8.0f}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="checkout to test (default: this one); only read")
    parser.add_argument("--module", action="append", help="a key of MODULES (repeatable); default: all")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--json", type=Path, help="write counts and survivors (ids and diffs) here")
    parser.add_argument(
        "--keep", type=Path, help="keep each module's mutmut folder under this folder (for `mutmut show`)"
    )
    args = parser.parse_args()

    repo = args.repo.resolve()
    unknown = [m for m in args.module or [] if m not in MODULES]
    if unknown:
        raise fail(f"not in MODULES: {', '.join(unknown)}", "Pick from: " + ", ".join(MODULES))
    selected = {m: MODULES[m] for m in args.module or MODULES}
    check_mapping(repo, selected)
    mutmut_executable()

    print(f"mutmut over {len(selected)} module(s) of {repo}, --max-children {args.max_children}")
    print(f"{'module':<40} {'generated':>9} {'killed':>6} {'survived':>8} {'timeout':>7} {'other':>6} {'seconds':>8}")
    results: list[ModuleResult] = []
    with tempfile.TemporaryDirectory(prefix="mlret-mutation-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp)
        for module, tests in selected.items():
            work = root / module.removesuffix(".py").replace("/", "-")
            if work.exists():
                raise fail(f"{work} already exists", "Pass an empty --keep folder (mutmut would reuse old results).")
            result = mutate_module(repo, module, tests, work, args.max_children, diffs=args.json is not None)
            results.append(result)
            print_row(module, result.generated, result.counts, result.other(), result.seconds)
    total = Counter[str]()
    for r in results:
        total.update(r.counts)
    print_row("total", sum(total.values()), total, sum(total.get(k, 0) for k in OTHER), sum(r.seconds for r in results))
    print("other = suspicious, segfault, no tests, skipped, not checked")
    if args.json:
        payload = {
            "repo": str(repo),
            "max_children": args.max_children,
            "kept_in": str(args.keep) if args.keep else None,
            "modules": [asdict(r) | {"generated": r.generated} for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"survivors written to {args.json}")


if __name__ == "__main__":
    main()
