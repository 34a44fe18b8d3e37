"""Stage `base_model`: the pretrained encoder named by model.name, as a plain checkpoint in models/base."""

from mlret.errors import cli_errors
from mlret.models.loading import materialise_base_model
from mlret.params import load_params


@cli_errors
def main() -> None:
    params = load_params()
    materialise_base_model(params.model, "models/base")


if __name__ == "__main__":
    main()
