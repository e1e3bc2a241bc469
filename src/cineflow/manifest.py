"""Join the labels table with the cache shards: the manifest of usable videos and the quarantine list."""

from __future__ import annotations

import pandas as pd

MANIFEST_COLUMNS = ["video_id", "source", "label", "group", "ef", "augment", "n_frames", "fps", "height", "width",
                    "channels", "frames_path"]
QUARANTINE_COLUMNS = ["video_id", "source", "reason"]


def build_manifest(labels: pd.DataFrame, shard_tables: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    shards = pd.concat(shard_tables, ignore_index=True)
    merged = labels.drop(columns=["path"]).merge(shards, on="video_id", how="inner", validate="one_to_one")
    if "ef" not in merged:
        merged["ef"] = float("nan")
    ok = merged["status"] == "ok"
    manifest = merged.loc[ok, MANIFEST_COLUMNS].sort_values("video_id").reset_index(drop=True)
    quarantine = merged.loc[~ok, QUARANTINE_COLUMNS].sort_values("video_id").reset_index(drop=True)
    return manifest, quarantine
