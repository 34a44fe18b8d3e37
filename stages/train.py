"""Stage `train`: fine-tune one strategy × profile × seed of the grid in params.yaml.

Several GPUs: torchrun --nproc_per_node 4 stages/train.py --strategy hybrid --profile lowres --seed 0
"""

import argparse
from pathlib import Path

from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.distributed import distributed
from mlret.training.loop import RunSpec, train_run
from mlret.training.samplers import Sampling


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--strategy", required=True, choices=[s.value for s in Sampling])
    parser.add_argument("--profile", required=True)
    parser.add_argument("--seed", required=True, type=int)
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    args = parser.parse_args()
    params = load_params()
    run = f"{args.strategy}/{args.profile}/{args.seed}"
    spec = RunSpec.for_run(Sampling(args.strategy), args.profile, args.seed, params, root=Path("."))
    with distributed():
        train_run(spec, params.model, params.train, params.mono_ratio, device=args.device)
    print(f"trained {run} -> {spec.out_dir}")


if __name__ == "__main__":
    main()
