"""Reading back what the trackers wrote, as their own readers would: MLflow through its client on the SQLite
store, W&B from the records of an offline run file, TensorBoard through its event accumulator."""

from __future__ import annotations

import json
import struct
from pathlib import Path

BLOCK = 32768  # the W&B run file is a LevelDB-style log: 32 KiB blocks of records with a 7-byte header
FULL, LAST = 1, 4


def mlflow_client(directory: Path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{Path(directory).resolve() / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def mlflow_run(directory: Path, name: str, experiment: str = "cineflow"):
    """The one MLflow run named `name` (asserted to be one)."""
    client = mlflow_client(directory)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.mlflow.runName = '{name}'")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return client, runs[0]


def wandb_records(path: Path) -> list:
    """The protobuf records of a W&B offline run file (run-<id>.wandb), in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    records, position, pending = [], 7, b""
    while position + 7 <= len(data):
        left = BLOCK - position % BLOCK
        _, length, kind = struct.unpack("<IHB", data[position:position + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (kind == 0 and length == 0):  # the block's tail is padding
            position += left
            continue
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_runs(directory: Path) -> dict:
    """{(run name, job type): {"config", "history", "summary", "artifacts", "stats"}} of every offline run under
    `directory`/wandb: what `wandb sync` would upload."""
    runs = {}
    for path in sorted(Path(directory).glob("wandb/offline-run-*/run-*.wandb")):
        found = {"config": {}, "history": [], "summary": {}, "artifacts": [], "stats": set(), "group": None}
        name = job = None
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                name, job, found["group"] = record.run.display_name, record.run.job_type, record.run.run_group
                found["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
            elif kind == "config":
                found["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
            elif kind == "history":
                found["history"].append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                         for i in record.history.item})
            elif kind == "summary":
                found["summary"].update({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                                         for i in record.summary.update})
            elif kind == "artifact":
                found["artifacts"].append((record.artifact.name, record.artifact.type,
                                           sorted(f.path for f in record.artifact.manifest.contents)))
            elif kind == "stats":
                found["stats"].update(i.key for i in record.stats.item)
        runs[(name, job)] = found
    return runs
