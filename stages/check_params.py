"""Stage `check_params`: validate params.yaml and record the run grid, before the report's outputs are removed.

DVC deletes a stage's outputs before running its command, and the report's outputs are not
cached. A headline strategy with no run (`dvc exp run -S sampling=mono`) is therefore refused
here, upstream of `report`, and the previous reports stay as they were.
"""

import argparse

from mlret.artifacts import write_json
from mlret.errors import cli_errors
from mlret.params import load_params
from mlret.reporting.grid import grid_record


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(prog="stages/check_params.py", description=__doc__)
    parser.add_argument("grid_path", help="the validated run grid and headline strategy (data/grid.json)")
    args = parser.parse_args()
    write_json(args.grid_path, grid_record(load_params()))


if __name__ == "__main__":
    main()
