"""Stage `report`: tables, figures and summary.md under reports/, the headline metrics, the data behind DVC plots."""

import argparse

from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.reporting.report import build_report


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("eval_root", help="per-query scores of every model (data/eval)")
    parser.add_argument("eval_metrics_root", help="summaries of every model from the evaluate stage (metrics/eval)")
    parser.add_argument(
        "train_metrics_root", help="training metrics of every trained model, with its realised exposure (metrics/train)"
    )
    parser.add_argument("parallel_root", help="parallelised datasets, for each question's article (data/parallel)")
    parser.add_argument("loss_root", help="training loss logs of every trained model (plots/train)")
    parser.add_argument("out_dir", help="tables, figures and summary.md (reports)")
    parser.add_argument("metrics_path", help="headline metrics (metrics/report.json)")
    parser.add_argument("plots_dir", help="data behind the DVC plots (plots/report)")
    parser.add_argument(
        "--grid", default="data/grid.json", help="the run grid that check_params validated (data/grid.json)"
    )
    args = parser.parse_args()
    build_report(
        load_params(),
        grid_path=args.grid,
        eval_root=args.eval_root,
        eval_metrics_root=args.eval_metrics_root,
        train_metrics_root=args.train_metrics_root,
        parallel_root=args.parallel_root,
        loss_root=args.loss_root,
        out_dir=args.out_dir,
        metrics_path=args.metrics_path,
        plots_dir=args.plots_dir,
    )


if __name__ == "__main__":
    main()
