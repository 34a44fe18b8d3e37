"""Stage `report`: reports/ (tables, figures, summary.md) and the headline metrics."""

from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.reporting.report import build_report


@cli_errors
def main() -> None:
    build_report(load_params())


if __name__ == "__main__":
    main()
