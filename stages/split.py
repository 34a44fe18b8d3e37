"""Stage `split`: article-disjoint splits of the training source and one training table per profile."""

import argparse
from pathlib import Path

from mlret.data.splits import build_splits
from mlret.errors import cli_errors
from mlret.params import load_params


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("parallel_root", help="aligned tables of every dataset (data/parallel)")
    parser.add_argument("out_dir", help="articles.json and {profile}/train.parquet (data/splits)")
    parser.add_argument("metrics_path", help="split and profile sizes (metrics/splits.json)")
    args = parser.parse_args()
    params = load_params()
    build_splits(
        Path(args.parallel_root) / params.data.train_source,
        params.data.split,
        params.profiles,
        out_dir=args.out_dir,
        metrics_path=args.metrics_path,
    )


if __name__ == "__main__":
    main()
