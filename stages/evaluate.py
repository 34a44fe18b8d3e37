"""Stage `evaluate`: FAISS indexes and mono/cross/multilingual scores for one model."""

import argparse

from mlret.errors import cli_errors
from mlret.evaluation.evaluate import evaluate_model
from mlret.params import load_params


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True, help="`base` or `{strategy}/{profile}/{seed}`")
    args = parser.parse_args()
    params = load_params()
    evaluate_model(args.model, params.data.eval_sources, params.data.train_source, params.index, beir=params.eval.beir)


if __name__ == "__main__":
    main()
