"""Stage `train`: fine-tune one base × strategy × profile × seed of the grid in params.yaml.

Every path comes from dvc.yaml. Several GPUs: torchrun --nproc_per_node 4 stages/train.py ARGS...
"""

import argparse
from pathlib import Path

from mlret.errors import MlretError, cli_errors
from mlret.params import STRATEGIES, Strategy, load_params


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", required=True, help="the base model's key under `bases` in params.yaml")
    parser.add_argument("--strategy", required=True, choices=STRATEGIES)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument(
        "--train-table",
        required=True,
        type=Path,
        help="the profile's training table (data/splits/PROFILE/train.parquet)",
    )
    parser.add_argument(
        "--candidates", required=True, type=Path, help="the training source's candidates (hard negatives' text)"
    )
    parser.add_argument("--base-model", required=True, type=Path, help="checkpoint to start from (models/BASE/base)")
    parser.add_argument("--out-dir", required=True, type=Path, help="folder for the trained checkpoint")
    parser.add_argument(
        "--checkpoint-dir", required=True, type=Path, help="folder for the resumable state while training"
    )
    parser.add_argument("--metrics", required=True, type=Path, help="JSON file for the run's training metrics")
    parser.add_argument("--loss-log", required=True, type=Path, help="CSV file for the per-step loss log")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    return parser.parse_args()


@cli_errors
def main() -> None:
    args = parse_args()
    # torch is imported once the arguments are known, so that --help and usage errors answer at once.
    from mlret.distributed import distributed
    from mlret.training.loop import train_run
    from mlret.training.spec import RunSpec

    params = load_params()
    model = params.model(args.base)
    if args.profile not in params.profiles:
        raise MlretError(
            f"--profile {args.profile!r} is not defined; params.yaml has {sorted(params.profiles)}.",
            "Pick one of those, or add it under `profiles`.",
        )
    spec = RunSpec(
        settings=params.strategy_settings[Strategy(args.strategy)],
        profile=args.profile,
        seed=args.seed,
        train_table=args.train_table,
        candidates_table=args.candidates,
        base_model=args.base_model,
        out_dir=args.out_dir,
        resume_dir=args.checkpoint_dir,
        log_path=args.loss_log,
        metrics_path=args.metrics,
    )
    with distributed():
        train_run(spec, model, params.train, device=args.device)
    print(f"trained {args.base}/{args.strategy}/{args.profile}/{args.seed} -> {spec.out_dir}")


if __name__ == "__main__":
    main()
