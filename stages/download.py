"""Stage `download`: verified copies of the LAReQA files in data/raw/{dataset}/{lang}.json."""

from mlret.data.download import download_all
from mlret.errors import cli_errors
from mlret.params import load_params


@cli_errors
def main() -> None:
    params = load_params()
    download_all(params.data, out_dir="data/raw")


if __name__ == "__main__":
    main()
