"""Where training metrics go: a JSONL file always, TensorBoard or Weights & Biases when asked.

The JSONL file (``metrics.jsonl`` in the run folder, one object per iteration or evaluation) is the record
tests, benchmarks and plots read; it is appended to on resume so a resumed run keeps one history.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lerobot_diffrl.errors import ConfigError

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class MetricsLogger:
    def __init__(self, run_dir: Path, backend: str, config: dict[str, Any], project: str) -> None:
        self.path = run_dir / METRICS_FILE
        self.backend = backend
        self._tb = None
        self._wandb = None
        if backend == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as err:
                raise ConfigError(
                    "logger=tensorboard needs the tensorboard package: pip install tensorboard"
                ) from err
            self._tb = SummaryWriter(str(run_dir / "tensorboard"))
        elif backend == "wandb":
            try:
                import wandb
            except ImportError as err:
                raise ConfigError("logger=wandb needs the wandb package: pip install wandb") from err
            self._wandb = wandb.init(project=project, dir=str(run_dir), config=config, resume="allow")

    def log(self, record: dict[str, Any], step: int) -> None:
        record = _clean(record)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        scalars = {k: v for k, v in record.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        if self._tb is not None:
            for k, v in scalars.items():
                self._tb.add_scalar(k, v, step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(scalars, step=step)

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
