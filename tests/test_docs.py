"""Documentation that cannot rot: README.md and docs/*.md checked against the repository they describe.

Four checks, each a function that returns what it finds wrong, so that the tests below can show on
hand-made pages that each one catches its defect:

1. every relative Markdown link points to an existing file or folder (anchors are not checked);
2. every repository path in code (inline spans and fenced blocks) exists: under the source folders
   the file itself, under the folders the pipeline writes an output that dvc.yaml declares;
3. every line of a fenced block marked ``<!-- runnable -->`` exits 0, run from the repository root
   with the environment's bin folder first on PATH;
4. every number in a sentence (or table row) that links a generated file appears verbatim in that file.

docs/testing.md documents the rules and the runnable marker.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: The line right before a fenced block whose every line must run and exit 0.
RUNNABLE = "<!-- runnable -->"
#: Seconds one runnable line may take: documented commands are `--help`, `dvc stage list`, `dvc dag`.
RUNNABLE_TIMEOUT = 120
#: Top-level folders whose paths must exist as written: source, tests, docs and committed configuration.
SOURCE_ROOTS = ("src", "stages", "tests", "benchmarks", "docs", "presets", ".dvc")
#: Top-level folders the pipeline writes: a path there must match an output of dvc.yaml.
GENERATED_ROOTS = ("data", "models", "metrics", "plots", "reports")
#: Folders written outside dvc.yaml's declared outputs, with who writes them.
WRITTEN_OUTSIDE_DVC_YAML = {
    "checkpoints/": "the train stage's resumable state (--checkpoint-dir), deleted when a run completes",
    "dvc_plots/": "the HTML that `dvc plots show` writes, ignored by git",
    ".dvc/cache/": "DVC's cache, filled by `dvc repro`",
}
#: Files `make repro` writes besides DVC's outputs: linked and named before they exist, if the Makefile names them.
WRITTEN_BY_MAKE = ("reports/provenance.md",)
#: Folders of generated files: a number quoted beside a link to one of them must appear in it.
GENERATED_FILES = ("reports/", "metrics/", "benchmarks/results/")

FENCE = re.compile(r"^\s*(`{3,}|~{3,})(.*)$")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`]+)`")
COMMENT = re.compile(r"<!--.*?-->")
#: A number not glued to a word: 0.081, 1,142, 95 (not the 512 of AVX512 nor the 5 of e5).
NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*(?![\w])")
#: A path component that stands for any name: {base}, {lang|all}.faiss, ..., …, *.
PLACEHOLDER = re.compile(r"\{[^}]*\}|\.\.\.|…|\*")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string, its lines, where it starts, and whether it is marked runnable."""

    info: str
    lines: list[str]
    line_no: int
    runnable: bool


def split_page(text: str) -> tuple[list[tuple[int, str]], list[Block]]:
    """The page's prose lines (numbered) and its fenced blocks; a fence inside a longer fence is text."""
    prose: list[tuple[int, str]] = []
    blocks: list[Block] = []
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        opening = FENCE.match(lines[n])
        if opening is None:
            prose.append((n + 1, lines[n]))
            n += 1
            continue
        fence, info = opening.group(1), opening.group(2).strip()
        runnable = n > 0 and lines[n - 1].strip() == RUNNABLE
        n += 1
        first, body = n + 1, []
        while n < len(lines) and not _closes(lines[n], fence):
            body.append(lines[n])
            n += 1
        blocks.append(Block(info, body, first, runnable))
        n += 1
    return prose, blocks


def _closes(line: str, fence: str) -> bool:
    """Whether ``line`` closes a block opened by ``fence``: the same character, at least as many, nothing else."""
    text = line.strip()
    return len(text) >= len(fence) and set(text) == {fence[0]}


def make_names(root: Path) -> set[str]:
    """The files `make repro` writes outside DVC that the Makefile names."""
    makefile = (root / "Makefile").read_text(encoding="utf-8") if (root / "Makefile").is_file() else ""
    return {name for name in WRITTEN_BY_MAKE if name in makefile}


