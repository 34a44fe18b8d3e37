"""Stage `download`: verified copies of the LAReQA files in {out_dir}/{dataset}/{lang}.json."""

import argparse

from mlret.data.download import download_all
from mlret.errors import cli_errors
from mlret.params import load_params


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out_dir", help="folder for the verified files (dvc.yaml: data/raw)")
    args = parser.parse_args()
    params = load_params()
    download_all(params.data, out_dir=args.out_dir)


if __name__ == "__main__":
    main()
