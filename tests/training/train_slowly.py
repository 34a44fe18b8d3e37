"""A training run that pauses after each step, so that a test can signal it mid-run (numbers unchanged).

``python train_slowly.py RUN.json PID_FILE``: RUN.json holds the run spec, the
model and train params, the strategy's settings and the pause in seconds (the
``slow_training_command`` fixture writes it). The process writes its id to
PID_FILE and fails as the train stage does (``error: ...``, exit status 1).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from mlret.errors import cli_errors
from mlret.params import CrossSettings, HybridSettings, ModelParams, MonoSettings, MultiSettings, TrainParams
from mlret.training.loop import Trainer
from mlret.training.spec import RunSpec

SETTINGS = {"mono": MonoSettings, "cross": CrossSettings, "multi": MultiSettings, "hybrid": HybridSettings}


def main() -> None:
    run = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    Path(sys.argv[2]).write_text(str(os.getpid()))
    settings = dict(run["settings"])
    spec = RunSpec(
        settings=SETTINGS[settings.pop("strategy")](**settings),
        seed=run["seed"],
        **{k: Path(v) if k != "profile" else v for k, v in run["spec"].items()},
    )
    delay = float(run["delay"])

    class Throttled(Trainer):
        def train_step(self) -> tuple[float, float, int]:
            result = super().train_step()
            time.sleep(delay)
            return result

    cli_errors(lambda: Throttled(spec, ModelParams(**run["model"]), TrainParams(**run["train"])).run())()


if __name__ == "__main__":
    main()
