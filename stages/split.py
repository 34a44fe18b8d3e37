"""Stage `split`: article-disjoint splits of the training source and one training table per profile."""

from mlret.data.splits import build_splits
from mlret.errors import cli_errors
from mlret.params import load_params


@cli_errors
def main() -> None:
    params = load_params()
    build_splits(
        f"data/parallel/{params.data.train_source}",
        params.data.split,
        params.profiles,
        out_dir="data/splits",
        metrics_path="metrics/splits.json",
    )


if __name__ == "__main__":
    main()
