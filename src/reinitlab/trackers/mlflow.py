"""MLflow: a local SQLite store, never a server.

    STORE/mlflow.db       runs, parameters, metrics, tags      mlflow ui --backend-store-uri sqlite:///STORE/mlflow.db
    STORE/artifacts/      config.json and result.json of each run

One experiment per study (its name), "reinitlab" for single runs; a run per run folder, found
again by its tag reinitlab.key: writing a folder anew (a restart, a resume, an export) deletes its
earlier MLflow run (MLflow's soft delete: `mlflow gc` removes it for good) and writes a new one,
so no epoch is logged twice. Metrics at step = epoch_total. MLflow's telemetry is switched off
(MLFLOW_DISABLE_TELEMETRY) unless the environment says otherwise: reinitlab never uses the network.
"""
from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

from ..train.hooks import TRACKERS
from .base import TrackedRun, Writer

DB = "mlflow.db"
ARTIFACTS = "artifacts"
_BATCH = 100  # MLflow's limit of parameters (and tags) per log_batch call


@contextlib.contextmanager
def _locked(path: Path):
    """Two study workers creating the database or the experiment at once would race; `flock` is
    dropped by the kernel if a holder dies."""
    try:
        import fcntl
    except ImportError:  # no flock: one process at a time is the user's to ensure
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def tracking_uri(store: Path) -> str:
    return "sqlite:///" + str(Path(store).resolve() / DB)


def client_for(store: Path):
    """An MlflowClient of the store (also what tests and users read it back with)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient
    return MlflowClient(tracking_uri=tracking_uri(store))


@TRACKERS.register("mlflow")
class MlflowWriter(Writer):
    name = "mlflow"
    package = "mlflow"

    @staticmethod
    def open_command(store: Path) -> str:
        return f"mlflow ui --backend-store-uri {tracking_uri(store)}"

    def open(self, run: TrackedRun) -> None:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.entities import Param

        store = Path(run.store)
        store.mkdir(parents=True, exist_ok=True)
        # creating the tables logs alembic's migrations at INFO to stderr, through the progress bar
        for name in ("alembic", "mlflow"):
            logging.getLogger(name).setLevel(logging.WARNING)
        with _locked(store / ".lock"):
            self.client = client = client_for(store)
            exp = client.get_experiment_by_name(run.experiment)
            if exp is None:
                exp_id = client.create_experiment(run.experiment,
                                                  artifact_location=(store / ARTIFACTS).resolve().as_uri())
            else:
                exp_id = exp.experiment_id
                if exp.lifecycle_stage == "deleted":
                    client.restore_experiment(exp_id)
            for old in client.search_runs([exp_id], filter_string=f"tags.`reinitlab.key` = '{run.key}'"):
                client.delete_run(old.info.run_id)
            self.run_id = client.create_run(exp_id, run_name=run.name, tags=run.tags).info.run_id
        params = [Param(k, str(v)) for k, v in run.params.items()]
        for i in range(0, len(params), _BATCH):
            client.log_batch(self.run_id, params=params[i:i + _BATCH])
        client.log_dict(self.run_id, run.config, "config.json")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        from mlflow.entities import Metric
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v in values.items()]
        for i in range(0, len(metrics), 1000):  # MLflow's limit of metrics per call
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])

    def text(self, step: int, tag: str, text: str) -> None:
        # a tag per event (shown with the run); the step in its name keeps a round's reset apart
        self.client.set_tag(self.run_id, f"{tag}.step{step}", text)

    def close(self, result: dict) -> None:
        self.client.set_tag(self.run_id, "status", str(result.get("status")))
        self.client.log_dict(self.run_id, result, "result.json")
        self.client.set_terminated(self.run_id, "FINISHED" if result.get("status") == "finished" else "FAILED")

    def abort(self) -> None:
        if getattr(self, "run_id", None):
            self.client.set_terminated(self.run_id, "FAILED")
