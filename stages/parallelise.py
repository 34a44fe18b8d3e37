"""Stage `parallelise`: aligned candidates/questions tables per dataset, and metrics/data.json."""

from mlret.data.parallel import parallelise_all
from mlret.errors import cli_errors
from mlret.params import load_params


@cli_errors
def main() -> None:
    params = load_params()
    parallelise_all(params.data.sources, raw_root="data/raw", out_root="data/parallel", metrics_path="metrics/data.json")


if __name__ == "__main__":
    main()