def broken_links(page: Path, root: Path) -> list[str]:
    """Relative links of ``page`` whose target does not exist (a file `make repro` writes counts if named there)."""
    prose, _ = split_page(page.read_text(encoding="utf-8"))
    made = make_names(root)
    broken = []
    for line_no, line in prose:
        for target in LINK.findall(COMMENT.sub("", line)):
            if re.match(r"^[a-z][a-z+.-]*:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if path.exists() or _relative(path, root) in made:
                continue
            broken.append(f"{_relative(page, root)}:{line_no}: {target}")
    return broken


def dvc_outputs(root: Path) -> list[list[re.Pattern[str]]]:
    """Every output and metrics path of dvc.yaml, one regex per path component (``${...}`` matches any name)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    outputs = []
    for stage in stages.values():
        body = stage.get("do", stage)
        for entry in [*body.get("outs", []), *body.get("metrics", [])]:
            path = entry if isinstance(entry, str) else next(iter(entry))
            outputs.append(
                [
                    re.compile("[^/]+".join(re.escape(part) for part in re.split(r"\$\{[^}]*\}", component)))
                    for component in path.strip("/").split("/")
                ]
            )
    return outputs


def _matches_output(parts: list[str], is_folder: bool, outputs: list[list[re.Pattern[str]]]) -> bool:
    """Whether a path lies under a declared output, or (a folder) above one; placeholders match any name."""
    for output in outputs:
        fits = all(PLACEHOLDER.search(part) or pattern.fullmatch(part) for part, pattern in zip(parts, output))
        if fits and (len(parts) >= len(output) or is_folder):
            return True
    return False


def repository_paths(page: Path) -> list[tuple[int, str]]:
    """Tokens of the page's code (inline spans, fenced blocks) that look like repository paths."""
    prose, blocks = split_page(page.read_text(encoding="utf-8"))
    code = [(n, span) for n, line in prose for span in CODE_SPAN.findall(line)]
    code += [(block.line_no + i, line) for block in blocks for i, line in enumerate(block.lines)]
    roots = (*SOURCE_ROOTS, *GENERATED_ROOTS, *(prefix.split("/", 1)[0] for prefix in WRITTEN_OUTSIDE_DVC_YAML))
    found = []
    for line_no, text in code:
        for token in re.findall(r"[^\s`'\"(),;=<>\[\]]+", text):
            token = token.rstrip(".:")
            if "/" in token and token.split("/", 1)[0] in roots:
                found.append((line_no, token))
    return found


def missing_paths(page: Path, root: Path) -> list[str]:
    """Repository paths named in ``page``'s code that neither exist nor match what the pipeline writes."""
    outputs = dvc_outputs(root)
    made = make_names(root)
    missing = []
    for line_no, token in repository_paths(page):
        path = token.rstrip("/")
        if (path + "/").startswith(tuple(WRITTEN_OUTSIDE_DVC_YAML)) or path in made:
            continue
        if path.split("/", 1)[0] in SOURCE_ROOTS:
            ok = (root / path).exists()
        else:
            parts = path.split("/")
            folder = token.endswith("/") or "." not in parts[-1] or PLACEHOLDER.fullmatch(parts[-1]) is not None
            ok = _matches_output(parts, folder, outputs)
        if not ok:
            missing.append(f"{_relative(page, root)}:{line_no}: {token}")
    return missing


def runnable_commands(page: Path) -> list[tuple[int, str]]:
    """The command lines of the page's runnable blocks (comments and blank lines left out, continuations joined)."""
    _, blocks = split_page(page.read_text(encoding="utf-8"))
    commands = []
    for block in blocks:
        if not block.runnable:
            continue
        pending, start = "", 0
        for i, line in enumerate(block.lines):
            stripped = line.strip()
            if not pending and (not stripped or stripped.startswith("#")):
                continue
            start = start if pending else block.line_no + i
            if stripped.endswith("\\"):
                pending += stripped[:-1].rstrip() + " "
                continue
            commands.append((start, pending + stripped))
            pending = ""
    return commands


def run_command(command: str, root: Path) -> subprocess.CompletedProcess[str]:
    """One documented command as a reader runs it: from the repository root, the environment first on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["bash", "-c", f"set -o pipefail; {command}"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUNNABLE_TIMEOUT,
    )


def sentences(page: Path) -> list[tuple[int, str]]:
    """Prose units: each table row, each heading, and each sentence of a paragraph (comments removed)."""
    prose, _ = split_page(page.read_text(encoding="utf-8"))
    units: list[tuple[int, str]] = []
    paragraph: list[str] = []
    start = 0

    def flush() -> None:
        text = " ".join(paragraph)
        units.extend((start, s) for s in re.split(r"(?<=[.!?])\s+", text) if s.strip())
        paragraph.clear()

    for line_no, line in prose:
        line = COMMENT.sub("", line).strip()
        if not line or line.startswith(("|", "#")):
            flush()
            if line:
                units.append((line_no, line))
            continue
        if not paragraph:
            start = line_no
        paragraph.append(line)
    flush()
    return units


def unbacked_numbers(page: Path, root: Path) -> list[str]:
    """Numbers in a sentence that links a generated file, missing from every generated file it links."""
    problems = []
    for line_no, sentence in sentences(page):
        cited = [
            (page.parent / target.split("#", 1)[0]).resolve()
            for target in LINK.findall(sentence)
            if not re.match(r"^[a-z][a-z+.-]*:", target)
        ]
        cited = [path for path in cited if _relative(path, root).startswith(GENERATED_FILES)]
        if not cited:
            continue
        words = CODE_SPAN.sub(" ", re.sub(r"\]\([^)]*\)", "]", sentence))
        numbers = NUMBER.findall(words)
        texts = [path.read_text(encoding="utf-8") for path in cited if path.is_file()]
        for number in numbers:
            if not any(_appears(number, text) for text in texts):
                names = ", ".join(_relative(path, root) for path in cited)
                problems.append(f"{_relative(page, root)}:{line_no}: {number} is not in {names}")
    return problems


def _appears(number: str, text: str) -> bool:
    """Whether ``number`` is in ``text`` as a whole number: 0.08 is not in 0.081, nor 16 in 160."""
    return re.search(rf"(?<![\d.,]){re.escape(number)}(?!\d|[.,]\d)", text) is not None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- the repository's documents


def test_the_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode("utf-8")) <= 15_000
    first = "\n".join(readme.splitlines()[:60])
    for needed in (
        "make repro",
        "make test",
        "(reports/summary.md)",
        "(docs/performance.md)",
        "(reports/provenance.md)",
    ):
        assert needed in first, needed
    assert "(docs/README.md)" in readme


def test_relative_links_point_to_files() -> None:
    assert [problem for page in PAGES for problem in broken_links(page, ROOT)] == []


def test_repository_paths_exist() -> None:
    assert [problem for page in PAGES for problem in missing_paths(page, ROOT)] == []


@pytest.mark.parametrize(
    ("page", "line_no", "command"),
    [(page, n, command) for page in PAGES for n, command in runnable_commands(page)],
    ids=lambda value: value.name if isinstance(value, Path) else str(value),
)
def test_runnable_commands_exit_zero(page: Path, line_no: int, command: str) -> None:
    done = run_command(command, ROOT)
    assert done.returncode == 0, f"{page.name}:{line_no}: {command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"


def test_numbers_beside_a_generated_file_appear_in_it() -> None:
    assert [problem for page in PAGES for problem in unbacked_numbers(page, ROOT)] == []


# --------------------------------------------------------------------------- each check catches its defect


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one source file, a dvc.yaml declaring per-base outputs, a Makefile, and a report."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tool.py").write_text("", encoding="utf-8")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "summary.md").write_text("hybrid − multi = +0.081 [+0.056, +0.108]\n", encoding="utf-8")
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  train:\n    foreach: ${runs}\n    do:\n      cmd: x\n"
        "      outs:\n        - models/${item.base}/${item.strategy}/${item.seed}\n"
        "        - plots/train/${item.base}/${item.strategy}/${item.seed}.csv:\n            cache: false\n"
        "  report:\n    cmd: y\n    outs:\n      - reports/summary.md\n",
        encoding="utf-8",
    )
    (tmp_path / "Makefile").write_text("repro:\n\tdvc repro\n", encoding="utf-8")
    return tmp_path


def page(repo: Path, text: str) -> Path:
    path = repo / "README.md"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_link_to_a_missing_file_is_caught(repo: Path) -> None:
    text = "See [the summary](reports/summary.md), [the tool](src/tool.py#L1) and [pypi](https://pypi.org).\n"
    assert broken_links(page(repo, text), repo) == []
    assert broken_links(page(repo, text.replace("tool.py", "tools.py")), repo) == ["README.md:1: src/tools.py#L1"]


def test_a_file_make_repro_writes_is_linked_only_when_the_makefile_names_it(repo: Path) -> None:
    doc = page(repo, "Run times: [provenance](reports/provenance.md).\n")
    assert broken_links(doc, repo) == ["README.md:1: reports/provenance.md"]
    (repo / "Makefile").write_text("repro:\n\tdvc repro\n\tpython write.py > reports/provenance.md\n", encoding="utf-8")
    assert broken_links(doc, repo) == []


def test_a_path_that_is_neither_there_nor_an_output_is_caught(repo: Path) -> None:
    good = (
        "`src/tool.py`, `models/{base}/{strategy}/{seed}`, `models/minilm/hybrid/0`, `plots/train/{base}/...`,\n"
        "`checkpoints/minilm/hybrid/0`, `reports/summary.md`, `sentence-transformers/LaBSE`, `.venv/bin/dvc`\n"
        "```bash\npython src/tool.py --out models/minilm/\n```\n"
    )
    assert missing_paths(page(repo, good), repo) == []
    stale = "`src/tools.py`, `plots/train/hybrid/0.csv`, `reports/summry.md`\n```bash\npython stages/x.py\n```\n"
    assert missing_paths(page(repo, stale), repo) == [
        "README.md:1: src/tools.py",
        "README.md:1: plots/train/hybrid/0.csv",
        "README.md:1: reports/summry.md",
        "README.md:3: stages/x.py",
    ]


def test_a_misspelt_runnable_command_fails(repo: Path) -> None:
    text = (
        f"{RUNNABLE}\n```bash\n# a comment\ntrue\nls src \\\n  reports\n```\n"
        "```bash\nnot-run\n```\n"
        f"````markdown\n{RUNNABLE}\n```bash\nnot-run-either\n```\n````\n"
    )
    commands = runnable_commands(page(repo, text))
    assert commands == [(4, "true"), (5, "ls src reports")]
    assert all(run_command(command, repo).returncode == 0 for _, command in commands)
    assert run_command("lss src", repo).returncode != 0
    assert run_command("lss src | cat", repo).returncode != 0  # a pipe does not hide the failure


def test_a_number_missing_from_the_file_it_cites_is_caught(repo: Path) -> None:
    text = (
        "On minilm hybrid − multi is +0.081 [+0.056, +0.108] ([summary](reports/summary.md)). It took 3 h.\n\n"
        "| base | contrast |\n| --- | --- |\n| minilm | +0.081, see [summary](reports/summary.md) |\n"
    )
    assert unbacked_numbers(page(repo, text), repo) == []
    drifted = text.replace("+0.108]", "+0.109]").replace("| +0.081,", "| +0.08 of 108,")
    assert unbacked_numbers(page(repo, drifted), repo) == [
        "README.md:1: 0.109 is not in reports/summary.md",
        "README.md:5: 0.08 is not in reports/summary.md",
        "README.md:5: 108 is not in reports/summary.md",
    ]
