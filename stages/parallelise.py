"""Stage `parallelise`: aligned candidates/questions tables per dataset, and the data metrics."""

import argparse

from mlret.data.parallel import parallelise_all
from mlret.errors import cli_errors
from mlret.params import load_params


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("raw_root", help="verified LAReQA files, one folder per dataset (data/raw)")
    parser.add_argument("out_root", help="aligned tables, one folder per dataset (data/parallel)")
    parser.add_argument("metrics_path", help="counts of what was kept, dropped and flagged (metrics/data.json)")
    args = parser.parse_args()
    params = load_params()
    parallelise_all(params.data.sources, raw_root=args.raw_root, out_root=args.out_root, metrics_path=args.metrics_path)


if __name__ == "__main__":
    main()
