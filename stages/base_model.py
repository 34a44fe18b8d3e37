"""Stage `base_model`: the pretrained encoder named by ``bases.{base}.name``, as a transformers and
sentence-transformers checkpoint with a model card."""

import argparse

from mlret.errors import cli_errors
from mlret.models.base import materialise_base_model
from mlret.params import load_params


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("base", help="the base model's key under `bases` in params.yaml")
    parser.add_argument("out_dir", help="folder for the checkpoint (models/{base}/base)")
    args = parser.parse_args()
    params = load_params()
    materialise_base_model(params.model(args.base), args.out_dir)


if __name__ == "__main__":
    main()
