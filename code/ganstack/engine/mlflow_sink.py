"""MLflow as a second experiment logger (TRAIN.LOGGERS: [tensorboard, mlflow]), rank 0 only.

The run's flattened config goes in as params, the same scalars as TensorBoard as metrics, sample
grids as images, texts and eval reports as artifacts. The MLflow run id is kept in the run folder
(mlflow_run_id.txt), so a resumed training run continues the same MLflow run."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import GanstackError

RUN_ID_FILE = "mlflow_run_id.txt"


def tracking_uri(cfg) -> str:
    """MLFLOW.TRACKING_URI, else a SQLite file in OUTPUT_DIR (MLflow's file store is retired)."""
    return cfg.MLFLOW.TRACKING_URI or f"sqlite:///{(Path(cfg.OUTPUT_DIR) / 'mlflow.db').resolve()}"


def flat_params(tree: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_params(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = str(value)[:6000]  # MLflow's limit on a param value
    return out


class MlflowSink:
    def __init__(self, cfg, run_dir: Path):
        import logging
        for name in ("mlflow", "alembic"):  # their INFO lines (creating tables...) would break the step log
            logging.getLogger(name).setLevel(logging.WARNING)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise GanstackError("TRAIN.LOGGERS names mlflow but the mlflow package is missing: "
                                "pip install -r requirements.txt") from None
        self.id_file = run_dir / RUN_ID_FILE
        try:
            self.client = MlflowClient(tracking_uri(cfg))
            self.run_id = self._resume_or_create(cfg, run_dir)
        except Exception as e:  # a wrong URI, an unreachable server, a locked database
            raise GanstackError(f"MLFLOW.TRACKING_URI={tracking_uri(cfg)}: cannot log there "
                                f"({' '.join(str(e).split())[:300]})") from None

    def _resume_or_create(self, cfg, run_dir: Path) -> str:
        from mlflow.entities import Param
        if self.id_file.is_file():
            run_id = self.id_file.read_text().strip()
            try:
                self.client.get_run(run_id)
                self.client.update_run(run_id, status="RUNNING")
                return run_id
            except Exception:
                pass  # logged elsewhere (another tracking URI): a new MLflow run
        name = cfg.MLFLOW.EXPERIMENT
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            location = cfg.MLFLOW.ARTIFACT_LOCATION or (Path(cfg.OUTPUT_DIR) / "mlartifacts").resolve().as_uri()
            experiment_id = self.client.create_experiment(name, artifact_location=location)
        else:
            experiment_id = experiment.experiment_id
        run = self.client.create_run(experiment_id, run_name=run_dir.name,
                                     tags={"ganstack.variant": cfg.VARIANT, "ganstack.run_dir": str(run_dir.resolve())})
        params = [Param(k, v) for k, v in flat_params(cfg.to_dict()).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
            self.client.log_batch(run.info.run_id, params=params[i:i + 100])
        run_dir.mkdir(parents=True, exist_ok=True)
        self.id_file.write_text(run.info.run_id + "\n")
        return run.info.run_id

    def scalars(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric
        import time
        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in values.items() if np.isfinite(value)]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def image(self, tag: str, grid: torch.Tensor, step: int) -> None:
        """(3, H, W) in [0, 1], as TensorBoard's add_image takes it."""
        array = (grid.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
        self.client.log_image(self.run_id, array, key=tag, step=step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.client.log_text(self.run_id, text, f"text/{tag.replace('/', '_')}_{step:08d}.txt")

    def report(self, name: str, report: dict, step: int) -> None:
        self.client.log_dict(self.run_id, report, f"eval/{name}_{step:08d}.json")

    def close(self, finished: bool) -> None:
        self.client.set_terminated(self.run_id, status="FINISHED" if finished else "KILLED")


def report_json(report: dict) -> dict:
    """A report with only what JSON holds (numbers, strings, lists, dicts)."""
    return json.loads(json.dumps(report, default=str))
