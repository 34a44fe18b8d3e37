"""The losses of the first training steps at two git revisions: does a faster step compute the same thing?

Each revision is exported with `git archive` and imported in a child process (its own src/ on
PYTHONPATH), which builds the trainer of one real run (hybrid, balanced, seed 0 of the base model
`--base`, from models/{base}/base, with the balanced split and the defaults of the current
params.yaml, `train.precision` as given; both revisions must read its `bases:` section) and prints
the loss of each of `--steps` steps. Dropout draws its masks from the random stream, and a step that lays a batch out
differently (packed instead of padded) or draws masks more cheaply consumes that stream
differently, so with dropout the two revisions train on different noise. `--no-dropout` sets every
dropout rate to 0 in both, which leaves only the arithmetic to compare:

    .venv/bin/python benchmarks/step_equivalence.py 6c586b1 HEAD --steps 20 --precision fp32 --no-dropout

Needs `dvc repro split base_model@{base}` first (by default the first base of params.yaml's `bases`).
Prints both loss series and the largest difference.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

CHILD = """
import dataclasses, json, sys, tempfile
from pathlib import Path
import torch
from mlret.params import Strategy, load_params
from mlret.training.loop import Trainer
from mlret.training.spec import RunSpec

steps, precision, no_dropout = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
params = load_params()
base = sys.argv[4] or next(iter(params.bases))
train = dataclasses.replace(params.train, max_steps=steps, save_every=10**9, precision=precision)
out = Path(tempfile.mkdtemp())
spec = RunSpec(
    settings=params.strategy_settings[Strategy("hybrid")], profile="balanced", seed=0,
    train_table=Path("data/splits/balanced/train.parquet"),
    candidates_table=Path("data/parallel", params.data.train_source, "candidates.parquet"),
    base_model=Path("models", base, "base"), out_dir=out / "m", resume_dir=out / "c",
    log_path=out / "l.csv", metrics_path=out / "m.json",
)
trainer = Trainer(spec, params.model(base), train, device="cpu")
if no_dropout:
    for module in trainer.net.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
print(json.dumps([trainer.train_step()[0] for _ in range(steps)]))
"""


def losses(rev: str, steps: int, precision: str, no_dropout: bool, base: str, root: Path) -> list[float]:
    if rev == "WORKTREE":
        src = REPO / "src"
    else:
        archive = subprocess.run(["git", "archive", rev, "src"], cwd=REPO, check=True, capture_output=True).stdout
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(root / rev, filter="data")
        src = root / rev / "src"
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(steps), precision, "1" if no_dropout else "0", base],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old")
    parser.add_argument("new", help="a revision, or WORKTREE for the working tree")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--precision", default="fp32", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--no-dropout", action="store_true")
    parser.add_argument(
        "--base", default="", help="the base model's key under `bases` in params.yaml (default: its first)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old, new = (
            losses(rev, args.steps, args.precision, args.no_dropout, args.base, Path(tmp))
            for rev in (args.old, args.new)
        )
    print(f"{'step':>4}  {args.old:>12}  {args.new:>12}  difference")
    for step, (a, b) in enumerate(zip(old, new, strict=True), start=1):
        print(f"{step:>4}  {a:12.6f}  {b:12.6f}  {b - a:+.2e}")
    worst = max(abs(b - a) for a, b in zip(old, new))
    print(
        f"largest difference over {args.steps} steps "
        f"({args.precision}, dropout {'off' if args.no_dropout else 'on'}): {worst:.2e}"
    )


if __name__ == "__main__":
    main()
